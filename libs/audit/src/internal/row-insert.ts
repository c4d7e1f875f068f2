import type { DataSource, EntityManager } from 'typeorm';
import { AuditLogEntry } from '../entities/audit-log-entry.entity';

/** The entity's properties in INSERT order; `rowParams` yields their values in the same order. */
const PROPERTIES = [
  'id',
  'tenantId',
  'sequence',
  'occurredAt',
  'action',
  'resource',
  'actorId',
  'actorIp',
  'userAgent',
  'result',
  'errorCode',
  'durationMs',
  'correlationId',
  'details',
  'previousHash',
  'hash',
] as const satisfies ReadonlyArray<keyof AuditLogEntry>;

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
      columns: PROPERTIES.map((p) => esc(meta.findColumnWithPropertyName(p)!.databaseName)).join(','),
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
 * Inserts audit rows with plain multi-row INSERTs. Audit rows are the one write that happens per
 * read, and TypeORM's insert builder cost more than the database's own work for them. The values
 * are those the entity's transformers would store (epoch ms, canonical JSON text); the integration
 * tests read every row back through the entity and re-hash it.
 */
export async function insertAuditRows(m: EntityManager, rows: InsertableRow[]): Promise<void> {
  const { table, columns, postgres } = targetOf(m.connection);
  for (let start = 0; start < rows.length; start += CHUNK) {
    const chunk = rows.slice(start, start + CHUNK);
    const params: unknown[] = [];
    const tuples = chunk.map((r) => {
      const first = params.length;
      params.push(...rowParams(r));
      return `(${PROPERTIES.map((_, i) => (postgres ? `$${first + i + 1}` : '?')).join(',')})`;
    });
    await m.query(`INSERT INTO ${table} (${columns}) VALUES ${tuples.join(',')}`, params);
  }
}
