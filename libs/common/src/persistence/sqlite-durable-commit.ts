import { close, fdatasync, open } from 'node:fs';
import type { DataSource } from 'typeorm';
import { CommitNotDurableError } from './persistence.errors';
import { SqliteConnection, sqliteConnectionOf, sqliteWalFileConnection } from './sqlite-connection';

/**
 * Durable SQLite commits that do not block the event loop.
 *
 * better-sqlite3 is synchronous: with `synchronous = FULL` every COMMIT blocks the whole process for
 * the write-ahead log's fsync (measured on the audited HTTP value read: ~0.5 ms per audit batch's COMMIT,
 * about a sixth of the event loop's time). Here a transaction commits with `NORMAL` (in WAL
 * mode: the frames are written, not flushed; checkpoints still flush), and then the WAL file is
 * `fdatasync`ed on libuv's thread pool before the transaction counts as done — the same frames on disk
 * as FULL, and the caller (the TransactionGate) holds the connection until then, so no one on it reads a
 * commit that a power loss could still undo. The connection's own level is restored right after COMMIT:
 * anything that does not go through here keeps FULL.
 *
 * Only for a better-sqlite3 file database in WAL mode whose `synchronous` is FULL or EXTRA: with NORMAL or
 * OFF the user chose to not flush every commit, and that stays so (`for` answers undefined).
 */
export class SqliteDurableCommit {
  /** The WAL's descriptor while flushes keep coming (see `sync`). */
  private fd?: number;
  private lastUse = 0;
  private inFlight = 0;

  private constructor(
    private readonly connection: SqliteConnection,
    private readonly level: number,
    private readonly walPath: string,
  ) {}

  /** The helper for `dataSource`'s current connection, or undefined when its commits need none. */
  static for(dataSource: DataSource): SqliteDurableCommit | undefined {
    const connection = sqliteWalFileConnection(dataSource);
    if (!connection) return undefined;
    const level = Number(connection.pragma('synchronous', { simple: true }));
    // 2 = FULL, 3 = EXTRA (which also syncs the directory when the WAL is deleted: that happens on close, unchanged).
    if (level < 2) return undefined;
    return new SqliteDurableCommit(
      connection,
      level,
      `${connection.name}-wal`,
    );
  }

  /** Whether this helper still belongs to `dataSource`'s connection (a re-initialised DataSource has a new one). */
  servesConnectionOf(dataSource: DataSource): boolean {
    return sqliteConnectionOf(dataSource) === this.connection;
  }

  /** Before BEGIN: the COMMIT writes the WAL frames without flushing them. */
  relax(): void {
    // exec, not a statement prepared once: SQLite applies this pragma when it compiles it, not when it runs.
    this.connection.exec('PRAGMA synchronous = NORMAL');
  }

  /** Right after COMMIT (or ROLLBACK): the connection's own level again. */
  restore(): void {
    this.connection.exec(`PRAGMA synchronous = ${this.level}`);
  }

  /**
   * Flushes the WAL file (every frame committed so far). Rejects with `CommitNotDurableError` when the
   * flush fails. A missing WAL file means nothing was ever written to it since the database was last
   * closed (SQLite deletes it only then), so there is nothing to flush.
   *
   * The descriptor is kept while flushes keep coming (an open and a close per commit were ~2 µs of a
   * warm read) and closed after `IDLE_CLOSE_MS` without one, so none outlives a closed DataSource for
   * long. While the connection is open SQLite keeps the same WAL file (it truncates it, never replaces it).
   */
  sync(): Promise<void> {
    this.lastUse = Date.now();
    this.inFlight++;
    return new Promise<void>((resolve, reject) => {
      const flush = (fd: number) =>
        fdatasync(fd, (syncError) => (syncError ? reject(new CommitNotDurableError({ cause: syncError })) : resolve()));
      if (this.fd !== undefined) return flush(this.fd);
      open(this.walPath, 'r', (openError, fd) => {
        if (openError) {
          if (openError.code === 'ENOENT') resolve();
          else reject(new CommitNotDurableError({ cause: openError }));
          return;
        }
        if (this.fd !== undefined) close(fd, () => undefined); // another flush opened it meanwhile
        else {
          this.fd = fd;
          this.closeWhenIdle();
        }
        flush(this.fd);
      });
    }).finally(() => this.inFlight--);
  }

  private closeWhenIdle(): void {
    const idleFor = Date.now() - this.lastUse;
    if (this.fd === undefined) return;
    if (idleFor < IDLE_CLOSE_MS || this.inFlight > 0) {
      setTimeout(() => this.closeWhenIdle(), idleFor < IDLE_CLOSE_MS ? IDLE_CLOSE_MS - idleFor : 100).unref();
      return;
    }
    close(this.fd, () => undefined);
    this.fd = undefined;
  }
}

/** How long a WAL descriptor stays open without a flush. */
const IDLE_CLOSE_MS = 1000;
