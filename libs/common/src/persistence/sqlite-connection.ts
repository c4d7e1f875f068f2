import type { DataSource } from 'typeorm';

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
