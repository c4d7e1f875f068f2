import { Controller, Get, ServiceUnavailableException } from '@nestjs/common';
import { SkipThrottle } from '@nestjs/throttler';
import { HealthCheck, type HealthCheckResult, HealthCheckService, TypeOrmHealthIndicator } from '@nestjs/terminus';
import { KeyVaultHealthIndicator } from '@app/key-vault';
import { Public } from '../auth/auth.decorators';
import { AuditHealthIndicator } from './audit.health';
import { CacheHealthIndicator } from './cache.health';
import { JobsHealthIndicator } from './jobs.health';
import { KekHealthIndicator } from './kek.health';
import { RedisPrefixHealthIndicator } from './redis-prefix.health';
import { ShutdownState } from './shutdown-state';

const DRAINING = { shutdown: { status: 'down', message: 'shutting down: take this replica out of the load balancer' } };
const DRAINING_REPORT = { status: 'error', info: {}, error: DRAINING, details: DRAINING };

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
    private readonly kek: KekHealthIndicator,
    private readonly redisPrefix: RedisPrefixHealthIndicator,
    private readonly shutdown: ShutdownState,
  ) {}

  @Get('live')
  @HealthCheck()
  live(): HealthCheckResult {
    // What `health.check([])` answers, without its executor's promises: liveness is probed often, checks nothing.
    return { status: 'ok', info: {}, error: {}, details: {} };
  }

  @Get('ready')
  @HealthCheck()
  ready() {
    // Terminus' report shape, as when a check is down: the exception filter passes it through without an error line and
    // error id (a drain is expected, on every rollout; the request line still says 503).
    if (this.shutdown.draining) throw new ServiceUnavailableException(DRAINING_REPORT);
    return this.health.check([
      () => this.db.pingCheck('database', { timeout: 1500 }),
      () => this.keyVault.isHealthy('keyVault'),
      () => this.audit.isHealthy('audit'),
      () => this.jobs.isHealthy('jobs'),
      () => this.cache.isHealthy('cache'),
      ...(this.kek.configured ? [() => this.kek.isHealthy('envelopeKek')] : []),
      ...(this.redisPrefix.enabled ? [() => this.redisPrefix.isHealthy('redisPrefix')] : []),
    ]);
  }
}
