import { Column, Entity, Index, PrimaryColumn, ValueTransformer } from 'typeorm';
import { canonicalJson } from '../internal/canonical';

/** `bigint` columns come back as strings from pg and as numbers from SQLite; we use numbers (< 2^53). */
const bigintNumber: ValueTransformer = {
  to: (v: number | null | undefined) => v,
  from: (v: string | number | null) => (v === null || v === undefined ? v : Number(v)),
};

/** Dates as epoch milliseconds: exact, portable, and the same on both databases. */
const epochMs: ValueTransformer = {
  to: (v: Date | null | undefined) => (v instanceof Date ? v.getTime() : v),
  from: (v: string | number | null) => (v === null || v === undefined ? v : new Date(Number(v))),
};

/** Details stored as canonical JSON text, so re-reading and re-hashing is byte-stable. */
const jsonText: ValueTransformer = {
  to: (v: Record<string, unknown> | null | undefined) => (v === null || v === undefined ? null : canonicalJson(v)),
  from: (v: string | null) => (v === null || v === undefined ? null : (JSON.parse(v) as Record<string, unknown>)),
};

/** Table and index names; the migrations leave exactly these. */
export const AUDIT_TABLE = 'cv_audit_log';
export const AUDIT_INDEX = {
  chain: 'UQ_cv_audit_log_tenant_sequence',
  tenantTime: 'IDX_cv_audit_log_tenant_time',
  tenantResource: 'IDX_cv_audit_log_tenant_resource_seq',
  tenantActor: 'IDX_cv_audit_log_tenant_actor_seq',
  tenantAction: 'IDX_cv_audit_log_tenant_action_seq',
  /** SQLite only: the rows not yet in the four query indexes above (see internal/query-index-catch-up.ts). */
  queryPending: 'IDX_cv_audit_log_query_pending',
} as const;

/**
 * One audit row, a link of its tenant's hash chain. Rows are append-only: nothing updates them,
 * and only retention deletes them (a prefix of a chain, leaving a checkpoint row).
 */
@Entity({ name: AUDIT_TABLE })
@Index(AUDIT_INDEX.chain, ['tenantId', 'sequence'], { unique: true })
@Index(AUDIT_INDEX.tenantTime, ['tenantId', 'occurredAt', 'id'])
// A tenant's rows are queried in chain order: the filter indexes are too (then occurredAt, checked in the index).
@Index(AUDIT_INDEX.tenantResource, ['tenantId', 'resource', 'sequence', 'occurredAt'])
@Index(AUDIT_INDEX.tenantActor, ['tenantId', 'actorId', 'sequence', 'occurredAt'])
@Index(AUDIT_INDEX.tenantAction, ['tenantId', 'action', 'sequence', 'occurredAt'])
// On SQLite the four query indexes are partial (`query_pending IS NULL`), caught up off the request's commit,
// and this one holds the rows they still lack; PostgreSQL has no such index. Left to the migrations.
@Index(AUDIT_INDEX.queryPending, { synchronize: false })
// No (occurredAt, id) index: ids are UUIDv7 of occurredAt, so the primary key serves queries across tenants.
export class AuditLogEntry {
  @PrimaryColumn({ type: 'varchar', length: 36 })
  id: string;

  @Column({ name: 'tenant_id', type: 'varchar', length: 128 })
  tenantId: string;

  @Column({ type: 'bigint', transformer: bigintNumber })
  sequence: number;

  @Column({ name: 'occurred_at', type: 'bigint', transformer: epochMs })
  occurredAt: Date;

  @Column({ type: 'varchar', length: 64 })
  action: string;

  @Column({ type: 'varchar', length: 512 })
  resource: string;

  @Column({ name: 'actor_id', type: 'varchar', length: 256 })
  actorId: string;

  @Column({ name: 'actor_ip', type: 'varchar', length: 64, nullable: true })
  actorIp: string | null;

  @Column({ name: 'user_agent', type: 'varchar', length: 512, nullable: true })
  userAgent: string | null;

  @Column({ type: 'varchar', length: 16 })
  result: string;

  @Column({ name: 'error_code', type: 'varchar', length: 64, nullable: true })
  errorCode: string | null;

  @Column({ name: 'duration_ms', type: 'integer', nullable: true })
  durationMs: number | null;

  @Column({ name: 'correlation_id', type: 'varchar', length: 128, nullable: true })
  correlationId: string | null;

  @Column({ type: 'text', nullable: true, transformer: jsonText })
  details: Record<string, unknown> | null;

  @Column({ name: 'previous_hash', type: 'varchar', length: 64 })
  previousHash: string;

  @Column({ type: 'varchar', length: 64 })
  hash: string;

  /**
   * SQLite: 1 from the insert until the row is in the query indexes, then NULL; always NULL on PostgreSQL.
   * Not part of the row's hash, not read back (see internal/query-index-catch-up.ts).
   */
  @Column({ name: 'query_pending', type: 'integer', nullable: true, select: false, update: false })
  queryPending?: number | null;
}
