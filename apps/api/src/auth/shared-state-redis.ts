import { createHash } from 'node:crypto';
import { Inject, Injectable, Logger, OnApplicationBootstrap, OnModuleInit, Optional } from '@nestjs/common';
import type { Redis } from 'ioredis';
import { describeError, OUTAGE_REMINDER_MS, OutageLog, withTimeout } from '@app/common';
import { redisCommandRefusal } from '@app/credentials';
import { registerHostMetrics, sharedStateFallbackCounter } from '../metrics/host-metrics';
import { HostRedis, refusedCredentials, refusedPermission } from '../redis/host-redis';

/** The parts that keep cluster-wide counters in Redis (the label of the fallback metric). */
export const SHARED_STATE_COMPONENTS = ['rate_limit', 'suspicious_activity', 'oauth_cooldown'] as const;
export type SharedStateComponent = (typeof SHARED_STATE_COMPONENTS)[number];

/** Optional provider of `SharedStateRedisOptions` (tests shorten the timings). */
export const SHARED_STATE_REDIS_OPTIONS = Symbol('SHARED_STATE_REDIS_OPTIONS');

export interface SharedStateRedisOptions {
  /** A Redis call slower than this is given up and the caller falls back to its per-process state. @default 250 */
  timeoutMs?: number;
  /** After a failed or timed-out call, Redis is not asked again for this long (every call falls back at once). @default 1000 */
  retryAfterMs?: number;
}

/**
 * Redis for cluster-wide limits and counters (rate limits, suspicious-activity counters, OAuth refresh
 * cooldowns) on the host's shared command connection, guarded so that Redis trouble can never stall
 * or fail a request: a call is made only while the connection is ready, is given up after
 * `timeoutMs`, and after a failure Redis is skipped for `retryAfterMs`. `run` then resolves to
 * `undefined` and the caller uses its per-process state — limits keep applying, per replica, while
 * Redis is away. Each such fallback is counted (`credential_vault_shared_state_fallbacks_total`).
 */
@Injectable()
export class SharedStateRedis implements OnModuleInit, OnApplicationBootstrap {
  private readonly logger = new Logger('SharedState');
  private readonly timeoutMs: number;
  private readonly retryAfterMs: number;
  private skipUntil = 0;
  /** Each refused command's line (OutageLog: once, then each minute), and when it was last refused. */
  private readonly refusals = new Map<string, { log: OutageLog; lastAt: number }>();
  /** Calls failed otherwise (Redis slow, stalled or gone): their line (OutageLog), and the causes said in this outage. */
  private readonly failing = new OutageLog(this.logger);
  private readonly failingCauses = new Set<string>();
  /** Calls answered from per-process state because Redis could not answer, by component. */
  readonly fallbacks: Record<SharedStateComponent, number> = { rate_limit: 0, suspicious_activity: 0, oauth_cooldown: 0 };

  constructor(
    private readonly redis: HostRedis,
    @Optional() @Inject(SHARED_STATE_REDIS_OPTIONS) options?: SharedStateRedisOptions,
  ) {
    this.timeoutMs = options?.timeoutMs ?? 250;
    this.retryAfterMs = options?.retryAfterMs ?? 1000;
  }

  /** True when REDIS_URL is set: counters are shared through Redis (with the per-process fallback). */
  get enabled(): boolean {
    return this.redis.enabled;
  }

  /**
   * A key under the host's prefix. The identity (client id, tenant + actor, connection) is hashed:
   * keys stay short and carry no identifier — and never a secret — into Redis.
   */
  key(namespace: string, identity: string): string {
    return `${this.redis.keyPrefix}${namespace}:${createHash('sha256').update(identity).digest('base64url').slice(0, 32)}`;
  }

  onModuleInit(): void {
    registerHostMetrics([sharedStateFallbackCounter(() => this.fallbacks)]);
  }

  /** Connects before the host serves requests, so the first ones are already counted cluster-wide. */
  async onApplicationBootstrap(): Promise<void> {
    if (!this.enabled) return;
    try {
      await withTimeout(this.redis.client.ping(), 2000);
    } catch (e) {
      // The PING given up (MaxRetriesPerRequestError) says nothing of why: the connection's outage does.
      const refused = (e instanceof Error ? refusedCredentials(e) : undefined) ?? this.redis.refusedCredentialsCode;
      const noPermission = refusedPermission(e);
      const unreachable = this.redis.unreachable;
      this.logger.warn(
        refused
          ? `Redis refused the credentials of REDIS_URL at start (${refused}); limits and counters stay per process until it accepts them`
          : noPermission
            ? `Redis refused PING at start for lack of permission (${noPermission}): give the REDIS_URL user the commands the host runs`
            : this.redis.notRedis
              ? 'the server at REDIS_URL is not Redis at start (its answer is not the Redis protocol: a wrong host or port?); limits and counters stay per process until it is'
              : unreachable
                ? `Redis is not reachable at start: ${unreachable}; limits and counters stay per process until it is`
                : `Redis is not reachable at start (${describe(e)}); limits and counters stay per process until it is`,
      );
    }
  }

