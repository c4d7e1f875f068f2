import { isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { cronExpressionSchema } from '@app/common';
import type { NotificationOptions, WebhookSecretsOptions } from '@app/rotation';
import { ApiKeyEntry, apiKeyEntrySchema } from '../auth/api-keys';
import type { JwtAuthConfig } from '../auth/jwt-verifier';

/**
 * The host's whole configuration, read from the environment once at start and validated here.
 * Every variable, its default and its meaning is listed in the README's configuration reference;
 * keep the two in step.
 */
const bool = (def: boolean) =>
  z
    .enum(['true', 'false', '1', '0', 'yes', 'no'])
    .optional()
    .transform((v) => (v === undefined ? def : ['true', '1', 'yes'].includes(v)));

const int = (def: number, min: number, max: number) =>
  z.coerce.number().int().min(min).max(max).optional().transform((v) => v ?? def);

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

const envSchema = z
  .object({
    NODE_ENV: z.enum(['development', 'test', 'production']).default('development'),
    HOST: z.string().min(1).default('127.0.0.1'),
    PORT: int(3000, 0, 65535),
    LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    SHUTDOWN_TIMEOUT_MS: int(10_000, 0, 600_000),
    GRPC_ENABLED: bool(false),
    GRPC_HOST: z.string().min(1).default('127.0.0.1'),
    GRPC_PORT: int(50051, 1, 65535),

    DATABASE_TYPE: z.enum(['sqlite', 'postgres']).default('sqlite'),
    DATABASE_PATH: z.string().min(1).default('./data/credential-vault.sqlite'),
    DATABASE_URL: z.string().url().optional(),
    DATABASE_SCHEMA: z.string().regex(/^[a-z_][a-z0-9_]*$/i, 'must be a plain SQL identifier').optional(),
    DATABASE_POOL_SIZE: int(10, 1, 200),

    KEY_VAULT_URL: z.string().url().optional(),
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
    CREDENTIALS_INTEGRATIONS: z
      .string()
      .default('')
      .transform((s) => s.split(',').map((x) => x.trim()).filter(Boolean)),
    KEYS_VERIFY: z.enum(['local', 'remote'], { error: "must be 'local' or 'remote'" }).default('local'),
    KEYS_ALLOW_RSA1_5: bool(false),
    KEYS_CACHE_TTL_MS: int(60_000, 1, 86_400_000),
    ENVELOPE_KEY_ENCRYPTION_KEY: z.string().regex(/^[0-9a-zA-Z-]{1,127}$/, 'must be a vault key name: 1-127 characters of 0-9, a-z, A-Z and -').optional(),
    VAULT_SECRET_PREFIX: z.string().regex(/^[a-z][a-z0-9]{0,15}$/, 'must be 1–16 lowercase letters/digits, starting with a letter').default('cv'),

    AUDIT_FAIL_CLOSED: bool(true),
    AUDIT_RETENTION_ENABLED: bool(true),
    AUDIT_RETENTION_DAYS: int(90, 1, 36_500),
    AUDIT_RETENTION_CRON: z.string().min(9).default('0 3 * * *'),
    AUDIT_ANCHOR_ENABLED: bool(true),
    AUDIT_ANCHOR_CRON: z.string().min(9).default('*/5 * * * *'),
    RATE_LIMIT_PER_MINUTE: int(600, 1, 1_000_000),

    OAUTH_PROVIDERS: jsonArray(z.record(z.string(), z.unknown()), 'must be a JSON array of provider objects (see the README)'),
    OAUTH_REFRESH_AHEAD_MS: int(300_000, 0, 86_400_000),
    OAUTH_PROACTIVE_ENABLED: bool(true),
    OAUTH_PROACTIVE_CRON: z.string().min(9).default('*/1 * * * *'),

    ROTATION_EXPIRY_MONITOR_ENABLED: bool(true),
    ROTATION_EXPIRY_MONITOR_CRON: z.string().min(9).default('0 * * * *'),
    ROTATION_CHECK_ENABLED: bool(true),
    ROTATION_CHECK_CRON: z.string().min(9).default('0 3 * * *'),
    NOTIFICATIONS_WEBHOOK_ENABLED: bool(true),
    NOTIFICATIONS_ENABLED: bool(true),
    NOTIFICATIONS_WEBHOOK_TIMEOUT_MS: int(10_000, 1, 120_000),
    NOTIFICATIONS_WEBHOOK_ALLOW_PRIVATE_TARGETS: bool(false),
    NOTIFICATIONS_RETRY_MAX_ATTEMPTS: int(5, 1, 20),
    NOTIFICATIONS_RETRY_BASE_MS: int(30_000, 1, 86_400_000),
    NOTIFICATIONS_RETRY_MAX_MS: int(3_600_000, 1, 86_400_000),
    NOTIFICATIONS_RETRY_LEASE_MS: int(60_000, 1000, 86_400_000),
    NOTIFICATIONS_RETENTION_DAYS: int(30, 1, 3650),
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
    WEBHOOK_SECRET_ROTATION_CRON: cronExpressionSchema('must be a cron expression with 5 or 6 fields, e.g. "30 3 * * *"').default('30 3 * * *'),
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

export interface AppConfig {
  env: 'development' | 'test' | 'production';
  http: { host: string; port: number; shutdownTimeoutMs: number };
  /** The gRPC transport of the keys API (proto/credential_vault/keys/v1/keys.proto); off unless GRPC_ENABLED. */
  grpc: { enabled: boolean; host: string; port: number };
  log: { level: string };
  database:
    | { type: 'sqlite'; path: string }
    | { type: 'postgres'; url: string; schema?: string; poolSize: number };
  keyVault:
    | { mode: 'embedded'; emulatorDataDir: string; emulatorPort: number; timeoutMs: number; maxAttempts: number }
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
      };
  metrics: { enabled: boolean };
  /** OpenTelemetry traces and metrics over OTLP/HTTP; absent: off (the libs' instrumentation is a no-op). */
  telemetry?: { endpoint: string; serviceName: string; metricIntervalMs: number };
  /**
   * Shared state across replicas (cache tier, invalidation fan-out, cluster-wide limits). Unset: every
   * such thing is per process, as on one machine. Every key the host writes starts with `keyPrefix`.
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
    integrations: string[];
    vaultSecretPrefix: string;
    /** Envelope store: the vault RSA key that wraps tenants' data keys (unset: data keys are vault secrets). */
    envelope: { keyEncryptionKey?: string };
  };
  /** KeysModule: where verify runs by default, whether legacy RSA1_5 is allowed, how long a key's public part and state are trusted. */
  keys: { verify: 'local' | 'remote'; allowRsa1_5: boolean; cacheTtlMs: number };
  audit: {
    failClosed: boolean;
    retention: { enabled: boolean; days: number; cron: string };
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

/** Thrown at start when the environment is wrong; the message lists every variable to fix. */
export class ConfigValidationError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}\nSee the README's configuration reference.`);
    this.name = 'ConfigValidationError';
  }
}

