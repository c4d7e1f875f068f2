import { Injectable } from '@nestjs/common';
import { HealthIndicatorService } from '@nestjs/terminus';
import { CredentialCache } from '@app/credentials';
import type { Redis } from 'ioredis';
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
      details.redis = (await answers(this.redis.client)) ? 'up' : 'down';
      // L2 is on this connection: the lib's view comes from its own calls, and none may have failed yet.
      if (details.redis === 'down') {
        const why = this.redis.credentialsRefused ? 'Redis refused the credentials of REDIS_URL' : 'Redis does not answer';
        return check.degraded({ ...details, l2: 'down', message: `${why}: reads bypass the shared cache` });
      }
    }
    return h.status === 'up' ? check.up(details) : check.degraded(details);
  }
}

/** The connection is ready and a PING comes back within PING_TIMEOUT_MS (a stalled Redis keeps the socket open). */
async function answers(client: Redis): Promise<boolean> {
  // Not ready (reconnecting, refused, not authenticated): a PING would only wait in the offline queue until the timeout.
  if (client.status !== 'ready') return false;
  let timer: NodeJS.Timeout | undefined;
  try {
    const answer = await Promise.race([client.ping(), new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('timeout')), PING_TIMEOUT_MS)))]);
    return answer === 'PONG';
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}
