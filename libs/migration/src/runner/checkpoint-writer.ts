import { AuditService, type AuditEventInput } from '@app/audit';
import type { TransactionRunner } from '@app/common';
import type { MigrationCheckpointEntity } from '../checkpoint/migration-checkpoint.entity';
import type { MigrationCheckpointRepository } from '../checkpoint/migration-checkpoint.repository';

interface Pending {
  audits: AuditEventInput[];
  checkpoint: MigrationCheckpointEntity;
  resolve: () => void;
  reject: (e: unknown) => void;
}

/**
 * Group commit of finished connections: their MIGRATE audit rows and checkpoints go into one
 * transaction per group (up to `maxBatch`, or after `maxDelayMs`), one group at a time. Safe because
 * the resume protocol does not need the checkpoint to follow the store at once: a connection whose
 * group never committed is found stored-and-equal on the next run. `add` resolves once its group
 * has committed, so deleteAfterMigration clears only checkpointed connections.
 */
export class CheckpointWriter {
  private pending: Pending[] = [];
  private timer?: NodeJS.Timeout;
  private chain: Promise<void> = Promise.resolve();

  constructor(
    private readonly runner: TransactionRunner,
    private readonly audit: AuditService,
    private readonly checkpoints: MigrationCheckpointRepository,
    private readonly maxBatch = 100,
    private readonly maxDelayMs = 50,
  ) {}

  add(audits: AuditEventInput[], checkpoint: MigrationCheckpointEntity): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.pending.push({ audits, checkpoint, resolve, reject });
      if (this.pending.length >= this.maxBatch) this.flushSoon(0);
      else this.flushSoon(this.maxDelayMs);
    });
  }

  /** Commits whatever is pending and waits for every group in flight. */
  async flush(): Promise<void> {
    this.flushSoon(0);
    await this.chain;
  }

  private flushSoon(delayMs: number): void {
    if (this.timer && delayMs > 0) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      const group = this.pending.splice(0);
      if (group.length) this.chain = this.chain.then(() => this.commit(group));
    }, delayMs);
  }

  private async commit(group: Pending[]): Promise<void> {
    // Tenant order: a group takes several tenants' audit-chain locks, always in the same order.
    group.sort((a, b) => (a.checkpoint.tenantId < b.checkpoint.tenantId ? -1 : a.checkpoint.tenantId > b.checkpoint.tenantId ? 1 : 0));
    try {
      await this.runner.run(async () => {
        for (const p of group) {
          for (const a of p.audits) await this.audit.record(a);
          await this.checkpoints.save(p.checkpoint);
        }
      });
      for (const p of group) p.resolve();
    } catch (e) {
      for (const p of group) p.reject(e);
    }
  }
}
