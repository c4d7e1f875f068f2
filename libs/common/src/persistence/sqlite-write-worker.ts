import { Worker } from 'node:worker_threads';
import type { DataSource } from 'typeorm';
import { SqliteWorkerWriteError } from './persistence.errors';
import { sqliteWalFileConnection } from './sqlite-connection';

/** One statement of a `SqliteWriteWorker` transaction: SQL text and its bound parameters. */
export interface SqliteStatement {
  sql: string;
  params: readonly unknown[];
}

interface Pending {
  resolve: () => void;
  reject: (e: Error) => void;
}

/**
 * Write transactions of a better-sqlite3 file database run in a worker thread on a connection of its
 * own, so their statements, COMMIT, fsync and the WAL checkpoints they trigger leave the event loop
 * (better-sqlite3 is synchronous: on the main connection each of them blocks every request meanwhile).
 *
 * - `transaction(statements)` runs them in ONE `BEGIN IMMEDIATE … COMMIT` and resolves once committed;
 *   any failure rolls the whole transaction back and rejects with `SqliteWorkerWriteError` (code and
 *   message of the driver). The COMMIT is as durable as the main connection's: the worker copies its
 *   `synchronous` level (FULL by default: the WAL is flushed before the transaction counts as done).
 * - The main connection and the worker's are two writers of one file: SQLite lets one write at a time.
 *   A caller must keep its own connection's transactions from overlapping a worker transaction (the audit
 *   log holds its TransactionGate meanwhile), or they wait in SQLite's busy handler, on the event loop.
 * - Only for a file database in WAL mode (`for` answers undefined otherwise): a `:memory:` database is
 *   invisible to another connection, and a rollback journal would block the main connection's readers.
 */
export class SqliteWriteWorker {
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private failure?: SqliteWorkerWriteError;
  private stopping?: Promise<void>;

  private constructor(
    private readonly worker: Worker,
    /** The worker connection's `synchronous` level: the main connection's when `for` was called. */
    readonly synchronous: number,
  ) {
    worker.on('message', (m: { id: number; error?: { message: string; code?: string } }) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (this.pending.size === 0) worker.unref();
      if (m.error) p.reject(new SqliteWorkerWriteError(`The SQLite write worker's transaction failed: ${m.error.message}`, m.error));
      else p.resolve();
    });
    worker.on('error', (e) => this.fail(new SqliteWorkerWriteError('The SQLite write worker failed', undefined, { cause: e })));
    worker.on('exit', () => this.fail(new SqliteWorkerWriteError('The SQLite write worker exited')));
    // Keeps the process alive only while a transaction is in flight (an exit then would lose it); a
    // forgotten idle worker must not hang an exit.
    worker.unref();
  }

  /**
   * A worker for `dataSource`'s file, or undefined when it is not a better-sqlite3 file database in WAL mode.
   * Call it while no transaction is open on the main connection: its `synchronous` level and `wal_autocheckpoint` are copied, and a
   * `TransactionGate` transaction runs with NORMAL until its own flush.
   */
  static for(dataSource: DataSource, options: { busyTimeoutMs?: number } = {}): SqliteWriteWorker | undefined {
    const connection = sqliteWalFileConnection(dataSource);
    if (!connection) return undefined;
    const workerData = {
      driver: require.resolve('better-sqlite3'),
      file: connection.name,
      synchronous: Number(connection.pragma('synchronous', { simple: true })),
      // The worker's commits trigger most checkpoints (the audit's read batches): at the app's bound, not SQLite's default.
      walAutocheckpoint: Number(connection.pragma('wal_autocheckpoint', { simple: true })),
      busyTimeoutMs: options.busyTimeoutMs ?? 5000,
    };
    return new SqliteWriteWorker(new Worker(WORKER_SOURCE, { eval: true, workerData }), workerData.synchronous);
  }

  /** False once the worker died or was stopped: callers then write on their own connection. */
  get running(): boolean {
    return !this.failure && !this.stopping;
  }

  /** Runs `statements` in one IMMEDIATE transaction in the worker; resolves once it committed. */
  transaction(statements: readonly SqliteStatement[]): Promise<void> {
    if (!this.running) return Promise.reject(this.failure ?? new SqliteWorkerWriteError('The SQLite write worker is stopped'));
    const id = this.nextId++;
    return new Promise<void>((resolve, reject) => {
      if (this.pending.size === 0) this.worker.ref();
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ id, statements });
    });
  }

  /** Lets the transactions posted so far finish, closes the worker's connection and ends the thread. Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= new Promise<void>((resolve) => {
      if (this.failure) return resolve();
      const timeout = setTimeout(() => void this.worker.terminate().then(() => resolve()), 5000);
      timeout.unref();
      this.worker.once('exit', () => {
        clearTimeout(timeout);
        resolve();
      });
      // Unreferenced while idle (a forgotten worker must not hang an exit), but a stop that was asked for
      // keeps the process alive until the thread ended: else `await app.close()` would never go on.
      this.worker.ref();
      // Messages are handled in order: the stop comes after every transaction already posted.
      this.worker.postMessage({ stop: true });
    });
    return this.stopping;
  }

  private fail(e: SqliteWorkerWriteError): void {
    this.failure ??= e;
    for (const p of this.pending.values()) p.reject(this.failure);
    this.pending.clear();
  }
}

// Plain JS run by the worker (eval: works from dist/ and under jest alike). Statements are prepared once
// per text (a batch size has one text) and kept, up to a bound.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.file, { fileMustExist: true, timeout: workerData.busyTimeoutMs });
db.pragma('synchronous = ' + workerData.synchronous);
db.pragma('wal_autocheckpoint = ' + workerData.walAutocheckpoint);
const begin = db.prepare('BEGIN IMMEDIATE');
const commit = db.prepare('COMMIT');
const rollback = db.prepare('ROLLBACK');
const statements = new Map();
function statement(sql) {
  let s = statements.get(sql);
  if (!s) {
    if (statements.size >= 256) statements.clear();
    s = db.prepare(sql);
    statements.set(sql, s);
  }
  return s;
}
parentPort.on('message', (m) => {
  if (m.stop) {
    try { db.close(); } finally { parentPort.close(); }
    return;
  }
  try {
    begin.run();
    try {
      for (const s of m.statements) statement(s.sql).run(s.params);
      commit.run();
    } catch (e) {
      if (db.inTransaction) rollback.run();
      throw e;
    }
    parentPort.postMessage({ id: m.id });
  } catch (e) {
    parentPort.postMessage({ id: m.id, error: { message: String(e && e.message), code: e && typeof e.code === 'string' ? e.code : undefined } });
  }
});
`;
