import type { DataSource, QueryRunner } from 'typeorm';

/** What we use of a better-sqlite3 `Database` (TypeORM's `driver.databaseConnection`). */
export interface SqliteConnection {
  readonly name: string;
  readonly memory: boolean;
  pragma(source: string, options: { simple: true }): unknown;
  exec(source: string): unknown;
}

/** TypeORM's better-sqlite3 `Database` of `dataSource` (undefined before it connects). */
export function sqliteConnectionOf(dataSource: DataSource): SqliteConnection | undefined {
  return (dataSource.driver as unknown as { databaseConnection?: SqliteConnection }).databaseConnection;
}

/** The connection of an initialised better-sqlite3 FILE database in WAL mode; undefined for anything else. */
export function sqliteWalFileConnection(dataSource: DataSource): SqliteConnection | undefined {
  if (dataSource.options.type !== 'better-sqlite3' || !dataSource.isInitialized) return undefined;
  const connection = sqliteConnectionOf(dataSource);
  if (!connection || connection.memory) return undefined;
  return String(connection.pragma('journal_mode', { simple: true })).toLowerCase() === 'wal' ? connection : undefined;
}

const IMMEDIATE = Symbol('cv.sqliteBeginImmediate');
type PatchableRunner = QueryRunner & { [IMMEDIATE]?: true };

/**
 * Makes `dataSource`'s shared better-sqlite3 query runner open its transactions with `BEGIN IMMEDIATE`
 * (idempotent; a re-initialised DataSource has a new runner, patched on its first use here).
 *
 * TypeORM sends `BEGIN TRANSACTION`, which is deferred: the write lock is only asked for at the first write.
 * When another connection to the file (a CLI, another process's audit write worker) commits after our
 * transaction has read and before it writes, SQLite cannot move our snapshot forward and refuses the write at
 * once (SQLITE_BUSY_SNAPSHOT), without waiting in the busy handler — so a chain append that read its head would
 * fail. IMMEDIATE takes the write lock at BEGIN, waiting (the driver's `timeout`, 5 s by default) for a writer
 * of another connection to finish, and nothing can commit between our read and our write.
 */
export function beginImmediate(dataSource: DataSource): void {
  if (dataSource.options.type !== 'better-sqlite3' || !dataSource.isInitialized) return;
  const runner = dataSource.createQueryRunner() as PatchableRunner;
  if (runner[IMMEDIATE]) return;
  const query = runner.query;
  runner.query = function (this: QueryRunner, sql: string, ...rest: unknown[]) {
    return (query as (...args: unknown[]) => Promise<unknown>).call(this, sql === 'BEGIN TRANSACTION' ? 'BEGIN IMMEDIATE TRANSACTION' : sql, ...rest);
  } as QueryRunner['query'];
  runner[IMMEDIATE] = true;
}
