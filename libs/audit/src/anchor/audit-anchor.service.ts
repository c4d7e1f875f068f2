import { Injectable, Logger, Optional } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DistributedLock, createDistributedLock } from '@app/common';
import { DataSource } from 'typeorm';
import { AUDIT_ANCHOR_JOB } from '../audit.constants';
import { AuditService } from '../audit.service';
import type { AnchorRunResult } from '../interfaces/audit-event.interface';

/**
 * Runs anchoring once under the distributed lock `audit-anchor`, so one replica anchors at a time.
 * The work itself (which heads, refusing a chain that no longer matches its anchor) is in AuditService.
 */
@Injectable()
export class AuditAnchorService {
  private readonly logger = new Logger(AuditAnchorService.name);
  private readonly lock: DistributedLock;

  constructor(
    private readonly audit: AuditService,
    @InjectDataSource() dataSource: DataSource,
    @Optional() lock?: DistributedLock,
  ) {
    this.lock = lock ?? createDistributedLock(dataSource);
  }

  async runOnce(): Promise<AnchorRunResult & { acquired: boolean }> {
    const r = await this.lock.tryRun(AUDIT_ANCHOR_JOB, () => this.audit.anchorHeads());
    if (!r.acquired) {
      this.logger.log('Audit anchoring is running elsewhere; skipped');
      return { acquired: false, anchored: 0, unchanged: 0, refused: [], failed: [] };
    }
    return { acquired: true, ...r.value };
  }
}
