import { statSync } from 'node:fs';
import { Worker } from 'node:worker_threads';

/** Options of `SqliteWalCheckpointer.start`. */
export interface SqliteWalCheckpointerOptions {
  /** The database file (a real file: not `:memory:`). */
  file: string;
  /** How often the worker checkpoints (PASSIVE). @default 100 */
  intervalMs?: number;
  /**
   * Above this WAL size the worker also tries a TRUNCATE checkpoint, without waiting for the writer:
   * the bound when something (another process's long read, a starved writer checkpoint) keeps the WAL
   * from restarting. @default 67108864 (64 MiB)
   */
  maxWalBytes?: number;
}

export interface SqliteWalCheckpointerStats {
  /** Worker passes that copied frames into the database file. */
  checkpoints: number;
  /** TRUNCATE fallbacks that succeeded. */
  truncations: number;
  /** Passes that failed with an error other than "busy". */
  failures: number;
}

/**
 * Runs an SQLite WAL's checkpoints in a worker thread with its own connection, so their page copies
 * and fsyncs leave the event loop. The app's connection keeps its own auto-checkpoint: after the
 * worker has copied the frames, that one only copies what was committed since (its fsyncs then have
 * little to flush), and it restarts the WAL — a writer restarts it only after a checkpoint that caught
 * up with every commit, which a checkpointer beside a busy writer rarely does (the WAL grew to 1.5 GB in
 * 64k rows without it). Durability is the connection's `synchronous`: unchanged.
 *
 * While a worker pass holds SQLite's checkpoint lock (10–50 ms measured beside a busy writer), the writer's
 * auto-checkpoint is refused and retried at its next commit: the WAL can pass SQLite's own bound (1000 frames)
 * by what is committed during one pass. The hard bound is `maxWalBytes`.
 *
 * PASSIVE never takes the writer's lock, so the app's writes never wait for the worker. The TRUNCATE
 * fallback does not wait either (busy timeout 0); it only runs when the WAL is past `maxWalBytes`.
 */
export class SqliteWalCheckpointer {
  private stopping?: Promise<void>;
  private readonly counters: SqliteWalCheckpointerStats = { checkpoints: 0, truncations: 0, failures: 0 };

  private constructor(private readonly worker: Worker) {
    worker.on('message', (m: { checkpointed?: boolean; truncated?: boolean; failed?: boolean }) => {
      if (m.checkpointed) this.counters.checkpoints++;
      if (m.truncated) this.counters.truncations++;
      if (m.failed) this.counters.failures++;
    });
    // A worker that died (e.g. the file was removed) leaves the app's own auto-checkpoint in charge.
    worker.on('error', () => undefined);
    // Never what keeps a process alive: the owner stops it, but a forgotten one must not hang an exit.
    worker.unref();
  }

  static start(options: SqliteWalCheckpointerOptions): SqliteWalCheckpointer {
    const { file, intervalMs = 100, maxWalBytes = 64 * 1024 * 1024 } = options;
    if (!file || file === ':memory:' || file.startsWith('file::memory:')) throw new Error('SqliteWalCheckpointer needs a database file');
    statSync(file); // fails now, in the caller, rather than in the worker
    const driver = require.resolve('better-sqlite3');
    return new SqliteWalCheckpointer(new Worker(WORKER_SOURCE, { eval: true, workerData: { driver, file, intervalMs, maxWalBytes } }));
  }

  stats(): SqliteWalCheckpointerStats {
    return { ...this.counters };
  }

  /** Stops the timer, closes the worker's connection and waits for the thread to end. Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= new Promise<void>((resolve) => {
      const timeout = setTimeout(() => void this.worker.terminate().then(() => resolve()), 5000);
      timeout.unref();
      this.worker.once('exit', () => {
        clearTimeout(timeout);
        resolve();
      });
      // Keeps the process alive until the thread ended (it is unreferenced otherwise): see SqliteWriteWorker.stop.
      this.worker.ref();
      this.worker.postMessage('stop');
    });
    return this.stopping;
  }
}

// Plain JS run by the worker (eval: works from dist/ and under jest alike). One pass at a time: the
// next is scheduled when this one ended, so a slow disk stretches the interval instead of piling up.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { statSync } = require('node:fs');
const Database = require(workerData.driver);
const db = new Database(workerData.file, { fileMustExist: true, timeout: 0 });
let timer;
let stopped = false;
const walBytes = () => { try { return statSync(workerData.file + '-wal').size; } catch { return 0; } };
function pass() {
  const report = {};
  try {
    const r = db.pragma('wal_checkpoint(PASSIVE)')[0];
    report.checkpointed = r.checkpointed > 0;
    if (walBytes() > workerData.maxWalBytes) {
      const t = db.pragma('wal_checkpoint(TRUNCATE)')[0];
      report.truncated = t.busy === 0;
    }
  } catch (e) {
    if (!/busy|locked/i.test(String(e && e.code) + String(e && e.message))) report.failed = true;
  }
  if (report.checkpointed || report.truncated || report.failed) parentPort.postMessage(report);
  if (!stopped) timer = setTimeout(pass, workerData.intervalMs);
}
timer = setTimeout(pass, workerData.intervalMs);
parentPort.on('message', () => {
  stopped = true;
  clearTimeout(timer);
  try { db.close(); } finally { parentPort.close(); }
});
`;
