import { Clock, SystemClock } from '@app/common';
import { CREDENTIAL_TYPES, CredentialType, ValueStoreKind } from './credential-type';
import { CredentialsConfigurationError } from './errors/credential-errors';
import { NAME_PREFIX_PATTERN } from './naming/vault-secret-name';
import { IDENTIFIER_PATTERN } from './validation/identifiers';

/** Options of the in-process credential cache. */
export interface CredentialsCacheOptions {
  /** Turn the cache off (every get reaches the database and the value store). @default true */
  enabled?: boolean;
  /** Base time-to-live of a cached read. @default 300000 (5 minutes) */
  ttlMs?: number;
  /** Each entry lives a random time in [ttlMs × (1 − jitterRatio), ttlMs]. 0..1. @default 0.2 */
  jitterRatio?: number;
  /** Maximum cached credentials (least recently used evicted first). @default 10000 */
  maxEntries?: number;
  /**
   * When the value store is unavailable (throttled, timing out, circuit open), serve an expired entry
   * for up to this long past its expiry. Never used after a write/delete (those invalidate). 0 = off.
   * @default 0
   */
  maxStaleMs?: number;
}

/** Options of read auditing. */
export interface CredentialsReadAuditOptions {
  /**
   * Identical successful reads (same tenant, actor, correlation id, credential, version) within this
   * window become ONE audit event with `details.reads` = how many. 0 = one audit event per read.
   * Failed/denied reads are never folded.
   * @default 1000
   */
  coalesceWindowMs?: number;
  /** Distinct folded events held before they are handed to the audit log early. @default 10000 */
  maxPendingKeys?: number;
}

/** Options of the Key Vault value store. */
export interface CredentialsVaultStoreOptions {
  /** Prefix of every secret name this lib creates: `^[a-z][a-z0-9]{0,15}$`. @default 'cv' */
  namePrefix?: string;
  /**
   * Versions written to one secret name before new versions go to the next generation name.
   * Key Vault cannot back up a secret with more than 500 versions; the margin leaves room for
   * versions written but never committed (crashes, conflicts). 1..500. @default 450
   */
  maxVersionsPerGeneration?: number;
}

/** Options of the envelope value store. */
export interface CredentialsEnvelopeStoreOptions {
  /**
   * How long a tenant's *current* data-key version is trusted before the vault is asked again for
   * the latest (picks up a rotation done by another replica). Key versions themselves are cached
   * forever (they are immutable). @default 3600000 (1 hour)
   */
  currentKeyRefreshMs?: number;
  /** Re-encrypt a ciphertext under the current data key when it is read. @default true */
  reencryptOnRead?: boolean;
}

export interface CredentialsModuleOptions {
  /**
   * Value store per credential type; types not listed use the default: OAUTH_ACCESS_TOKEN →
   * envelope (short-lived, high churn), everything else → vault. A `store()` call may override.
   * @default { oauth_access_token: 'envelope' } (others 'vault')
   */
  valueStores?: Partial<Record<CredentialType, ValueStoreKind>>;
  cache?: CredentialsCacheOptions;
  readAudit?: CredentialsReadAuditOptions;
  vault?: CredentialsVaultStoreOptions;
  envelope?: CredentialsEnvelopeStoreOptions;
  /** Minimum entropy of a webhook secret, in bytes (Standard Webhooks: 24). @default 24 */
  minWebhookSecretBytes?: number;
  /**
   * Integration ids every tenant can connect. listConnections() shows each one without a credential
   * as `not_configured`. @default []
   */
  integrations?: string[];
  /** Page size of list() when the caller gives none. @default 50 */
  defaultPageSize?: number;
  /** Largest page size list() accepts. @default 500 */
  maxPageSize?: number;
  /** Emit domain events (`credential.*`) through EventEmitter2 when one is registered. @default true */
  emitEvents?: boolean;
  /** Time source for expiry, TTLs and timestamps (tests pass a ManualClock). @default new SystemClock() */
  clock?: Clock;
}

export interface ResolvedCredentialsOptions {
  valueStores: Record<CredentialType, ValueStoreKind>;
  cache: Required<CredentialsCacheOptions>;
  readAudit: Required<CredentialsReadAuditOptions>;
  vault: Required<CredentialsVaultStoreOptions>;
  envelope: Required<CredentialsEnvelopeStoreOptions>;
  minWebhookSecretBytes: number;
  integrations: string[];
  defaultPageSize: number;
  maxPageSize: number;
  emitEvents: boolean;
  clock: Clock;
}

export const DEFAULT_VALUE_STORES: Readonly<Record<CredentialType, ValueStoreKind>> = Object.fromEntries(
  CREDENTIAL_TYPES.map((t) => [t, t === CredentialType.OAUTH_ACCESS_TOKEN ? ValueStoreKind.ENVELOPE : ValueStoreKind.VAULT]),
) as Record<CredentialType, ValueStoreKind>;

