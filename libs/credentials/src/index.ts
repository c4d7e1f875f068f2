export { CredentialsModule } from './credentials.module';
export { CREDENTIALS_MODULE_OPTIONS } from './credentials.module-definition';
export type { CredentialsOptionsFactory } from './credentials.module-definition';
export type { CredentialsModuleOptions, CredentialsCacheOptions, CredentialsCacheStore, RedisCacheStoreOptions, CredentialsReadAuditOptions, CredentialsVaultStoreOptions, CredentialsEnvelopeStoreOptions, CredentialsOrphanVersionsOptions } from './credentials.options';
export { resolveCredentialsOptions, DEFAULT_VALUE_STORES } from './credentials.options';
export { CredentialsService } from './credentials.service';
export { MAX_LIST_BY_LAST_CHANGE } from './credential.queries';
export { MAX_STORE_MANY, type StoreManyItem, type StoreManyOptions, type StoreManyResult } from './credential-batch.writer';
export { CredentialExpiryScanner } from './credential-expiry.scanner';
export { CREDENTIAL_EXPIRED_EVENT, CREDENTIAL_EXPIRY_ACTOR, type CredentialExpiredPayload, type ExpiryTransitionResult } from './credential-expiry.transition';
export {
  CredentialType,
  CREDENTIAL_TYPES,
  CredentialStatus,
  ConnectionStatus,
  ValueStoreKind,
  type CredentialTypeInput,
  type ValueStoreKindInput,
  type CredentialStatusInput,
} from './credential-type';
export type * from './credential.types';
export { assertChangeableCredential, INTERNAL_CONNECTION_PREFIXES, INTERNAL_CREDENTIAL_TYPE, isInternalCredential, isReservedConnectionId, RESERVED_CONNECTION_MESSAGE } from './internal-credentials';
export {
  CredentialErrorCode,
  CREDENTIAL_ERROR_HTTP_STATUS,
  CredentialError,
  CredentialValidationError,
  CredentialNotFoundError,
  CredentialConflictError,
  CredentialAlreadyExistsError,
  CredentialVersionNotFoundError,
  CredentialValueMissingError,
  CredentialIntegrityError,
  CredentialsConfigurationError,
  CredentialRevokedError,
  CredentialExpiredError,
  CredentialWriteTooSlowError,
  CredentialRevokeIncompleteError,
  DataKeyNotFoundError,
  CredentialGenerationsExhaustedError,
  AuditAnchorStoreError,
} from './errors/credential-errors';
export {
  CREDENTIAL_CHANGE_INTERNAL_PREFIX,
  CredentialEvents,
  credentialChangeEventNames,
  credentialChangeOf,
  type CredentialChangeEventName,
  type CredentialEvent,
  type CredentialEventName,
} from './events/credential-events';
export { CredentialCache, type CredentialCacheStats, type CacheLoadOptions, type ReplicaEvictions } from './cache/credential-cache';
export { LruCredentialCache, type LruCredentialCacheOptions } from './cache/lru-credential-cache';
export type { CredentialCacheHealth, SharedCacheStats } from './cache/credential-cache';
export { TieredCredentialCache, type RedisTierOptions } from './cache/tiered-credential-cache';
export { DEFAULT_INVALIDATION_LIVENESS, HEARTBEAT_LIMITS, type InvalidationLiveness } from './cache/invalidation-liveness';
export { closeRedisConnection, redisCommandRefusal, type CacheRedisClient, type CacheRedisSubscriber, type ClosableRedisConnection } from './cache/redis-connection';
export { CacheInvalidationBus, type InvalidationMessage } from './cache/invalidation-bus';
export { cacheKeySecretName } from './cache/credential-cache.provider';
export { ReadAuditCoalescer } from './audit/read-audit-coalescer';
export { KeyVaultAuditAnchorStore, auditAnchorSecretName } from './audit/key-vault-audit-anchor.store';
export { DataKeyService, type DataKey, type RewrapResult } from './stores/data-key.service';
export { KeyEncryptionKeyHealthCheck, type KeyEncryptionKeyHealth } from './stores/key-encryption-key-health-check';
export { EnvelopeValueStore, type ReencryptResult } from './stores/envelope-value-store';
export { VaultValueDeletion, VAULT_VALUE_DELETION_EVENT } from './stores/vault-value-deletion';
export { validateCredentialValue, MAX_VALUE_BYTES, MIN_WEBHOOK_SECRET_BYTES, type CertificateInfo } from './validation/credential-value.validator';
export { DOTS_ONLY_MESSAGE, IDENTIFIER_PATTERN, isDotsOnly, MAX_TAGS, NEW_IDENTIFIER_PATTERN, assertTags as assertCredentialTags } from './validation/identifiers';
export { maskValue, MASK_MIN_VALUE_LENGTH } from './masking';
export { credentialSecretName, dataKeySecretName, KEY_VAULT_NAME_PATTERN } from './naming/vault-secret-name';
export { CREDENTIALS_ENTITIES, CredentialEntity, CredentialVersionEntity, EnvelopeValueEntity } from './entities';
export { CREDENTIALS_MIGRATIONS } from './migrations';
export { CredentialOrphanVersions, ORPHAN_VERSIONS_JOB, ORPHAN_VERSIONS_AUDIT_ACTION, type OrphanVersionsResult } from './orphans/orphan-versions.service';
export { VALUE_COMMIT_DEADLINE_MS, MIN_ORPHAN_GRACE_MS } from './internal/value-commit-deadline';
export { recordableId } from './internal/guards';
