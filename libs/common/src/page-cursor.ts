/**
 * Page cursors: a JSON value, base64url — opaque to callers, so a cursor is only ever one the server wrote.
 * Decoding is strict: Node's base64url decoder skips characters it does not know and JSON.parse takes any
 * spacing, number form or escape, so a cursor is taken only when writing its value again gives it back
 * exactly; anything else would be read as some other position (a repeated row, an empty page).
 */
export function writePageCursor(value: unknown): string {
  return Buffer.from(JSON.stringify(value), 'utf8').toString('base64url');
}

/** The value of a cursor `writePageCursor` wrote, else undefined. Callers still check its shape. */
export function readPageCursor(cursor: string): unknown {
  if (typeof cursor !== 'string' || cursor.length > MAX_CURSOR_LENGTH) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    return undefined;
  }
  return writePageCursor(value) === cursor ? value : undefined;
}

/** Far above any cursor written here; bounds the work of decoding one a client made up. */
const MAX_CURSOR_LENGTH = 8192;

/** Epoch milliseconds a Date holds (±8.64e15, ECMA-262 §21.4.1.1), from 1970 on: the instants cursors carry. */
export function isCursorInstant(ms: unknown): ms is number {
  return Number.isSafeInteger(ms) && (ms as number) >= 0 && (ms as number) <= 8_640_000_000_000_000;
}

/** A row id as the server writes it: a UUID in lower case (an upper-case one compares differently in SQLite). */
export function isCursorUuid(id: unknown): id is string {
  return typeof id === 'string' && /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(id);
}
