import { Global, Module } from '@nestjs/common';
import { AuditAnchorStore } from '@app/audit';
import { KeyVaultAuditAnchorStore } from '@app/credentials';
import { KeyVaultProvider } from '@app/key-vault';
import { APP_CONFIG, AppConfig } from '../config/app.config';

/**
 * Anchors the audit chains in Key Vault. Global because the audit lib looks `AuditAnchorStore` up
 * from the global scope (optionally: without this module, verify checks the chains alone).
 */
@Global()
@Module({
  providers: [
    {
      provide: AuditAnchorStore,
      inject: [KeyVaultProvider, APP_CONFIG],
      useFactory: (kv: KeyVaultProvider, c: AppConfig) => new KeyVaultAuditAnchorStore(kv, c.credentials.vaultSecretPrefix),
    },
  ],
  exports: [AuditAnchorStore],
})
export class AuditAnchorModule {}
