import { AuditQueryError } from '../errors/audit.errors';

export interface CursorPosition {
  order: 'asc' | 'desc';
  occurredAtMs: number;
  id: string;
}

export function encodeCursor(c: CursorPosition): string {
  return Buffer.from(JSON.stringify([c.order === 'asc' ? 'a' : 'd', c.occurredAtMs, c.id]), 'utf8').toString('base64url');
}

export function decodeCursor(cursor: string, order: 'asc' | 'desc'): CursorPosition {
  try {
    const v: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (
      Array.isArray(v) &&
      v.length === 3 &&
      (v[0] === 'a' || v[0] === 'd') &&
      Number.isSafeInteger(v[1]) &&
      typeof v[2] === 'string' &&
      v[2].length <= 36
    ) {
      const o = v[0] === 'a' ? 'asc' : 'desc';
      if (o !== order) throw new AuditQueryError('The cursor belongs to a query with another order');
      return { order: o, occurredAtMs: v[1] as number, id: v[2] };
    }
  } catch (e) {
    if (e instanceof AuditQueryError) throw e;
  }
  throw new AuditQueryError('Invalid cursor: pass back the nextCursor of the previous page unchanged');
}
