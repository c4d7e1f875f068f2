import { Injectable } from '@nestjs/common';
import { HealthIndicatorService } from '@nestjs/terminus';
import { AuditService } from '@app/audit';

/**
 * Readiness includes the audit log: with fail-closed auditing, a failing audit log refuses reads,
 * so the instance should leave the load balancer rather than answer 503s.
 */
@Injectable()
export class AuditHealthIndicator {
  constructor(
    private readonly health: HealthIndicatorService,
    private readonly audit: AuditService,
  ) {}

  isHealthy(key = 'audit') {
    const check = this.health.check(key);
    const { healthy, bufferDepth, bufferWaiters, flushFailures } = this.audit.stats;
    const details = { bufferDepth, bufferWaiters, flushFailures };
    return healthy ? check.up(details) : check.down({ ...details, message: 'audit rows cannot be written' });
  }
}
