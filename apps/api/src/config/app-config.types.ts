import type { NotificationOptions, WebhookSecretsOptions } from '@app/rotation';
import type { ApiKeyEntry } from '../auth/api-keys';
import type { JwtAuthConfig } from '../auth/jwt-verifier';
import type { CredentialKind } from './env-schema';

/** The host's whole configuration, as `loadAppConfig` builds it from the environment. */
export interface AppConfig {
  env: 'development' | 'test' | 'production';
  http: {
    host: string;
    port: number;
    shutdownTimeoutMs: number;
    drainMs: number;
    /** How long a whole request (line, headers and body) may take to arrive: 408 past it (HTTP_REQUEST_TIMEOUT_MS). */
    requestTimeoutMs: number;
  };
  /** The gRPC transport of the keys API (proto/credential_vault/keys/v1/keys.proto); off unless GRPC_ENABLED. */
  grpc: { enabled: boolean; host: string; port: number };
  log: {
    level: string;
    /**
     * Stamp Nest's own lines written while a request is served with that request's `req` (an
     * AsyncLocalStorage scope per request: on Node 20 that keeps promise hooks on for every promise,
     * ~10% of a warm read's CPU). Request lines and the 5xx line carry the request id either way.
     */
    requestContext: boolean;
  };
  database:
    | {
        type: 'sqlite';
        path: string;
        /** `PRAGMA synchronous`: `full` (default) fsyncs every commit; `normal` only at checkpoints (power loss can drop the last commits). */
        synchronous: 'full' | 'normal';
        /** WAL checkpoints in a worker thread (`SqliteWalCheckpointer`); opt-in. */
        walWorker: boolean;
        /** `PRAGMA wal_autocheckpoint` (pages), on the host's connection and the audit's write worker. */
        walAutocheckpoint: number;
      }
    | {
        type: 'postgres';
        url: string;
        schema?: string;
        poolSize: number;
        connectTimeoutMs: number;
        /** Advisory locks held at once (each pins a session of the lock pool): PersistenceModule's `locks.maxSessions`. */
        lockSessions: number;
        /** How often a held lock's session must answer, and within what deadline (ms): PersistenceModule's `locks.heartbeatMs` / `heartbeatTimeoutMs`. */
        lockHeartbeatMs: number;
        lockHeartbeatTimeoutMs: number;
        /** Client-side query deadline, statement_timeout, idle_in_transaction_session_timeout (ms, 0 = off): `postgresTimeoutOptions`. */
        queryTimeoutMs: number;
        statementTimeoutMs: number;
        idleInTransactionTimeoutMs: number;
        /** A query unanswered this long is asked after in pg_stat_activity (ms, 0 = off): `postgresDriver`'s `probeAfterMs`. */
        probeAfterMs: number;
      };
  keyVault:
    | { mode: 'embedded'; emulatorDataDir: string; emulatorPort: number; timeoutMs: number; maxAttempts: number; breakerHalfOpenAfterMs: number }
    | {
        mode: 'external';
        url: string;
        credential: CredentialKind;
        tenantId?: string;
        clientId?: string;
        clientSecret?: string;
        certificatePath?: string;
        federatedTokenFile?: string;
        caCertPath?: string;
        disableChallengeResourceVerification: boolean;
        timeoutMs: number;
        maxAttempts: number;
        /** How long the circuit breaker stays open before one trial call (KeyVaultBreakerOptions.halfOpenAfterMs). */
        breakerHalfOpenAfterMs: number;
      };
  /**
   * The outbox dispatcher (PersistenceModule `outbox`): how long it waits for one handler with one event
   * before counting a failure and moving on (the handler is not cancelled).
   */
  outbox: { handlerTimeoutMs: number };
  metrics: { enabled: boolean };
  /** OpenTelemetry traces and metrics over OTLP/HTTP; absent: off (the libs' instrumentation is a no-op). */
  telemetry?: { endpoint: string; serviceName: string; metricIntervalMs: number };
  /**
   * Shared state across replicas (cache tier, invalidation fan-out, cluster-wide limits). Unset: every
   * such thing is per process, as on one machine. Every key the host writes starts with `keyPrefix` but one (RedisPrefixGuard).
   */
  redis?: { url: string; keyPrefix: string };
  credentials: {
    cacheTtlMs: number;
    cacheMaxStaleMs: number;
    cacheMaxEntries: number;
    /** `redis`: L1 in process + encrypted L2 shared in Redis (default when REDIS_URL is set). */
    cacheTier: 'memory' | 'redis';
    /** How evictions reach the other replicas; `auto`: Redis with the redis tier, else PostgreSQL NOTIFY on PostgreSQL, else none. */
    cacheInvalidation: 'auto' | 'redis' | 'postgres' | 'none';
    /** How long each call of the redis cache tier may take; past it, that read loads from the vault (CACHE_REDIS_TIMEOUT_MS). */
    cacheRedisTimeoutMs: number;
    /** The fan-out's heartbeat: sent every `intervalMs`; none heard for `lostAfterMs` drops this replica's cache (CACHE_HEARTBEAT_*). */
    cacheHeartbeat: { intervalMs: number; lostAfterMs: number };
    integrations: string[];
    vaultSecretPrefix: string;
    /** Envelope store: the vault RSA key that wraps tenants' data keys (unset: data keys are vault secrets). */
    /** `currentKeyRefreshMs`: ENVELOPE_KEY_REFRESH_MS. */
    envelope: { currentKeyRefreshMs: number; keyEncryptionKey?: string };
    /** The orphan-versions job (CREDENTIALS_ORPHAN_VERSIONS_*): CredentialsModule `orphanVersions`. */
    orphanVersions: { enabled: boolean; cron: string; graceMs: number; maxSecretsPerRun: number };
  };
  /** KeysModule: where verify runs by default, whether legacy RSA1_5 is allowed, how long a key's public part and state are trusted. */
  keys: { verify: 'local' | 'remote'; allowRsa1_5: boolean; cacheTtlMs: number };
  audit: {
    failClosed: boolean;
    /** PostgreSQL: read batches as a named statement (off behind a pooler that cannot keep them). */
    preparedStatements: boolean;
    /** SQLite file database: read batches written by a worker thread on its own connection. */
    sqliteWriteWorker: boolean;
    /** `statementTimeoutMs`: PostgreSQL, each retention statement's own bound (0 = none). */
    retention: { enabled: boolean; days: number; cron: string; statementTimeoutMs: number };
    /** Copies each tenant's chain head to Key Vault so verify notices a rewritten or truncated chain. */
    anchor: { enabled: boolean; cron: string };
  };
  rateLimit: { perMinute: number };
  /** Providers are validated by the OAuth lib at start (it knows the rules: issuer or token endpoint, secret refs, ...). */
  oauth: { providers: Record<string, unknown>[]; refreshAheadMs: number; proactive: { enabled: boolean; cronTime: string } };
  /** The rotation lib's jobs (each one replica at a time). */
  rotation: {
    expiryMonitor: { enabled: boolean; cron: string };
    rotationCheck: { enabled: boolean; cron: string };
    /** Send notifications to the tenants' outbound webhooks (settings are kept either way). */
    webhookNotificationsEnabled: boolean;
    /** RotationModule's `webhooks` options (overlap window, live secrets, the webhook-secret-rotation job). */
    webhooks: WebhookSecretsOptions;
    /** RotationModule's `notifications` options; e-mail is on when SMTP_HOST is set (its CA is read from `smtpCaCertPath` at start). */
    notifications: NotificationOptions;
    smtpCaCertPath?: string;
  };
  auth: {
    jwt?: JwtAuthConfig;
    apiKeys: ApiKeyEntry[];
    /**
     * Development convenience: with no JWT issuer and no API keys outside production, the host
     * creates an admin key for tenant `dev` and writes it to this file (0600), never to the log.
     */
    devApiKeyFile?: string;
  };
}
