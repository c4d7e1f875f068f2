import { Module } from '@nestjs/common';
import { readFileSync } from 'node:fs';
import { KeyVaultModule, KeyVaultModuleOptions } from '@app/key-vault';
import { APP_CONFIG, AppConfig } from '../config/app.config';
import { EmbeddedVault } from './embedded-vault';

/** Starts the embedded local vault when no KEY_VAULT_URL is set, before anything needs a vault. */
@Module({
  providers: [{ provide: EmbeddedVault, inject: [APP_CONFIG], useFactory: (c: AppConfig) => EmbeddedVault.start(c) }],
  exports: [EmbeddedVault],
})
export class EmbeddedVaultModule {}

/** Maps the host's configuration onto KeyVaultModule options (the lib never reads the environment). */
export function keyVaultOptions(config: AppConfig, embedded: EmbeddedVault): KeyVaultModuleOptions {
  const kv = config.keyVault;
  const resilience = { timeoutMs: kv.timeoutMs, maxAttempts: kv.maxAttempts, breaker: { halfOpenAfterMs: kv.breakerHalfOpenAfterMs } };
  if (kv.mode === 'embedded') {
    const emulator = embedded.emulator!;
    return {
      vaultUrl: emulator.vaultUrl,
      credential: { type: 'static' },
      tls: { caCertPem: emulator.caCertPem },
      disableChallengeResourceVerification: true,
      resilience,
    };
  }
  const base = {
    vaultUrl: kv.url,
    resilience,
    disableChallengeResourceVerification: kv.disableChallengeResourceVerification,
    ...(kv.caCertPath ? { tls: { caCertPem: readFileSync(kv.caCertPath, 'utf8') } } : {}),
  };
  switch (kv.credential) {
    case 'client-secret':
      return { ...base, credential: { type: 'client-secret', tenantId: kv.tenantId!, clientId: kv.clientId!, clientSecret: kv.clientSecret! } };
    case 'client-certificate':
      return {
        ...base,
        credential: { type: 'client-certificate', tenantId: kv.tenantId!, clientId: kv.clientId!, certificatePath: kv.certificatePath! },
      };
    case 'managed-identity':
      return { ...base, credential: { type: 'managed-identity', clientId: kv.clientId } };
    case 'workload-identity':
      return {
        ...base,
        credential: { type: 'workload-identity', tenantId: kv.tenantId, clientId: kv.clientId, tokenFilePath: kv.federatedTokenFile },
      };
    case 'azure-cli':
      return { ...base, credential: { type: 'azure-cli' } };
    case 'static':
      return { ...base, credential: { type: 'static' } };
    default:
      return { ...base, credential: { type: 'default', managedIdentityClientId: kv.clientId } };
  }
}

@Module({
  imports: [
    KeyVaultModule.forRootAsync({
      isGlobal: true,
      imports: [EmbeddedVaultModule],
      inject: [APP_CONFIG, EmbeddedVault],
      useFactory: keyVaultOptions,
    }),
  ],
})
export class VaultModule {}
