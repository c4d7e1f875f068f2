import { Inject, Injectable, Logger, Optional } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { Clock, DatabaseUnresponsiveError, DistributedLock, LOCK_KEYS, LockLostError, createDistributedLock, describeError, sqlState, withStatementTimeout } from '@app/common';
import { DataSource, EntityManager } from 'typeorm';
import { AuditAnchorService } from './anchor/audit-anchor.service';
import { AUDIT_SYSTEM_ACTOR } from './audit.constants';
import { AUDIT_CLOCK, AUDIT_RESOLVED_OPTIONS } from './audit.module-definition';
import type { ResolvedAuditOptions } from './audit.options';
import { AuditRepository } from './audit.repository';
import { AuditWriter } from './audit.writer';
import { AuditQueryError, AuditRetentionTimeoutError } from './errors/audit.errors';
import { AuditAction, AuditResult } from './interfaces/audit-event.interface';
import { ChainWriter, withMaintenance } from './internal/chain-writer';
import type { PreparedEvent } from './internal/prepare-event';

export interface RetentionRunResult {
  /** False when another replica (or run) held the lock, so nothing was done here. */
  acquired: boolean;
  deleted: number;
  cutoff: Date;
}

/**
 * Retention: `prune()` deletes a prefix of each chain and appends a checkpoint so verify stays green.
 * `runOnce()` prunes rows older than `retention.days` under the distributed lock
 * `LOCK_KEYS.auditRetention`, so exactly one replica prunes at a time, whoever calls it (the job, the CLI, a test). Uses the host's `DistributedLock` when one is provided,
 * else one built from the DataSource (`createDistributedLock`).
 */
@Injectable()
export class AuditRetentionService {
  private readonly logger = new Logger(AuditRetentionService.name);
  private readonly lock: DistributedLock;

  constructor(
    private readonly rows: AuditRepository,
    private readonly writer: AuditWriter,
    private readonly chains: ChainWriter,
    @Inject(AUDIT_RESOLVED_OPTIONS) private readonly options: ResolvedAuditOptions,
    @InjectDataSource() dataSource: DataSource,
    @Inject(AUDIT_CLOCK) private readonly clock: Clock,
    private readonly anchoring: AuditAnchorService,
    @Optional() lock?: DistributedLock,
  ) {
    this.lock = lock ?? createDistributedLock(dataSource);
  }

  async runOnce(): Promise<RetentionRunResult> {
    const cutoff = new Date(this.clock.now().getTime() - this.options.retention.days * 86_400_000);
    const r = await this.lock.tryRun(LOCK_KEYS.auditRetention, (held) => this.prune(cutoff, held));
    if (!r.acquired) {
      this.logger.log('Audit retention is running elsewhere; skipped');
      return { acquired: false, deleted: 0, cutoff };
    }
    return { acquired: true, deleted: r.value.deleted, cutoff };
  }

  /**
   * Its transactions run under a bound of their own, not the host's statement timeout and query deadline
   * (`inBoundedTransaction`): the first run over a large log finds and deletes millions of rows of a chain in one statement.
   *
   * Deletes, per chain, the longest prefix of rows all older than `olderThan`, and appends a
   * `retention_checkpoint` row holding the last pruned sequence and hash, from which `verify` starts.
   * With an `AuditAnchorStore`, the checkpoint is appended and anchored (with `prunedThrough`) before
   * the rows go, in three steps: a checkpoint nobody anchored vouches for no deletion, so one forged
   * in the database cannot hide deleted rows. A chain whose anchoring fails keeps its rows this run.
   *
   * With `held` (`runOnce`'s lock), it stops before the next chain once that lock — or the anchoring lock it holds
   * meanwhile — is lost (rejects with `LockLostError`): the chains pruned so far stay pruned and checkpointed, the
   * next run (here or on the replica holding the lock) prunes the rest. It also looks right before the checkpoint's
   * anchor write and before the delete: a chain whose lock went in between keeps its rows (its checkpoint committed,
   * maybe anchored), as after a crash.
   */
  async prune(olderThan: Date, held?: AbortSignal): Promise<{ deleted: number }> {
    if (!(olderThan instanceof Date) || Number.isNaN(olderThan.getTime())) {
      throw new AuditQueryError('olderThan must be a valid Date');
    }
    const cutoff = olderThan.getTime();
    const exclusive = <T>(work: (anchorHeld?: AbortSignal) => Promise<T>) => (this.anchoring.enabled ? this.anchoring.exclusive(work) : work());
    return exclusive((anchorHeld) => withMaintenance(this.chains, async () => {
      let deleted = 0;
      for (const tenantId of await this.rows.tenants()) {
        // Unlocked, this run could prune beside another replica's, or an anchor pass overwrite a checkpoint's anchor.
        held?.throwIfAborted();
        anchorHeld?.throwIfAborted();
        // The rows after a cached head must never go while it is trusted: forget it (before, and after the commit).
        this.writer.forgetHeads([tenantId]);
        try {
          deleted += this.anchoring.enabled
            ? await this.pruneAnchored(tenantId, cutoff, olderThan, held, anchorHeld)
            : ((await this.inBoundedTransaction(tenantId, (m) => this.pruneChain(m, tenantId, cutoff, olderThan, true)))?.count ?? 0);
        } finally {
          this.writer.forgetHeads([tenantId]);
        }
      }
      if (deleted > 0) this.logger.log(`Pruned ${deleted} audit rows older than ${olderThan.toISOString()}`);
      return { deleted };
    }));
  }

