import { AuditLogEntry } from '../entities/audit-log-entry.entity';
import { GENESIS_HASH, HashableEntry, canonicalJson, computeEntryHash } from './canonical';
import type { PreparedEvent } from './prepare-event';
import type { InsertableRow } from './row-insert';
import { uuidV7 } from './uuid-v7';

/**
 * Links `events` onto a chain whose newest row is `head` (null: an empty chain): each gets an id,
 * the next sequence, its predecessor's hash and its own.
 */
export function linkRows(events: PreparedEvent[], head: { sequence: number; hash: string } | null): InsertableRow[] {
  let h = head;
  return events.map((e): InsertableRow => {
    const entry: HashableEntry = {
      ...e,
      id: uuidV7(e.occurredAt.getTime()),
      sequence: (h?.sequence ?? 0) + 1,
      previousHash: h?.hash ?? GENESIS_HASH,
    };
    // Canonical JSON is both what the hash covers and what the details column stores.
    const detailsJson = e.details === null || e.details === undefined ? null : canonicalJson(e.details);
    const row = Object.assign(new AuditLogEntry(), entry, { hash: computeEntryHash(entry, detailsJson ?? 'null') });
    h = row;
    return { row, detailsJson };
  });
}
