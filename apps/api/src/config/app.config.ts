import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import type { AppConfig } from './app-config.types';
import { cacheTierOf, crossFieldProblems, valueProblems } from './config-rules';
import { envSchema } from './env-schema';
import { OAuthRefreshConfigurationError, resolveOAuthRefreshOptions, resolveProviderConfig, type OAuthProviderConfig } from '@app/oauth-refresh';

/**
 * The host's whole configuration, read from the environment once at start and validated here: the
 * variables (`env-schema.ts`), the rules between them (`config-rules.ts`) and the `AppConfig` they
 * build (`app-config.types.ts`).
 */
export type { AppConfig } from './app-config.types';
export { CONFIG_VARIABLES, type CredentialKind } from './env-schema';

/** Thrown at start when the environment is wrong; the message lists every variable to fix. */
export class ConfigValidationError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}\nSee the README's configuration reference.`);
    this.name = 'ConfigValidationError';
  }
}

const abs = (p: string, cwd: string) => (isAbsolute(p) ? p : resolve(cwd, p));

/** OAUTH_PROVIDERS checked as the OAuth lib will check them at start, named by the variable (the lib's messages never quote a value). */
function oauthProviderProblems(providers: unknown[]): string[] {
  try {
    const options = resolveOAuthRefreshOptions({ providers: providers as OAuthProviderConfig[] });
    for (const p of options.providers ?? []) resolveProviderConfig(p, options);
    return [];
  } catch (e) {
    if (!(e instanceof OAuthRefreshConfigurationError)) throw e;
    const lines = e.message.split('\n').slice(1).map((l) => l.replace(/^\s*-\s*/, '').trim()).filter(Boolean);
    return (lines.length ? lines : [e.message]).map((l) => `OAUTH_PROVIDERS: ${l.replace(/^providers\.(\d+)\./, '[$1].')}`);
  }
}

/**
 * The files the host reads (PEM: CAs, a client certificate; the workload identity's token), by the variable naming
 * each. The token is read by the Azure SDK at the first token request and again as it rotates (Kubernetes rewrites it):
 * that it can be read is checked at start, not what it holds now.
 */
const FILE_VARIABLES = ['KEY_VAULT_CA_CERT_PATH', 'SMTP_CA_CERT_PATH', 'AZURE_CLIENT_CERTIFICATE_PATH', 'AZURE_FEDERATED_TOKEN_FILE'] as const;

/**
 * The file variables whose file cannot be read (missing, a directory, no permission), as problems naming the variable
 * and the error's code. Not part of `loadAppConfig`, which is pure: a process that starts checks them with the rest
 * (`loadAppConfigReadingFiles`), where a missing file failed the start later, naming no variable.
 */
function unreadableFileProblems(env: Record<string, string | undefined>, cwd = process.cwd()): string[] {
  return FILE_VARIABLES.flatMap((v) => {
    const path = env[v];
    if (!path) return [];
    try {
      readFileSync(abs(path, cwd));
      return [];
    } catch (e) {
      return [`${v}: the file cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).name})`];
    }
  });
}

/**
 * The rules between variables, when some values did not parse: checked on the others (the wrong ones left at their
 * defaults), leaving out every rule that reads a wrong one — a rule read against a default the operator did not set
 * would mislead. So one message lists them with the values to fix, instead of a second start naming them.
 */
function valueProblemsBesides(env: Record<string, string | undefined>, issues: readonly { path: readonly PropertyKey[] }[]): string[] {
  const wrong = new Set(issues.map((i) => String(i.path[0] ?? '')).filter(Boolean));
  const rest = envSchema.safeParse(Object.fromEntries(Object.entries(env).filter(([name]) => !wrong.has(name))));
  return rest.success ? valueProblems(rest.data, wrong) : [];
}

/**
 * `loadAppConfig` for a process that starts (the host, each CLI command, the vault that resolves references): the files
 * the configuration names are read too, and one that cannot be is listed with the other problems.
 */
