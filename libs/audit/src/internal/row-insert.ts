import { insertPlainRows, plainInsertSqliteStatements, type PlainInsertOptions, type SqliteStatement, type StoredRow } from '@app/common';
import type { DataSource, EntityManager } from 'typeorm';
import { AuditLogEntry } from '../entities/audit-log-entry.entity';

/** A row ready to insert, with its details already in their stored (canonical JSON) form. */
export interface InsertableRow {
  row: AuditLogEntry;
  detailsJson: string | null;
}

/** The values the entity's transformers would store: epoch ms, the canonical JSON already hashed. */
const stored = ({ row: r, detailsJson }: InsertableRow): StoredRow<AuditLogEntry> => ({
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
});

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
  return insertPlainRows(m, AuditLogEntry, rows, stored, options);
}

/** SQLite: the statements `insertAuditRows` would run, for the write worker's connection (one transaction). */
export function auditRowSqliteStatements(ds: DataSource, rows: InsertableRow[]): SqliteStatement[] {
  return plainInsertSqliteStatements(ds, AuditLogEntry, rows, stored);
}
