import { AuditLogEntry } from '../entities/audit-log-entry.entity';
import { GENESIS_HASH, computeEntryHash, canonicalDetails } from './canonical';
import type { PreparedEvent } from './prepare-event';
import type { InsertableRow } from './row-insert';
import { uuidV7 } from './uuid-v7';

/**
 * Links `events` onto a chain whose newest row is `head` (null: an empty chain): each gets an id,
 * the next sequence, its predecessor's hash and its own.
 */
export function linkRows(events: PreparedEvent[], head: { sequence: number; hash: string } | null): InsertableRow[] {
  let sequence = head?.sequence ?? 0;
  let previousHash = head?.hash ?? GENESIS_HASH;
  const out: InsertableRow[] = new Array(events.length);
  for (let i = 0; i < events.length; i++) {
    const e = events[i];
    // Field by field, no object spread: this runs once per audit row, and spreading the event cost
    // more than hashing it.
    const row = new AuditLogEntry();
    row.id = uuidV7(e.occurredAt.getTime());
    row.tenantId = e.tenantId;
    row.sequence = ++sequence;
    row.occurredAt = e.occurredAt;
    row.action = e.action;
    row.resource = e.resource;
    row.actorId = e.actorId;
    row.actorIp = e.actorIp;
    row.userAgent = e.userAgent;
    row.result = e.result;
    row.errorCode = e.errorCode;
    row.durationMs = e.durationMs;
    row.correlationId = e.correlationId;
    row.details = e.details;
    row.previousHash = previousHash;
    // Canonical JSON is both what the hash covers and what the details column stores (computed once
    // for a cached read's details, whose frozen sanitised object every read of it shares).
    const detailsJson = e.details === null || e.details === undefined ? null : canonicalDetails(e.details);
    row.hash = previousHash = computeEntryHash(row, detailsJson ?? 'null');
    out[i] = { row, detailsJson };
  }
  return out;
}
