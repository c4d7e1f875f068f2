import { Injectable } from '@nestjs/common';
import { HealthIndicatorService } from '@nestjs/terminus';
import { RedisPrefixGuard } from '../redis/redis-prefix-guard';

/**
 * Another REDIS_KEY_PREFIX live on the same database and vault, from the last heartbeat (no Redis call here).
 * The replica whose prefix came later is down: a misconfigured replica or rollout never takes traffic, and
 * the rollout stalls with the replicas already serving. Those are degraded, not down: each side sees the
 * other, and taking every replica out of the balancer would turn stale reads into an outage.
 */
@Injectable()
export class RedisPrefixHealthIndicator {
  constructor(
    private readonly health: HealthIndicatorService,
    private readonly guard: RedisPrefixGuard,
  ) {}

  /** Readiness asks only when Redis is configured. */
  get enabled(): boolean {
    return this.guard.enabled;
  }

  isHealthy(key = 'redisPrefix') {
    const s = this.guard.status();
    const check = this.health.check(key);
    const details = { prefix: s.prefix, ...(s.checkedAt ? { checkedAt: s.checkedAt.toISOString() } : {}) };
    if (s.role === 'alone') return check.up(details);
    const message = 'replicas of this deployment use different REDIS_KEY_PREFIX values: they do not hear each other’s cache evictions';
    const conflict = { ...details, otherPrefixes: s.otherPrefixes, role: s.role, message };
    return s.role === 'newcomer' ? check.down(conflict) : check.degraded(conflict);
  }
}
