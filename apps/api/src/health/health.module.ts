import { Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { AuditHealthIndicator } from './audit.health';
import { CacheHealthIndicator } from './cache.health';
import { HealthController } from './health.controller';
import { ShutdownState } from './shutdown-state';
import { JobsHealthIndicator } from './jobs.health';
import { KekHealthIndicator } from './kek.health';
import { RedisPrefixHealthIndicator } from './redis-prefix.health';
import { RedisPrefixModule } from '../redis/redis-prefix-guard';

@Module({
  imports: [TerminusModule, RedisPrefixModule],
  controllers: [HealthController],
  providers: [AuditHealthIndicator, JobsHealthIndicator, CacheHealthIndicator, KekHealthIndicator, RedisPrefixHealthIndicator, ShutdownState],
  exports: [ShutdownState],
})
export class HealthModule {}
