import { Inject, Injectable, Logger, OnApplicationBootstrap, OnModuleDestroy, Optional } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import { CronJob } from 'cron';
import { AUDIT_RETENTION_JOB } from './audit.constants';
import { AUDIT_RESOLVED_OPTIONS } from './audit.module-definition';
import type { ResolvedAuditOptions } from './audit.options';
import { AuditConfigurationError } from './errors/audit.errors';
import { AuditRetentionService } from './audit-retention.service';

/** Decides only *when* retention runs: registers the named cron job `audit-retention`. */
@Injectable()
export class AuditRetentionScheduler implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger(AuditRetentionScheduler.name);

  constructor(
    private readonly retention: AuditRetentionService,
    @Inject(AUDIT_RESOLVED_OPTIONS) private readonly options: ResolvedAuditOptions,
    @Optional() private readonly registry?: SchedulerRegistry,
  ) {}

  onApplicationBootstrap(): void {
    const { enabled, cron, timeZone } = this.options.retention;
    if (!enabled) return;
    if (!this.registry) {
      throw new AuditConfigurationError(
        'Audit retention is enabled but SchedulerRegistry is missing: import ScheduleModule.forRoot() in the host, ' +
          'or set AuditModule option retention.enabled = false',
      );
    }
    const job = CronJob.from({
      name: AUDIT_RETENTION_JOB,
      cronTime: cron,
      timeZone,
      start: false,
      waitForCompletion: true,
      onTick: async () => {
        try {
          await this.retention.runOnce();
        } catch (e) {
          this.logger.error(`Audit retention failed: ${e instanceof Error ? e.message : String(e)}`);
        }
      },
    });
    this.registry.addCronJob(AUDIT_RETENTION_JOB, job);
    job.start();
    this.logger.log(`Audit retention scheduled (${cron} ${timeZone}, keeping ${this.options.retention.days} days)`);
  }

  onModuleDestroy(): void {
    if (this.registry?.doesExist('cron', AUDIT_RETENTION_JOB)) this.registry.deleteCronJob(AUDIT_RETENTION_JOB);
  }
}
