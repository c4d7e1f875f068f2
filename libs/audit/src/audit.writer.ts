import { Inject, Injectable, Logger, Optional } from '@nestjs/common';
import { EventEmitter2 } from '@nestjs/event-emitter';
import { InjectDataSource } from '@nestjs/typeorm';
import { Clock, CommitNotDurableError, NamedStatementRefusedError, TransactionRunner, describeError } from '@app/common';
import type { DataSource, EntityManager } from 'typeorm';
import { AUDIT_SUSPICIOUS_ACTIVITY_EVENT } from './audit.constants';
import { AUDIT_CLOCK, AUDIT_RESOLVED_OPTIONS } from './audit.module-definition';
import type { ResolvedAuditOptions } from './audit.options';
import { AuditRepository, ChainHead } from './audit.repository';
import { AuditLogEntry } from './entities/audit-log-entry.entity';
import { AuditUnavailableError, AuditWriteError } from './errors/audit.errors';
import { AuditEventInput, AuditLogEntryView, AuditStats } from './interfaces/audit-event.interface';
import { linkRows } from './internal/chain-link';
import { ChainWriter, chainLockKeys, isChainCollision } from './internal/chain-writer';
import { toView } from './internal/entry-view';
import { ChainHeadCache } from './internal/head-cache';
import { OffLoopAppender } from './internal/off-loop-appender';
import { PreparedEvent, groupByTenant, prepareEvent } from './internal/prepare-event';
import { QueryIndexCatchUp, queryIndexesDeferred } from './internal/query-index-catch-up';
import { ReadBuffer } from './internal/read-buffer';
import { SharedSuspiciousActivityDetector, SuspiciousActivityDetector } from './internal/suspicious-activity.detector';
import { SuspiciousActivityReporter } from './internal/suspicious-activity.reporter';
import { SuspiciousActivityCounters } from './suspicious-activity.counters';

const ACCEPTED = Promise.resolve();

/** A read in the buffer, with its caller's promise until its batch commits (or fails). */
interface BufferedRead {
  readonly event: PreparedEvent;
  resolve?: () => void;
  reject?: (e: unknown) => void;
}

/** The writer's share of `AuditStats`. */
export type AuditWriterStats = Omit<AuditStats, 'brokenChains' | 'anchorsWritten' | 'anchorFailures'>;

/**
 * Appends to the chains: `record()` one row now (in the caller's transaction: the ambient
 * `TransactionRunner` one, or the one of a manager passed explicitly), `recordRead()` through the
 * bounded read buffer with group commit: a read resolves once the batch holding its row committed.
 * Also watches what it writes for suspicious activity. Its retry timer runs between `start()` and
 * `shutdown()`.
 */
@Injectable()
export class AuditWriter {
  private readonly logger = new Logger(AuditWriter.name);
  private readonly runner: TransactionRunner;
  private readonly buffer: ReadBuffer<BufferedRead>;
  private readonly suspicious?: SuspiciousActivityReporter;
  private readonly pending = new Set<Promise<unknown>>();
  /** Chain heads our commits left, for optimistic read batches (see `writeBatch`): PostgreSQL, SQLite with `offLoop`. */
  private heads?: ChainHeadCache;
  /** SQLite file database: read batches are written by a worker thread on its own connection (`sqliteWriteWorker`). */
  private offLoop?: OffLoopAppender;
  /** SQLite: moves appended rows into the query indexes in the background (internal/query-index-catch-up.ts). */
  private catchUp?: QueryIndexCatchUp;
  private timer?: NodeJS.Timeout;
  private flushTail: Promise<void> = Promise.resolve();
  /** PostgreSQL: read batches as a named statement (`preparedStatements`, until a pooler refuses one). */
  private prepared: boolean;
  private kicking = false;
  /** A flush is due on the next turn (reads of this turn share its batch). */
  private scheduled = false;
  private stopped = false;
  /** Set while buffered writes fail; cleared by the next successful flush. */
  private failing?: Error;
  private readonly counters = {
    recorded: 0,
    readsAccepted: 0,
    readsFlushed: 0,
    flushFailures: 0,
    writeFailures: 0,
    readsRejected: 0,
    redactedKeys: 0,
    suspiciousActivities: 0,
  };

