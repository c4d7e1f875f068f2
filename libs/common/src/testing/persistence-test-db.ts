import { DataSource, DataSourceOptions } from 'typeorm';
import { OUTBOX_ENTITIES, OUTBOX_MIGRATIONS } from '../outbox';
import type { TransactionRunner } from '../persistence/transaction-runner';

/**
 * Test-only (not exported from the lib): a DataSource with the outbox migration run and two plain
 * tables, `cv_test_items` (the "change" a transaction makes) and `cv_test_effects` (what an
 * idempotent handler does, unique per event id).
 */
export async function openTestDataSource(options: DataSourceOptions): Promise<DataSource> {
  const ds = await new DataSource({ ...options, entities: OUTBOX_ENTITIES, migrations: OUTBOX_MIGRATIONS, migrationsRun: true } as DataSourceOptions).initialize();
  await ds.query('CREATE TABLE IF NOT EXISTS cv_test_items (id varchar(64) PRIMARY KEY, label varchar(64) NOT NULL)');
  await ds.query('CREATE TABLE IF NOT EXISTS cv_test_effects (event_id varchar(36) PRIMARY KEY, applied_by varchar(64) NOT NULL)');
  return ds;
}

/** `$1, $2` on PostgreSQL, `?` on SQLite. */
export function params(ds: DataSource, n: number): string {
  return Array.from({ length: n }, (_, i) => (ds.options.type === 'postgres' ? `$${i + 1}` : '?')).join(', ');
}

export async function countRows(ds: DataSource, table: 'cv_test_items' | 'cv_test_effects' | 'cv_outbox', manager = ds.manager): Promise<number> {
  const rows: Array<{ n: string | number }> = await manager.query(`SELECT count(*) AS n FROM ${table}`);
  return Number(rows[0].n);
}

export function deferred<T = void>() {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/**
 * An idempotent effect: records `eventId` under a unique key, so a second delivery of the same event
 * changes nothing.
 */
export async function applyEffectOnce(runner: TransactionRunner, eventId: string, appliedBy: string): Promise<void> {
  const ds = runner.dataSource;
  await runner.run(() =>
    runner.manager.query(`INSERT INTO cv_test_effects (event_id, applied_by) VALUES (${params(ds, 2)}) ON CONFLICT (event_id) DO NOTHING`, [
      eventId,
      appliedBy,
    ]),
  );
}
