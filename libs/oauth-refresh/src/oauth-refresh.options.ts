import type { Clock } from '@app/common';
import type { OAuthProviderConfig } from './providers/oauth-provider.config';
import { OAuthRefreshConfigurationError } from './errors/oauth-refresh.errors';

/** The proactive job: refreshes tokens entering their refresh-ahead window before anyone asks. */
export interface OAuthProactiveRefreshOptions {
  /** Register the cron job (needs ScheduleModule.forRoot() in the host). @default true */
  enabled?: boolean;
  /** Cron expression (6 fields allowed: seconds first). @default '0 * * * * *' (every minute) */
  cronTime?: string;
  /** Name of the cron job in SchedulerRegistry. @default 'oauth-proactive-refresh' */
  jobName?: string;
  /** Access tokens read per database page. 1..1000. @default 100 */
  batchSize?: number;
  /** Refreshes running at once within a batch. 1..64. @default 4 */
  concurrency?: number;
  /** Upper bound of tokens one run handles (the next run continues). @default 10000 */
  maxPerRun?: number;
}

export interface OAuthRetryOptions {
  /** Attempts per refresh on transient failures (network, timeout, 5xx, 429), first one included. 1..10. @default 3 */
  maxAttempts?: number;
  /** Delay before the second attempt; doubled each time, ±20 % jitter. @default 250 */
  initialDelayMs?: number;
  /** Cap of one delay, also of a provider's Retry-After. @default 5000 */
  maxDelayMs?: number;
}

export interface OAuthRefreshModuleOptions {
  /** Providers to register at startup (more can be registered at runtime with OAuthProviderRegistry). @default [] */
  providers?: OAuthProviderConfig[];
  /** Default refresh-ahead window of providers. @default 300000 (5 minutes) */
  refreshAheadMs?: number;
  /**
   * Default lifetime of a token response without `expires_in`. One hour: long enough not to
   * hammer the provider, short enough that a token is rarely served after it died (a 401 then goes
   * through `reportTokenRejected`). @default 3600
   */
  defaultExpiresInSeconds?: number;
  /** Default timeout of one token-endpoint request. @default 10000 */
  requestTimeoutMs?: number;
  /** Retries with exponential backoff inside one refresh. */
  retry?: OAuthRetryOptions;
  /**
   * After a failed refresh, this replica does not contact the provider again for this connection
   * for this long (doubling with each consecutive failure up to `maxFailureCooldownMs`); the old
   * token keeps being served while it is valid. @default 30000
   */
  failureCooldownMs?: number;
  /** Upper bound of the growing cooldown. @default 600000 (10 minutes) */
  maxFailureCooldownMs?: number;
  /** How long a refresh waits for the cross-replica lock of its connection. @default 30000 */
  lockTimeoutMs?: number;
  proactive?: OAuthProactiveRefreshOptions;
  /**
   * Time source for expiry decisions (tests pass a ManualClock, the same one CredentialsModule gets).
   * @default the host's global `Clock` provider if any, else the system clock
   */
  clock?: Clock;
}

export interface ResolvedOAuthRefreshOptions {
  providers: OAuthProviderConfig[];
  refreshAheadMs: number;
  defaultExpiresInSeconds: number;
  requestTimeoutMs: number;
  retry: Required<OAuthRetryOptions>;
  failureCooldownMs: number;
  maxFailureCooldownMs: number;
  lockTimeoutMs: number;
  proactive: Required<OAuthProactiveRefreshOptions>;
  clock?: Clock;
}

/** Merges defaults and validates once; the error lists every problem and how to fix it. */
export function resolveOAuthRefreshOptions(options: OAuthRefreshModuleOptions = {}): ResolvedOAuthRefreshOptions {
  const o = options ?? {};
  const r: ResolvedOAuthRefreshOptions = {
    providers: o.providers ?? [],
    refreshAheadMs: o.refreshAheadMs ?? 300_000,
    defaultExpiresInSeconds: o.defaultExpiresInSeconds ?? 3600,
    requestTimeoutMs: o.requestTimeoutMs ?? 10_000,
    retry: {
      maxAttempts: o.retry?.maxAttempts ?? 3,
      initialDelayMs: o.retry?.initialDelayMs ?? 250,
      maxDelayMs: o.retry?.maxDelayMs ?? 5000,
    },
    failureCooldownMs: o.failureCooldownMs ?? 30_000,
    maxFailureCooldownMs: o.maxFailureCooldownMs ?? 600_000,
    lockTimeoutMs: o.lockTimeoutMs ?? 30_000,
    proactive: {
      enabled: o.proactive?.enabled ?? true,
      cronTime: o.proactive?.cronTime ?? '0 * * * * *',
      jobName: o.proactive?.jobName ?? 'oauth-proactive-refresh',
      batchSize: o.proactive?.batchSize ?? 100,
      concurrency: o.proactive?.concurrency ?? 4,
      maxPerRun: o.proactive?.maxPerRun ?? 10_000,
    },
    ...(o.clock !== undefined ? { clock: o.clock } : {}),
  };
  const problems: string[] = [];
  const ms = (v: number, name: string, min: number) => {
    if (!(typeof v === 'number' && Number.isFinite(v) && v >= min)) problems.push(`${name}: must be a number ≥ ${min}`);
  };
  const int = (v: number, name: string, min: number, max: number) => {
    if (!(Number.isInteger(v) && v >= min && v <= max)) problems.push(`${name}: must be an integer in ${min}..${max}`);
  };
  if (!Array.isArray(r.providers)) problems.push('providers: must be an array of provider configurations');
  ms(r.refreshAheadMs, 'refreshAheadMs', 0);
  ms(r.defaultExpiresInSeconds, 'defaultExpiresInSeconds', 1);
  ms(r.requestTimeoutMs, 'requestTimeoutMs', 1);
  int(r.retry.maxAttempts, 'retry.maxAttempts', 1, 10);
  ms(r.retry.initialDelayMs, 'retry.initialDelayMs', 0);
  ms(r.retry.maxDelayMs, 'retry.maxDelayMs', 0);
  ms(r.failureCooldownMs, 'failureCooldownMs', 0);
  ms(r.maxFailureCooldownMs, 'maxFailureCooldownMs', 0);
  if (r.maxFailureCooldownMs < r.failureCooldownMs) problems.push('maxFailureCooldownMs: must be ≥ failureCooldownMs');
  ms(r.lockTimeoutMs, 'lockTimeoutMs', 1);
  if (typeof r.proactive.enabled !== 'boolean') problems.push('proactive.enabled: must be a boolean');
  if (typeof r.proactive.cronTime !== 'string' || r.proactive.cronTime.trim().split(/\s+/).length < 5) {
    problems.push('proactive.cronTime: must be a cron expression with 5 or 6 fields, e.g. "0 * * * * *"');
  }
  if (typeof r.proactive.jobName !== 'string' || r.proactive.jobName.length === 0) problems.push('proactive.jobName: must be a non-empty string');
  int(r.proactive.batchSize, 'proactive.batchSize', 1, 1000);
  int(r.proactive.concurrency, 'proactive.concurrency', 1, 64);
  int(r.proactive.maxPerRun, 'proactive.maxPerRun', 1, 1_000_000);
  if (r.clock !== undefined && typeof r.clock?.now !== 'function') problems.push('clock: must be a Clock (an object with now(): Date)');
  if (problems.length) {
    throw new OAuthRefreshConfigurationError(`Invalid OAuthRefreshModule options:\n  - ${problems.join('\n  - ')}`);
  }
  return r;
}
