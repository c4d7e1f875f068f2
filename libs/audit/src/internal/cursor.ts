import { isCursorInstant, isCursorUuid, readPageCursor, writePageCursor } from '@app/common';
import { AuditQueryError } from '../errors/audit.errors';

/**
 * Keyset position of the last row of a page. `seq` pages one tenant's chain by sequence; `time`
 * pages by (occurredAt, id): across tenants, or one tenant's time range (see `AuditQueries.query`).
 */
export type CursorPosition =
  | { order: 'asc' | 'desc'; by: 'seq'; sequence: number }
  | { order: 'asc' | 'desc'; by: 'time'; occurredAtMs: number; id: string };

export function encodeCursor(c: CursorPosition): string {
  const o = c.order === 'asc' ? 'a' : 'd';
  return writePageCursor(c.by === 'seq' ? [o, 's', c.sequence] : [o, 't', c.occurredAtMs, c.id]);
}

export function decodeCursor(cursor: string, order: 'asc' | 'desc', by: 'seq' | 'time'): CursorPosition {
  const v = readPageCursor(cursor);
  if (Array.isArray(v) && (v[0] === 'a' || v[0] === 'd')) {
    const o = v[0] === 'a' ? 'asc' : 'desc';
    const b = v[1] === 's' ? 'seq' : v[1] === 't' ? 'time' : undefined;
    if (b && (o !== order || b !== by)) {
      throw new AuditQueryError('The cursor belongs to a query with another order or other filters; start again without it');
    }
    // Only what encodeCursor writes: sequences start at 1, ids are lower-case UUIDs (an upper-case one sorts
    // apart from its row in SQLite), instants are ones a Date holds (past them, an empty page).
    if (b === 'seq' && v.length === 3 && Number.isSafeInteger(v[2]) && (v[2] as number) >= 1) return { order: o, by: 'seq', sequence: v[2] as number };
    if (b === 'time' && v.length === 4 && isCursorInstant(v[2]) && isCursorUuid(v[3])) return { order: o, by: 'time', occurredAtMs: v[2], id: v[3] };
  }
  throw new AuditQueryError('Invalid cursor: pass back the nextCursor of the previous page unchanged');
}