  constructor(
    private readonly rows: AuditRepository,
    private readonly chains: ChainWriter,
    @Inject(AUDIT_RESOLVED_OPTIONS) private readonly options: ResolvedAuditOptions,
    @InjectDataSource() private readonly dataSource: DataSource,
    @Inject(AUDIT_CLOCK) private readonly clock: Clock,
    @Optional() private readonly events?: EventEmitter2,
    @Optional() runner?: TransactionRunner,
    @Optional() sharedCounters?: SuspiciousActivityCounters,
  ) {
    // Without PersistenceModule (the CLI) a runner of our own still sees the ambient transactions:
    // the context is shared by every runner of one DataSource.
    this.runner = runner ?? new TransactionRunner(dataSource);
    this.buffer = new ReadBuffer(options.readBuffer.maxSize);
    this.prepared = options.preparedStatements;
    if (chains.optimisticAppend) this.heads = ChainHeadCache.for(dataSource);
    if (options.suspicious.enabled) {
      this.suspicious = new SuspiciousActivityReporter({
        // Counters shared by the replicas when the host provides them; in this process otherwise.
        detector: sharedCounters
          ? new SharedSuspiciousActivityDetector(options.suspicious, this.clock, sharedCounters)
          : new SuspiciousActivityDetector(options.suspicious, this.clock),
        logger: this.logger,
        events: this.events,
        // Detached: the alert's row must not join the triggering call's transaction (it would outlive it).
        record: (event) => this.runner.detached(() => this.record(event)),
        track: (work) => {
          const tracked = work.finally(() => this.pending.delete(tracked));
          this.pending.add(tracked);
        },
        counted: () => this.counters.suspiciousActivities++,
      });
    }
  }

  /** Starts the interval flush: a safety net that retries after a failure (healthy batches go at once). */
  start(): void {
    if (this.options.suspicious.enabled && !this.events) {
      this.logger.warn(
        `EventEmitter2 is not available: suspicious activity is still audited, but "${AUDIT_SUSPICIOUS_ACTIVITY_EVENT}" ` +
          'is not emitted. Import EventEmitterModule.forRoot() in the host.',
      );
    }
    if (this.options.sqliteWriteWorker && this.dataSource.options.type === 'better-sqlite3') {
      this.offLoop ??= new OffLoopAppender(this.dataSource, this.chains, this.logger, () => (this.heads ??= ChainHeadCache.for(this.dataSource)));
    }
    if (queryIndexesDeferred(this.dataSource)) {
      this.catchUp ??= QueryIndexCatchUp.onConnection(this.dataSource, this.chains, () => this.offLoop, this.logger);
      // All the rows a crash left pending (a chunk takes only as many as were appended since the last one).
      this.catchUp.kick(null);
    }
    this.timer = setInterval(() => {
      if (this.buffer.depth > 0) this.kick();
    }, this.options.readBuffer.flushIntervalMs);
    this.timer.unref();
  }

  /** Stops the timer and writes what is buffered (up to three attempts), then waits for writes in flight. */
  async shutdown(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    for (let attempt = 1; attempt <= 3 && this.buffer.depth > 0; attempt++) {
      try {
        await this.flush();
      } catch {
        await new Promise((r) => setTimeout(r, 100 * attempt));
      }
    }
    if (this.buffer.depth > 0) {
      this.logger.error(`${this.buffer.depth} buffered audit reads could not be written before shutdown`);
    }
    // Shared suspicious-activity counters may still raise an alert, whose row is then pending too.
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
    // No chunk after this one: the worker stops next, and the DataSource after us (the next start or query takes the rest).
    await this.catchUp?.stop();
    await this.offLoop?.stop();
  }

  /** See `AuditService.record`. */
  async record(event: AuditEventInput, manager?: EntityManager): Promise<AuditLogEntryView> {
    const prepared = this.prepare(event);
    let rows: AuditLogEntry[];
    try {
      rows = await this.inChainTransaction([prepared.tenantId], (m) => this.append(m, prepared.tenantId, [prepared]), manager);
    } catch (e) {
      this.counters.writeFailures++;
      this.logger.error(`Audit row "${prepared.action}" for tenant ${prepared.tenantId} could not be written: ${describeError(e)}`);
      throw new AuditWriteError(`The audit row "${prepared.action}" could not be written; the operation must not proceed`, {
        cause: e,
      });
    }
    this.counters.recorded++;
    this.suspicious?.observe(prepared);
    return toView(rows[0]);
  }