/** Merges defaults and validates once; the error lists every problem and how to fix it. */
export function resolveCredentialsOptions(options: CredentialsModuleOptions = {}): ResolvedCredentialsOptions {
  const problems: string[] = [];
  const resolved: ResolvedCredentialsOptions = {
    valueStores: { ...DEFAULT_VALUE_STORES, ...(options.valueStores ?? {}) },
    cache: {
      enabled: options.cache?.enabled ?? true,
      ttlMs: options.cache?.ttlMs ?? 300_000,
      jitterRatio: options.cache?.jitterRatio ?? 0.2,
      maxEntries: options.cache?.maxEntries ?? 10_000,
      maxStaleMs: options.cache?.maxStaleMs ?? 0,
    },
    readAudit: {
      coalesceWindowMs: options.readAudit?.coalesceWindowMs ?? 1000,
      maxPendingKeys: options.readAudit?.maxPendingKeys ?? 10_000,
    },
    vault: {
      namePrefix: options.vault?.namePrefix ?? 'cv',
      maxVersionsPerGeneration: options.vault?.maxVersionsPerGeneration ?? 450,
    },
    envelope: {
      currentKeyRefreshMs: options.envelope?.currentKeyRefreshMs ?? 3_600_000,
      reencryptOnRead: options.envelope?.reencryptOnRead ?? true,
    },
    minWebhookSecretBytes: options.minWebhookSecretBytes ?? 24,
    integrations: options.integrations ?? [],
    defaultPageSize: options.defaultPageSize ?? 50,
    maxPageSize: options.maxPageSize ?? 500,
    emitEvents: options.emitEvents ?? true,
    clock: options.clock ?? new SystemClock(),
  };
  for (const [type, store] of Object.entries(options.valueStores ?? {})) {
    if (!CREDENTIAL_TYPES.includes(type as CredentialType)) problems.push(`valueStores: unknown credential type "${type}" (use one of ${CREDENTIAL_TYPES.join(', ')})`);
    if (store !== ValueStoreKind.VAULT && store !== ValueStoreKind.ENVELOPE) problems.push(`valueStores.${type}: must be 'vault' or 'envelope'`);
  }
  const c = resolved.cache;
  if (!(Number.isFinite(c.ttlMs) && c.ttlMs > 0)) problems.push('cache.ttlMs: must be a positive number of milliseconds');
  if (!(c.jitterRatio >= 0 && c.jitterRatio < 1)) problems.push('cache.jitterRatio: must be in [0, 1)');
  if (!(Number.isInteger(c.maxEntries) && c.maxEntries > 0)) problems.push('cache.maxEntries: must be a positive integer');
  if (!(Number.isFinite(c.maxStaleMs) && c.maxStaleMs >= 0)) problems.push('cache.maxStaleMs: must be ≥ 0 (0 disables serve-stale)');
  const ra = resolved.readAudit;
  if (!(Number.isFinite(ra.coalesceWindowMs) && ra.coalesceWindowMs >= 0 && ra.coalesceWindowMs <= 60_000)) problems.push('readAudit.coalesceWindowMs: must be in 0..60000 ms (0 = one audit event per read)');
  if (!(Number.isInteger(ra.maxPendingKeys) && ra.maxPendingKeys >= 1)) problems.push('readAudit.maxPendingKeys: must be a positive integer');
  if (!NAME_PREFIX_PATTERN.test(resolved.vault.namePrefix)) problems.push(`vault.namePrefix: must match ${NAME_PREFIX_PATTERN.source}`);
  const g = resolved.vault.maxVersionsPerGeneration;
  if (!(Number.isInteger(g) && g >= 1 && g <= 500)) problems.push('vault.maxVersionsPerGeneration: must be an integer in 1..500 (Key Vault backs up at most 500 versions)');
  if (!(resolved.envelope.currentKeyRefreshMs > 0)) problems.push('envelope.currentKeyRefreshMs: must be > 0');
  if (!(Number.isInteger(resolved.minWebhookSecretBytes) && resolved.minWebhookSecretBytes >= 16)) problems.push('minWebhookSecretBytes: must be an integer ≥ 16');
  for (const i of resolved.integrations) if (!IDENTIFIER_PATTERN.test(i)) problems.push(`integrations: "${i}" must match ${IDENTIFIER_PATTERN.source}`);
  if (!(Number.isInteger(resolved.defaultPageSize) && resolved.defaultPageSize >= 1)) problems.push('defaultPageSize: must be a positive integer');
  if (!(Number.isInteger(resolved.maxPageSize) && resolved.maxPageSize >= resolved.defaultPageSize)) problems.push('maxPageSize: must be an integer ≥ defaultPageSize');
  if (typeof resolved.clock?.now !== 'function') problems.push('clock: must be a Clock (an object with now(): Date)');
  if (problems.length) {
    throw new CredentialsConfigurationError(`Invalid CredentialsModule options:\n  - ${problems.join('\n  - ')}`);
  }
  return resolved;
}
