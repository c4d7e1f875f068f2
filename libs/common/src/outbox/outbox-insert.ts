import type { DataSource, EntityManager } from 'typeorm';
import { OutboxEventEntity } from './outbox-event.entity';

/** A new outbox row, its payload already serialised (validation measured it). */
export interface NewOutboxRow {
  id: string;
  name: string;
  tenantId: string | null;
  payloadJson: string;
  createdAtMs: number;
}

/** Entity properties in INSERT order, with the PostgreSQL type each is read as from the JSON batch. */
const COLUMNS = [
  ['id', 'varchar'],
  ['name', 'varchar'],
  ['tenantId', 'varchar'],
  ['payload', 'text'],
  ['createdAt', 'bigint'],
  ['availableAt', 'bigint'],
  ['attempts', 'integer'],
  ['lastError', 'varchar'],
  ['deliveredAt', 'bigint'],
] as const satisfies ReadonlyArray<readonly [keyof OutboxEventEntity, string]>;

/** Rows per SQLite statement: full chunks share one prepared statement. */
const SQLITE_CHUNK = 64;

const statements = new WeakMap<DataSource, { table: string; columns: string; recordset: string; postgres: boolean }>();

function statementOf(ds: DataSource) {
  let s = statements.get(ds);
  if (!s) {
    const meta = ds.getMetadata(OutboxEventEntity);
    const quote = (name: string) => ds.driver.escape(name);
    s = {
      table: meta.tablePath.split('.').map(quote).join('.'),
      columns: COLUMNS.map(([property]) => quote(meta.findColumnWithPropertyName(property)!.databaseName)).join(','),
      recordset: COLUMNS.map(([, type], i) => `c${i} ${type}`).join(','),
      postgres: ds.options.type === 'postgres',
    };
    statements.set(ds, s);
  }
  return s;
}

/** The values the entity's transformers would store, in `COLUMNS` order (a new row: not attempted, not delivered). */
const values = (r: NewOutboxRow): unknown[] => [r.id, r.name, r.tenantId, r.payloadJson, r.createdAtMs, r.createdAtMs, 0, null, null];

/**
 * Inserts new outbox rows with plain SQL in `m`'s transaction: TypeORM's insert builder cost more
 * than the database's work for a batch of events (parameter naming and escaping per value). SQLite:
 * multi-row INSERTs; PostgreSQL: one statement whose single parameter is the batch as JSON.
 */
export async function insertOutboxRows(m: EntityManager, rows: NewOutboxRow[]): Promise<void> {
  if (!rows.length) return;
  const { table, columns, recordset, postgres } = statementOf(m.connection);
  if (postgres) {
    const batch = JSON.stringify(rows.map((r) => Object.fromEntries(values(r).map((v, i) => [`c${i}`, v]))));
    await m.query(`INSERT INTO ${table} (${columns}) SELECT * FROM json_to_recordset($1::json) AS x(${recordset})`, [batch]);
    return;
  }
  const tuple = `(${COLUMNS.map(() => '?').join(',')})`;
  for (let i = 0; i < rows.length; i += SQLITE_CHUNK) {
    const chunk = rows.slice(i, i + SQLITE_CHUNK);
    await m.query(`INSERT INTO ${table} (${columns}) VALUES ${chunk.map(() => tuple).join(',')}`, chunk.flatMap(values));
  }
}
