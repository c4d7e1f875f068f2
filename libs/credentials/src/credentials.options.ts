import { booleanOption, Clock, clockOptionSchema, cronExpressionSchema, describeProblems, integerInRange, listingProtoKey, MUST_BE_AN_OBJECT, resolveOptions, timeZoneSchema, whenFieldsParsed, whenWrongType } from '@app/common';
import { z } from 'zod';
import { CREDENTIAL_TYPES, CredentialType, ValueStoreKind, type ValueStoreKindInput } from './credential-type';
import { DEFAULT_INVALIDATION_LIVENESS, HEARTBEAT_LIMITS, type InvalidationLiveness } from './cache/invalidation-liveness';
import type { CacheRedisClient, CacheRedisSubscriber } from './cache/redis-connection';
import { CredentialsConfigurationError } from './errors/credential-errors';
import { MIN_ORPHAN_GRACE_MS } from './internal/value-commit-deadline';
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
  /**
   * Maximum cached credentials (least recently used evicted first). Cached metadata rows (`getMetadata`
   * with `cached`) have their own bound of the same size. @default 10000
   */
  maxEntries?: number;
  /**
   * When the value store is unavailable (throttled, timing out, circuit open), serve an expired entry
   * for up to this long past its expiry. Never used after a write/delete (those invalidate). 0 = off.
   * @default 0
   */
  maxStaleMs?: number;
  /**
   * Where cached reads live: `{ type: 'memory' }` (in process, as a single replica needs) or
   * `{ type: 'redis', ... }`: two levels, L1 in process + L2 in Redis shared by the replicas (entries
   * encrypted under a key from the vault, cluster-wide single-flight). @default { type: 'memory' }
   */
  store?: CredentialsCacheStore;
  /**
   * How a write on one replica evicts the entry on the others: `redis` (pub/sub; needs the redis
   * store), `postgres` (LISTEN/NOTIFY on the host's PostgreSQL), `none` (one process), or `auto`:
   * redis with the redis store, else postgres on a PostgreSQL DataSource, else none. @default 'auto'
   */
  invalidation?: 'auto' | 'redis' | 'postgres' | 'none';
  /**
   * Only with fan-out (a redis store, or invalidation over redis/postgres): every replica publishes a
   * heartbeat every `intervalMs` (100..10000); one that has heard none for `lostAfterMs` (at least 3
   * intervals, at most 30000) drops its in-process entries and reads uncached until one is heard again —
   * it may have missed an eviction. A longer threshold rides out a slow database or Redis without dropping,
   * but is also how long a partitioned replica may serve a value changed elsewhere, and how long a revoke
   * whose eviction could not be announced waits before it returns (`lostAfterMs` + `intervalMs`).
   * @default { intervalMs: 1000, lostAfterMs: 3000 }
   */
  heartbeat?: Partial<InvalidationLiveness>;
}

/** The Redis tier: the host's connections (the lib opens none itself). */
export interface RedisCacheStoreOptions {
  type: 'redis';
  /** A command connection (shared with the host's other users is fine). */
  client: CacheRedisClient;
  /** Returns a NEW connection for SUBSCRIBE (a subscribed connection runs no other command); the lib closes it when the app closes. */
  subscriber: () => CacheRedisSubscriber;
  /** Prefix of every key and channel. @default 'cv:cache:' */
  keyPrefix?: string;
  /** How long one replica holds a key's load lock. @default 5000 */
  lockMs?: number;
  /** How long other replicas wait for that fill before loading themselves (a dead holder's lock frees itself after lockMs). @default 5000 */
  waitMs?: number;
  /** How often a waiting replica looks for the fill. @default 10 */
  pollMs?: number;
  /** Bound on one Redis round trip (a slower one is an L2 miss: the read loads by itself). @default 500 */
  operationTimeoutMs?: number;
}

export type CredentialsCacheStore = { type: 'memory' } | RedisCacheStoreOptions;

export interface ResolvedCredentialsCacheOptions {
  enabled: boolean;
  ttlMs: number;
  jitterRatio: number;
  maxEntries: number;
  maxStaleMs: number;
  store: { type: 'memory' } | Required<RedisCacheStoreOptions>;
  invalidation: 'auto' | 'redis' | 'postgres' | 'none';
  heartbeat: InvalidationLiveness;
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
  /**
   * Name of a vault RSA key (Key Vault keys, not secrets; 2048 bits or more, with wrapKey/unwrapKey)
   * that wraps the tenants' data keys (RSA-OAEP-256). When set, new data keys are kept wrapped in the
   * database (`cv_wrapped_data_keys`) instead of as readable vault secrets; data keys already stored
   * as secrets keep working (their ciphertexts move to the wrapped key as they are read, with
   * `reencryptOnRead`). After the vault key rotates, each wrapped data key is re-wrapped under its
   * latest version the next time a process loads it. Needs `KeyVaultKeysProvider` (KeyVaultModule).
   * @default undefined (data keys are vault secrets)
   */
  keyEncryptionKey?: string;
}

