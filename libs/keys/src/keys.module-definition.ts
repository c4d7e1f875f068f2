import { ConfigurableModuleBuilder } from '@nestjs/common';
import { AuditService } from '@app/audit';
import { requireHostModules, requireOptionsSource } from '@app/common';
import { KeyVaultKeysProvider } from '@app/key-vault';
import { KeysError, KeysErrorCode } from './errors/keys.errors';
import type { KeysModuleOptions } from './keys.options';

/** KeyVaultModule and AuditModule, checked: a missing or non-global one fails bootstrap with our error, not Nest's. */
export const KEYS_HOST_MODULES = requireHostModules(
  'KeysModule',
  [
    { module: 'KeyVaultModule', entry: 'key-vault', tokens: [KeyVaultKeysProvider] },
    { module: 'AuditModule', entry: 'audit', tokens: [AuditService] },
  ],
  (m) => new KeysError(KeysErrorCode.KEYS_CONFIGURATION, m),
);

export const {
  ConfigurableModuleClass: KeysConfigurableModule,
  MODULE_OPTIONS_TOKEN: KEYS_MODULE_OPTIONS,
  OPTIONS_TYPE: KEYS_OPTIONS_TYPE,
  ASYNC_OPTIONS_TYPE: KEYS_ASYNC_OPTIONS_TYPE,
} = new ConfigurableModuleBuilder<KeysModuleOptions>({ moduleName: 'Keys' })
  .setClassMethodName('forRoot')
  .setExtras({ isGlobal: false }, (definition, extras) => KEYS_HOST_MODULES.into({ ...definition, global: extras.isGlobal }))
  .build();
// A forRootAsync naming no source of its options fails when called, naming KeysModule (not Nest's "can't resolve dependencies").
requireOptionsSource(KeysConfigurableModule, 'KeysModule', (m) => new KeysError(KeysErrorCode.KEYS_CONFIGURATION, m));

/** `KeysModule.forRoot()` argument: the options plus `isGlobal`. */
export type KeysModuleForRootOptions = typeof KEYS_OPTIONS_TYPE;
/** `KeysModule.forRootAsync()` argument. */
export type KeysModuleAsyncOptions = typeof KEYS_ASYNC_OPTIONS_TYPE;

/** For `KeysModule.forRootAsync({ useClass | useExisting })`: `create()` returns the options, as for every lib module. */
export interface KeysOptionsFactory {
  create(): KeysModuleOptions | Promise<KeysModuleOptions>;
}
