import type { OnModuleDestroy } from '@nestjs/common';
import type { ThrottlerStorage } from '@nestjs/throttler';
import { FixedWindowThrottlerStorage } from './fixed-window-throttler.storage';
import { RedisScript, SharedStateRedis } from './shared-state-redis';

type ThrottlerStorageRecord = Awaited<ReturnType<ThrottlerStorage['increment']>>;

/**
 * One fixed window per key, atomically, in one round trip. The counter's TTL is the window (set by
 * the first hit); the hit past the limit stretches it to the block, so the key expires when the
 * block does and the next request starts a fresh window. Blocked requests do not count. A key found
 * without expiry gets the window's (or the block's) again, and a blocked answer's wait is never 0: else the
 * key never expires, and the client is told Retry-After 0 and refused for ever.
 * Returns { hits, ms left on the key, blocked (0/1) }.
 */
const FIXED_WINDOW = new RedisScript(`
local ttl = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local block = tonumber(ARGV[3])
local hits = tonumber(redis.call('GET', KEYS[1]) or '0')
if hits > limit then
  local left = redis.call('PTTL', KEYS[1])
  if left < 0 then
    -- A key without expiry (a crash or failover between INCR and PEXPIRE, a restore without TTL) would block for ever.
    left = block > 0 and block or ttl
    redis.call('PEXPIRE', KEYS[1], left)
  end
  return { hits, math.max(left, 1), 1 }
end
hits = redis.call('INCR', KEYS[1])
if hits == 1 then redis.call('PEXPIRE', KEYS[1], ttl) end
local left = redis.call('PTTL', KEYS[1])
if left < 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
  left = ttl
end
if hits <= limit then return { hits, left, 0 } end
if block > 0 then
  redis.call('PEXPIRE', KEYS[1], block)
  left = block
end
return { hits, math.max(left, 1), 1 }
`);

/**
 * Rate-limit counters shared by every replica through Redis, with the same semantics and response
 * headers as the per-process `FixedWindowThrottlerStorage`: a client gets `limit` requests per window
 * across the whole cluster, not per replica.
 *
 * Keys are `<REDIS_KEY_PREFIX>rl:<hash>`: the throttler name and the guard's key (route + client id or
 * IP) are hashed, so no client identifier reaches Redis (and no secret ever does: the tracker is an
 * id, never a key or token).
 *
 * Redis unavailable (not connected, an error, or no answer within the guard's timeout): the request is
 * counted in this process's fixed-window storage instead — fail over to per-process limits, neither
 * fail open (no limit at all) nor fail closed (every request refused). A Redis outage then costs at
 * most `replicas × limit` per window instead of taking the API down with it; each such request is
 * counted in `credential_vault_shared_state_fallbacks_total{component="rate_limit"}`.
 */
export class RedisThrottlerStorage implements ThrottlerStorage, OnModuleDestroy {
  constructor(
    private readonly redis: SharedStateRedis,
    private readonly fallback: FixedWindowThrottlerStorage = new FixedWindowThrottlerStorage(),
  ) {}

  async increment(key: string, ttl: number, limit: number, blockDuration: number, throttlerName: string): Promise<ThrottlerStorageRecord> {
    const redisKey = this.redis.key('rl', `${throttlerName}\u0000${key}`);
    const r = await this.redis.run('rate_limit', (c) => FIXED_WINDOW.run(c, [redisKey], [ttl, limit, blockDuration]) as Promise<[number, number, number]>);
    if (r === undefined) return this.fallback.increment(key, ttl, limit, blockDuration, throttlerName);
    const [totalHits, leftMs, blocked] = r;
    const left = seconds(leftMs);
    return blocked === 1
      ? { totalHits, timeToExpire: left, isBlocked: true, timeToBlockExpire: left }
      : { totalHits, timeToExpire: left, isBlocked: false, timeToBlockExpire: 0 };
  }

  onModuleDestroy(): void {
    this.fallback.onModuleDestroy();
  }
}

/** Whole seconds, never negative (as the per-process storage reports them). */
function seconds(ms: number): number {
  return ms > 0 ? Math.ceil(ms / 1000) : 0;
}