export function loadAppConfigReadingFiles(env: Record<string, string | undefined>, cwd = process.cwd()): AppConfig {
  const files = unreadableFileProblems(env, cwd);
  let config: AppConfig;
  try {
    config = loadAppConfig(env, cwd);
  } catch (e) {
    throw e instanceof ConfigValidationError && files.length ? new ConfigValidationError([...e.problems, ...files]) : e;
  }
  if (files.length) throw new ConfigValidationError(files);
  return config;
}

/** Parses and validates an environment. Pure: pass `process.env` in main.ts, a plain object in tests. */
export function loadAppConfig(env: Record<string, string | undefined>, cwd = process.cwd()): AppConfig {
  // Empty strings mean "unset" (docker-compose and shells often export VAR= ).
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = envSchema.safeParse(cleaned);
  const problems = [
    // Never echo the offending value: it may be a secret (AZURE_CLIENT_SECRET).
    ...(parsed.success ? [] : parsed.error.issues.map((i) => `${i.path.join('.') || '(env)'}: ${i.message}`)),
    ...crossFieldProblems(cleaned),
    ...(parsed.success ? valueProblems(parsed.data) : valueProblemsBesides(cleaned, parsed.error.issues)),
    // On their own, so a bad provider is listed with the other problems.
    ...oauthProviderProblems(envSchema.shape.OAUTH_PROVIDERS.safeParse(cleaned.OAUTH_PROVIDERS).data ?? []),
  ];
  if (!parsed.success || problems.length > 0) throw new ConfigValidationError(problems);
  const e = parsed.data;
  return {
    env: e.NODE_ENV,
    http: { host: e.HOST, port: e.PORT, shutdownTimeoutMs: e.SHUTDOWN_TIMEOUT_MS, drainMs: e.SHUTDOWN_DRAIN_MS, requestTimeoutMs: e.HTTP_REQUEST_TIMEOUT_MS },
    grpc: { enabled: e.GRPC_ENABLED, host: e.GRPC_HOST, port: e.GRPC_PORT },
    log: { level: e.LOG_LEVEL, requestContext: e.LOG_REQUEST_CONTEXT },
    database:
      e.DATABASE_TYPE === 'postgres'
        ? {
            type: 'postgres',
            url: e.DATABASE_URL!,
            schema: e.DATABASE_SCHEMA,
            poolSize: e.DATABASE_POOL_SIZE,
            connectTimeoutMs: e.DATABASE_CONNECT_TIMEOUT_MS,
            lockSessions: e.DATABASE_LOCK_SESSIONS,
            lockHeartbeatMs: e.DATABASE_LOCK_HEARTBEAT_MS,
            lockHeartbeatTimeoutMs: e.DATABASE_LOCK_HEARTBEAT_TIMEOUT_MS,
            queryTimeoutMs: e.DATABASE_QUERY_TIMEOUT_MS,
            statementTimeoutMs: e.DATABASE_STATEMENT_TIMEOUT_MS,
            idleInTransactionTimeoutMs: e.DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS,
            probeAfterMs: e.DATABASE_PROBE_AFTER_MS,
          }
        : { type: 'sqlite', path: abs(e.DATABASE_PATH, cwd), synchronous: e.DATABASE_SQLITE_SYNCHRONOUS, walWorker: e.DATABASE_SQLITE_WAL_WORKER, walAutocheckpoint: e.DATABASE_SQLITE_WAL_AUTOCHECKPOINT },
    keyVault: e.KEY_VAULT_URL
      ? {
          mode: 'external',
          url: e.KEY_VAULT_URL,
          credential: e.KEY_VAULT_CREDENTIAL ?? 'default',
          tenantId: e.AZURE_TENANT_ID,
          clientId: e.AZURE_CLIENT_ID,
          clientSecret: e.AZURE_CLIENT_SECRET,
          certificatePath: e.AZURE_CLIENT_CERTIFICATE_PATH,
          federatedTokenFile: e.AZURE_FEDERATED_TOKEN_FILE,
          caCertPath: e.KEY_VAULT_CA_CERT_PATH ? abs(e.KEY_VAULT_CA_CERT_PATH, cwd) : undefined,
          disableChallengeResourceVerification: e.KEY_VAULT_DISABLE_CHALLENGE_RESOURCE_VERIFICATION,
          timeoutMs: e.KEY_VAULT_TIMEOUT_MS,
          maxAttempts: e.KEY_VAULT_MAX_ATTEMPTS,
          breakerHalfOpenAfterMs: e.KEY_VAULT_BREAKER_HALF_OPEN_AFTER_MS,
        }
      : {
          mode: 'embedded',
          emulatorDataDir: abs(e.EMULATOR_DATA_DIR, cwd),
          emulatorPort: e.EMULATOR_PORT,
          timeoutMs: e.KEY_VAULT_TIMEOUT_MS,
          maxAttempts: e.KEY_VAULT_MAX_ATTEMPTS,
          breakerHalfOpenAfterMs: e.KEY_VAULT_BREAKER_HALF_OPEN_AFTER_MS,
        },
    outbox: { handlerTimeoutMs: e.OUTBOX_HANDLER_TIMEOUT_MS },
    metrics: { enabled: e.METRICS_ENABLED },
    telemetry: e.OTEL_EXPORTER_OTLP_ENDPOINT
      ? { endpoint: e.OTEL_EXPORTER_OTLP_ENDPOINT.replace(/\/+$/, ''), serviceName: e.OTEL_SERVICE_NAME, metricIntervalMs: e.OTEL_METRIC_EXPORT_INTERVAL }
      : undefined,
    redis: e.REDIS_URL ? { url: e.REDIS_URL, keyPrefix: e.REDIS_KEY_PREFIX } : undefined,
    credentials: {
      cacheTtlMs: e.CACHE_TTL_MS,
      cacheMaxStaleMs: e.CACHE_MAX_STALE_MS,
      cacheMaxEntries: e.CACHE_MAX_ENTRIES,
      cacheTier: cacheTierOf(e),
      cacheInvalidation: e.CACHE_INVALIDATION,
      cacheRedisTimeoutMs: e.CACHE_REDIS_TIMEOUT_MS,
      cacheHeartbeat: { intervalMs: e.CACHE_HEARTBEAT_INTERVAL_MS, lostAfterMs: e.CACHE_HEARTBEAT_LOST_AFTER_MS },
      integrations: e.CREDENTIALS_INTEGRATIONS,
      vaultSecretPrefix: e.VAULT_SECRET_PREFIX,
      envelope: { currentKeyRefreshMs: e.ENVELOPE_KEY_REFRESH_MS, ...(e.ENVELOPE_KEY_ENCRYPTION_KEY ? { keyEncryptionKey: e.ENVELOPE_KEY_ENCRYPTION_KEY } : {}) },
      orphanVersions: {
        enabled: e.CREDENTIALS_ORPHAN_VERSIONS_ENABLED,
        cron: e.CREDENTIALS_ORPHAN_VERSIONS_CRON,
        graceMs: e.CREDENTIALS_ORPHAN_VERSIONS_GRACE_MS,
        maxSecretsPerRun: e.CREDENTIALS_ORPHAN_VERSIONS_MAX_SECRETS,
      },
    },
    keys: { verify: e.KEYS_VERIFY, allowRsa1_5: e.KEYS_ALLOW_RSA1_5, cacheTtlMs: e.KEYS_CACHE_TTL_MS },
    audit: {
      failClosed: e.AUDIT_FAIL_CLOSED,
      preparedStatements: e.DATABASE_PREPARED_STATEMENTS,
      sqliteWriteWorker: e.DATABASE_SQLITE_WRITE_WORKER,
      retention: { enabled: e.AUDIT_RETENTION_ENABLED, days: e.AUDIT_RETENTION_DAYS, cron: e.AUDIT_RETENTION_CRON, statementTimeoutMs: e.AUDIT_RETENTION_STATEMENT_TIMEOUT_MS },
      anchor: { enabled: e.AUDIT_ANCHOR_ENABLED, cron: e.AUDIT_ANCHOR_CRON },
    },
    rateLimit: { perMinute: e.RATE_LIMIT_PER_MINUTE },
    oauth: {
      providers: e.OAUTH_PROVIDERS,
      refreshAheadMs: e.OAUTH_REFRESH_AHEAD_MS,
      proactive: { enabled: e.OAUTH_PROACTIVE_ENABLED, cronTime: e.OAUTH_PROACTIVE_CRON },
    },
    rotation: {
      expiryMonitor: { enabled: e.ROTATION_EXPIRY_MONITOR_ENABLED, cron: e.ROTATION_EXPIRY_MONITOR_CRON },
      rotationCheck: { enabled: e.ROTATION_CHECK_ENABLED, cron: e.ROTATION_CHECK_CRON },
      webhookNotificationsEnabled: e.NOTIFICATIONS_WEBHOOK_ENABLED,
      webhooks: {
        overlapMs: e.WEBHOOK_SECRET_OVERLAP_MS,
        maxLiveSecrets: e.WEBHOOK_SECRET_MAX_LIVE,
        toleranceSeconds: e.WEBHOOK_SECRET_TOLERANCE_SECONDS,
        cacheTtlMs: e.WEBHOOK_SECRET_CACHE_TTL_MS,
        stagedTtlMs: e.WEBHOOK_SECRET_STAGED_TTL_MS,
        job: { enabled: e.WEBHOOK_SECRET_ROTATION_ENABLED, cron: e.WEBHOOK_SECRET_ROTATION_CRON, maxPerRun: e.WEBHOOK_SECRET_ROTATION_MAX_PER_RUN },
      },
      notifications: {
        enabled: e.NOTIFICATIONS_ENABLED,
        retry: { maxAttempts: e.NOTIFICATIONS_RETRY_MAX_ATTEMPTS, baseMs: e.NOTIFICATIONS_RETRY_BASE_MS, maxMs: e.NOTIFICATIONS_RETRY_MAX_MS, leaseMs: e.NOTIFICATIONS_RETRY_LEASE_MS },
        retentionMs: e.NOTIFICATIONS_RETENTION_DAYS * 86_400_000,
        sendWaitMs: e.NOTIFICATIONS_SEND_WAIT_MS,
        webhook: { enabled: e.NOTIFICATIONS_WEBHOOK_ENABLED, timeoutMs: e.NOTIFICATIONS_WEBHOOK_TIMEOUT_MS, allowPrivateTargets: e.NOTIFICATIONS_WEBHOOK_ALLOW_PRIVATE_TARGETS },
        email: e.SMTP_HOST
          ? {
              enabled: true,
              host: e.SMTP_HOST,
              port: e.SMTP_PORT,
              secure: e.SMTP_SECURE,
              requireTLS: e.SMTP_REQUIRE_TLS,
              ignoreTLS: e.SMTP_IGNORE_TLS,
              ...(e.SMTP_USER && e.SMTP_PASSWORD ? { auth: { user: e.SMTP_USER, pass: e.SMTP_PASSWORD } } : {}),
              from: e.SMTP_FROM,
              timeoutMs: e.SMTP_TIMEOUT_MS,
            }
          : { enabled: false },
      },
      smtpCaCertPath: e.SMTP_CA_CERT_PATH ? abs(e.SMTP_CA_CERT_PATH, cwd) : undefined,
    },
    auth: {
      jwt: e.AUTH_JWT_ISSUER
        ? {
            issuer: e.AUTH_JWT_ISSUER,
            audience: e.AUTH_JWT_AUDIENCE!,
            jwksUrl: e.AUTH_JWT_JWKS_URL!,
            tenantClaim: e.AUTH_JWT_TENANT_CLAIM,
            scopeClaim: e.AUTH_JWT_SCOPE_CLAIM,
            algorithms: e.AUTH_JWT_ALGORITHMS,
          }
        : undefined,
      apiKeys: e.AUTH_API_KEYS,
      devApiKeyFile:
        !e.AUTH_JWT_ISSUER && e.AUTH_API_KEYS.length === 0 && e.NODE_ENV !== 'production'
          ? abs(e.AUTH_DEV_API_KEY_FILE, cwd)
          : undefined,
    },
  };
}

/** DI token for the validated configuration. */
export const APP_CONFIG = Symbol('credential-vault:app-config');
