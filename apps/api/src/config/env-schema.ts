import { isIP } from 'node:net';
import { z } from 'zod';
import { cronExpressionSchema, postgresUrlSchema } from '@app/common';
import { DEFAULT_INVALIDATION_LIVENESS, HEARTBEAT_LIMITS, MIN_ORPHAN_GRACE_MS } from '@app/credentials';
import { DEFAULT_NOTIFICATION_SEND_WAIT_MS } from '@app/rotation';
import { apiKeyEntrySchema } from '../auth/api-keys';

/*
 * Every environment variable the host reads, with its type, bounds and default. Every variable, its
 * default and its meaning is listed in the README's configuration reference (env-docs.spec.ts holds the two in step).
 */
const bool = (def: boolean) =>
  z
    .enum(['true', 'false', '1', '0', 'yes', 'no'])
    .optional()
    .transform((v) => (v === undefined ? def : ['true', '1', 'yes'].includes(v)));

/** Decimal digits only: `z.coerce` would read ' ' as 0 and accept 1e3 or 0x10. */
const int = (def: number, min: number, max: number) => {
  const range = `must be a whole number in ${min}..${max}`;
  return z
    .string()
    .regex(/^\d{1,16}$/, 'must be a whole number (decimal digits)')
    .transform(Number)
    .pipe(z.number().int(range).min(min, range).max(max, range))
    .optional()
    .transform((v) => v ?? def);
};

/** A duration in ms where 0 turns the bound off; below 100 ms every query would fail. */
const msOrOff = (def: number, max: number) => int(def, 0, max).refine((v) => v === 0 || v >= 100, 'must be 0 (off) or at least 100');

/**
 * An address to listen on: an IP address (`0.0.0.0`, `::`, `::1` — IPv6 without brackets) or a host name (`localhost`,
 * a container's name). Anything else — a URL, a port, a space — would pass until the listen, after the database, the
 * migrations and the vault had started.
 */
