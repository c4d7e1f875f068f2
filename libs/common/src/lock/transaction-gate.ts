import { Logger } from '@nestjs/common';
import type { DataSource, EntityManager } from 'typeorm';
import { beginImmediate } from '../persistence/sqlite-connection';
import { SqliteDurableCommit } from '../persistence/sqlite-durable-commit';
import { KeyedMutex, MutexRelease } from './keyed-mutex';
import { LockTimeoutError } from './lock.errors';

const SINGLE_CONNECTION_DRIVERS = new Set(['better-sqlite3', 'sqlite', 'sqljs', 'capacitor', 'cordova', 'expo', 'nativescript', 'react-native']);

export interface GateOptions {
  /**
   * How long to wait for the gate (and for a foreign open transaction on the shared connection)
   * before failing with LockTimeoutError (503: busy, retry). Never going ahead without it: on one
   * connection the transaction would nest in the one open, and that one's rollback would undo it
   * after it was reported committed.
   * @default 5000
   */
  maxWaitMs?: number;
}

/** The name in the LockTimeoutError of a gate not had in time (it reaches clients: no path, no SQL). */
const GATE_LOCK_NAME = 'sqlite-transaction';

/**
 * One per DataSource and process (`TransactionGate.for(dataSource)`), shared by every lib.
 *
 * TypeORM's SQLite drivers run the whole DataSource on ONE connection and ONE query runner: two
 * concurrent `transaction()` calls nest (the second becomes a SAVEPOINT of the first), so one
 * caller's rollback can silently undo another caller's "committed" rows. On those drivers the gate
 * runs transactions one at a time and, before BEGIN, waits until the shared connection is not
 * inside someone else's (ungated) transaction. On PostgreSQL & co. it is a pass-through.
 *
 * On better-sqlite3 the connection's transactions begin IMMEDIATE (`beginImmediate`): another connection
 * to the same file (a CLI, another process) cannot commit between a transaction's read and its write.
 *
 * On a better-sqlite3 file in WAL mode with `synchronous` FULL, `transaction` flushes the commit off the
 * event loop (`SqliteDurableCommit`) and keeps the gate until the flush is done: durable when it
 * resolves, as with FULL, and no gated reader sees a commit before it is durable.
 */
export class TransactionGate {
  private static readonly gates = new WeakMap<DataSource, TransactionGate>();

  static for(dataSource: DataSource): TransactionGate {
    let gate = TransactionGate.gates.get(dataSource);
    if (!gate) {
      gate = new TransactionGate(dataSource);
      TransactionGate.gates.set(dataSource, gate);
    }
    return gate;
  }

  private readonly logger = new Logger(TransactionGate.name);
  private readonly mutex = new KeyedMutex();
  /** Whether this DataSource shares one connection (SQLite family). */
  readonly serialises: boolean;
  /** undefined: not detected yet; null: commits flush themselves (or nothing to flush). */
  private durable?: SqliteDurableCommit | null;

  private constructor(private readonly dataSource: DataSource) {
    this.serialises = SINGLE_CONNECTION_DRIVERS.has(dataSource.options.type);
  }

  /**
   * `dataSource.transaction(work)`, serialised on single-connection drivers; committed and durable when
   * it resolves. Rejects with `CommitNotDurableError` when it committed but the flush failed.
   */
  transaction<T>(work: (manager: EntityManager) => Promise<T>, options?: GateOptions): Promise<T> {
    // Where transactions begin, not on every gated read (`exclusive`): the patch stays on the runner.
    beginImmediate(this.dataSource);
    return this.exclusive(() => this.durably(() => this.dataSource.transaction(work)), options);
  }

  private async durably<T>(transaction: () => Promise<T>): Promise<T> {
    const durable = this.durableCommit();
    if (!durable) return transaction();
    durable.relax();
    let result: T;
    try {
      result = await transaction();
    } finally {
      durable.restore();
    }
    await durable.sync();
    return result;
  }

  /** Detected once per connection (the pragmas cannot be read before the DataSource is initialised). */
  private durableCommit(): SqliteDurableCommit | undefined {
    if (!this.serialises) return undefined;
    if (this.durable === undefined || (this.durable && !this.durable.servesConnectionOf(this.dataSource))) {
      this.durable = this.dataSource.isInitialized ? (SqliteDurableCommit.for(this.dataSource) ?? null) : undefined;
    }
    return this.durable ?? undefined;
  }

  /**
   * Whether a synchronous statement run NOW sees neither another caller's uncommitted rows nor a commit
   * still being flushed (the flush holds the gate). Always true where connections are not shared.
   */
  idleNow(): boolean {
    return !this.serialises || (!this.mutex.isLocked('tx') && !this.dataSource.createQueryRunner().isTransactionActive);
  }

  /** Runs `work` (which may open a transaction) while holding the gate on single-connection drivers. */
  async exclusive<T>(work: () => Promise<T>, options?: GateOptions): Promise<T> {
    if (!this.serialises) return work();
    const maxWaitMs = options?.maxWaitMs ?? 5000;
    const deadline = Date.now() + maxWaitMs;
    let release: MutexRelease | undefined;
    try {
      release = await this.mutex.acquire('tx', maxWaitMs);
    } catch (e) {
      if (!(e instanceof LockTimeoutError)) throw e;
      this.logger.warn(`Waited ${maxWaitMs} ms for the SQLite transaction gate: refused (a transaction held it that long; is a slow call made inside one?)`);
      throw new LockTimeoutError(GATE_LOCK_NAME, maxWaitMs, { cause: e });
    }
    try {
      // Only await when we must: BEGIN should follow the idle check with no turn of the event loop between.
      if (this.dataSource.createQueryRunner().isTransactionActive) await this.waitUntilIdle(deadline, maxWaitMs);
      return await work();
    } finally {
      release?.();
    }
  }

  private async waitUntilIdle(deadline: number, maxWaitMs: number): Promise<void> {
    const runner = this.dataSource.createQueryRunner();
    while (runner.isTransactionActive) {
      if (Date.now() >= deadline) {
        this.logger.warn('A transaction opened outside the gate is still open on the shared SQLite connection: refused rather than nested in it');
        throw new LockTimeoutError(GATE_LOCK_NAME, maxWaitMs);
      }
      await new Promise((r) => setTimeout(r, 2));
    }
  }
}
