import type { DataSource, EntityManager } from 'typeorm';
import { AuditLogEntry } from '../entities/audit-log-entry.entity';

/**
 * The entity's properties in INSERT order (`pushParams` writes their values in the same order), with
 * the PostgreSQL type each value is read as from the JSON batch.
 */
const COLUMNS = [
  ['id', 'varchar'],
  ['tenantId', 'varchar'],
  ['sequence', 'bigint'],
  ['occurredAt', 'bigint'],
  ['action', 'varchar'],
  ['resource', 'varchar'],
  ['actorId', 'varchar'],
  ['actorIp', 'varchar'],
  ['userAgent', 'varchar'],
  ['result', 'varchar'],
  ['errorCode', 'varchar'],
  ['durationMs', 'integer'],
  ['correlationId', 'varchar'],
  ['details', 'text'],
  ['previousHash', 'varchar'],
  ['hash', 'varchar'],
] as const satisfies ReadonlyArray<readonly [keyof AuditLogEntry, string]>;

/** Rows per statement: one prepared (and cached) statement shape for full chunks, few bind parameters. */
const CHUNK = 64;

/** A row ready to insert, with its details already in their stored (canonical JSON) form. */
export interface InsertableRow {
  row: AuditLogEntry;
  detailsJson: string | null;
}

interface Target {
  table: string;
  columns: string;
  /** PostgreSQL: the select list reading each row's JSON array (`(x->>0)::varchar, ...`); null on SQLite. */
  recordset: string | null;
  /** SQLite: the VALUES list of `n` rows (cached per n, so each statement text is built once). */
  tuples: (n: number) => string;
}

const targets = new WeakMap<DataSource, Target>();

function valuesLists(): (n: number) => string {
  const tuple = `(${COLUMNS.map(() => '?').join(',')})`;
  const cache = new Map<number, string>();
  return (n) => {
    let v = cache.get(n);
    if (v === undefined) {
      v = new Array<string>(n).fill(tuple).join(',');
      cache.set(n, v);
    }
    return v;
  };
}

/** Table (schema-qualified when configured) and column names from the entity metadata, quoted by the driver. */
function targetOf(ds: DataSource): Target {
  let t = targets.get(ds);
  if (!t) {
    const meta = ds.getMetadata(AuditLogEntry);
    const esc = (name: string) => ds.driver.escape(name);
    t = {
      table: meta.tablePath.split('.').map(esc).join('.'),
      columns: COLUMNS.map(([p]) => esc(meta.findColumnWithPropertyName(p)!.databaseName)).join(','),
      recordset: ds.options.type === 'postgres' ? COLUMNS.map(([, type], i) => `(x->>${i})::${type}`).join(',') : null,
      tuples: valuesLists(),
    };
    targets.set(ds, t);
  }
  return t;
}

/** Appends a row's values to `out` in INSERT order (no per-row array: this runs once per audit row). */
function pushParams(out: unknown[], { row: r, detailsJson }: InsertableRow): void {
  out.push(
    r.id,
    r.tenantId,
    r.sequence,
    r.occurredAt.getTime(),
    r.action,
    r.resource,
    r.actorId,
    r.actorIp,
    r.userAgent,
    r.result,
    r.errorCode,
    r.durationMs,
    r.correlationId,
    detailsJson,
    r.previousHash,
    r.hash,
  );
}

/**
 * Inserts audit rows with plain SQL. Audit rows are the one write that happens per read, and
 * TypeORM's insert builder cost more than the database's own work for them. The values are those
 * the entity's transformers would store (epoch ms, canonical JSON text); the integration tests read
 * every row back through the entity and re-hash it.
 *
 * - SQLite: multi-row INSERTs of `CHUNK` rows (bind parameters are cheap in-process).
 * - PostgreSQL: ONE statement per batch whose single parameter is the batch as JSON (one array per
 *   row), unpacked by `json_array_elements` — serialising thousands of bind parameters cost more in
 *   Node than the insert.
 */
export async function insertAuditRows(m: EntityManager, rows: InsertableRow[]): Promise<void> {
  const { table, columns, recordset, tuples } = targetOf(m.connection);
  if (rows.length === 0) return;
  if (recordset) {
    // Rows as JSON arrays, not objects: one flat array per row is the cheapest thing to build and stringify.
    const batch: unknown[][] = new Array(rows.length);
    for (let i = 0; i < rows.length; i++) {
      const values: unknown[] = [];
      pushParams(values, rows[i]);
      batch[i] = values;
    }
    await m.query(`INSERT INTO ${table} (${columns}) SELECT ${recordset} FROM json_array_elements($1::json) AS x`, [JSON.stringify(batch)]);
    return;
  }
  for (let start = 0; start < rows.length; start += CHUNK) {
    const end = Math.min(start + CHUNK, rows.length);
    const params: unknown[] = [];
    for (let i = start; i < end; i++) pushParams(params, rows[i]);
    await m.query(`INSERT INTO ${table} (${columns}) VALUES ${tuples(end - start)}`, params);
  }
}