/**
 * The `orphan-versions` job: disables the Key Vault secret versions this lib wrote that no metadata references (a
 * write that crashed between its vault write and its commit, or whose discard failed) once they are older than
 * `graceMs`. A write commits within `VALUE_COMMIT_DEADLINE_MS` of starting its vault write or not at all, so a version
 * a live write (on any replica) is about to commit is never that old. Versions are disabled, never deleted.
 */
export interface CredentialsOrphanVersionsOptions {
  /** Schedule the job (needs ScheduleModule.forRoot() in the host). `runOnce()` works either way. @default false */
  enabled?: boolean;
  /** @default '0 *\/10 * * * *' (every 10 minutes) */
  cron?: string;
  /** IANA time zone of `cron`. @default 'UTC' */
  timeZone?: string;
  /**
   * How old (by the vault's `createdOn`, against this lib's clock) an unreferenced version must be to be disabled.
   * At least 30 minutes: three times the write deadline (10 minutes), the rest a margin for clocks that disagree.
   * @default 86400000 (24 h)
   */
  graceMs?: number;
  /** Secrets one run looks at (each one list call, plus one per 25 versions); the next run goes on from there. @default 200 */
  maxSecretsPerRun?: number;
}

export interface CredentialsModuleOptions {
  // valueStores is keyed by the string values (`[CredentialType.API_KEY]` is the same key): a Record over
  // CredentialTypeInput would let tsc pass any key and any value.
  /**
   * Value store per credential type; types not listed use the default: OAUTH_ACCESS_TOKEN →
   * envelope (short-lived, high churn), everything else → vault. A `store()` call may override.
   * @default { oauth_access_token: 'envelope' } (others 'vault')
   */
  valueStores?: Partial<Record<`${CredentialType}`, ValueStoreKindInput>>;
  cache?: CredentialsCacheOptions;
  readAudit?: CredentialsReadAuditOptions;
  vault?: CredentialsVaultStoreOptions;
  envelope?: CredentialsEnvelopeStoreOptions;
  orphanVersions?: CredentialsOrphanVersionsOptions;
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
  /**
   * Emit domain events (`credential.*`) for the app: through EventEmitter2 when one is registered, and as outbox events
   * (which the rotation lib's notifications also hear). `false` keeps them from the app only: the libs' own work that
   * rides on a change's event (cache evictions on every replica, the rotation lib's clean-ups) still runs, on its
   * `credentials.change.<name>` form (README, Domain events). @default true
   */
  emitEvents?: boolean;
  /**
   * How long after a revoke's status change its own process is given to disable the Key Vault versions before any
   * replica's outbox does what is left (the process died, or the vault failed it). 1000..600000. @default 10000
   */
  revokeCompletionGraceMs?: number;
  /**
   * Time source for expiry, TTLs and timestamps (tests pass a ManualClock).
   * @default the host's global `Clock` provider if any, else the system clock
   */
  clock?: Clock;
}

export interface ResolvedCredentialsOptions {
  valueStores: Record<CredentialType, ValueStoreKind>;
  cache: ResolvedCredentialsCacheOptions;
  readAudit: Required<CredentialsReadAuditOptions>;
  vault: Required<CredentialsVaultStoreOptions>;
  envelope: Required<Omit<CredentialsEnvelopeStoreOptions, 'keyEncryptionKey'>> & Pick<CredentialsEnvelopeStoreOptions, 'keyEncryptionKey'>;
  orphanVersions: Required<CredentialsOrphanVersionsOptions>;
  minWebhookSecretBytes: number;
  integrations: string[];
  defaultPageSize: number;
  maxPageSize: number;
  emitEvents: boolean;
  revokeCompletionGraceMs: number;
  clock?: Clock;
}

export const DEFAULT_VALUE_STORES: Readonly<Record<CredentialType, ValueStoreKind>> = Object.fromEntries(
  CREDENTIAL_TYPES.map((t) => [t, t === CredentialType.OAUTH_ACCESS_TOKEN ? ValueStoreKind.ENVELOPE : ValueStoreKind.VAULT]),
) as Record<CredentialType, ValueStoreKind>;

