import { Global, Module } from '@nestjs/common';
import { SuspiciousActivityCounters } from '@app/audit';
import { OAuthRefreshCooldowns } from '@app/oauth-refresh';
import { RedisSuspiciousActivityCounters } from '../audit/redis-suspicious-activity.counters';
import { RedisOAuthRefreshCooldowns } from '../oauth/redis-refresh-cooldowns';
import { SharedStateRedis } from './shared-state-redis';

/**
 * Cluster-wide limits and counters: Redis (when REDIS_URL is set) behind the rate limiter, the audit
 * lib's suspicious-activity counters and the OAuth refresh cooldowns; per process otherwise. Global
 * because the libs look their ports up from the global scope (as AuditAnchorStore). Without Redis a
 * port resolves to undefined and its lib keeps its in-process default.
 */
@Global()
@Module({
  providers: [
    SharedStateRedis,
    {
      provide: SuspiciousActivityCounters,
      inject: [SharedStateRedis],
      useFactory: (shared: SharedStateRedis) => (shared.enabled ? new RedisSuspiciousActivityCounters(shared) : undefined),
    },
    {
      provide: OAuthRefreshCooldowns,
      inject: [SharedStateRedis],
      useFactory: (shared: SharedStateRedis) => (shared.enabled ? new RedisOAuthRefreshCooldowns(shared) : undefined),
    },
  ],
  exports: [SharedStateRedis, SuspiciousActivityCounters, OAuthRefreshCooldowns],
})
export class SharedStateModule {}
