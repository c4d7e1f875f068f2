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
  const body = c.by === 'seq' ? [o, 's', c.sequence] : [o, 't', c.occurredAtMs, c.id];
  return Buffer.from(JSON.stringify(body), 'utf8').toString('base64url');
}

export function decodeCursor(cursor: string, order: 'asc' | 'desc', by: 'seq' | 'time'): CursorPosition {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    v = undefined;
  }
  if (Array.isArray(v) && (v[0] === 'a' || v[0] === 'd')) {
    const o = v[0] === 'a' ? 'asc' : 'desc';
    const b = v[1] === 's' ? 'seq' : v[1] === 't' ? 'time' : undefined;
    if (b && (o !== order || b !== by)) {
      throw new AuditQueryError('The cursor belongs to a query with another order or other filters; start again without it');
    }
    if (b === 'seq' && v.length === 3 && Number.isSafeInteger(v[2])) return { order: o, by: 'seq', sequence: v[2] as number };
    if (b === 'time' && v.length === 4 && Number.isSafeInteger(v[2]) && typeof v[3] === 'string' && v[3].length <= 36) {
      return { order: o, by: 'time', occurredAtMs: v[2] as number, id: v[3] };
    }
  }
  throw new AuditQueryError('Invalid cursor: pass back the nextCursor of the previous page unchanged');
}