const HOST_NAME = /^(?=.{1,253}\.?$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$/;
const listenHost = (def: string) =>
  z
    .string()
    .refine((v) => isIP(v) !== 0 || HOST_NAME.test(v), 'must be an IP address (IPv6 without brackets) or a host name, e.g. 0.0.0.0, ::, localhost')
    .default(def);

const cron = (def: string) => cronExpressionSchema('must be a cron expression with 5 or 6 fields, e.g. "30 3 * * *"').default(def);

/** A variable holding a JSON array (unset = empty); a parse error says `message`, items are validated by `item`. */
const jsonArray = <T extends z.ZodType>(item: T, message: string) =>
  z
    .string()
    .optional()
    .transform((s, ctx) => {
      if (!s) return [];
      try {
        return JSON.parse(s) as unknown;
      } catch {
        ctx.addIssue({ code: 'custom', message });
        return z.NEVER;
      }
    })
    .pipe(z.array(item));

const credentialTypes = [
  'default',
  'managed-identity',
  'client-secret',
  'client-certificate',
  'workload-identity',
  'azure-cli',
  'static',
] as const;

/** HTTP_REQUEST_TIMEOUT_MS's default, also a host built outside createApp's (benchmarks, specs). */
export const HTTP_REQUEST_TIMEOUT_DEFAULT_MS = 30_000;

/** The databases DATABASE_TYPE names. */
export const DATABASE_TYPES = ['sqlite', 'postgres'] as const;

export const envSchema = z
  .object({
    NODE_ENV: z.enum(['development', 'test', 'production']).default('development'),
    HOST: listenHost('127.0.0.1'),
    PORT: int(3000, 0, 65535),
    LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    LOG_REQUEST_CONTEXT: bool(false),
    SHUTDOWN_TIMEOUT_MS: int(10_000, 0, 600_000),
    SHUTDOWN_DRAIN_MS: int(5_000, 0, 600_000),
    HTTP_REQUEST_TIMEOUT_MS: int(HTTP_REQUEST_TIMEOUT_DEFAULT_MS, 1_000, 600_000),
    GRPC_ENABLED: bool(false),
    GRPC_HOST: listenHost('127.0.0.1'),
    GRPC_PORT: int(50051, 1, 65535),

    DATABASE_TYPE: z.enum(DATABASE_TYPES).default('sqlite'),
    DATABASE_PATH: z.string().min(1).default('./data/credential-vault.sqlite'),
    DATABASE_URL: postgresUrlSchema().optional(),
    DATABASE_SCHEMA: z.string().regex(/^[a-z_][a-z0-9_]*$/i, 'must be a plain SQL identifier').optional(),
    DATABASE_POOL_SIZE: int(10, 1, 200),
    DATABASE_CONNECT_TIMEOUT_MS: int(10_000, 100, 600_000),
    // PostgreSQL, 0 = off. A query with no answer this long closes its connection (client side; above the statement timeout).
    DATABASE_QUERY_TIMEOUT_MS: msOrOff(40_000, 3_600_000),
    // PostgreSQL's statement_timeout on every connection: a statement running or waiting for a lock this long is cancelled.
    DATABASE_STATEMENT_TIMEOUT_MS: msOrOff(30_000, 3_600_000),
    // PostgreSQL's idle_in_transaction_session_timeout: a session idle inside a transaction this long is ended (its locks released).
    DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS: msOrOff(60_000, 86_400_000),
    // PostgreSQL, 0 = off: a query unanswered this long is asked after from a new connection (postgresDriver's probeAfterMs).
    DATABASE_PROBE_AFTER_MS: msOrOff(5_000, 3_600_000),
    // PostgreSQL: advisory locks held at once per replica, each on a session of a pool of its own (PersistenceModule locks.maxSessions).
    DATABASE_LOCK_SESSIONS: int(8, 1, 100),
    // PostgreSQL: a held lock's session answers a SELECT 1 this often, within the deadline, else its holder stops (LOCK_LOST)
    // — a stalled path ends nothing until TCP keepalive gives up (PersistenceModule locks.heartbeatMs / heartbeatTimeoutMs).
    DATABASE_LOCK_HEARTBEAT_MS: int(10_000, 100, 600_000),
    DATABASE_LOCK_HEARTBEAT_TIMEOUT_MS: int(5_000, 50, 599_999),
    // PostgreSQL: named statements for the audit's read batches. Off behind a pooler that cannot keep them.
    DATABASE_PREPARED_STATEMENTS: bool(true),
    // FULL: a commit is fsynced before it returns (survives power loss). NORMAL is an explicit opt-in:
    // commits still survive a crash of the process, but the last ones can be lost on power loss.
    DATABASE_SQLITE_SYNCHRONOUS: z.enum(['full', 'normal']).default('full'),
    // Opt-in: WAL checkpoints in a worker thread. Off by default: on a quiet disk its fsyncs slowed the
    // event loop's commits more than the checkpoints it takes away cost (see database/migrate-on-start).
    DATABASE_SQLITE_WAL_WORKER: bool(false),
    // Pages of WAL after which a commit checkpoints (SQLite's own 1000). Reads spread over many credentials rewrite the
    // same index pages in every commit: a longer WAL copies each once per checkpoint — more throughput, a longer tail
    // (docs/BENCHMARKS.md, seventeenth round), so an opt-in.
    DATABASE_SQLITE_WAL_AUTOCHECKPOINT: int(1000, 100, 1_000_000),
    // The audit's read batches written by a worker thread on its own connection (off the event loop).
    DATABASE_SQLITE_WRITE_WORKER: bool(true),
    // How long the outbox dispatcher waits for one handler with one event (PersistenceModule outbox.handlerTimeoutMs).
    OUTBOX_HANDLER_TIMEOUT_MS: int(10_000, 1_000, 600_000),

    // The SDK cannot use an http:// vault (its first call met a TLS port: 'retry later'); the local vault is HTTPS too.
    KEY_VAULT_URL: z.string().url().regex(/^https:\/\//i, "must be an https:// URL (Key Vault, Azure's and the local one, speaks only HTTPS)").optional(),
    KEY_VAULT_CREDENTIAL: z.enum(credentialTypes).optional(),
    AZURE_TENANT_ID: z.string().optional(),
    AZURE_CLIENT_ID: z.string().optional(),
    AZURE_CLIENT_SECRET: z.string().optional(),
    AZURE_CLIENT_CERTIFICATE_PATH: z.string().optional(),
    AZURE_FEDERATED_TOKEN_FILE: z.string().optional(),
    KEY_VAULT_CA_CERT_PATH: z.string().optional(),
    KEY_VAULT_DISABLE_CHALLENGE_RESOURCE_VERIFICATION: bool(false),
    KEY_VAULT_TIMEOUT_MS: int(10_000, 100, 120_000),
    KEY_VAULT_MAX_ATTEMPTS: int(4, 1, 10),
    // At least 1 s (a shorter break would hammer a failing vault), at most 10 min (a longer one outlasts most outages).
    KEY_VAULT_BREAKER_HALF_OPEN_AFTER_MS: int(30_000, 1_000, 600_000),

    EMULATOR_DATA_DIR: z.string().min(1).default('./data/vault'),
    EMULATOR_PORT: int(8443, 0, 65535),

    METRICS_ENABLED: bool(true),
    OTEL_EXPORTER_OTLP_ENDPOINT: z.string().url().regex(/^https?:\/\//, 'must be an http(s) URL').optional(),
    OTEL_SERVICE_NAME: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'must be 1–64 characters of A-Z a-z 0-9 . _ -').default('credential-vault'),
    OTEL_METRIC_EXPORT_INTERVAL: int(60_000, 1_000, 3_600_000),

    REDIS_URL: z.string().regex(/^rediss?:\/\/\S+$/, 'must be a redis:// or rediss:// URL').optional(),
    REDIS_KEY_PREFIX: z.string().regex(/^[A-Za-z0-9_.:-]{1,64}$/, 'must be 1–64 characters of A-Z a-z 0-9 _ . : -').default('cv:'),

    CACHE_TTL_MS: int(300_000, 1, 86_400_000),
    CACHE_MAX_STALE_MS: int(0, 0, 86_400_000),
    CACHE_MAX_ENTRIES: int(10_000, 1, 10_000_000),
    CACHE_TIER: z.enum(['memory', 'redis'], { error: "must be 'memory' or 'redis'" }).optional(),
    CACHE_INVALIDATION: z.enum(['auto', 'redis', 'postgres', 'none'], { error: "must be 'auto', 'redis', 'postgres' or 'none'" }).default('auto'),
    // Each call of the shared tier (CredentialsModule cache.store.operationTimeoutMs); past it, that read loads from the vault.
    CACHE_REDIS_TIMEOUT_MS: int(500, 10, 60_000),
    // The fan-out's heartbeat (CredentialsModule cache.heartbeat, same bounds); the threshold ≥ 3 intervals is a rule between the two.
    CACHE_HEARTBEAT_INTERVAL_MS: int(DEFAULT_INVALIDATION_LIVENESS.intervalMs, HEARTBEAT_LIMITS.minIntervalMs, HEARTBEAT_LIMITS.maxIntervalMs),
    CACHE_HEARTBEAT_LOST_AFTER_MS: int(
      DEFAULT_INVALIDATION_LIVENESS.lostAfterMs,
      HEARTBEAT_LIMITS.minIntervalMs * HEARTBEAT_LIMITS.minLostAfterIntervals,
      HEARTBEAT_LIMITS.maxLostAfterMs,
    ),
    CREDENTIALS_INTEGRATIONS: z
      .string()
      .default('')
      .transform((s) => s.split(',').map((x) => x.trim()).filter(Boolean)),
    KEYS_VERIFY: z.enum(['local', 'remote'], { error: "must be 'local' or 'remote'" }).default('local'),
    KEYS_ALLOW_RSA1_5: bool(false),
    KEYS_CACHE_TTL_MS: int(60_000, 1, 86_400_000),
    ENVELOPE_KEY_REFRESH_MS: int(3_600_000, 1_000, 86_400_000),
    ENVELOPE_KEY_ENCRYPTION_KEY: z.string().regex(/^[0-9a-zA-Z-]{1,127}$/, 'must be a vault key name: 1-127 characters of 0-9, a-z, A-Z and -').optional(),
    // The credentials lib's orphan-versions job (CredentialsModule orphanVersions): the grace period's floor is the lib's.
    CREDENTIALS_ORPHAN_VERSIONS_ENABLED: bool(true),
    CREDENTIALS_ORPHAN_VERSIONS_CRON: cron('*/10 * * * *'),
    CREDENTIALS_ORPHAN_VERSIONS_GRACE_MS: int(86_400_000, MIN_ORPHAN_GRACE_MS, 30 * 86_400_000),
    CREDENTIALS_ORPHAN_VERSIONS_MAX_SECRETS: int(200, 1, 10_000),
    VAULT_SECRET_PREFIX: z.string().regex(/^[a-z][a-z0-9]{0,15}$/, 'must be 1–16 lowercase letters/digits, starting with a letter').default('cv'),

    AUDIT_FAIL_CLOSED: bool(true),
    AUDIT_RETENTION_ENABLED: bool(true),
    AUDIT_RETENTION_DAYS: int(90, 1, 36_500),
    AUDIT_RETENTION_CRON: cron('0 3 * * *'),
    // PostgreSQL, 0 = no bound: each retention statement is cancelled past this (its connection closed past this plus
    // DATABASE_QUERY_TIMEOUT_MS when unanswered). Generous: a first run deletes millions of rows in one statement.
    AUDIT_RETENTION_STATEMENT_TIMEOUT_MS: int(1_800_000, 0, 86_400_000).refine((v) => v === 0 || v >= 1000, 'must be 0 (no bound) or at least 1000'),
    AUDIT_ANCHOR_ENABLED: bool(true),
    AUDIT_ANCHOR_CRON: cron('*/5 * * * *'),
    RATE_LIMIT_PER_MINUTE: int(600, 1, 1_000_000),

    OAUTH_PROVIDERS: jsonArray(z.record(z.string(), z.unknown()), 'must be a JSON array of provider objects (see the README)'),
    OAUTH_REFRESH_AHEAD_MS: int(300_000, 0, 86_400_000),
    OAUTH_PROACTIVE_ENABLED: bool(true),
    OAUTH_PROACTIVE_CRON: cron('*/1 * * * *'),

    ROTATION_EXPIRY_MONITOR_ENABLED: bool(true),
    ROTATION_EXPIRY_MONITOR_CRON: cron('0 * * * *'),
    ROTATION_CHECK_ENABLED: bool(true),
    ROTATION_CHECK_CRON: cron('0 3 * * *'),
    NOTIFICATIONS_WEBHOOK_ENABLED: bool(true),
    NOTIFICATIONS_ENABLED: bool(true),
    NOTIFICATIONS_WEBHOOK_TIMEOUT_MS: int(10_000, 1, 120_000),
    NOTIFICATIONS_WEBHOOK_ALLOW_PRIVATE_TARGETS: bool(false),
    NOTIFICATIONS_RETRY_MAX_ATTEMPTS: int(5, 1, 20),
    NOTIFICATIONS_RETRY_BASE_MS: int(30_000, 1, 86_400_000),
    NOTIFICATIONS_RETRY_MAX_MS: int(3_600_000, 1, 86_400_000),
    NOTIFICATIONS_RETRY_LEASE_MS: int(60_000, 1000, 86_400_000),
    NOTIFICATIONS_RETENTION_DAYS: int(30, 1, 3650),
    NOTIFICATIONS_SEND_WAIT_MS: int(DEFAULT_NOTIFICATION_SEND_WAIT_MS, 0, 120_000),
    SMTP_HOST: z.string().regex(/^[A-Za-z0-9.:[\]-]{1,255}$/, 'must be a host name or an IP address').optional(),
    SMTP_PORT: int(587, 1, 65535),
    SMTP_SECURE: bool(false),
    SMTP_REQUIRE_TLS: bool(false),
    SMTP_IGNORE_TLS: bool(false),
    SMTP_USER: z.string().min(1).max(512).optional(),
    SMTP_PASSWORD: z.string().min(1).max(1024).optional(),
    SMTP_FROM: z.string().min(3).max(320).regex(/@/, 'must be an e-mail address (optionally "Name <address>")').optional(),
    SMTP_TIMEOUT_MS: int(10_000, 1, 120_000),
    SMTP_CA_CERT_PATH: z.string().min(1).optional(),
    WEBHOOK_SECRET_OVERLAP_MS: int(86_400_000, 0, 30 * 86_400_000),
    WEBHOOK_SECRET_MAX_LIVE: int(5, 2, 20),
    WEBHOOK_SECRET_TOLERANCE_SECONDS: int(300, 1, 3600),
    WEBHOOK_SECRET_CACHE_TTL_MS: int(0, 0, 3_600_000),
    WEBHOOK_SECRET_STAGED_TTL_MS: int(7 * 86_400_000, 60_000, 30 * 86_400_000),
    WEBHOOK_SECRET_ROTATION_ENABLED: bool(true),
    WEBHOOK_SECRET_ROTATION_CRON: cron('30 3 * * *'),
    WEBHOOK_SECRET_ROTATION_MAX_PER_RUN: int(1000, 1, 1_000_000),

    AUTH_JWT_ISSUER: z.string().min(1).optional(),
    AUTH_JWT_AUDIENCE: z.string().min(1).optional(),
    AUTH_JWT_JWKS_URL: z.string().url().optional(),
    AUTH_JWT_TENANT_CLAIM: z.string().min(1).default('tenant_id'),
    AUTH_JWT_SCOPE_CLAIM: z.string().min(1).default('scope'),
    AUTH_JWT_ALGORITHMS: z
      .string()
      .default('RS256,PS256,ES256,EdDSA')
      .transform((s) => s.split(',').map((a) => a.trim()).filter(Boolean))
      .pipe(z.array(z.enum(['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'])).min(1)),
    AUTH_API_KEYS: jsonArray(apiKeyEntrySchema, 'must be a JSON array of {id, tenant, scopes, sha256}'),
    AUTH_DEV_API_KEY_FILE: z.string().min(1).default('./data/dev-api-key'),
  });

/** Every environment variable the host reads (e.g. to find Key Vault references among them). */
export const CONFIG_VARIABLES: readonly string[] = Object.keys(envSchema.shape);

export type CredentialKind = (typeof credentialTypes)[number];

/** The environment once parsed (defaults applied, lists split, JSON read). */
export type EnvVars = z.infer<typeof envSchema>;
