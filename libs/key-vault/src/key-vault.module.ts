import { Logger, Module, type DynamicModule, type Provider } from '@nestjs/common';
import { provideSingleRegistration } from '@app/common';
import { KeyVaultErrorCode } from './errors/key-vault-error-code';
import { KeyVaultError } from './errors/key-vault.error';
import { HealthIndicatorService } from '@nestjs/terminus';
import type { TokenCredential } from '@azure/identity';
import { createCryptographyClientFactory, createKeyClient, type CryptographyClientFactory, type KeyVaultKeyClient } from './client/key-client.factory';
import { createSecretClient, type KeyVaultSecretClient } from './client/secret-client.factory';
import { AzureKeyVaultKeysProvider } from './azure-key-vault-keys.provider';
import { AzureKeyVaultProvider } from './azure-key-vault.provider';
import { KeyVaultHealthIndicator } from './health/key-vault.health';
import { createTokenCredential } from './identity/credential.factory';
import type { KeyVaultModuleOptions, KeyVaultOptionsFactory, ResolvedKeyVaultOptions } from './interfaces/key-vault-module-options.interface';
import {
  KEY_VAULT_CRYPTOGRAPHY_CLIENTS,
  KEY_VAULT_KEY_CLIENT,
  KEY_VAULT_RESOLVED_OPTIONS,
  KEY_VAULT_SECRET_CLIENT,
  KEY_VAULT_TOKEN_CREDENTIAL,
} from './key-vault.internal-constants';
import { KeyVaultKeysProvider } from './key-vault-keys.provider';
import { ConfigurableKeyVaultModule, KEY_VAULT_MODULE_OPTIONS, type KeyVaultModuleAsyncOptions } from './key-vault.module-definition';
import { resolveKeyVaultOptions } from './key-vault.options';
import { KeyVaultProvider } from './key-vault.provider';
import { KeyVaultMetrics } from './metrics/key-vault.metrics';
import { KeyVaultResilience } from './resilience/key-vault.resilience';

const providers: Provider[] = [
  provideSingleRegistration(Symbol('KEY_VAULT_REGISTERED_ONCE'), () => KeyVaultModule, 'KeyVaultModule', (m) => new KeyVaultError(KeyVaultErrorCode.CONFIGURATION, m, { operation: 'configuration' })),
  {
    // Validated once, here: a bad option fails application bootstrap with a CONFIGURATION KeyVaultError.
    provide: KEY_VAULT_RESOLVED_OPTIONS,
    useFactory: (options: KeyVaultModuleOptions) => resolveKeyVaultOptions(options),
    inject: [KEY_VAULT_MODULE_OPTIONS],
  },
  {
    // One identity for the whole vault: secrets, keys and cryptography share its token cache.
    provide: KEY_VAULT_TOKEN_CREDENTIAL,
    useFactory: (options: ResolvedKeyVaultOptions): TokenCredential => createTokenCredential(options.credential),
    inject: [KEY_VAULT_RESOLVED_OPTIONS],
  },
  {
    provide: KEY_VAULT_SECRET_CLIENT,
    useFactory: (options: ResolvedKeyVaultOptions, credential: TokenCredential): KeyVaultSecretClient => createSecretClient(options, credential),
    inject: [KEY_VAULT_RESOLVED_OPTIONS, KEY_VAULT_TOKEN_CREDENTIAL],
  },
  {
    provide: KEY_VAULT_KEY_CLIENT,
    useFactory: (options: ResolvedKeyVaultOptions, credential: TokenCredential): KeyVaultKeyClient => createKeyClient(options, credential),
    inject: [KEY_VAULT_RESOLVED_OPTIONS, KEY_VAULT_TOKEN_CREDENTIAL],
  },
  {
    provide: KEY_VAULT_CRYPTOGRAPHY_CLIENTS,
    useFactory: (options: ResolvedKeyVaultOptions, credential: TokenCredential): CryptographyClientFactory => createCryptographyClientFactory(options, credential),
    inject: [KEY_VAULT_RESOLVED_OPTIONS, KEY_VAULT_TOKEN_CREDENTIAL],
  },
  {
    provide: KeyVaultMetrics,
    useFactory: (options: ResolvedKeyVaultOptions) => new KeyVaultMetrics(options.metrics),
    inject: [KEY_VAULT_RESOLVED_OPTIONS],
  },
  {
    provide: KeyVaultResilience,
    useFactory: (options: ResolvedKeyVaultOptions, metrics: KeyVaultMetrics) => new KeyVaultResilience(options.resilience, metrics, options.vaultUrl),
    inject: [KEY_VAULT_RESOLVED_OPTIONS, KeyVaultMetrics],
  },
  AzureKeyVaultProvider,
  { provide: KeyVaultProvider, useExisting: AzureKeyVaultProvider },
  AzureKeyVaultKeysProvider,
  { provide: KeyVaultKeysProvider, useExisting: AzureKeyVaultKeysProvider },
  HealthIndicatorService,
  KeyVaultHealthIndicator,
];

/**
 * Azure Key Vault access: `KeyVaultProvider` (SecretClient + identity + resilience + typed errors),
 * `KeyVaultKeysProvider` (KeyClient + CryptographyClient on the same identity and resilience),
 * `KeyVaultHealthIndicator` and `KeyVaultMetrics`.
 *
 * ```ts
 * KeyVaultModule.forRoot({ vaultUrl: 'https://myvault.vault.azure.net', credential: { type: 'managed-identity' } })
 * KeyVaultModule.forRootAsync({ imports: [ConfigModule], inject: [ConfigService], useFactory: (c) => c.getOrThrow('keyVault'), isGlobal: true })
 * ```
 */
@Module({
  providers,
  exports: [KeyVaultProvider, KeyVaultKeysProvider, KeyVaultHealthIndicator, KeyVaultMetrics],
})
export class KeyVaultModule extends ConfigurableKeyVaultModule {
  /**
   * As generated, except for an options factory class (`useClass` / `useExisting`): its `create()` is
   * called, or, for factories written before every lib module's factory method was `create`, its
   * deprecated `createKeyVaultOptions()`.
   */
  static override forRootAsync(options: KeyVaultModuleAsyncOptions): DynamicModule {
    const { useClass, useExisting, ...rest } = options;
    const factory = useExisting ?? useClass;
    if (!factory) return super.forRootAsync(rest);
    const module = super.forRootAsync({ ...rest, useFactory: optionsFrom, inject: [factory] });
    return useClass ? { ...module, providers: [...(module.providers ?? []), { provide: useClass, useClass }] } : module;
  }
}

/** The options of a `useClass` / `useExisting` factory: `create()`, else the deprecated `createKeyVaultOptions()`. */
async function optionsFrom(factory: KeyVaultOptionsFactory): Promise<KeyVaultModuleOptions> {
  if (typeof factory.create === 'function') return factory.create();
  if (typeof factory.createKeyVaultOptions === 'function') {
    new Logger('KeyVaultModule').warn(
      `${factory.constructor.name}.createKeyVaultOptions() is deprecated: name the options factory's method create(), as for every lib module (KeyVaultOptionsFactory)`,
    );
    return factory.createKeyVaultOptions();
  }
  throw new KeyVaultError(
    KeyVaultErrorCode.CONFIGURATION,
    `KeyVaultModule.forRootAsync: the options factory ${factory.constructor.name} (useClass / useExisting) has no create() method`,
    { operation: 'configuration' },
  );
}
