export { KeyVaultEmulator } from './emulator';
export type { KeyVaultEmulatorOptions } from './options';
export { DEFAULT_TENANT_ID } from './options';
export type { FaultSpec } from './faults';
export type { EmulatorStats } from './stats';
export type { AuthOptions } from './auth';
export type { OperationName } from './http/router';
export { OPERATION_NAMES } from './http/router';
export { emulatorCredential } from './credential';
