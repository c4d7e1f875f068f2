export { KeyVaultModule } from './key-vault.module';
export type { KeyVaultModuleExtras, KeyVaultModuleForRootOptions, KeyVaultModuleAsyncOptions } from './key-vault.module-definition';
export { KEY_VAULT_MODULE_OPTIONS } from './key-vault.module-definition';
export {
  KeyVaultProvider,
  type SecretProperties,
  type SecretSummary,
  type Secret,
  type DeletedSecret,
  type SetSecretOptions,
  type UpdateSecretPropertiesOptions,
  type ListPageOptions,
  type Page,
  type KeyVaultCallOptions,
  type KeyVaultDeleteOptions,
  type KeyVaultReadOptions,
  type SecretVersionRef,
} from './key-vault.provider';
export {
  KeyVaultKeysProvider,
  DIGEST_BYTES,
  VAULT_RSA_KEY_SIZES,
  VAULT_EC_CURVES,
  VAULT_KEY_OPERATIONS,
  VAULT_SIGNATURE_ALGORITHMS,
  VAULT_ENCRYPTION_ALGORITHMS,
  type VaultKeyType,
  type VaultRsaKeySize,
  type VaultEcCurve,
  type VaultKeyOperation,
  type VaultSignatureAlgorithm,
  type VaultEncryptionAlgorithm,
  type VaultPublicJwk,
  type VaultKeyProperties,
  type VaultKey,
  type VaultKeyItem,
  type DeletedVaultKey,
  type CreateVaultKeyOptions,
  type UpdateVaultKeyPropertiesOptions,
  type VaultKeyRef,
} from './key-vault-keys.provider';
export type {
  KeyVaultModuleOptions,
  KeyVaultOptionsFactory,
  KeyVaultCredentialOptions,
  ManagedIdentityCredentialOptions,
  ClientSecretCredentialOptions,
  ClientCertificateCredentialOptions,
  WorkloadIdentityCredentialOptions,
  AzureCliCredentialOptions,
  DefaultCredentialOptions,
  StaticCredentialOptions,
  TokenCredentialOptions,
  KeyVaultTlsOptions,
  KeyVaultResilienceOptions,
  KeyVaultBreakerOptions,
  KeyVaultBulkheadOptions,
  KeyVaultMetricsOptions,
  KeyVaultHealthOptions,
} from './interfaces/key-vault-module-options.interface';
export { KeyVaultErrorCode } from './errors/key-vault-error-code';
export { callerLeftError, type CallerLeftStage } from './errors/caller-left';
export { KeyVaultError, isKeyVaultError, KEY_VAULT_ERROR_HTTP_STATUS, type KeyVaultOperation, type KeyVaultKeyOperationName } from './errors/key-vault.error';
export { KeyVaultHealthIndicator } from './health/key-vault.health';
export { KeyVaultMetrics, BreakerStateValue } from './metrics/key-vault.metrics';
