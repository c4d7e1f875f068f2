import { oneSlipApart } from '@app/common';
import { HEARTBEAT_LIMITS } from '@app/credentials';
import { DEFAULT_NOTIFICATION_SEND_WAIT_MS, NOTIFICATION_SEND_WAIT_HEADROOM_MS } from '@app/rotation';
import { CONFIG_VARIABLES, DATABASE_TYPES, type EnvVars } from './env-schema';

/*
 * The configuration's rules between variables; each problem names the variables, never a value.
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

/** The credential cache's tier: CACHE_TIER, else redis when REDIS_URL is set. */
export function cacheTierOf<T extends string>(e: { CACHE_TIER?: T; REDIS_URL?: string }): T | 'redis' | 'memory' {
  return e.CACHE_TIER ?? (e.REDIS_URL ? 'redis' : 'memory');
}

/** An external vault's own variables (KEY_VAULT_URL's). */
export const EXTERNAL_VAULT_VARIABLES = [
  'KEY_VAULT_CREDENTIAL',
  'AZURE_TENANT_ID',
  'AZURE_CLIENT_ID',
  'AZURE_CLIENT_SECRET',
  'AZURE_CLIENT_CERTIFICATE_PATH',
  'AZURE_FEDERATED_TOKEN_FILE',
  // The embedded vault is trusted by its own CA, its challenge check skipped: these two would do nothing there.
  'KEY_VAULT_CA_CERT_PATH',
  'KEY_VAULT_DISABLE_CHALLENGE_RESOURCE_VERIFICATION',
] as const;

/** The embedded local vault's own variables (without KEY_VAULT_URL). */
export const EMBEDDED_VAULT_VARIABLES = ['EMULATOR_DATA_DIR', 'EMULATOR_PORT'] as const;

/** What the vault variables' rules compare them with (EMULATOR_PORT's in VALUE_RULES): a check of the vault's part alone needs them too. */
export const VAULT_RULE_COMPANIONS = ['PORT', 'HOST', 'GRPC_ENABLED', 'GRPC_PORT', 'GRPC_HOST'] as const;

/**
 * Whether the database is PostgreSQL; undefined when DATABASE_TYPE names no database the host knows: then which
 * database's variables are out of place is unknown, and DATABASE_TYPE's own problem is the one to show.
 */
function isPostgres(env: Record<string, string | undefined>): boolean | undefined {
  const type = env.DATABASE_TYPE ?? 'sqlite';
  return (DATABASE_TYPES as readonly string[]).includes(type) ? type === 'postgres' : undefined;
}

/**
 * Each backend's own variables (the database's, the vault's) and when that backend is in use (undefined: not known).
 * One of them set while another is in use means the operator believes it is: it is refused, saying which one is.
 */
const BACKENDS: { variables: readonly string[]; inUse: (env: Record<string, string | undefined>) => boolean | undefined; problem: (v: string) => string }[] = [
  {
    variables: [
      'DATABASE_URL',
      'DATABASE_SCHEMA',
      'DATABASE_POOL_SIZE',
      'DATABASE_CONNECT_TIMEOUT_MS',
      'DATABASE_LOCK_SESSIONS',
      'DATABASE_LOCK_HEARTBEAT_MS',
      'DATABASE_LOCK_HEARTBEAT_TIMEOUT_MS',
      'DATABASE_QUERY_TIMEOUT_MS',
      'DATABASE_STATEMENT_TIMEOUT_MS',
      'DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS',
      'DATABASE_PROBE_AFTER_MS',
      'DATABASE_PREPARED_STATEMENTS',
      'AUDIT_RETENTION_STATEMENT_TIMEOUT_MS',
    ],
    inUse: (env) => isPostgres(env),
    problem: (v) => `${v}: applies only with DATABASE_TYPE=postgres (the database is SQLite now); set DATABASE_TYPE=postgres or unset ${v}`,
  },
  {
    variables: ['DATABASE_PATH', 'DATABASE_SQLITE_SYNCHRONOUS', 'DATABASE_SQLITE_WRITE_WORKER', 'DATABASE_SQLITE_WAL_WORKER', 'DATABASE_SQLITE_WAL_AUTOCHECKPOINT'],
    inUse: (env) => {
      const pg = isPostgres(env);
      return pg === undefined ? undefined : !pg;
    },
    problem: (v) => `${v}: applies only to SQLite (the database is PostgreSQL now, DATABASE_TYPE=postgres); unset ${v}`,
  },
  {
    variables: EXTERNAL_VAULT_VARIABLES,
    inUse: (env) => !!env.KEY_VAULT_URL,
    problem: (v) => `${v}: applies only with KEY_VAULT_URL (without it the embedded local vault is used); set KEY_VAULT_URL or unset ${v}`,
  },
  {
    variables: EMBEDDED_VAULT_VARIABLES,
    inUse: (env) => !env.KEY_VAULT_URL,
    problem: (v) => `${v}: applies only to the embedded local vault, used without KEY_VAULT_URL (the vault is KEY_VAULT_URL's now); unset ${v}`,
  },
];

