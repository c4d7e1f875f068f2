/**
 * What other apps (the CLI) may use of the reference host, through the `@app/api-host` alias. Other
 * apps never import host files by relative path (a lint error): anything they need is re-exported
 * here, so the host's internal layout can change without breaking them.
 */
export { APP_CONFIG, loadAppConfig, loadAppConfigReadingFiles } from './config/app.config';
export { AppConfigModule } from './config/config.module';
export type { AppConfig } from './config/app-config.types';
export { databaseOptions, persistenceOptions } from './database/database.options';
export { VaultModule } from './vault/vault.module';
export { AuditAnchorModule } from './audit/audit-anchor.module';
export { generateApiKey } from './auth/api-keys';
export { ALL_SCOPES } from './auth/scopes';
export { loadAppConfigResolvingReferences } from './config/keyvault-references';
export { TenantBackupService, type BackupPayload, type RestoreReport } from './backup/tenant-backup.service';
export {
  BackupBundleError,
  keyFromPassphrase,
  newPassphraseSalt,
  openBundle,
  parseBackupKey,
  readBundleHeader,
  sealBundle,
  type BackupKeySource,
} from './backup/backup-bundle';
