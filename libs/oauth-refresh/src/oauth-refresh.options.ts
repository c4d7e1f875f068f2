import { booleanOption, Clock, clockOptionSchema, cronExpressionSchema, describeProblems, integerInRange, MUST_BE_AN_OBJECT, resolveOptions, timeZoneSchema, whenFieldsParsed } from '@app/common';
import { z } from 'zod';
import type { OAuthProviderConfig } from './providers/oauth-provider.config';
import { OAuthRefreshConfigurationError } from './errors/oauth-refresh.errors';
import { providerConfigProblems } from './providers/oauth-provider.registry';

/** The proactive job: refreshes tokens entering their refresh-ahead window before anyone asks. */
export interface OAuthProactiveRefreshOptions {
  /** Register the cron job (needs ScheduleModule.forRoot() in the host). @default true */
  enabled?: boolean;
  /** Cron expression (6 fields allowed: seconds first). @default '0 * * * * *' (every minute) */
  cronTime?: string;
  /** IANA time zone of `cronTime`. @default 'UTC' (as every job's: not the process's local zone) */
  timeZone?: string;
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
  /**
   * How long a refresh request that timed out is still awaited afterwards, holding the connection's
   * lock and refresh lease (the caller is answered at the timeout): a provider that answers late may have rotated the
   * refresh token, and its answer holds the only live one. 0: abandoned at the timeout. The timeout's cooldown
   * lasts at least this long (the late answer ends it). @default 60000
   */
  lateAnswerMs?: number;
  /** Retries with exponential backoff inside one refresh. */
  retry?: OAuthRetryOptions;
  /**
   * After a failed refresh, the provider is not contacted again for this connection for this long
   * (doubling with each consecutive failure up to `maxFailureCooldownMs`); the old token keeps being
   * served while it is valid. Per process, unless the host provides an `OAuthRefreshCooldowns`
   * globally (e.g. Redis): then on every replica. @default 30000
   */
  failureCooldownMs?: number;
  /** Upper bound of the growing cooldown. @default 600000 (10 minutes) */
  maxFailureCooldownMs?: number;
  /**
   * How long a refresh waits for the cross-replica lock of its connection; then it fails with a retryable
   * OAuthRefreshFailedError without calling the provider. May be shorter than a holder awaiting a late answer
   * (`requestTimeoutMs` + `lateAnswerMs`): a waiter never presents the token that holder spends. The lock is only
   * the fast path: it is lost with its database session, and the guard is the connection's refresh-in-flight
   * lease (`cv_lock_leases`, held until the answer is stored; see the README, *Refresh*). @default 30000
   */
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
  lateAnswerMs: number;
  retry: Required<OAuthRetryOptions>;
  failureCooldownMs: number;
  maxFailureCooldownMs: number;
  lockTimeoutMs: number;
  proactive: Required<Omit<OAuthProactiveRefreshOptions, 'timeZone'>> & { timeZone?: string };
  clock?: Clock;
}

const ms = (min: number) => z.number({ error: `must be a number ≥ ${min}` }).min(min, `must be a number ≥ ${min}`);
const int = (min: number, max: number) => integerInRange(min, max);

/** One provider, checked in the same pass as the other options (its problems are listed as `providers.<index>.<field>`). */
const provider = z.custom<OAuthProviderConfig>().superRefine((config, ctx) => {
  for (const p of providerConfigProblems(config)) ctx.addIssue({ code: 'custom', path: p.path, message: p.message });
});

const schema = z
  .object({
    providers: z.array(provider, { error: 'must be an array of provider configurations' }).default([]),
    refreshAheadMs: ms(0).default(300_000),
    defaultExpiresInSeconds: ms(1).default(3600),
    requestTimeoutMs: ms(1).default(10_000),
    lateAnswerMs: ms(0).default(60_000),
    retry: z
      .object({ maxAttempts: int(1, 10).default(3), initialDelayMs: ms(0).default(250), maxDelayMs: ms(0).default(5000) }, MUST_BE_AN_OBJECT)
      .strict()
      .prefault({}),
    failureCooldownMs: ms(0).default(30_000),
    maxFailureCooldownMs: ms(0).default(600_000),
    lockTimeoutMs: ms(1).default(30_000),
    proactive: z
      .object({
        enabled: booleanOption().default(true),
        cronTime: cronExpressionSchema('must be a cron expression with 5 or 6 fields, e.g. "0 * * * * *"').default('0 * * * * *'),
        timeZone: timeZoneSchema().optional(),
        jobName: z.string({ error: 'must be a non-empty string' }).min(1, 'must be a non-empty string').default('oauth-proactive-refresh'),
        batchSize: int(1, 1000).default(100),
        concurrency: int(1, 64).default(4),
        maxPerRun: int(1, 1_000_000).default(10_000),
      }, MUST_BE_AN_OBJECT)
      .strict()
      .prefault({}),
    clock: clockOptionSchema().optional(),
  }, MUST_BE_AN_OBJECT)
  .strict()
  .superRefine((o, ctx) => {
    if (o.maxFailureCooldownMs < o.failureCooldownMs) {
      ctx.addIssue({ code: 'custom', path: ['maxFailureCooldownMs'], message: 'must be ≥ failureCooldownMs' });
    }
  }, whenFieldsParsed('maxFailureCooldownMs', 'failureCooldownMs'));

/** Merges defaults and validates once; the error lists every problem and how to fix it. */
export function resolveOAuthRefreshOptions(options: OAuthRefreshModuleOptions = {}): ResolvedOAuthRefreshOptions {
  return resolveOptions(
    schema,
    options,
    (problems) => new OAuthRefreshConfigurationError(`Invalid OAuthRefreshModule options:\n  - ${describeProblems(problems).join('\n  - ')}`),
  );
}
