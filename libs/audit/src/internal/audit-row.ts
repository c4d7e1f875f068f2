import type { DataSource } from 'typeorm';
import { AuditLogEntry } from '../entities/audit-log-entry.entity';
import type { HashableEntry } from './canonical';

/**
 * One `cv_audit_log` row as the drivers return it to `chainPageSql`'s SELECT (columns aliased to the
 * entity's property names): BIGINT comes back as a string from pg and as a number from better-sqlite3;
 * details is the stored TEXT.
 */
export interface AuditRawRow {
  id: string;
  tenantId: string;
  sequence: string | number;
  occurredAt: string | number;
  action: string;
  resource: string;
  actorId: string;
  actorIp: string | null;
  userAgent: string | null;
  result: string;
  errorCode: string | null;
  durationMs: string | number | null;
  correlationId: string | null;
  details: string | null;
  previousHash: string;
  hash: string;
}

/**
 * A row of a chain as verify reads it: every field of `AuditLogEntry` as TypeORM hydrates it, except
 * `details`, kept as its stored text (`detailsJson`): the writer stores exactly the canonical JSON it
 * hashed (chain-link.ts), so hashing that text needs no parse and re-serialisation.
 */
export interface ChainRow extends Omit<HashableEntry, 'details'> {
  details: null;
  detailsJson: string | null;
  hash: string;
}

const pageStatements = new WeakMap<DataSource, string>();

/**
 * `SELECT` of every column of a chain's rows after a sequence, in chain order, at most a limit
 * (parameters: tenant, after, limit), with names from the entity metadata: plain SQL, because
 * TypeORM's `find` hydration cost verify more than the database's read and the hashing together.
 */
export function chainPageSql(ds: DataSource): string {
  let sql = pageStatements.get(ds);
  if (!sql) {
    const meta = ds.getMetadata(AuditLogEntry);
    const e = (n: string) => ds.driver.escape(n);
    const col = (p: keyof AuditLogEntry) => e(meta.findColumnWithPropertyName(p)!.databaseName);
    const table = meta.tablePath.split('.').map(e).join('.');
    const select = meta.columns.filter((c) => c.isSelect).map((c) => `${e(c.databaseName)} AS "${c.propertyName}"`).join(', ');
    const [p1, p2, p3] = ds.options.type === 'postgres' ? ['$1', '$2', '$3'] : ['?', '?', '?'];
    sql = `SELECT ${select} FROM ${table} WHERE ${col('tenantId')} = ${p1} AND ${col('sequence')} > ${p2} ORDER BY ${col('sequence')} ASC LIMIT ${p3}`;
    pageStatements.set(ds, sql);
  }
  return sql;
}

/**
 * What TypeORM's hydration (with the entity's transformers) makes of each column, `details` aside,
 * without its per-row metadata walk (audit-row.int-spec.ts checks both agree on both databases).
 */
export function chainRowFromRaw(r: AuditRawRow): ChainRow {
  return {
    id: r.id,
    tenantId: r.tenantId,
    sequence: Number(r.sequence),
    occurredAt: new Date(Number(r.occurredAt)),
    action: r.action,
    resource: r.resource,
    actorId: r.actorId,
    actorIp: r.actorIp,
    userAgent: r.userAgent,
    result: r.result,
    errorCode: r.errorCode,
    durationMs: r.durationMs === null ? null : Number(r.durationMs),
    correlationId: r.correlationId,
    details: null,
    detailsJson: r.details,
    previousHash: r.previousHash,
    hash: r.hash,
  };
}
