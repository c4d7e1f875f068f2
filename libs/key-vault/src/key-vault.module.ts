import { Module, type Provider } from '@nestjs/common';
import { HealthIndicatorService } from '@nestjs/terminus';
import { createSecretClient, type KeyVaultSecretClient } from './client/secret-client.factory';
import { AzureKeyVaultProvider } from './azure-key-vault.provider';
import { KeyVaultHealthIndicator } from './health/key-vault.health';
import { createTokenCredential } from './identity/credential.factory';
import type { KeyVaultModuleOptions, ResolvedKeyVaultOptions } from './interfaces/key-vault-module-options.interface';
import { KEY_VAULT_RESOLVED_OPTIONS, KEY_VAULT_SECRET_CLIENT } from './key-vault.internal-constants';
import { ConfigurableKeyVaultModule, KEY_VAULT_MODULE_OPTIONS } from './key-vault.module-definition';
import { resolveKeyVaultOptions } from './key-vault.options';
import { KeyVaultProvider } from './key-vault.provider';
import { KeyVaultMetrics } from './metrics/key-vault.metrics';
import { KeyVaultResilience } from './resilience/key-vault.resilience';

const providers: Provider[] = [
  {
    // Validated once, here: a bad option fails application bootstrap with a CONFIGURATION KeyVaultError.
    provide: KEY_VAULT_RESOLVED_OPTIONS,
    useFactory: (options: KeyVaultModuleOptions) => resolveKeyVaultOptions(options),
    inject: [KEY_VAULT_MODULE_OPTIONS],
  },
  {
    provide: KEY_VAULT_SECRET_CLIENT,
    useFactory: (options: ResolvedKeyVaultOptions): KeyVaultSecretClient =>
      createSecretClient(options, createTokenCredential(options.credential)),
    inject: [KEY_VAULT_RESOLVED_OPTIONS],
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
  HealthIndicatorService,
  KeyVaultHealthIndicator,
];

/**
 * Azure Key Vault access: `KeyVaultProvider` (SecretClient + identity + resilience + typed errors),
 * `KeyVaultHealthIndicator` and `KeyVaultMetrics`.
 *
 * ```ts
 * KeyVaultModule.forRoot({ vaultUrl: 'https://myvault.vault.azure.net', credential: { type: 'managed-identity' } })
 * KeyVaultModule.forRootAsync({ imports: [ConfigModule], inject: [ConfigService], useFactory: (c) => c.get('keyVault'), isGlobal: true })
 * ```
 */
@Module({
  providers,
  exports: [KeyVaultProvider, KeyVaultHealthIndicator, KeyVaultMetrics],
})
export class KeyVaultModule extends ConfigurableKeyVaultModule {}
