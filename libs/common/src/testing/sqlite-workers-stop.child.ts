/**
 * Child process of sqlite-workers-stop.int-spec.ts (run with an @swc/core require hook, never by jest).
 * Writes through a SqliteWriteWorker and runs a SqliteWalCheckpointer on the file `argv[2]`, stops both and
 * closes the DataSource, printing a line after each step. Nothing else keeps this process alive: a `stop()`
 * whose promise is left pending by an unreferenced worker lets Node exit before the next line.
 */
import 'reflect-metadata';
import { SqliteWalCheckpointer } from '../persistence/sqlite-wal-checkpointer';
import { SqliteWriteWorker } from '../persistence/sqlite-write-worker';
import { openTestDataSource } from './persistence-test-db';

async function main(): Promise<void> {
  const file = process.argv[2];
  const ds = await openTestDataSource({ type: 'better-sqlite3', database: file, enableWAL: true });
  const worker = SqliteWriteWorker.for(ds);
  if (!worker) throw new Error('no write worker for a WAL file database');
  await worker.transaction([{ sql: 'INSERT INTO cv_test_items (id, label) VALUES (?, ?)', params: ['a', 'x'] }]);
  const checkpointer = SqliteWalCheckpointer.start({ file, intervalMs: 10 });
  process.stdout.write('WRITTEN\n');
  await worker.stop();
  process.stdout.write('WRITE_WORKER_STOPPED\n');
  await checkpointer.stop();
  process.stdout.write('CHECKPOINTER_STOPPED\n');
  await ds.destroy();
  process.stdout.write('CLOSED\n');
}

main().catch((e: unknown) => {
  process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