  /** `work` on the shared connection, or undefined when Redis cannot answer now (the caller falls back). */
  async run<T>(component: SharedStateComponent, work: (client: Redis) => Promise<T>): Promise<T | undefined> {
    if (!this.enabled) return undefined;
    const client = this.redis.client;
    // Not ready (reconnecting): queueing behind the reconnect would stall the request.
    if (Date.now() < this.skipUntil || client.status !== 'ready') return this.fellBack(component);
    let result: T;
    try {
      result = await withTimeout(work(client), this.timeoutMs);
    } catch (e) {
      const refusal = redisCommandRefusal(e);
      if (refusal) this.refused(refusal);
      else this.failed(describe(e));
      this.skipUntil = Date.now() + this.retryAfterMs;
      return this.fellBack(component);
    }
    this.failing.ended(({ forMs, failures }) => `Redis calls answer again after ${Math.round(forMs / 1000)} s (${failedCalls(failures)})`);
    this.failingCauses.clear();
    return result;
  }

  /**
   * A call that failed for another reason than a refusal (timeouts on a slow or stalled Redis, the connection lost): a
   * call every `retryAfterMs` under traffic, as long as it lasts — said once with its cause (and a cause not seen yet in
   * this outage at once), then each minute with the failed calls, and once when a call answers again.
   */
  private failed(cause: string): void {
    const fallback = 'limits and counters fall back to per process';
    const isNew = !this.failingCauses.has(cause);
    this.failingCauses.add(cause);
    this.failing.failed(
      () => `Redis calls fail (${cause}): ${fallback} (logged again each minute it lasts, and once they answer again)`,
      ({ forMs, failures }) => `Redis calls fail for ${Math.round(forMs / 1000)} s (${failedCalls(failures)}): ${fallback}`,
      isNew,
    );
  }

  /**
   * A command the REDIS_URL user may not run (its ACL): a configuration to fix, refused at every call until it is — said
   * once, then each minute it lasts, not at each call. No call says when it is allowed again (the same work may run
   * other commands that are): a refusal not seen for two minutes is over, and the next one is said afresh.
   */
  private refused(refusal: string): void {
    const now = Date.now();
    let seen = this.refusals.get(refusal);
    if (!seen || now - seen.lastAt > 2 * OUTAGE_REMINDER_MS) this.refusals.set(refusal, (seen = { log: new OutageLog(this.logger), lastAt: now }));
    seen.lastAt = now;
    const fix = 'limits and counters stay per process; give the REDIS_URL user the commands the host runs';
    seen.log.failed(
      () => `${refusal}: ${fix} (logged again each minute it lasts)`,
      ({ forMs, failures }) => `${refusal}, for ${Math.round(forMs / 1000)} s (${failures} refused call${failures === 1 ? '' : 's'}): ${fix}`,
    );
  }

  private fellBack(component: SharedStateComponent): undefined {
    this.fallbacks[component]++;
    return undefined;
  }
}

function failedCalls(n: number): string {
  return `${n} failed call${n === 1 ? '' : 's'}`;
}

/** A Lua script run by EVALSHA (loaded with EVAL the first time a server lacks it). */
export class RedisScript {
  private readonly sha: string;

  constructor(readonly source: string) {
    this.sha = createHash('sha1').update(source).digest('hex');
  }

  async run(client: Redis, keys: string[], args: (string | number)[]): Promise<unknown> {
    try {
      return await client.evalsha(this.sha, keys.length, ...keys, ...args);
    } catch (e) {
      if (!(e instanceof Error) || !e.message.startsWith('NOSCRIPT')) throw e;
      return client.eval(this.source, keys.length, ...keys, ...args);
    }
  }
}

/**
 * The error's class and code, never its message (a Redis reply can quote a script's arguments). A
 * Redis error reply has no `code`: its first word is one (ERR, WRONGTYPE, READONLY, OOM...).
 */
function describe(e: unknown): string {
  if (e instanceof Error && e.name === 'ReplyError' && (e as NodeJS.ErrnoException).code === undefined) {
    const word = /^[A-Z][A-Z_]{1,31}(?=\s|$)/.exec(e.message)?.[0];
    if (word) return `ReplyError(${word})`;
  }
  return describeError(e);
}
