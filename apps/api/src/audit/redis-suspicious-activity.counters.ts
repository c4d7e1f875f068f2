import { createHash, randomBytes } from 'node:crypto';
import {
  InProcessSuspiciousActivityCounters,
  SuspiciousActivityCounters,
  SuspiciousCounterHit,
  SuspiciousCounterResult,
} from '@app/audit';
import { RedisScript, SharedStateRedis } from '../auth/shared-state-redis';

/**
 * Every counter of one audited event in one round trip. Per counter (KEYS: its window, its quiet key;
 * ARGV after `now`: member, windowMs, alertAt): add the member at `now`, drop members that left the
 * window and the oldest past `alertAt` (all the alert needs: memory stays bounded), count; once the
 * count reaches alertAt, claim the window's one alert — the quiet key holds until when (audit-clock
 * ms) alerts stay suppressed, so whichever replica claims first raises it and no other does. TTLs only
 * collect garbage. Returns count, alert (0/1) per counter.
 */
const HIT = new RedisScript(`
local now = tonumber(ARGV[1])
local out = {}
for i = 1, #KEYS / 2 do
  local window, quiet = KEYS[2 * i - 1], KEYS[2 * i]
  local member, ms, alertAt = ARGV[3 * i - 1], tonumber(ARGV[3 * i]), tonumber(ARGV[3 * i + 1])
  redis.call('ZADD', window, now, member)
  redis.call('ZREMRANGEBYSCORE', window, '-inf', now - ms)
  local count = redis.call('ZCARD', window)
  if count > alertAt then
    redis.call('ZREMRANGEBYRANK', window, 0, count - alertAt - 1)
    count = alertAt
  end
  redis.call('PEXPIRE', window, ms)
  local alert = 0
  if count >= alertAt then
    local untilMs = tonumber(redis.call('GET', quiet) or '0')
    if now >= untilMs then
      redis.call('SET', quiet, now + ms, 'PX', ms)
      alert = 1
    end
  end
  out[#out + 1] = count
  out[#out + 1] = alert
end
return out
`);

/**
 * The audit lib's suspicious-activity counters in Redis (sorted sets under
 * `<REDIS_KEY_PREFIX>sa:`), so failure and distinct-read thresholds count what every replica saw and
 * each alert is raised once per window in the cluster. Counter keys and members are hashed: no
 * tenant, actor or resource identifier reaches Redis. While Redis cannot answer, this process's
 * in-memory counters take over (detection goes on per replica), counted as
 * `credential_vault_shared_state_fallbacks_total{component="suspicious_activity"}`.
 */
export class RedisSuspiciousActivityCounters extends SuspiciousActivityCounters {
  private readonly fallback = new InProcessSuspiciousActivityCounters();

  constructor(private readonly redis: SharedStateRedis) {
    super();
  }

  async hit(now: number, hits: readonly SuspiciousCounterHit[]): Promise<SuspiciousCounterResult[]> {
    const keys = hits.flatMap((h) => {
      const window = this.redis.key('sa', h.key);
      return [window, `${window}:q`];
    });
    const args = [now, ...hits.flatMap((h) => [h.member === undefined ? uniqueMember(now) : digest(h.member), h.windowMs, h.alertAt])];
    const out = (await this.redis.run('suspicious_activity', (c) => HIT.run(c, keys, args))) as number[] | undefined;
    if (out === undefined) return this.fallback.hitNow(now, hits);
    return hits.map((_, i) => ({ count: out[2 * i], alert: out[2 * i + 1] === 1 }));
  }
}

/** A member of its own for a hit that always counts (a failure), unique across replicas. */
function uniqueMember(now: number): string {
  return `${now.toString(36)}.${randomBytes(6).toString('base64url')}`;
}

function digest(member: string): string {
  return createHash('sha256').update(member).digest('base64url').slice(0, 22);
}
