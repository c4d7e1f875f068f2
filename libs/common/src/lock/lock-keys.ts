/**
 * The one registry of names used with the `DistributedLock` and with PostgreSQL advisory locks.
 * A key used anywhere in the libs is listed here, so two features can never take each other's lock
 * by accident (lock-keys.spec.ts checks the names, and their advisory-lock hashes, are distinct).
 */
export const LOCK_KEYS = {
  /** `AuditRetentionService.runOnce` (the `audit-retention` job). */
  auditRetention: 'audit-retention',
  /** `AuditAnchorService.runOnce` (the `audit-anchor` job). */
  auditAnchor: 'audit-anchor',
  /** `OAuthRefreshService.refreshExpiringTokens` (the proactive refresh job). */
  oauthProactiveRefresh: 'oauth-proactive-refresh',
  /** `OutboxDispatcher` in a host without a schema (else `LOCK_KEY_PREFIXES.outboxDispatcherInSchema`). */
  outboxDispatcher: 'cv-outbox-dispatcher',
  /** The rotation lib's `expiry-monitor` job. */
  rotationExpiryMonitor: 'rotation-expiry-monitor',
  /** The rotation lib's `rotation-check` job. */
  rotationCheck: 'rotation-check',
  /** The credentials lib's `credential-orphan-versions` job (`CredentialOrphanVersions.runOnce`). */
  credentialOrphanVersions: 'credential-orphan-versions',
  /** The rotation lib's `webhook-secret-rotation` job. */
  rotationWebhookSecrets: 'rotation-webhook-secrets',
} as const;

/** A fixed lock key of the registry. */
export type LockKey = (typeof LOCK_KEYS)[keyof typeof LOCK_KEYS];

/** Families of keys built at run time: the prefix, then a variable part. */
export const LOCK_KEY_PREFIXES = {
  /** One OAuth refresh per connection across replicas: + JSON `[tenantId, integrationId, connectionId]`. */
  oauthConnectionRefresh: 'oauth-refresh:',
  /** The outbox dispatcher of a host whose DataSource has a schema: + the schema name. */
  outboxDispatcherInSchema: 'cv-outbox-dispatcher:',
  /** One rotation of a credential at a time across replicas (manual, automatic, webhook, revoke): + the credential id. */
  credentialRotation: 'rotation:',
  /** One create of a Key Vault key name at a time across replicas (the vault's create of a taken name adds a version): + the vault key name. */
  keyCreate: 'key-create:',
} as const;

export type LockKeyPrefixName = keyof typeof LOCK_KEY_PREFIXES;

/** The key of one member of a family: `prefixedLockKey('outboxDispatcherInSchema', 'tenant_a')`. */
export function prefixedLockKey(family: LockKeyPrefixName, suffix: string): string {
  if (typeof suffix !== 'string' || suffix.length === 0) throw new TypeError(`The "${family}" lock key needs a non-empty suffix`);
  return `${LOCK_KEY_PREFIXES[family]}${suffix}`;
}

/**
 * Namespaces `advisoryLockKey` hashes names under. `DistributedLock` keys (both tables above) live
 * in `distributedLock`; the transaction-level locks of one tenant's audit chain in `auditChain`, of its
 * notification settings in `notificationSettings`, so a tenant id can never hash onto a job's lock.
 */
export const ADVISORY_LOCK_NAMESPACES = {
  distributedLock: 'cv-lock',
  auditChain: 'cv-audit-chain',
  /** A tenant's notification settings update (rotation lib), one at a time, its first included. */
  notificationSettings: 'cv-notification-settings',
} as const;
