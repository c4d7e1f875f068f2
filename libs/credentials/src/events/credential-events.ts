import type { CredentialType } from '../credential-type';

/** Event names emitted through EventEmitter2 (register EventEmitterModule.forRoot() in the host). */
export const CredentialEvents = {
  STORED: 'credential.stored',
  READ: 'credential.read',
  ROTATED: 'credential.rotated',
  ROLLED_BACK: 'credential.rolled_back',
  METADATA_UPDATED: 'credential.metadata_updated',
  DELETED: 'credential.deleted',
} as const;
export type CredentialEventName = (typeof CredentialEvents)[keyof typeof CredentialEvents];

/** Payload of every `credential.*` event. Never a value. */
export interface CredentialEvent {
  name: CredentialEventName;
  credentialId: string;
  tenantId: string;
  integrationId: string;
  connectionId: string;
  type: CredentialType;
  /** Current version after the operation (the version read, for `credential.read`). */
  version: number;
  rowVersion: number;
  /** Rollback: the version whose value became current again. */
  sourceVersion?: number;
  actorId: string;
  correlationId?: string;
  occurredAt: Date;
}