/**
 * Rules across variables. They look only at presence, so they run even when other variables fail to
 * parse: the operator sees every problem at once.
 */
/**
 * The local vault's switches (its CA, the static credential, the skipped challenge check) on a vault
 * that is not on this machine: docker-compose reaches its vault service as `keyvault.localhost`, which
 * the key-vault lib counts as local but is another container. Development only.
 */
function devVaultSwitchProblems(env: Record<string, string | undefined>): string[] {
  if (env.NODE_ENV !== 'production' || !env.KEY_VAULT_URL) return [];
  let host: string;
  try {
    host = new URL(env.KEY_VAULT_URL).hostname.replace(/^\[|\]$/g, '');
  } catch {
    return []; // the URL's own check reports it
  }
  if (host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host)) return [];
  const why = `is for a development vault on another host (${host}) and is refused when NODE_ENV=production`;
  const problems: string[] = [];
  if (env.KEY_VAULT_CA_CERT_PATH) problems.push(`KEY_VAULT_CA_CERT_PATH: trusting a custom CA ${why}`);
  if (env.KEY_VAULT_CREDENTIAL === 'static') problems.push(`KEY_VAULT_CREDENTIAL: static ${why}`);
  if (['true', '1', 'yes'].includes(env.KEY_VAULT_DISABLE_CHALLENGE_RESOURCE_VERIFICATION ?? '')) {
    problems.push(`KEY_VAULT_DISABLE_CHALLENGE_RESOURCE_VERIFICATION: ${why}`);
  }
  return problems;
}

