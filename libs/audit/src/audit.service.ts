import { BeforeApplicationShutdown, Injectable, OnModuleInit } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import { AuditAnchorService } from './anchor/audit-anchor.service';
import { AuditChainVerifier } from './audit-chain.verifier';
import { AuditRetentionService } from './audit-retention.service';
import { AuditQueries } from './audit.queries';
import { AuditWriter } from './audit.writer';
import type {
  AnchorRunResult,
  AuditEventInput,
  AuditLogEntryView,
  AuditQuery,
  AuditQueryPage,
  AuditStats,
  AuditVerifyResult,
} from './interfaces/audit-event.interface';

/**
 * The audit log: every row is a link of its tenant's SHA-256 hash chain (see libs/audit/README.md).
 * A facade over the parts that do the work, so callers depend on one service:
 *
 * - `record()` writes one row synchronously — in the caller's transaction when there is one.
 * - `recordRead()` batches reads through a bounded buffer, group commit (resolves once committed;
 *   back-pressure when full, never drops).
 * - `verify()` walks the chains and names the first row that was edited, deleted, inserted or moved.
 * - `prune()` deletes a prefix of each chain and appends a checkpoint so verify stays green.
 */
@Injectable()
export class AuditService implements OnModuleInit, BeforeApplicationShutdown {
  constructor(
    private readonly writer: AuditWriter,
    private readonly queries: AuditQueries,
    private readonly verifier: AuditChainVerifier,
    private readonly anchoring: AuditAnchorService,
    private readonly retention: AuditRetentionService,
  ) {}

  // The writer's timer follows this service's lifecycle: a host that replaces AuditService (the
  // benchmarks' no-audit baseline does) runs no audit work at all.
  onModuleInit(): void {
    this.writer.start();
  }

  beforeApplicationShutdown(): Promise<void> {
    return this.writer.shutdown();
  }

  /**
   * Writes one audit row. Inside the caller's open transaction — the ambient `TransactionRunner.run`
   * of @app/common, or (kept for older callers) the transaction of a `manager` passed here — the row
   * is part of it: it commits or rolls back with the caller's change, and the chain lock is held until
   * then. Otherwise the row is written in its own transaction. Throws `AuditWriteError` when the row
   * cannot be written — the operation must then fail (fail-closed).
   */
  record(event: AuditEventInput, manager?: EntityManager): Promise<AuditLogEntryView> {
    return this.writer.record(event, manager);
  }

  /**
   * Writes several audit rows at once, like `record()` (the caller's transaction when there is one,
   * fail-closed), but with ONE head read per tenant's chain, under its lock, and one insert: the
   * rows of a tenant are linked in the order given. For batch writers (the credentials lib's
   * `storeMany`, the migration). Throws `AuditWriteError` when they cannot be written — none is.
   */
  recordMany(events: AuditEventInput[]): Promise<void> {
    return this.writer.recordMany(events);
  }

  /**
   * Audits a read with group commit: resolves once the batch holding its row has COMMITTED (a batch
   * goes at once when no flush is in flight, else with the next one, up to `readBuffer.batchSize`);
   * waits while the buffer is full. With `failClosed`, rejects with `AuditUnavailableError` when its
   * batch fails and while buffered writes are failing — the caller must then not return the value.
   */
  recordRead(event: AuditEventInput): Promise<void> {
    return this.writer.recordRead(event);
  }

  /**
   * Writes everything buffered so far (batch by batch). Rejects with `AuditWriteError` if a batch
   * fails; the unwritten events stay buffered and are retried.
   */
  flush(): Promise<void> {
    return this.writer.flush();
  }

  /** Reads waiting in the buffer (including a batch being written). */
  get bufferDepth(): number {
    return this.writer.stats.bufferDepth;
  }

  /** False while buffered writes are failing. */
  get healthy(): boolean {
    return this.writer.healthy;
  }

  /** Counters for metrics/health. */
  get stats(): AuditStats {
    return { ...this.writer.stats, brokenChains: this.verifier.brokenChains, ...this.anchoring.stats };
  }

  /**
   * Filtered, cursor-paged rows, newest first by default. With `tenantId`, rows come in chain order
   * (sequence), except a time range with no resource, actor or action filter: by (occurredAt, id), as rows
   * across tenants do (see the README). Tenant isolation is the caller's filter.
   */
  query(filter: AuditQuery = {}): Promise<AuditQueryPage> {
    return this.queries.query(filter);
  }

  /**
   * Walks every chain (or one tenant's) from its start — genesis, or the retention checkpoint —
   * and reports the first row that breaks it. Each chain is read from one consistent snapshot.
   */
  verify(options: { tenantId?: string } = {}): Promise<AuditVerifyResult> {
    return this.verifier.verify(options);
  }

  /** Copies each chain head that moved to the `AuditAnchorStore` (see `AuditAnchorService`). */
  anchorHeads(): Promise<AnchorRunResult> {
    return this.anchoring.anchorHeads();
  }

  /**
   * Deletes, per chain, the longest prefix of rows all older than `olderThan`, and appends a
   * `retention_checkpoint` row holding the last pruned sequence and hash, from which `verify` starts.
   */
  prune(olderThan: Date): Promise<{ deleted: number }> {
    return this.retention.prune(olderThan);
  }
}
