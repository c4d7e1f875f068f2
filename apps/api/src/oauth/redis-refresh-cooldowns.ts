import { CooldownPolicy, InProcessOAuthRefreshCooldowns, OAuthRefreshCooldowns } from '@app/oauth-refresh';
import { RedisScript, SharedStateRedis } from '../auth/shared-state-redis';

/**
 * One more consecutive failure: the cooldown grows from base, doubling, capped at max (the lib's
 * policy), and lasts at least the provider's Retry-After (`atLeastMs`), from `now` of the lib's clock. The key outlives the cooldown by `max`, so consecutive
 * failures keep counting while the connection is retried; it is forgotten after that long without one.
 * Returns { until (ms), failures }.
 */
const RECORD_FAILURE = new RedisScript(`
local now, base, max, atLeast = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
local ms = math.max(atLeast, math.min(max, base * 2 ^ (failures - 1)))
local untilMs = now + ms
redis.call('HSET', KEYS[1], 'until', string.format('%d', untilMs))
redis.call('PEXPIRE', KEYS[1], math.floor(ms + max))
return { string.format('%d', untilMs), failures }
`);

/**
 * OAuth refresh cooldowns in Redis (`<REDIS_KEY_PREFIX>oauth-cd:<hash of the key>`): a connection
 * whose refresh failed on one replica is cooling down on every replica, so N replicas do not call a
 * failing token endpoint N times per cooldown; so is a provider's client-secret reference that could
 * not be read (the lib's other key). No token and no id reaches Redis (the key is hashed). While Redis cannot answer, this process's cooldowns are used (each
 * replica then cools down on its own), counted as
 * `credential_vault_shared_state_fallbacks_total{component="oauth_cooldown"}`.
 */
export class RedisOAuthRefreshCooldowns extends OAuthRefreshCooldowns {
  private readonly fallback = new InProcessOAuthRefreshCooldowns();

  constructor(private readonly redis: SharedStateRedis) {
    super();
  }

  async activeUntil(key: string, now: Date): Promise<Date | undefined> {
    const stored = await this.redis.run('oauth_cooldown', (c) => c.hget(this.redis.key('oauth-cd', key), 'until'));
    if (stored === undefined) return this.fallback.activeUntil(key, now);
    const until = Number(stored);
    return stored !== null && until > now.getTime() ? new Date(until) : undefined;
  }

  async recordFailure(key: string, now: Date, policy: CooldownPolicy): Promise<{ until: Date; failures: number }> {
    const r = (await this.redis.run('oauth_cooldown', (c) =>
      RECORD_FAILURE.run(c, [this.redis.key('oauth-cd', key)], [now.getTime(), policy.baseMs, policy.maxMs, policy.atLeastMs ?? 0]),
    )) as [string, number] | undefined;
    if (r === undefined) return this.fallback.recordFailure(key, now, policy);
    return { until: new Date(Number(r[0])), failures: r[1] };
  }

  async clear(key: string): Promise<void> {
    await this.fallback.clear(key);
    await this.redis.run('oauth_cooldown', (c) => c.del(this.redis.key('oauth-cd', key)));
  }
}
