import { Inject, Injectable, Logger, Optional } from '@nestjs/common';
import { EventEmitter2 } from '@nestjs/event-emitter';
import { InjectDataSource } from '@nestjs/typeorm';
import { Clock, TransactionRunner, describeError } from '@app/common';
import type { DataSource, EntityManager } from 'typeorm';
import { AUDIT_SUSPICIOUS_ACTIVITY_EVENT } from './audit.constants';
import { AUDIT_CLOCK, AUDIT_RESOLVED_OPTIONS } from './audit.module-definition';
import type { ResolvedAuditOptions } from './audit.options';
import { AuditRepository, ChainHead } from './audit.repository';
import { AuditLogEntry } from './entities/audit-log-entry.entity';
import { AuditWriteError } from './errors/audit.errors';
import { AuditEventInput, AuditLogEntryView } from './interfaces/audit-event.interface';
import { ChainAppender } from './internal/chain-appender';
import { ChainWriter } from './internal/chain-writer';
import { toView } from './internal/entry-view';
import { GroupCommit } from './internal/group-commit';
import { PreparedEvent, groupByTenant, prepareEvent } from './internal/prepare-event';
import { SharedSuspiciousActivityDetector, SuspiciousActivityDetector } from './internal/suspicious-activity.detector';
import { SuspiciousActivityReporter } from './internal/suspicious-activity.reporter';
import { type AuditWriterStats, newWriterCounters, writerStats } from './internal/writer-stats';
import { SuspiciousActivityCounters } from './suspicious-activity.counters';

export type { AuditWriterStats } from './internal/writer-stats';

/**
 * Appends to the chains: `record()` one row now (in the caller's transaction: the ambient
 * `TransactionRunner` one, or the one of a manager passed explicitly), `recordRead()` through the
 * bounded read buffer with group commit: a read resolves once the batch holding its row committed.
 * Also watches what it writes for suspicious activity. Its retry timer runs between `start()` and
 * `shutdown()`.
 *
 * A coordinator: it validates events, counts and logs the writes' outcome, and hands the work to its
 * parts (internal/): `ChainAppender` (which way rows go into the chains), `GroupCommit` (the read buffer,
 * its batches and the failing state), `SuspiciousActivityReporter`, and the counters of `writer-stats.ts`.
 */
@Injectable()
export class AuditWriter {
  private readonly logger = new Logger(AuditWriter.name);
  private readonly runner: TransactionRunner;
  private readonly appender: ChainAppender;
  private readonly reads: GroupCommit;
  private readonly suspicious?: SuspiciousActivityReporter;
  /** Work shutdown waits for: kicked flushes and alerts' rows. */
  private readonly pending = new Set<Promise<unknown>>();
  private readonly counters = newWriterCounters();

  constructor(
    rows: AuditRepository,
    chains: ChainWriter,
    @Inject(AUDIT_RESOLVED_OPTIONS) private readonly options: ResolvedAuditOptions,
    @InjectDataSource() dataSource: DataSource,
    @Inject(AUDIT_CLOCK) private readonly clock: Clock,
    @Optional() private readonly events?: EventEmitter2,
    @Optional() runner?: TransactionRunner,
    @Optional() sharedCounters?: SuspiciousActivityCounters,
  ) {
    // Without PersistenceModule (the CLI) a runner of our own still sees the ambient transactions:
    // the context is shared by every runner of one DataSource.
    this.runner = runner ?? new TransactionRunner(dataSource);
    this.appender = new ChainAppender(rows, chains, options, dataSource, this.runner, this.logger);
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
    this.reads = new GroupCommit(options, this.appender, this.counters, this.pending, this.logger, this.suspicious);
  }

  /** Starts the write worker and catch-up where the database has them, then the interval flush (a retry safety net). */
  start(): void {
    if (this.options.suspicious.enabled && !this.events) {
      this.logger.warn(
        `EventEmitter2 is not available: suspicious activity is still audited, but "${AUDIT_SUSPICIOUS_ACTIVITY_EVENT}" ` +
          'is not emitted. Import EventEmitterModule.forRoot() in the host.',
      );
    }
    this.appender.start();
    this.reads.start();
  }

  /** Stops the timer and writes what is buffered (up to three attempts), then waits for writes in flight. */
  async shutdown(): Promise<void> {
    await this.reads.shutdown();
    // Shared suspicious-activity counters may still raise an alert, whose row is then pending too.
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
    await this.appender.stop();
  }

  /** See `AuditService.record`. */
  async record(event: AuditEventInput, manager?: EntityManager): Promise<AuditLogEntryView> {
    const prepared = this.prepare(event);
    let rows: AuditLogEntry[];
    try {
      rows = await this.appender.appendEvent(prepared, manager);
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
      await this.appender.appendEvents(byTenant, tenantIds);
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
    return this.reads.submit(prepared);
  }

  /** See `AuditService.flush`. */
  flush(): Promise<void> {
    return this.reads.flush();
  }

  /** Asked on every read (the read-audit fast path): no object built, unlike `stats`. */
  get healthy(): boolean {
    return this.reads.healthy;
  }

  get stats(): AuditWriterStats {
    return writerStats(this.counters, this.reads);
  }

  /**
   * Appends `events` to the chain of `tenantId`; the caller holds the chain lock. `head` saves the
   * head read when the caller has just read it (null: the chain is empty).
   */
  append(m: EntityManager, tenantId: string, events: PreparedEvent[], head?: ChainHead | null): Promise<AuditLogEntry[]> {
    return this.appender.append(m, tenantId, events, head);
  }

  /** Forgets the cached heads of `tenantIds` (retention deleted from their chains). */
  forgetHeads(tenantIds: Iterable<string>): void {
    this.appender.forgetHeads(tenantIds);
  }

  private prepare(event: AuditEventInput): PreparedEvent {
    const { prepared, redacted } = prepareEvent(event, this.clock);
    if (redacted.length) {
      this.counters.redactedKeys += redacted.length;
      this.logger.warn(`Stripped ${redacted.length} credential-looking member(s) from audit details: ${redacted.join(', ')}`);
    }
    return prepared;
  }
}
