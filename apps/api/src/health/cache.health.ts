import { Injectable } from '@nestjs/common';
import { HealthIndicatorService } from '@nestjs/terminus';
import { CredentialCache } from '@app/credentials';
import type { Redis } from 'ioredis';
import { HostRedis, refusedPermission } from '../redis/host-redis';

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
      const ping = await answers(this.redis.client);
      details.redis = ping.up ? 'up' : 'down';
      // Redis answers and the credentials are accepted: the user may not run PING (its ACL). Not an outage, so L2 is the lib's view.
      if (ping.refused) {
        return check.degraded({ ...details, message: `Redis refused PING for lack of permission (${ping.refused}): give the REDIS_URL user the commands the host runs` });
      }
      // L2 is on this connection: the lib's view comes from its own calls, and none may have failed yet.
      if (details.redis === 'down') {
        const why = this.redis.credentialsRefused
          ? 'Redis refused the credentials of REDIS_URL'
          : this.redis.notRedis
            ? 'The server at REDIS_URL is not Redis (its answer is not the Redis protocol)'
            : this.redis.unreachable
              ? `Redis is not reachable: ${this.redis.unreachable}`
              : 'Redis does not answer';
        return check.degraded({ ...details, l2: 'down', message: `${why}: reads bypass the shared cache` });
      }
    }
    return h.status === 'up' ? check.up(details) : check.degraded(details);
  }
}

interface PingAnswer {
  up: boolean;
  /** Redis refused the PING itself (`NOPERM`: the user's ACL does not allow it). */
  refused?: 'NOPERM';
}

const DOWN: PingAnswer = { up: false };

/**
 * Each connection's readiness PING not answered yet, and when it was sent. A stalled Redis keeps the socket open and
 * answers nothing: a PING per probe would queue behind the first until the socket drops, so a probe meanwhile joins
 * the outstanding one instead (down once it has waited PING_TIMEOUT_MS).
 */
const outstanding = new WeakMap<Redis, { answer: Promise<PingAnswer>; sentAt: number }>();

/** The connection is ready and a PING comes back within PING_TIMEOUT_MS of being sent (a stalled Redis keeps the socket open). */
async function answers(client: Redis): Promise<PingAnswer> {
  // Not ready (reconnecting, refused, not authenticated): a PING would only wait in the offline queue until the timeout.
  if (client.status !== 'ready') return DOWN;
  let ping = outstanding.get(client);
  if (!ping) {
    const sent = {
      sentAt: Date.now(),
      answer: client.ping().then(
        (answer): PingAnswer => (answer === 'PONG' ? { up: true } : DOWN),
        (e: unknown): PingAnswer => ({ up: false, refused: refusedPermission(e) }),
      ),
    };
    outstanding.set(client, sent);
    void sent.answer.finally(() => outstanding.delete(client));
    ping = sent;
  }
  const left = ping.sentAt + PING_TIMEOUT_MS - Date.now();
  if (left <= 0) return DOWN;
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([ping.answer, new Promise<PingAnswer>((resolve) => (timer = setTimeout(() => resolve(DOWN), left)))]);
  } finally {
    clearTimeout(timer);
  }
}
