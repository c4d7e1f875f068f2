import { ConfigurableModuleBuilder, type Type } from '@nestjs/common';
import { requireOptionsSource } from '@app/common';
import { KeyVaultErrorCode } from './errors/key-vault-error-code';
import { KeyVaultError } from './errors/key-vault.error';
import type { KeyVaultModuleOptions, KeyVaultOptionsFactory } from './interfaces/key-vault-module-options.interface';

/** Extras of `forRoot` / `forRootAsync` besides the options themselves. */
export interface KeyVaultModuleExtras {
  /** Register the module globally (its exports visible to every module). @default false */
  isGlobal?: boolean;
}

export const {
  ConfigurableModuleClass: ConfigurableKeyVaultModule,
  MODULE_OPTIONS_TOKEN: KEY_VAULT_MODULE_OPTIONS,
  OPTIONS_TYPE: KEY_VAULT_OPTIONS_TYPE,
  ASYNC_OPTIONS_TYPE: KEY_VAULT_ASYNC_OPTIONS_TYPE,
} = new ConfigurableModuleBuilder<KeyVaultModuleOptions>({ moduleName: 'KeyVault' })
  .setClassMethodName('forRoot')
  .setExtras<KeyVaultModuleExtras>({ isGlobal: false }, (definition, extras) => ({
    ...definition,
    global: extras.isGlobal ?? false,
  }))
  .build();
// A forRootAsync naming no source of its options fails when called, naming KeyVaultModule (not Nest's "can't resolve dependencies").
requireOptionsSource(ConfigurableKeyVaultModule, 'KeyVaultModule', (m) => new KeyVaultError(KeyVaultErrorCode.CONFIGURATION, m, { operation: 'configuration' }));

/** `KeyVaultModule.forRoot()` argument: the options plus `isGlobal`. */
export type KeyVaultModuleForRootOptions = typeof KEY_VAULT_OPTIONS_TYPE;
/**
 * `KeyVaultModule.forRootAsync()` argument: useFactory / useClass / useExisting, imports, inject, `isGlobal`.
 * A `useClass` / `useExisting` factory implements `KeyVaultOptionsFactory` (`create()`, or the deprecated
 * `createKeyVaultOptions()`).
 */
export type KeyVaultModuleAsyncOptions = Omit<typeof KEY_VAULT_ASYNC_OPTIONS_TYPE, 'useClass' | 'useExisting'> & {
  useClass?: Type<KeyVaultOptionsFactory>;
  useExisting?: Type<KeyVaultOptionsFactory>;
};
