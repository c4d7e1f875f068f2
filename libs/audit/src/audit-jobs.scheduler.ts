import { Inject, Injectable, Logger, OnApplicationBootstrap, OnModuleDestroy, Optional } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import { AuditAnchorService } from './anchor/audit-anchor.service';
import { AuditAnchorStore } from './anchor/audit-anchor.store';
import { AUDIT_ANCHOR_JOB, AUDIT_RETENTION_JOB } from './audit.constants';
import { AUDIT_RESOLVED_OPTIONS } from './audit.module-definition';
import type { ResolvedAuditOptions } from './audit.options';
import { AuditRetentionService } from './audit-retention.service';
import { AuditConfigurationError } from './errors/audit.errors';
import { startCronJob, stopCronJob } from './internal/cron-job';

/**
 * Decides only *when* the audit jobs run: registers the named cron jobs `audit-retention` and
 * `audit-anchor` when enabled. The services do the work, each under its distributed lock.
 */
@Injectable()
export class AuditJobsScheduler implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger(AuditJobsScheduler.name);

  constructor(
    private readonly retention: AuditRetentionService,
    private readonly anchoring: AuditAnchorService,
    @Inject(AUDIT_RESOLVED_OPTIONS) private readonly options: ResolvedAuditOptions,
    @Optional() private readonly store?: AuditAnchorStore,
    @Optional() private readonly registry?: SchedulerRegistry,
  ) {}

  onApplicationBootstrap(): void {
    const { retention, anchor } = this.options;
    if (anchor.enabled && !this.store) {
      throw new AuditConfigurationError(
        "Audit anchoring is enabled but no AuditAnchorStore is provided: provide one globally (e.g. the host's Key Vault store), " +
          'or set AuditModule option anchor.enabled = false',
      );
    }
    if (retention.enabled) {
      startCronJob(this.registry, AUDIT_RETENTION_JOB, retention, 'retention.enabled', this.logger, () => this.retention.runOnce());
      this.logger.log(`Audit retention scheduled (${retention.cron} ${retention.timeZone}, keeping ${retention.days} days)`);
    }
    if (anchor.enabled) {
      startCronJob(this.registry, AUDIT_ANCHOR_JOB, anchor, 'anchor.enabled', this.logger, () => this.anchoring.runOnce());
      this.logger.log(`Audit anchoring scheduled (${anchor.cron} ${anchor.timeZone})`);
    }
  }

  onModuleDestroy(): void {
    stopCronJob(this.registry, AUDIT_RETENTION_JOB);
    stopCronJob(this.registry, AUDIT_ANCHOR_JOB);
  }
}
