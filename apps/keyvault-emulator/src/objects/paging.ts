import { errors } from '../errors';

export const DEFAULT_PAGE_SIZE = 25;
export const MAX_PAGE_SIZE = 25;

/** Parses `maxresults`: absent → 25; otherwise an integer 1..25 or a 400 like Azure. */
export function parseMaxResults(raw: string | null): number {
  if (raw === null || raw === '') return DEFAULT_PAGE_SIZE;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > MAX_PAGE_SIZE) {
    throw errors.badParameter(`Invalid value for maxresults: ${raw}. The value must be between 1 and ${MAX_PAGE_SIZE}.`);
  }
  return n;
}

/** A skip token is an opaque marker: the sort key of the last item on the previous page. */
export function encodeSkipToken(lastKey: string): string {
  return Buffer.from(JSON.stringify({ NextMarker: lastKey, TargetLocation: 0 }), 'utf8').toString('base64url');
}

export function decodeSkipToken(token: string): string {
  try {
    const parsed = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as { NextMarker?: unknown };
    if (typeof parsed.NextMarker === 'string' && parsed.NextMarker.length > 0) return parsed.NextMarker;
  } catch {
    // fall through
  }
  throw errors.badParameter('The $skiptoken is invalid.');
}

export interface Page<T> {
  items: T[];
  /** Marker for the next page, or undefined on the last page. */
  nextMarker?: string;
}

/** Returns the page after `marker` (exclusive) from items sorted by `key`. */
export function paginate<T>(sorted: readonly T[], key: (item: T) => string, pageSize: number, marker?: string): Page<T> {
  let start = 0;
  if (marker !== undefined) {
    // binary search for the first key > marker
    let lo = 0;
    let hi = sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (key(sorted[mid]) <= marker) lo = mid + 1;
      else hi = mid;
    }
    start = lo;
  }
  const items = sorted.slice(start, start + pageSize);
  const more = start + pageSize < sorted.length;
  return { items, nextMarker: more && items.length > 0 ? key(items[items.length - 1]) : undefined };
}
