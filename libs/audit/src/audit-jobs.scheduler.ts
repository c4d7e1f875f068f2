import { Inject, Injectable, Logger, OnApplicationBootstrap, OnModuleDestroy, Optional } from '@nestjs/common';
import { LOCK_KEYS, ScheduledJobs } from '@app/common';
import { AuditAnchorService } from './anchor/audit-anchor.service';
import { AuditAnchorStore } from './anchor/audit-anchor.store';
import { AUDIT_ANCHOR_JOB, AUDIT_RETENTION_JOB } from './audit.constants';
import { AUDIT_RESOLVED_OPTIONS } from './audit.module-definition';
import type { ResolvedAuditOptions } from './audit.options';
import { AuditRetentionService } from './audit-retention.service';
import { AuditConfigurationError } from './errors/audit.errors';

/**
 * Decides only *when* the audit jobs run: schedules `audit-retention` and `audit-anchor` with
 * `ScheduledJobs` when enabled. The lock stays in the services' `runOnce()` (`lockedBy: 'work'`):
 * the CLI and tests call it directly, and it must be one-replica-at-a-time for them too.
 */
@Injectable()
export class AuditJobsScheduler implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger(AuditJobsScheduler.name);

  constructor(
    private readonly jobs: ScheduledJobs,
    private readonly retention: AuditRetentionService,
    private readonly anchoring: AuditAnchorService,
    @Inject(AUDIT_RESOLVED_OPTIONS) private readonly options: ResolvedAuditOptions,
    @Optional() private readonly store?: AuditAnchorStore,
  ) {}

  onApplicationBootstrap(): void {
    const { retention, anchor } = this.options;
    if (anchor.enabled && !this.store) {
      throw new AuditConfigurationError(
        "Audit anchoring is enabled but no AuditAnchorStore is provided: provide one globally (e.g. KeyVaultAuditAnchorStore from the credentials entry), " +
          'or set AuditModule option anchor.enabled = false',
      );
    }
    this.jobs.schedule({
      name: AUDIT_RETENTION_JOB,
      ...retention,
      switchOption: 'AuditModule option retention.enabled',
      lockKey: LOCK_KEYS.auditRetention,
      lockedBy: 'work',
      run: () => this.retention.runOnce(),
    });
    if (retention.enabled) this.logger.log(`Audit retention scheduled (${retention.cron} ${retention.timeZone}, keeping ${retention.days} days)`);
    this.jobs.schedule({
      name: AUDIT_ANCHOR_JOB,
      ...anchor,
      switchOption: 'AuditModule option anchor.enabled',
      lockKey: LOCK_KEYS.auditAnchor,
      lockedBy: 'work',
      run: () => this.anchoring.runOnce(),
    });
    if (anchor.enabled) this.logger.log(`Audit anchoring scheduled (${anchor.cron} ${anchor.timeZone})`);
  }

  onModuleDestroy(): void {
    this.jobs.unschedule(AUDIT_RETENTION_JOB);
    this.jobs.unschedule(AUDIT_ANCHOR_JOB);
  }
}
