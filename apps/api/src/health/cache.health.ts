import { Injectable } from '@nestjs/common';
import { HealthIndicatorService } from '@nestjs/terminus';
import { CredentialCache } from '@app/credentials';
import { HostRedis } from '../redis/host-redis';

const PING_TIMEOUT_MS = 1000;

/**
 * The credential cache in readiness: its tier, whether evictions from other replicas are heard, and
 * (redis tier) whether Redis answers. Degraded, never down: without Redis reads still work (from the
 * vault, bypassing the cache), so a Redis outage is no reason to leave the load balancer.
 */
@Injectable()
export class CacheHealthIndicator {
  constructor(
    private readonly health: HealthIndicatorService,
    private readonly cache: CredentialCache,
    private readonly redis: HostRedis,
  ) {}

  async isHealthy(key = 'cache') {
    const check = this.health.check(key);
    const h = this.cache.health();
    const s = this.cache.stats();
    const details: Record<string, unknown> = {
      tier: h.tier,
      invalidation: h.invalidation,
      hitRate: Number(s.hitRate.toFixed(3)),
      ...h.details,
      ...(s.shared ? { l2Errors: s.shared.l2.errors, degradedReads: s.shared.degradedReads, publishErrors: s.shared.invalidation.publishErrors } : {}),
    };
    if (h.tier === 'redis' && this.redis.enabled) {
      details.redis = (await ping(this.redis)) ? 'up' : 'down';
      if (details.redis === 'down') return check.degraded({ ...details, message: 'Redis does not answer: reads bypass the shared cache' });
    }
    return h.status === 'up' ? check.up(details) : check.degraded(details);
  }
}

async function ping(redis: HostRedis): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  try {
    const answer = await Promise.race([redis.client.ping(), new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('timeout')), PING_TIMEOUT_MS)))]);
    return answer === 'PONG';
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}
