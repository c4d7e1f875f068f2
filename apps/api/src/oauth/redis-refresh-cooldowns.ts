import { ActiveCooldown, CooldownCause, CooldownPolicy, InProcessOAuthRefreshCooldowns, OAuthRefreshCooldowns } from '@app/oauth-refresh';
import { RedisScript, SharedStateRedis } from '../auth/shared-state-redis';

/**
 * One more consecutive failure: the cooldown grows from base, doubling, capped at max (the lib's
 * policy), and lasts at least the provider's Retry-After (`atLeastMs`), from `now` of the lib's clock. The key outlives the cooldown by `max`, so consecutive
 * failures keep counting while the connection is retried; it is forgotten after that long without one.
 * The failure's cause (ARGV[5], JSON; '' for none) is kept beside the cooldown's end it belongs to (`causeUntil`): a
 * replica of the previous release records a failure without touching `cause`, and its cooldown must not be
 * answered with an older failure's cause.
 * Returns { until (ms), failures }.
 */
const RECORD_FAILURE = new RedisScript(`
local now, base, max, atLeast = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
local ms = math.max(atLeast, math.min(max, base * 2 ^ (failures - 1)))
local untilMs = string.format('%d', now + ms)
redis.call('HSET', KEYS[1], 'until', untilMs)
if ARGV[5] == '' then
  redis.call('HDEL', KEYS[1], 'cause', 'causeUntil')
else
  redis.call('HSET', KEYS[1], 'cause', ARGV[5], 'causeUntil', untilMs)
end
redis.call('PEXPIRE', KEYS[1], math.floor(ms + max))
return { untilMs, failures }
`);

/**
 * OAuth refresh cooldowns in Redis (`<REDIS_KEY_PREFIX>oauth-cd:<hash of the key>`): a connection
 * whose refresh failed on one replica is cooling down on every replica, so N replicas do not call a
 * failing token endpoint N times per cooldown; so is a provider's client-secret reference that could
 * not be read (the lib's other key). No token and no id reaches Redis (the key is hashed); the failure's cause kept
 * with it is the lib's code, the HTTP status and a registered OAuth error (every replica answers the cooldown alike). While Redis cannot answer, this process's cooldowns are used (each
 * replica then cools down on its own), counted as
 * `credential_vault_shared_state_fallbacks_total{component="oauth_cooldown"}`.
 */
export class RedisOAuthRefreshCooldowns extends OAuthRefreshCooldowns {
  private readonly fallback = new InProcessOAuthRefreshCooldowns();

  constructor(private readonly redis: SharedStateRedis) {
    super();
  }

  async activeUntil(key: string, now: Date): Promise<Date | undefined> {
    return (await this.activeCooldown(key, now))?.until;
  }

  override async activeCooldown(key: string, now: Date): Promise<ActiveCooldown | undefined> {
    const stored = await this.redis.run('oauth_cooldown', (c) => c.hmget(this.redis.key('oauth-cd', key), 'until', 'cause', 'causeUntil'));
    if (stored === undefined) return this.fallback.activeCooldown(key, now);
    const [untilField, causeField, causeUntil] = stored;
    const until = Number(untilField);
    if (untilField === null || !(until > now.getTime())) return undefined;
    // A record of the previous release has no cause (answered as any cooldown); one whose cause is another cooldown's is ignored.
    const cause = causeField !== null && causeUntil === untilField ? parseCause(causeField) : undefined;
    return { until: new Date(until), ...(cause ? { cause } : {}) };
  }

  async recordFailure(key: string, now: Date, policy: CooldownPolicy, cause?: CooldownCause): Promise<{ until: Date; failures: number }> {
    const r = (await this.redis.run('oauth_cooldown', (c) =>
      RECORD_FAILURE.run(c, [this.redis.key('oauth-cd', key)], [now.getTime(), policy.baseMs, policy.maxMs, policy.atLeastMs ?? 0, cause ? JSON.stringify(cause) : '']),
    )) as [string, number] | undefined;
    if (r === undefined) return this.fallback.recordFailure(key, now, policy, cause);
    return { until: new Date(Number(r[0])), failures: r[1] };
  }

  async clear(key: string): Promise<void> {
    await this.fallback.clear(key);
    await this.redis.run('oauth_cooldown', (c) => c.del(this.redis.key('oauth-cd', key)));
  }
}

/** The cause as stored (the lib checks what it answers); a field that is not JSON is no cause. */
function parseCause(field: string): CooldownCause | undefined {
  try {
    const parsed: unknown = JSON.parse(field);
    return typeof parsed === 'object' && parsed !== null ? (parsed as CooldownCause) : undefined;
  } catch {
    return undefined;
  }
}