function crossFieldProblems(env: Record<string, string | undefined>): string[] {
  const problems: string[] = [];
  if (env.DATABASE_TYPE === 'postgres' && !env.DATABASE_URL) {
    problems.push('DATABASE_URL: is required when DATABASE_TYPE=postgres (e.g. postgres://user@127.0.0.1:5432/db)');
  }
  if (!env.KEY_VAULT_URL && env.NODE_ENV === 'production') {
    problems.push('KEY_VAULT_URL: is required in production: the embedded local vault is for development and tests only');
  }
  const jwtVars = ['AUTH_JWT_ISSUER', 'AUTH_JWT_AUDIENCE', 'AUTH_JWT_JWKS_URL'];
  if (jwtVars.some((v) => env[v])) {
    for (const v of jwtVars) if (!env[v]) problems.push(`${v}: is required when any of ${jwtVars.join(', ')} is set`);
  }
  if (env.NODE_ENV === 'production' && !env.AUTH_JWT_ISSUER && !env.AUTH_API_KEYS) {
    problems.push('AUTH_JWT_ISSUER or AUTH_API_KEYS: production needs an authentication method');
  }
  problems.push(...devVaultSwitchProblems(env));
  const cred = env.KEY_VAULT_CREDENTIAL;
  const required: Record<string, string[]> = {
    'client-secret': ['AZURE_TENANT_ID', 'AZURE_CLIENT_ID', 'AZURE_CLIENT_SECRET'],
    'client-certificate': ['AZURE_TENANT_ID', 'AZURE_CLIENT_ID', 'AZURE_CLIENT_CERTIFICATE_PATH'],
  };
  for (const v of (cred && required[cred]) || []) {
    if (!env[v]) problems.push(`${v}: is required when KEY_VAULT_CREDENTIAL=${cred}`);
  }
  if (env.SMTP_HOST && !env.SMTP_FROM) problems.push('SMTP_FROM: is required when SMTP_HOST is set (the sender of notification e-mails)');
  for (const v of ['SMTP_FROM', 'SMTP_USER', 'SMTP_PASSWORD', 'SMTP_CA_CERT_PATH']) {
    if (env[v] && !env.SMTP_HOST) problems.push(`${v}: is set but SMTP_HOST is not (e-mail notifications need SMTP_HOST)`);
  }
  if (!!env.SMTP_USER !== !!env.SMTP_PASSWORD) problems.push('SMTP_USER and SMTP_PASSWORD: set both or neither');
  return problems;
}

/** Rules between parsed values (bounds another variable sets). Names only, never a value. */
function valueProblems(e: z.infer<typeof envSchema>): string[] {
  const problems: string[] = [];
  if (e.GRPC_ENABLED && e.GRPC_PORT === e.PORT && e.GRPC_HOST === e.HOST) problems.push('GRPC_PORT: must differ from PORT (HTTP and gRPC listen on separate ports)');
  if (e.NOTIFICATIONS_RETRY_BASE_MS > e.NOTIFICATIONS_RETRY_MAX_MS) problems.push('NOTIFICATIONS_RETRY_BASE_MS: must not exceed NOTIFICATIONS_RETRY_MAX_MS');
  for (const v of ['NOTIFICATIONS_WEBHOOK_TIMEOUT_MS', 'SMTP_TIMEOUT_MS'] as const) {
    if (e[v] >= e.NOTIFICATIONS_RETRY_LEASE_MS) problems.push(`NOTIFICATIONS_RETRY_LEASE_MS: must exceed ${v} (an attempt in flight keeps its channel this long)`);
  }
  if (e.SMTP_SECURE && e.SMTP_IGNORE_TLS) problems.push('SMTP_IGNORE_TLS: cannot be combined with SMTP_SECURE (TLS from the first byte)');
  if (e.SMTP_REQUIRE_TLS && e.SMTP_IGNORE_TLS) problems.push('SMTP_IGNORE_TLS: cannot be combined with SMTP_REQUIRE_TLS');
  if (e.CACHE_TIER === 'redis' && !e.REDIS_URL) problems.push('CACHE_TIER: redis needs REDIS_URL');
  const tier = e.CACHE_TIER ?? (e.REDIS_URL ? 'redis' : 'memory');
  if (e.CACHE_INVALIDATION === 'redis' && tier !== 'redis') problems.push('CACHE_INVALIDATION: redis needs the redis cache tier (REDIS_URL, CACHE_TIER unset or redis)');
  if (e.CACHE_INVALIDATION === 'postgres' && e.DATABASE_TYPE !== 'postgres') problems.push('CACHE_INVALIDATION: postgres needs DATABASE_TYPE=postgres');
  if (e.CACHE_INVALIDATION === 'none' && tier === 'redis') problems.push('CACHE_INVALIDATION: none cannot be used with the redis cache tier (replicas would serve evicted entries)');
  return problems;
}

