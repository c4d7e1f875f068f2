import type { Logger } from '@nestjs/common';
import { CommitNotDurableError, describeError } from '@app/common';
import type { ResolvedAuditOptions } from '../audit.options';
import { AuditUnavailableError, AuditWriteError } from '../errors/audit.errors';
import { FailingState } from './failing-state';
import { PreparedEvent, groupByTenant } from './prepare-event';
import { ReadBuffer } from './read-buffer';
import type { WriterCounters } from './writer-stats';

const ACCEPTED = Promise.resolve();

/** A read in the buffer, with its caller's promise until its batch commits (or fails). */
interface BufferedRead {
  readonly event: PreparedEvent;
  resolve?: () => void;
  reject?: (e: unknown) => void;
}

/** Writes a read batch (`ChainAppender.writeBatch`): committed when it resolves. */
export interface ReadBatchWriter {
  writeBatch(byTenant: Map<string, PreparedEvent[]>): Promise<void>;
}

/**
 * The writer's read path: the bounded read buffer with group commit. A read resolves once the batch holding
 * its row committed; no flush in flight → the batch goes on the next turn, else with the next batch. A failed
 * batch puts the writer in its failing state (`FailingState`) until one commits; the interval timer (between
 * `start()` and `shutdown()`) retries then.
 */
export class GroupCommit {
  private readonly buffer: ReadBuffer<BufferedRead>;
  private readonly failing: FailingState;
  private timer?: NodeJS.Timeout;
  private flushTail: Promise<void> = Promise.resolve();
  private kicking = false;
  /** A flush is due on the next turn (reads of this turn share its batch). */
  private scheduled = false;
  private stopped = false;

  constructor(
    private readonly options: ResolvedAuditOptions,
    private readonly batches: ReadBatchWriter,
    /** The writer's (shared with its other parts). */
    private readonly counters: WriterCounters,
    /** The writer's work in flight, which its shutdown waits for: each kicked flush joins it. */
    private readonly pending: Set<Promise<unknown>>,
    /** The writer's: these lines name AuditWriter, as before the split. */
    private readonly logger: Logger,
    /** Sees every accepted read (the writer's `SuspiciousActivityReporter`). */
    private readonly observer?: { observe(e: PreparedEvent): void },
  ) {
    this.buffer = new ReadBuffer(options.readBuffer.maxSize);
    this.failing = new FailingState(options.readBuffer.flushIntervalMs);
  }

  get depth(): number {
    return this.buffer.depth;
  }

  get waiting(): number {
    return this.buffer.waiting;
  }

  /** Asked on every read (the read-audit fast path). */
  get healthy(): boolean {
    return !this.failing.error;
  }

  /** Starts the interval flush: a safety net that retries after a failure (healthy batches go at once). */
  start(): void {
    this.timer = setInterval(() => {
      if (this.buffer.depth > 0) this.kick();
    }, this.options.readBuffer.flushIntervalMs);
    this.timer.unref();
  }

  /** Stops the timer and writes what is buffered (up to three attempts). */
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
  }

  /**
   * Buffers a prepared read; see `AuditWriter.recordRead`. The hot path: no await and, once buffered, no
   * allocation but the entry and (while healthy) its caller's promise.
   */
  submit(event: PreparedEvent): Promise<void> {
    if (this.failing.error && this.options.failClosed) {
      this.counters.readsRejected++;
      return Promise.reject(this.failing.unavailable());
    }
    const entry: BufferedRead = { event };
    const committed = this.failing.error
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

  /** See `AuditService.flush`. */
  flush(): Promise<void> {
    const run = this.flushTail.then(() => this.flushBuffered());
    this.flushTail = run.catch(() => undefined);
    return run;
  }

  private accepted(entry: BufferedRead): void {
    this.counters.readsAccepted++;
    this.observer?.observe(entry.event);
    // While failing only the interval (or shutdown) retries: no write attempt per read.
    if (this.kicking || this.scheduled || (this.failing.error && !this.stopped)) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.kick();
    });
  }

  private kick(): void {
    if (this.kicking) return;
    this.kicking = true;
    const run = this.flush()
      .catch(() => undefined) // logged and counted in flushBatch
      .finally(() => {
        this.kicking = false;
        this.pending.delete(run);
        // Reads that arrived during the flush form the next batch at once (group commit).
        if (!this.failing.error && this.buffer.depth > 0) this.kick();
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
      await this.batches.writeBatch(groupByTenant(batch.map((b) => b.event)));
    } catch (e) {
      this.counters.flushFailures++;
      if (e instanceof CommitNotDurableError) return this.notDurable(batch, e);
      const first = this.failing.enter(e);
      this.logger.error(`Writing ${batch.length} buffered audit reads failed${first ? '' : ' again'}: ${describeError(e)}`);
      // Every buffered read's caller learns now (not after the next retry); the rows stay buffered and are
      // retried — never dropped — so the log may show a read that was refused, never the reverse.
      const unavailable = this.failing.unavailable();
      for (const b of this.buffer.peek(this.buffer.depth)) {
        if (settle(b, this.options.failClosed ? unavailable : undefined) && this.options.failClosed) this.counters.readsRejected++;
      }
      if (this.options.failClosed) {
        this.counters.readsRejected += this.buffer.rejectWaiters(unavailable);
      }
      throw new AuditWriteError(`Writing ${batch.length} buffered audit reads failed`, { cause: e });
    }
    if (this.failing.error) {
      this.logger.log('Buffered audit writes recovered');
      this.failing.leave();
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