  /** See `AuditService.recordMany`. */
  async recordMany(events: AuditEventInput[]): Promise<void> {
    if (events.length === 0) return;
    const prepared = events.map((e) => this.prepare(e));
    const byTenant = groupByTenant(prepared);
    const tenantIds = [...byTenant.keys()];
    try {
      // ONE head read per chain, under its lock, then one insert: N rows linked after each head.
      await this.inChainTransaction(tenantIds, (m) => this.appendAll(m, byTenant, tenantIds));
    } catch (e) {
      this.counters.writeFailures++;
      this.logger.error(`${prepared.length} audit rows for ${tenantIds.length} tenant(s) could not be written: ${describeError(e)}`);
      throw new AuditWriteError(`${prepared.length} audit rows could not be written; the operation must not proceed`, { cause: e });
    }
    this.counters.recorded += prepared.length;
    for (const p of prepared) this.suspicious?.observe(p);
  }

  /**
   * See `AuditService.recordRead`. Resolves once the batch holding the read's row has committed
   * (group commit: no flush in flight → the batch goes on the next turn; else with the next batch).
   * Fail-closed: rejects with `AuditUnavailableError` when that batch fails. With `failClosed` off
   * and writes failing, resolves once buffered (the row is kept and retried).
   */
  recordRead(event: AuditEventInput): Promise<void> {
    let prepared: PreparedEvent;
    try {
      prepared = this.prepare(event);
    } catch (e) {
      return Promise.reject(e);
    }
    if (this.failing && this.options.failClosed) {
      this.counters.readsRejected++;
      return Promise.reject(this.unavailable());
    }
    const entry: BufferedRead = { event: prepared };
    const committed = this.failing
      ? ACCEPTED
      : new Promise<void>((resolve, reject) => {
          entry.resolve = resolve;
          entry.reject = reject;
        });
    if (this.buffer.tryPush(entry)) {
      this.accepted(entry);
      return committed;
    }
    // Full: wait for space (back-pressure), then for the commit.
    return this.buffer.push(entry).then(
      () => {
        this.accepted(entry);
        return committed;
      },
      (e: unknown) => {
        this.counters.readsRejected++;
        throw e;
      },
    );
  }