const abs = (p: string, cwd: string) => (isAbsolute(p) ? p : resolve(cwd, p));

/** Parses and validates an environment. Pure: pass `process.env` in main.ts, a plain object in tests. */
export function loadAppConfig(env: Record<string, string | undefined>, cwd = process.cwd()): AppConfig {
  // Empty strings mean "unset" (docker-compose and shells often export VAR= ).
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = envSchema.safeParse(cleaned);
  const problems = [
    // Never echo the offending value: it may be a secret (AZURE_CLIENT_SECRET).
    ...(parsed.success ? [] : parsed.error.issues.map((i) => `${i.path.join('.') || '(env)'}: ${i.message}`)),
    ...crossFieldProblems(cleaned),
    ...(parsed.success ? valueProblems(parsed.data) : []),
  ];
  if (!parsed.success || problems.length > 0) throw new ConfigValidationError(problems);
  const e = parsed.data;
  return {
    env: e.NODE_ENV,
    http: { host: e.HOST, port: e.PORT, shutdownTimeoutMs: e.SHUTDOWN_TIMEOUT_MS },
    grpc: { enabled: e.GRPC_ENABLED, host: e.GRPC_HOST, port: e.GRPC_PORT },
    log: { level: e.LOG_LEVEL },
    database:
      e.DATABASE_TYPE === 'postgres'
        ? { type: 'postgres', url: e.DATABASE_URL!, schema: e.DATABASE_SCHEMA, poolSize: e.DATABASE_POOL_SIZE }
        : { type: 'sqlite', path: abs(e.DATABASE_PATH, cwd) },
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
        }
      : {
          mode: 'embedded',
          emulatorDataDir: abs(e.EMULATOR_DATA_DIR, cwd),
          emulatorPort: e.EMULATOR_PORT,
          timeoutMs: e.KEY_VAULT_TIMEOUT_MS,
          maxAttempts: e.KEY_VAULT_MAX_ATTEMPTS,
        },
    metrics: { enabled: e.METRICS_ENABLED },
    telemetry: e.OTEL_EXPORTER_OTLP_ENDPOINT
      ? { endpoint: e.OTEL_EXPORTER_OTLP_ENDPOINT.replace(/\/+$/, ''), serviceName: e.OTEL_SERVICE_NAME, metricIntervalMs: e.OTEL_METRIC_EXPORT_INTERVAL }
      : undefined,
    redis: e.REDIS_URL ? { url: e.REDIS_URL, keyPrefix: e.REDIS_KEY_PREFIX } : undefined,
    credentials: {
      cacheTtlMs: e.CACHE_TTL_MS,
      cacheMaxStaleMs: e.CACHE_MAX_STALE_MS,
      cacheMaxEntries: e.CACHE_MAX_ENTRIES,
      cacheTier: e.CACHE_TIER ?? (e.REDIS_URL ? 'redis' : 'memory'),
      cacheInvalidation: e.CACHE_INVALIDATION,
      integrations: e.CREDENTIALS_INTEGRATIONS,
      vaultSecretPrefix: e.VAULT_SECRET_PREFIX,
      envelope: e.ENVELOPE_KEY_ENCRYPTION_KEY ? { keyEncryptionKey: e.ENVELOPE_KEY_ENCRYPTION_KEY } : {},
    },
    keys: { verify: e.KEYS_VERIFY, allowRsa1_5: e.KEYS_ALLOW_RSA1_5, cacheTtlMs: e.KEYS_CACHE_TTL_MS },
    audit: {
      failClosed: e.AUDIT_FAIL_CLOSED,
      retention: { enabled: e.AUDIT_RETENTION_ENABLED, days: e.AUDIT_RETENTION_DAYS, cron: e.AUDIT_RETENTION_CRON },
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
