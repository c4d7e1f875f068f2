import type { AuditLogEntry } from '../entities/audit-log-entry.entity';
import type { AuditLogEntryView, AuditResult } from '../interfaces/audit-event.interface';

/** A stored row as callers see it: absent optional fields as explicit nulls. */
export function toView(row: AuditLogEntry): AuditLogEntryView {
  return {
    id: row.id,
    sequence: row.sequence,
    occurredAt: row.occurredAt,
    action: row.action,
    tenantId: row.tenantId,
    resource: row.resource,
    actorId: row.actorId,
    actorIp: row.actorIp ?? null,
    userAgent: row.userAgent ?? null,
    result: row.result as AuditResult,
    errorCode: row.errorCode ?? null,
    durationMs: row.durationMs ?? null,
    correlationId: row.correlationId ?? null,
    details: row.details ?? null,
    previousHash: row.previousHash,
    hash: row.hash,
  };
}