  private accepted(entry: BufferedRead): void {
    this.counters.readsAccepted++;
    this.suspicious?.observe(entry.event);
    // While failing only the interval (or shutdown) retries: no write attempt per read.
    if (this.kicking || this.scheduled || (this.failing && !this.stopped)) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.kick();
    });
  }

  /** See `AuditService.flush`. */
  flush(): Promise<void> {
    const run = this.flushTail.then(() => this.flushBuffered());
    this.flushTail = run.catch(() => undefined);
    return run;
  }

  /** Asked on every read (the read-audit fast path): no object built, unlike `stats`. */
  get healthy(): boolean {
    return !this.failing;
  }

  get stats(): AuditWriterStats {
    return { ...this.counters, bufferDepth: this.buffer.depth, bufferWaiters: this.buffer.waiting, healthy: !this.failing };
  }

  /**
   * Appends `events` to the chain of `tenantId`; the caller holds the chain lock. `head` saves the
   * head read when the caller has just read it (null: the chain is empty).
   */
  async append(m: EntityManager, tenantId: string, events: PreparedEvent[], head?: ChainHead | null): Promise<AuditLogEntry[]> {
    const rows = linkRows(events, head === undefined ? await this.rows.head(tenantId, m) : head);
    await this.rows.insert(rows, m);
    this.catchUp?.noteAppended(rows.length);
    return rows.map((r) => r.row);
  }

  /** Appends each chain's events after its head, read once for all chains; the caller holds their locks. */
  private async appendAll(m: EntityManager, byTenant: Map<string, PreparedEvent[]>, tenantIds: string[]): Promise<AuditLogEntry[]> {
    const heads = await this.rows.heads(tenantIds, m);
    const rows = tenantIds.flatMap((t) => linkRows(byTenant.get(t)!, heads.get(t) ?? null));
    await this.rows.insert(rows, m);
    this.catchUp?.noteAppended(rows.length);
    return rows.map((r) => r.row);
  }

  /** Forgets the cached heads of `tenantIds` (retention deleted from their chains). */
  forgetHeads(tenantIds: Iterable<string>): void {
    this.heads?.forget(tenantIds);
  }

  /**
   * Runs `write` under the chain locks of `tenantIds` in the caller's open transaction when there is
   * one — the manager it passed (the older way), else the ambient `runner.run` transaction — and in a
   * transaction of its own otherwise. The ONE place that decides which EntityManager a `record()`
   * writes with. Only our own commits teach the head cache: a caller's transaction may still roll back.
   */
  private async inChainTransaction(
    tenantIds: string[],
    write: (m: EntityManager) => Promise<AuditLogEntry[]>,
    manager?: EntityManager,
  ): Promise<AuditLogEntry[]> {
    const given = manager?.queryRunner?.isTransactionActive ? manager : undefined;
    const caller = given ?? (this.runner.inTransaction() ? this.runner.manager : undefined);
    if (caller) {
      this.heads?.forget(tenantIds);
      return this.chains.inCallerTransaction(caller, tenantIds, write);
    }
    const versions = this.heads?.versions(tenantIds);
    const rows = await this.chains.inOwnTransaction(tenantIds, write);
    if (versions) this.heads!.remember(rows, versions);
    return rows;
  }

  private prepare(event: AuditEventInput): PreparedEvent {
    const { prepared, redacted } = prepareEvent(event, this.clock);
    if (redacted.length) {
      this.counters.redactedKeys += redacted.length;
      this.logger.warn(`Stripped ${redacted.length} credential-looking member(s) from audit details: ${redacted.join(', ')}`);
    }
    return prepared;
  }

  // ---------------------------------------------------------------------------------------------
  // The read buffer
  // ---------------------------------------------------------------------------------------------

  private kick(): void {
    if (this.kicking) return;
    this.kicking = true;
    const run = this.flush()
      .catch(() => undefined) // logged and counted in flushBatch
      .finally(() => {
        this.kicking = false;
        this.pending.delete(run);
        // Reads that arrived during the flush form the next batch at once (group commit).
        if (!this.failing && this.buffer.depth > 0) this.kick();
      });
    this.pending.add(run);
  }

  private async flushBuffered(): Promise<void> {
    // Bounded: a steady stream of new reads cannot keep flush() from returning.
    let budget = this.buffer.depth + this.buffer.waiting;
    for (let first = true; budget > 0 && this.buffer.depth > 0; first = false) {
      // SQLite writes are synchronous: give waiting requests an event-loop turn between batches.
      if (!first) await new Promise((r) => setImmediate(r));
      budget -= await this.flushBatch();
    }
  }

  private async flushBatch(): Promise<number> {
    const batch = this.buffer.peek(this.options.readBuffer.batchSize);
    try {
      await this.writeBatch(groupByTenant(batch.map((b) => b.event)));
    } catch (e) {
      this.counters.flushFailures++;
      if (e instanceof CommitNotDurableError) return this.notDurable(batch, e);
      const first = !this.failing;
      this.failing = e instanceof Error ? e : new Error(String(e));
      this.logger.error(`Writing ${batch.length} buffered audit reads failed${first ? '' : ' again'}: ${describeError(e)}`);
      // Every buffered read's caller learns now (not after the next retry); the rows stay buffered and are
      // retried — never dropped — so the log may show a read that was refused, never the reverse.
      const unavailable = this.unavailable();
      for (const b of this.buffer.peek(this.buffer.depth)) {
        if (settle(b, this.options.failClosed ? unavailable : undefined) && this.options.failClosed) this.counters.readsRejected++;
      }
      if (this.options.failClosed) {
        this.counters.readsRejected += this.buffer.rejectWaiters(unavailable);
      }
      throw new AuditWriteError(`Writing ${batch.length} buffered audit reads failed`, { cause: e });
    }
    if (this.failing) {
      this.logger.log('Buffered audit writes recovered');
      this.failing = undefined;
    }
    this.buffer.remove(new Set(batch));
    for (const b of batch) settle(b);
    this.counters.readsFlushed += batch.length;
    return batch.length;
  }

  /**
   * The batch committed, but its flush to disk failed (SQLite). Its rows are in the log, so they leave the
   * buffer (never written twice); its callers are not told "audited" (fail-closed) and the writer does not
   * enter the failing state: the next batch tries its own flush, and a disk that keeps failing fails each one.
   */
  private notDurable(batch: BufferedRead[], e: CommitNotDurableError): number {
    this.logger.error(`${batch.length} buffered audit reads committed, but flushing them to disk failed: ${describeError(e)}`);
    this.buffer.remove(new Set(batch));
    const error = this.options.failClosed
      ? new AuditUnavailableError('The audit rows of these reads may not survive a power loss; the reads are refused (failClosed)', { cause: e })
      : undefined;
    for (const b of batch) if (settle(b, error) && error) this.counters.readsRejected++;
    return batch.length;
  }

  /**
   * Writes a read batch; committed when it returns. Always on its own (buffered reads of many callers
   * never join one caller's transaction). PostgreSQL, when every chain's head is cached: ONE round trip
   * taking the chains' locks and inserting rows linked to those heads, without a head read. Had another writer appended meanwhile,
   * the (tenant, sequence) unique index rejects the whole statement and the batch goes the locked way
   * (lock, head read, insert, commit), which refreshes the cache. SQLite with the write worker: `OffLoopAppender.append`.
   */
  private async writeBatch(byTenant: Map<string, PreparedEvent[]>): Promise<void> {
    const tenantIds = [...byTenant.keys()];
    if (this.offLoop?.running) {
      if (await this.offLoop.append(this.heads!, byTenant, tenantIds)) {
        let rows = 0;
        for (const events of byTenant.values()) rows += events.length;
        this.catchUp?.noteAppended(rows);
        return;
      }
    } else if (this.chains.optimisticAppend) {
      const cached = this.heads?.lookup(tenantIds);
      if (cached) {
        const rows = tenantIds.flatMap((t) => linkRows(byTenant.get(t)!, cached.heads.get(t)!));
        try {
          // The chains' locks go in the same round trip: locked writers (head read, then insert) must not
          // be overtaken between their two statements, or several replicas' batches could starve them.
          const postgresLocks = { keys: chainLockKeys(tenantIds), prepared: this.prepared };
          await this.rows.insert(rows, this.dataSource.manager, { postgresLocks });
          this.heads!.remember(rows.map((r) => r.row), cached.versions);
          return;
        } catch (e) {
          this.heads!.forget(tenantIds);
          if (e instanceof NamedStatementRefusedError) this.stopPreparing(e);
          else if (!isChainCollision(e)) throw e;
        }
      }
    }
    const versions = this.heads?.versions(tenantIds);
    const rows = await this.chains.inOwnTransaction(tenantIds, (m) => this.appendAll(m, byTenant, tenantIds));
    if (versions) this.heads!.remember(rows, versions);
  }

  /**
   * A pooler lost the named statement (nothing of it ran): this process goes on with the simple query,
   * which is as safe, and says so once; the batch itself goes the locked way. Failing every read batch
   * (fail-closed) for a setting would be an outage.
   */
  private stopPreparing(e: NamedStatementRefusedError): void {
    this.prepared = false;
    // The message is our own fixed text (no value from the batch): it names the pooler and the option.
    this.logger.warn(`Read batches now go as simple queries in this process. ${e.message}`);
  }

  private unavailable(): AuditUnavailableError {
    return new AuditUnavailableError('Audit log writes are failing; reads are refused until they recover (failClosed)', {
      cause: this.failing,
      // The interval flush tries the buffered rows again then: one lost session (a failover) is over by the next.
      retryAfterMs: this.options.readBuffer.flushIntervalMs,
    });
  }

}

/** Resolves (no error) or rejects a buffered read's caller, once; false when it had none left. */
function settle(b: BufferedRead, error?: unknown): boolean {
  const { resolve, reject } = b;
  if (!resolve || !reject) return false;
  b.resolve = b.reject = undefined;
  if (error === undefined) resolve();
  else reject(error);
  return true;
}