  /** Checkpoint (committed), then its anchor, then the delete: a crash in between leaves rows, never a hole. */
  private async pruneAnchored(tenantId: string, cutoff: number, olderThan: Date, held?: AbortSignal, anchorHeld?: AbortSignal): Promise<number> {
    const planned = await this.inBoundedTransaction(tenantId, async (m) => {
      const pruned = await this.pruneChain(m, tenantId, cutoff, olderThan, false);
      return pruned && { ...pruned, checkpoint: (await this.rows.head(tenantId, m))! };
    });
    if (!planned) return 0;
    try {
      held?.throwIfAborted();
      await this.anchoring.anchorCheckpoint(tenantId, planned.checkpoint, planned.through, anchorHeld);
    } catch (e) {
      if (e instanceof LockLostError) throw e;
      this.logger.error(`Audit rows of tenant ${tenantId} are kept this run: their retention checkpoint could not be anchored: ${describeError(e)}`);
      return 0;
    }
    // Unlocked, the delete could follow an anchor another replica's pass is writing with the older prunedThrough.
    held?.throwIfAborted();
    anchorHeld?.throwIfAborted();
    this.writer.forgetHeads([tenantId]);
    return (await this.inBoundedTransaction(tenantId, (m) => this.rows.deleteThrough(tenantId, planned.through, m))) ?? planned.count;
  }

  /**
   * One transaction on a chain, each statement bounded by `retention.statementTimeoutMs` (PostgreSQL): a server that
   * is alive cancels a statement past it, and one unanswered that long plus the query deadline (a stalled server or
   * path) closes its connection. Either fails the run with `AuditRetentionTimeoutError`, and the rollback leaves the
   * chain as it was; the lock and the job are free for the next run.
   */
  private async inBoundedTransaction<T>(tenantId: string, work: (m: EntityManager) => Promise<T>): Promise<T> {
    const timeoutMs = this.options.retention.statementTimeoutMs;
    try {
      return await this.chains.inOwnTransaction([tenantId], (m) => withStatementTimeout(m, timeoutMs, () => work(m)));
    } catch (e) {
      const driverError = (e as { driverError?: unknown } | null)?.driverError ?? e;
      if (driverError instanceof DatabaseUnresponsiveError || sqlState(e) === '57014') throw new AuditRetentionTimeoutError(timeoutMs, { cause: e });
      throw e;
    }
  }

  /**
   * Appends the checkpoint of the rows to prune (through `through`, `count` of them), and deletes them
   * when `andDelete` — else the caller does, once the checkpoint is anchored. Undefined: nothing to prune.
   */
  private async pruneChain(m: EntityManager, tenantId: string, cutoff: number, olderThan: Date, andDelete: boolean): Promise<{ through: number; count: number } | undefined> {
    const head = await this.rows.head(tenantId, m);
    if (!head) return undefined;
    const bounds = await this.rows.pruneBounds(tenantId, cutoff, m);
    if (!bounds) return undefined;
    const through = bounds.firstKept === null ? head.sequence : bounds.firstKept - 1;
    if (through < bounds.first) return undefined;
    const last = await this.rows.rowAt(tenantId, through, m);
    if (!last) throw new Error(`Audit chain of tenant ${tenantId} has no row at sequence ${through}; run verify`);
    const planned = through - bounds.first + 1;
    const deleted = andDelete ? ((await this.rows.deleteThrough(tenantId, through, m)) ?? planned) : planned;
    const checkpoint: PreparedEvent = {
      tenantId,
      occurredAt: this.clock.now(),
      action: AuditAction.RETENTION_CHECKPOINT,
      resource: 'audit-log',
      actorId: `${AUDIT_SYSTEM_ACTOR}-retention`,
      actorIp: null,
      userAgent: null,
      result: AuditResult.SUCCESS,
      errorCode: null,
      durationMs: null,
      correlationId: null,
      details: {
        prunedThroughSequence: through,
        prunedThroughHash: last.hash,
        deleted,
        olderThan: olderThan.toISOString(),
      },
    };
    await this.writer.append(m, tenantId, [checkpoint], head);
    return { through, count: deleted };
  }
}
