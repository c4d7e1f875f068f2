import type { DataSource, EntityManager } from 'typeorm';
import { AuditLogEntry } from '../entities/audit-log-entry.entity';

/**
 * The entity's properties in INSERT order (`rowParams` yields their values in the same order), with
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
  /** PostgreSQL: `json_to_recordset` column definitions (c0, c1, ... in INSERT order). */
  recordset: string;
  postgres: boolean;
}

const targets = new WeakMap<DataSource, Target>();

/** Table (schema-qualified when configured) and column names from the entity metadata, quoted by the driver. */
function targetOf(ds: DataSource): Target {
  let t = targets.get(ds);
  if (!t) {
    const meta = ds.getMetadata(AuditLogEntry);
    const esc = (name: string) => ds.driver.escape(name);
    t = {
      table: meta.tablePath.split('.').map(esc).join('.'),
      columns: COLUMNS.map(([p]) => esc(meta.findColumnWithPropertyName(p)!.databaseName)).join(','),
      // Short positional keys (c0, c1, ...) keep the JSON batch small.
      recordset: COLUMNS.map(([, type], i) => `c${i} ${type}`).join(','),
      postgres: ds.options.type === 'postgres',
    };
    targets.set(ds, t);
  }
  return t;
}

function rowParams({ row: r, detailsJson }: InsertableRow): unknown[] {
  return [
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
  ];
}

/**
 * Inserts audit rows with plain SQL. Audit rows are the one write that happens per read, and
 * TypeORM's insert builder cost more than the database's own work for them. The values are those
 * the entity's transformers would store (epoch ms, canonical JSON text); the integration tests read
 * every row back through the entity and re-hash it.
 *
 * - SQLite: multi-row INSERTs of `CHUNK` rows (bind parameters are cheap in-process).
 * - PostgreSQL: ONE statement per batch whose single parameter is the batch as JSON, unpacked by
 *   `json_to_recordset` — serialising thousands of bind parameters cost more in Node than the insert.
 */
export async function insertAuditRows(m: EntityManager, rows: InsertableRow[]): Promise<void> {
  const { table, columns, recordset, postgres } = targetOf(m.connection);
  if (rows.length === 0) return;
  if (postgres) {
    const batch = JSON.stringify(rows.map((r) => Object.fromEntries(rowParams(r).map((v, i) => [`c${i}`, v]))));
    await m.query(`INSERT INTO ${table} (${columns}) SELECT * FROM json_to_recordset($1::json) AS x(${recordset})`, [batch]);
    return;
  }
  for (let start = 0; start < rows.length; start += CHUNK) {
    const chunk = rows.slice(start, start + CHUNK);
    const params = chunk.flatMap(rowParams);
    const tuple = `(${COLUMNS.map(() => '?').join(',')})`;
    await m.query(`INSERT INTO ${table} (${columns}) VALUES ${chunk.map(() => tuple).join(',')}`, params);
  }
}
