import { Controller, Get } from '@nestjs/common';
import { SkipThrottle } from '@nestjs/throttler';
import { HealthCheck, HealthCheckService, TypeOrmHealthIndicator } from '@nestjs/terminus';
import { KeyVaultHealthIndicator } from '@app/key-vault';
import { Public } from '../auth/auth.decorators';
import { AuditHealthIndicator } from './audit.health';
import { CacheHealthIndicator } from './cache.health';
import { JobsHealthIndicator } from './jobs.health';

/**
 * Liveness says the process can serve; readiness says its dependencies answer. Orchestrators restart
 * on failed liveness, so liveness checks nothing external.
 */
@Public()
@SkipThrottle()
@Controller('health')
export class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly db: TypeOrmHealthIndicator,
    private readonly keyVault: KeyVaultHealthIndicator,
    private readonly audit: AuditHealthIndicator,
    private readonly jobs: JobsHealthIndicator,
    private readonly cache: CacheHealthIndicator,
  ) {}

  @Get('live')
  @HealthCheck()
  live() {
    return this.health.check([]);
  }

  @Get('ready')
  @HealthCheck()
  ready() {
    return this.health.check([
      () => this.db.pingCheck('database', { timeout: 1500 }),
      () => this.keyVault.isHealthy('keyVault'),
      () => this.audit.isHealthy('audit'),
      () => this.jobs.isHealthy('jobs'),
      () => this.cache.isHealthy('cache'),
    ]);
  }
}
