import { initializeWithMigrations, SqliteWalCheckpointer } from '@app/common';
import type { DataSource, DataSourceOptions } from 'typeorm';
import { SQLITE_WAL_WORKER } from './database.options';

/**
 * The host's DataSource factory: the libs' `initializeWithMigrations` (migrations applied once, under a
 * per-schema advisory lock on PostgreSQL), plus the SQLite WAL checkpointer when configured.
 */
export async function initializeHostDataSource(options: DataSourceOptions): Promise<DataSource> {
  return withWalCheckpointer(await initializeWithMigrations(options));
}

/**
 * Opt-in (DATABASE_SQLITE_WAL_WORKER=true): a file SQLite database in WAL mode gets its checkpoints
 * copied by a worker thread (see `SqliteWalCheckpointer`): a commit that crosses the auto-checkpoint
 * threshold otherwise copies the pages and fsyncs in that commit — on the event loop for the main
 * connection's commits (and the audited reads' with DATABASE_SQLITE_WRITE_WORKER=false). The worker stops
 * before the connection closes. `:memory:` databases have no WAL. Off by default: in the host's profile
 * on a quiet machine the time in better-sqlite3's `run` went up (~34 → ~51 µs/request: the worker's
 * fsyncs delay the commits' own), though it went down on a loaded disk; beside the write worker
 * (default), alternating runs showed no difference in throughput or p99 (docs/BENCHMARKS.md).
 */
function withWalCheckpointer(dataSource: DataSource): DataSource {
  const options = dataSource.options;
  if (options.type !== 'better-sqlite3' || !options.enableWAL || !options.database || options.database === ':memory:') return dataSource;
  if (!(options as unknown as Record<string, unknown>)[SQLITE_WAL_WORKER]) return dataSource;
  // The connection keeps its own auto-checkpoint (DATABASE_SQLITE_WAL_AUTOCHECKPOINT, SQLite's 1000 pages by default):
  // it then only copies the tail the worker has not, and restarts the WAL. Beside this worker, 4000 once doubled the time
  // in `run` of the host's profile against SQLite's 1000 (a2c23a0, before the audit's write worker existed); this
  // option was measured at 1000 and has not been measured again at 4000.
  const checkpointer = SqliteWalCheckpointer.start({ file: options.database });
  const destroy = dataSource.destroy.bind(dataSource);
  dataSource.destroy = async () => {
    await checkpointer.stop();
    return destroy();
  };
  return dataSource;
}
