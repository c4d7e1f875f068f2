import { sqlState } from '@app/common';
import type { DataSource } from 'typeorm';

/**
 * A transaction that writes one WAL record and commits with the session's `synchronous_commit`: its COMMIT
 * returns once the WAL is flushed (and replicated, as that setting says) up to its own commit record, so every
 * transaction that committed before it started is durable too. `pg_logical_emit_message` writes the record
 * without a table (nothing to lock, clean or migrate); a transaction that writes nothing would not wait for
 * the flush. With `wal_level = logical` decoders see the message under this prefix (pgoutput only when asked).
 */
const BARRIER_SQL = `SELECT pg_logical_emit_message(true, 'cv-audit-flush', '')`;
/** Barriers in flight at once: each holds a pooled connection for about one WAL flush. */
const MAX_IN_FLIGHT = 2;
/** SQLSTATEs saying this database will never run the barrier: insufficient_privilege, undefined_function. */
const NOT_AVAILABLE = new Set<string | undefined>(['42501', '42883']);

interface Queued {
  promise: Promise<void>;
  resolve: () => void;
  reject: (e: unknown) => void;
}

/**
 * PostgreSQL: makes commits that did not wait for their WAL flush (`asyncCommit` read batches) durable.
 * `after()` resolves once a barrier that started after the call committed. At most `MAX_IN_FLIGHT` run at
 * once; callers beyond that share the next barrier to start (it starts after all of them, so it covers each),
 * and concurrent barriers share PostgreSQL's group commit.
 */
export class FlushBarrier {
  private static readonly byDataSource = new WeakMap<DataSource, FlushBarrier>();
  private inFlight = 0;
  private queued?: Queued;
  /** undefined until a barrier has answered: whether this database runs it. */
  private available?: boolean;

  private constructor(private readonly dataSource: DataSource) {}

  /** One per DataSource: the read batches and the anchor pass share its barriers. */
  static for(dataSource: DataSource): FlushBarrier {
    let barrier = FlushBarrier.byDataSource.get(dataSource);
    if (!barrier) FlushBarrier.byDataSource.set(dataSource, (barrier = new FlushBarrier(dataSource)));
    return barrier;
  }

  /** Whether barriers are known to work here (a first one has committed). */
  get usable(): boolean {
    return this.available === true;
  }

  /** Whether this database refuses the barrier (no privilege, no function): it will not work here. */
  get refused(): boolean {
    return this.available === false;
  }

  /**
   * Learns whether the barrier works here, once (concurrent callers share the answer): true when one has
   * committed; false, for good, when the database refuses the function. A transient failure answers false
   * and leaves the question open.
   */
  async probe(): Promise<boolean> {
    if (this.available !== undefined) return this.available;
    try {
      await this.after();
      return true;
    } catch (e) {
      if (NOT_AVAILABLE.has(sqlState(e))) this.available = false;
      return false;
    }
  }

  /**
   * `after()`, or nothing where the database refuses the barrier: no writer can have committed without its
   * flush there (each asks the same database first).
   */
  async durableOrRefused(): Promise<void> {
    if (this.refused) return;
    try {
      await this.after();
    } catch (e) {
      if (!this.refused) throw e;
    }
  }

  /** Resolves once every transaction that committed before this call is as durable as a synchronous commit. */
  after(): Promise<void> {
    if (this.inFlight < MAX_IN_FLIGHT) return this.start();
    if (!this.queued) {
      let resolve!: () => void;
      let reject!: (e: unknown) => void;
      const promise = new Promise<void>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      this.queued = { promise, resolve, reject };
    }
    return this.queued.promise;
  }

  private start(): Promise<void> {
    this.inFlight++;
    const run = this.dataSource.query(BARRIER_SQL).then(
      () => {
        this.available = true;
      },
      (e: unknown) => {
        if (NOT_AVAILABLE.has(sqlState(e))) this.available = false;
        throw e;
      },
    );
    void run
      .catch(() => undefined)
      .finally(() => {
        this.inFlight--;
        const q = this.queued;
        if (q) {
          this.queued = undefined;
          this.start().then(q.resolve, q.reject);
        }
      });
    return run;
  }
}