const number = (message: string) => z.number({ error: message });
const positiveInt = (message: string) => number(message).int(message).positive(message);
const msInRange = (min: number, max: number) => integerInRange(min, max, { unit: 'of milliseconds' });
const KINDS: readonly unknown[] = [ValueStoreKind.VAULT, ValueStoreKind.ENVELOPE];

const schema = z
  .object({
    valueStores: listingProtoKey(
      z.record(z.string(), z.unknown(), { error: 'must be an object of credential type → store' }).superRefine((stores, ctx) => {
        // Credential types are names, not values: naming an unknown one helps fix a typo.
        for (const [type, store] of Object.entries(stores)) {
          if (!CREDENTIAL_TYPES.includes(type as CredentialType)) {
            ctx.addIssue({ code: 'custom', message: `unknown credential type "${type}" (use one of ${CREDENTIAL_TYPES.join(', ')})` });
          }
          if (!KINDS.includes(store)) ctx.addIssue({ code: 'custom', path: [type], message: "must be 'vault' or 'envelope'" });
        }
      }),
    ).default({}),
    cache: z
      .object({
        enabled: booleanOption().default(true),
        ttlMs: number('must be a positive number of milliseconds').positive('must be a positive number of milliseconds').default(300_000),
        jitterRatio: number('must be in [0, 1)').min(0, 'must be in [0, 1)').lt(1, 'must be in [0, 1)').default(0.2),
        maxEntries: positiveInt('must be a positive integer').default(10_000),
        maxStaleMs: number('must be ≥ 0 (0 disables serve-stale)').min(0, 'must be ≥ 0 (0 disables serve-stale)').default(0),
        store: z
          .discriminatedUnion(
            'type',
            [
              z.object({ type: z.literal('memory') }).strict(),
              z.object({
                type: z.literal('redis'),
                client: z.custom<CacheRedisClient>((c) => typeof (c as { eval?: unknown })?.eval === 'function', 'must be an ioredis connection'),
                subscriber: z.custom<() => CacheRedisSubscriber>((f) => typeof f === 'function', 'must be a function returning a new ioredis connection'),
                keyPrefix: z
                  .string({ error: 'must be 1–64 characters of A-Z a-z 0-9 _ . : -' })
                  .regex(/^[A-Za-z0-9_.:-]{1,64}$/, 'must be 1–64 characters of A-Z a-z 0-9 _ . : -')
                  .default('cv:cache:'),
                lockMs: positiveInt('must be a positive integer of milliseconds').default(5000),
                waitMs: positiveInt('must be a positive integer of milliseconds').default(5000),
                pollMs: positiveInt('must be a positive integer of milliseconds').default(10),
                operationTimeoutMs: positiveInt('must be a positive integer of milliseconds').default(500),
              })
              .strict(),
            ],
            { error: "must be { type: 'memory' } or { type: 'redis', client, subscriber }" },
          )
          .default({ type: 'memory' }),
        invalidation: z.enum(['auto', 'redis', 'postgres', 'none'], { error: "must be 'auto', 'redis', 'postgres' or 'none'" }).default('auto'),
        heartbeat: z
          .object({
            intervalMs: msInRange(HEARTBEAT_LIMITS.minIntervalMs, HEARTBEAT_LIMITS.maxIntervalMs).default(DEFAULT_INVALIDATION_LIVENESS.intervalMs),
            lostAfterMs: msInRange(HEARTBEAT_LIMITS.minIntervalMs * HEARTBEAT_LIMITS.minLostAfterIntervals, HEARTBEAT_LIMITS.maxLostAfterMs).default(
              DEFAULT_INVALIDATION_LIVENESS.lostAfterMs,
            ),
          }, MUST_BE_AN_OBJECT)
          .strict()
          .superRefine((h, ctx) => {
            // One late or lost heartbeat must not drop the cache.
            if (h.lostAfterMs < HEARTBEAT_LIMITS.minLostAfterIntervals * h.intervalMs) {
              ctx.addIssue({ code: 'custom', path: ['lostAfterMs'], message: `must be at least ${HEARTBEAT_LIMITS.minLostAfterIntervals} × heartbeat.intervalMs` });
            }
          }, whenFieldsParsed('intervalMs', 'lostAfterMs'))
          .prefault({}),
      }, MUST_BE_AN_OBJECT)
      .strict()
      .superRefine((c, ctx) => {
        if (c.invalidation === 'redis' && c.store.type !== 'redis') ctx.addIssue({ code: 'custom', path: ['invalidation'], message: "'redis' needs store { type: 'redis' }" });
      }, whenFieldsParsed('invalidation', 'store'))
      .prefault({}),
    readAudit: z
      .object({
        coalesceWindowMs: number('must be in 0..60000 ms (0 = one audit event per read)')
          .min(0, 'must be in 0..60000 ms (0 = one audit event per read)')
          .max(60_000, 'must be in 0..60000 ms (0 = one audit event per read)')
          .default(1000),
        maxPendingKeys: positiveInt('must be a positive integer').default(10_000),
      }, MUST_BE_AN_OBJECT)
      .strict()
      .prefault({}),
    vault: z
      .object({
        namePrefix: z
          .string({ error: `must match ${NAME_PREFIX_PATTERN.source}` })
          .regex(NAME_PREFIX_PATTERN, `must match ${NAME_PREFIX_PATTERN.source}`)
          .default('cv'),
        maxVersionsPerGeneration: integerInRange(1, 500, { message: 'must be an integer in 1..500 (Key Vault backs up at most 500 versions)' }).default(450),
      }, MUST_BE_AN_OBJECT)
      .strict()
      .prefault({}),
    envelope: z
      .object({
        currentKeyRefreshMs: number('must be > 0').positive('must be > 0').default(3_600_000),
        reencryptOnRead: booleanOption().default(true),
        keyEncryptionKey: z
          .string({ error: 'must be a vault key name: 1-127 characters of 0-9, a-z, A-Z and -' })
          .regex(/^[0-9a-zA-Z-]{1,127}$/, 'must be a vault key name: 1-127 characters of 0-9, a-z, A-Z and -')
          .optional(),
      }, MUST_BE_AN_OBJECT)
      .strict()
      .prefault({}),
    orphanVersions: z
      .object({
        enabled: booleanOption().default(false),
        cron: cronExpressionSchema().default('0 */10 * * * *'),
        timeZone: timeZoneSchema().default('UTC'),
        graceMs: number(`must be an integer ≥ ${MIN_ORPHAN_GRACE_MS} ms (30 minutes)`)
          .int(`must be an integer ≥ ${MIN_ORPHAN_GRACE_MS} ms (30 minutes)`)
          .min(MIN_ORPHAN_GRACE_MS, `must be an integer ≥ ${MIN_ORPHAN_GRACE_MS} ms (30 minutes)`)
          .default(86_400_000),
        maxSecretsPerRun: integerInRange(1, 10_000).default(200),
      }, MUST_BE_AN_OBJECT)
      .strict()
      .prefault({}),
    minWebhookSecretBytes: number('must be an integer ≥ 16').int('must be an integer ≥ 16').min(16, 'must be an integer ≥ 16').default(24),
    integrations: z
      .array(z.string({ error: `must match ${IDENTIFIER_PATTERN.source}` }).regex(IDENTIFIER_PATTERN, `must match ${IDENTIFIER_PATTERN.source}`), whenWrongType('must be a list of integration ids'))
      .default([]),
    defaultPageSize: positiveInt('must be a positive integer').default(50),
    maxPageSize: number('must be an integer ≥ defaultPageSize').int('must be an integer ≥ defaultPageSize').default(500),
    emitEvents: booleanOption().default(true),
    revokeCompletionGraceMs: msInRange(1000, 600_000).default(10_000),
    clock: clockOptionSchema().optional(),
  }, MUST_BE_AN_OBJECT)
  .strict()
  .superRefine((o, ctx) => {
    if (o.maxPageSize < o.defaultPageSize) ctx.addIssue({ code: 'custom', path: ['maxPageSize'], message: 'must be an integer ≥ defaultPageSize' });
  }, whenFieldsParsed('maxPageSize', 'defaultPageSize'))
  .transform((o) => ({ ...o, valueStores: { ...DEFAULT_VALUE_STORES, ...(o.valueStores as Partial<Record<CredentialType, ValueStoreKind>>) } }));

/** Merges defaults and validates once; the error lists every problem and how to fix it. */
export function resolveCredentialsOptions(options: CredentialsModuleOptions = {}): ResolvedCredentialsOptions {
  return resolveOptions(
    schema,
    options,
    (problems) => new CredentialsConfigurationError(`Invalid CredentialsModule options:\n  - ${describeProblems(problems).join('\n  - ')}`),
  );
}
