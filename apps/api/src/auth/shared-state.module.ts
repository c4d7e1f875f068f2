import { Global, Module } from '@nestjs/common';
import { SharedStateRedis } from './shared-state-redis';

/**
 * Cluster-wide limits and counters: Redis (when REDIS_URL is set) behind the rate limiter, the audit
 * lib's suspicious-activity counters and the OAuth refresh cooldowns; per process otherwise. Global
 * because the libs look their ports up from the global scope (as AuditAnchorStore).
 */
@Global()
@Module({
  providers: [SharedStateRedis],
  exports: [SharedStateRedis],
})
export class SharedStateModule {}