/** The variables set in `env` of a backend that is not in use, each with its problem. */
const notInUse = (env: Record<string, string | undefined>) =>
  BACKENDS.flatMap((b) => (b.inUse(env) !== false ? [] : b.variables.filter((v) => env[v]).map((v) => ({ variable: v, problem: b.problem(v) }))));

/** The variables set in `env` of a backend that is not in use (which the host refuses): to leave out of an environment switched to another. */
export function variablesOfBackendsNotInUse(env: Record<string, string | undefined>): string[] {
  return notInUse(env).map((n) => n.variable);
}

/**
 * Rules across variables. They look only at presence, so they run even when other variables fail to
 * parse: the operator sees every problem at once.
 */
export function crossFieldProblems(env: Record<string, string | undefined>): string[] {
  const problems: string[] = [];
  if (env.DATABASE_TYPE === 'postgres' && !env.DATABASE_URL) {
    problems.push('DATABASE_URL: is required when DATABASE_TYPE=postgres (e.g. postgres://user@127.0.0.1:5432/db)');
  }
  problems.push(...notInUse(env).map((n) => n.problem));
  problems.push(...misspeltProblems(env));
  if (!env.KEY_VAULT_URL && env.NODE_ENV === 'production') {
    problems.push('KEY_VAULT_URL: is required in production: the embedded local vault is for development and tests only');
  }
  const jwtVars = ['AUTH_JWT_ISSUER', 'AUTH_JWT_AUDIENCE', 'AUTH_JWT_JWKS_URL'];
  if (jwtVars.some((v) => env[v])) {
    for (const v of jwtVars) if (!env[v]) problems.push(`${v}: is required when any of ${jwtVars.join(', ')} is set`);
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
  // The heartbeat belongs to the eviction fan-out; a single process without it has none.
  // As `auto` resolves: redis with the redis tier (REDIS_URL, CACHE_TIER unset or redis), else postgres on PostgreSQL.
  const redisTier = cacheTierOf(env) === 'redis';
  const fanOut = env.CACHE_INVALIDATION === 'redis' || env.CACHE_INVALIDATION === 'postgres' || (env.CACHE_INVALIDATION !== 'none' && (redisTier || env.DATABASE_TYPE === 'postgres'));
  for (const v of ['CACHE_HEARTBEAT_INTERVAL_MS', 'CACHE_HEARTBEAT_LOST_AFTER_MS']) {
    if (env[v] && !fanOut) problems.push(`${v}: applies only when cache evictions fan out to other replicas (REDIS_URL or DATABASE_TYPE=postgres, CACHE_INVALIDATION not none); unset ${v}`);
  }
  if (env.CACHE_REDIS_TIMEOUT_MS && !redisTier) problems.push('CACHE_REDIS_TIMEOUT_MS: applies only to the redis cache tier (REDIS_URL, CACHE_TIER not memory); unset CACHE_REDIS_TIMEOUT_MS');
  return problems;
}

/** 0.0.0.0 / :: take the port on every address, so they clash with any host. */
const anyAddress = (h: string) => h === '0.0.0.0' || h === '::' || h === '[::]';
/** The embedded vault (no KEY_VAULT_URL) listens on the loopback address: a port there is the host's too. */
const onLoopback = (h: string) => anyAddress(h) || h === '127.0.0.1' || h === 'localhost' || h === '::1' || h === '[::1]';

/** One rule between parsed values: adds its problems to `problems`. */
type ValueRule = (e: EnvVars, problems: string[]) => void;

const VALUE_RULES: ValueRule[] = [
  (e, problems) => {
    if (e.GRPC_ENABLED && e.GRPC_PORT === e.PORT && (e.GRPC_HOST === e.HOST || anyAddress(e.GRPC_HOST) || anyAddress(e.HOST))) {
      problems.push('GRPC_PORT: must differ from PORT (HTTP and gRPC listen on separate ports)');
    }
  },
  (e, problems) => {
    if (!e.KEY_VAULT_URL && e.EMULATOR_PORT !== 0) {
      if (e.PORT === e.EMULATOR_PORT && onLoopback(e.HOST)) problems.push('EMULATOR_PORT: must differ from PORT (the embedded local vault listens beside the HTTP API)');
      if (e.GRPC_ENABLED && e.GRPC_PORT === e.EMULATOR_PORT && onLoopback(e.GRPC_HOST)) problems.push('EMULATOR_PORT: must differ from GRPC_PORT (the embedded local vault listens beside the gRPC API)');
    }
  },
  // The server cancels a slow statement with a clean error and keeps the connection; the client's deadline is for a server that does not answer at all.
  (e, problems) => {
    if (e.DATABASE_QUERY_TIMEOUT_MS > 0 && e.DATABASE_STATEMENT_TIMEOUT_MS > 0 && e.DATABASE_QUERY_TIMEOUT_MS <= e.DATABASE_STATEMENT_TIMEOUT_MS) {
      problems.push('DATABASE_QUERY_TIMEOUT_MS: must exceed DATABASE_STATEMENT_TIMEOUT_MS (or set either to 0)');
    }
  },
  // A stall is noticed within interval + deadline; a heartbeat's answer is awaited before the next one is due.
  // PostgreSQL only: elsewhere the variables are refused as such, and the defaults' comparison would only add noise.
  (e, problems) => {
    if (e.DATABASE_TYPE === 'postgres' && e.DATABASE_LOCK_HEARTBEAT_TIMEOUT_MS >= e.DATABASE_LOCK_HEARTBEAT_MS) problems.push('DATABASE_LOCK_HEARTBEAT_TIMEOUT_MS: must be below DATABASE_LOCK_HEARTBEAT_MS');
  },
  (e, problems) => {
    if (e.NOTIFICATIONS_RETRY_BASE_MS > e.NOTIFICATIONS_RETRY_MAX_MS) problems.push('NOTIFICATIONS_RETRY_BASE_MS: must not exceed NOTIFICATIONS_RETRY_MAX_MS');
  },
  ...(['NOTIFICATIONS_WEBHOOK_TIMEOUT_MS', 'SMTP_TIMEOUT_MS'] as const).map((v): ValueRule => (e, problems) => {
    if (e[v] >= e.NOTIFICATIONS_RETRY_LEASE_MS) problems.push(`NOTIFICATIONS_RETRY_LEASE_MS: must exceed ${v} (an attempt in flight keeps its channel this long)`);
  }),
  // The notification handler waits up to its send wait after its bookkeeping, inside the outbox's bound on the
  // whole handler (RotationModule refuses it at start too, as sendWaitMs).
  (e, problems) => {
    if (e.NOTIFICATIONS_ENABLED && e.NOTIFICATIONS_SEND_WAIT_MS + NOTIFICATION_SEND_WAIT_HEADROOM_MS > e.OUTBOX_HANDLER_TIMEOUT_MS) {
      problems.push(
        `NOTIFICATIONS_SEND_WAIT_MS: must be at least ${NOTIFICATION_SEND_WAIT_HEADROOM_MS} less than OUTBOX_HANDLER_TIMEOUT_MS while NOTIFICATIONS_ENABLED (the outbox bounds the whole notification handler, which keeps ${NOTIFICATION_SEND_WAIT_HEADROOM_MS} ms for its bookkeeping: a longer wait never takes effect); lower it (default ${DEFAULT_NOTIFICATION_SEND_WAIT_MS}) or raise OUTBOX_HANDLER_TIMEOUT_MS`,
      );
    }
  },
  (e, problems) => {
    if (e.SMTP_SECURE && e.SMTP_IGNORE_TLS) problems.push('SMTP_IGNORE_TLS: cannot be combined with SMTP_SECURE (TLS from the first byte)');
  },
  (e, problems) => {
    if (e.SMTP_REQUIRE_TLS && e.SMTP_IGNORE_TLS) problems.push('SMTP_IGNORE_TLS: cannot be combined with SMTP_REQUIRE_TLS');
  },
  (e, problems) => {
    if (e.CACHE_TIER === 'redis' && !e.REDIS_URL) problems.push('CACHE_TIER: redis needs REDIS_URL');
  },
  (e, problems) => {
    if (e.CACHE_INVALIDATION === 'redis' && cacheTierOf(e) !== 'redis') problems.push('CACHE_INVALIDATION: redis needs the redis cache tier (REDIS_URL, CACHE_TIER unset or redis)');
  },
  (e, problems) => {
    if (e.CACHE_INVALIDATION === 'postgres' && e.DATABASE_TYPE !== 'postgres') problems.push('CACHE_INVALIDATION: postgres needs DATABASE_TYPE=postgres');
  },
  (e, problems) => {
    if (e.CACHE_INVALIDATION === 'none' && cacheTierOf(e) === 'redis') problems.push('CACHE_INVALIDATION: none cannot be used with the redis cache tier (replicas would serve evicted entries)');
  },
  (e, problems) => {
    if (e.CACHE_HEARTBEAT_LOST_AFTER_MS < HEARTBEAT_LIMITS.minLostAfterIntervals * e.CACHE_HEARTBEAT_INTERVAL_MS) {
      problems.push(`CACHE_HEARTBEAT_LOST_AFTER_MS: must be at least ${HEARTBEAT_LIMITS.minLostAfterIntervals} × CACHE_HEARTBEAT_INTERVAL_MS (one late heartbeat must not drop the cache)`);
    }
  },
  // Parsed: an empty list (`[]`, a template's default) leaves every request 401, as no list does; outside production the dev key stands in.
  (e, problems) => {
    if (e.NODE_ENV === 'production' && !e.AUTH_JWT_ISSUER && e.AUTH_API_KEYS.length === 0) {
      problems.push('AUTH_JWT_ISSUER or AUTH_API_KEYS: production needs an authentication method');
    }
  },
  // An id is one client (`api-key:<id>` in the audit and the rate limits): several entries only while its key rotates.
  (e, problems) => {
    const firstOfId = new Map<string, number>();
    e.AUTH_API_KEYS.forEach((k, i) => {
      const first = firstOfId.get(k.id);
      if (first === undefined) return void firstOfId.set(k.id, i);
      if (e.AUTH_API_KEYS[first].tenant !== k.tenant) {
        problems.push(`AUTH_API_KEYS: entries #${first + 1} and #${i + 1} share the id ${k.id} but not the tenant (an id is one client, api-key:${k.id}): give one another id`);
      }
    });
  },
];

/**
 * Rules between parsed values (bounds another variable sets). Names only, never a value. `unknown`: variables whose
 * value did not parse and stand at their defaults here — a rule that reads one is left out, as its verdict would be
 * on a value the operator did not set (HOST=http://10.0.0.5 at its default 127.0.0.1 would clash with GRPC_HOST), even
 * when its message does not name that variable.
 */
export function valueProblems(e: EnvVars, unknown: ReadonlySet<string> = new Set()): string[] {
  return VALUE_RULES.flatMap((rule) => {
    const read = new Set<string>();
    const problems: string[] = [];
    rule(new Proxy(e, { get: (target, key, receiver) => (read.add(String(key)), Reflect.get(target, key, receiver)) }), problems);
    return [...read].some((name) => unknown.has(name)) ? [] : problems;
  });
}

/**
 * Variables that are not ours but one slip away from one of ours (a letter missing, extra, wrong, or two
 * swapped: `DATABSE_TYPE`; in another case: `log_level`; without the unit: `CACHE_TTL`): a typo would otherwise
 * be ignored silently, and the host would run on a default the operator did not mean. Only names with an
 * underscore and 8+ characters, so the usual system variables are never taken for ours.
 */
function misspeltProblems(env: Record<string, string | undefined>): string[] {
  const known = new Set(CONFIG_VARIABLES);
  const problems: string[] = [];
  for (const name of Object.keys(env)) {
    if (known.has(name) || !name.includes('_') || name.length < 8 || env[name] === undefined) continue;
    const upper = name.toUpperCase();
    const near = [upper, `${upper}_MS`].find((k) => known.has(k)) ?? CONFIG_VARIABLES.find((k) => Math.abs(k.length - upper.length) <= 1 && oneSlipApart(k, upper));
    if (near) problems.push(`${name}: is not a variable of this host; did you mean ${near}?`);
  }
  return problems;
}

