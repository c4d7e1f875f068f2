import { insertPlainRows, plainInsertSqliteStatements, type PlainInsertOptions, type SqliteStatement, type StoredRow } from '@app/common';
import type { DataSource, EntityManager } from 'typeorm';
import { AuditLogEntry } from '../entities/audit-log-entry.entity';
import { queryIndexesDeferred } from './query-index-catch-up';

/** A row ready to insert, with its details already in their stored (canonical JSON) form. */
export interface InsertableRow {
  row: AuditLogEntry;
  detailsJson: string | null;
}

/**
 * The values the entity's transformers would store: epoch ms, the canonical JSON already hashed; on SQLite
 * the row pending for the query indexes (`queryPending`, see query-index-catch-up.ts).
 */
const stored = ({ row: r, detailsJson }: InsertableRow, queryPending: 1 | null): StoredRow<AuditLogEntry> => ({
  id: r.id,
  tenantId: r.tenantId,
  sequence: r.sequence,
  occurredAt: r.occurredAt.getTime(),
  action: r.action,
  resource: r.resource,
  actorId: r.actorId,
  actorIp: r.actorIp,
  userAgent: r.userAgent,
  result: r.result,
  errorCode: r.errorCode,
  durationMs: r.durationMs,
  correlationId: r.correlationId,
  details: detailsJson,
  previousHash: r.previousHash,
  hash: r.hash,
  queryPending,
});
const storedPending = (r: InsertableRow) => stored(r, 1);
const storedIndexed = (r: InsertableRow) => stored(r, null);

/**
 * Inserts audit rows with plain SQL (`insertPlainRows`): audit rows are the one write that happens
 * per read, and TypeORM's insert builder cost more than the database's own work for them. The
 * integration tests read every row back through the entity and re-hash it.
 *
 * On PostgreSQL this MUST stay one statement per batch: the writer's optimistic append sends a batch as
 * one autocommit INSERT and, on a (tenant, sequence) collision, redoes the whole batch on the locked
 * path — chunks committed before a colliding chunk would be written twice.
 */
export function insertAuditRows(m: EntityManager, rows: InsertableRow[], options?: PlainInsertOptions): Promise<void> {
  return insertPlainRows(m, AuditLogEntry, rows, queryIndexesDeferred(m.connection) ? storedPending : storedIndexed, options);
}

/** SQLite: the statements `insertAuditRows` would run, for the write worker's connection (one transaction). */
export function auditRowSqliteStatements(ds: DataSource, rows: InsertableRow[]): SqliteStatement[] {
  return plainInsertSqliteStatements(ds, AuditLogEntry, rows, storedPending);
}
