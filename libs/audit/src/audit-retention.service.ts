import { Inject, Injectable, Logger, Optional } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { Clock, DistributedLock, SystemClock, createDistributedLock } from '@app/common';
import { DataSource } from 'typeorm';
import { AUDIT_RETENTION_JOB } from './audit.constants';
import { AUDIT_RESOLVED_OPTIONS } from './audit.module-definition';
import type { ResolvedAuditOptions } from './audit.options';
import { AuditService } from './audit.service';

export interface RetentionRunResult {
  /** False when another replica (or run) held the lock, so nothing was done here. */
  acquired: boolean;
  deleted: number;
  cutoff: Date;
}

/**
 * Does the retention work: prunes rows older than `retention.days` under the distributed lock
 * `audit-retention`, so exactly one replica prunes at a time. Uses the host's `DistributedLock`
 * when one is provided, else one built from the DataSource (`createDistributedLock`).
 */
@Injectable()
export class AuditRetentionService {
  private readonly logger = new Logger(AuditRetentionService.name);
  private readonly lock: DistributedLock;
  private readonly clock: Clock;

  constructor(
    private readonly audit: AuditService,
    @Inject(AUDIT_RESOLVED_OPTIONS) private readonly options: ResolvedAuditOptions,
    @InjectDataSource() dataSource: DataSource,
    @Optional() lock?: DistributedLock,
    @Optional() clock?: Clock,
  ) {
    this.lock = lock ?? createDistributedLock(dataSource);
    this.clock = clock ?? new SystemClock();
  }

  async runOnce(): Promise<RetentionRunResult> {
    const cutoff = new Date(this.clock.now().getTime() - this.options.retention.days * 86_400_000);
    const r = await this.lock.tryRun(AUDIT_RETENTION_JOB, () => this.audit.prune(cutoff));
    if (!r.acquired) {
      this.logger.log('Audit retention is running elsewhere; skipped');
      return { acquired: false, deleted: 0, cutoff };
    }
    return { acquired: true, deleted: r.value.deleted, cutoff };
  }
}
