import { readPageCursor, writePageCursor } from '@app/common';
import type { KeyPage } from '../keys.types';
import { invalid } from '../validation/key-request-checks';

/**
 * Where a list continues: `l` is the vault's own continuation token, `s` how many of that vault
 * page's matches were already returned (a tenant's page can end inside a vault page).
 */
export interface KeyPageCursor {
  l?: string;
  s: number;
}

export function keyPage<T>(items: T[], next: KeyPageCursor | undefined): KeyPage<T> {
  return next ? { items, continuationToken: writePageCursor({ l: next.l, s: next.s }) } : { items };
}

export function decodeKeyPageCursor(token: string | undefined): KeyPageCursor {
  if (token === undefined) return { s: 0 };
  const c = typeof token !== 'string' || token.length > 4096 ? undefined : readPageCursor(token);
  // Only what keyPage writes: `s` and, when there is one, `l` — no other member.
  if (typeof c === 'object' && c !== null && !Array.isArray(c)) {
    const { l, s, ...rest } = c as { l?: unknown; s?: unknown };
    if ((l === undefined || typeof l === 'string') && Number.isInteger(s) && (s as number) >= 0 && (s as number) <= 25 && Object.keys(rest).length === 0) {
      return { l, s: s as number };
    }
  }
  throw notThisListsToken();
}

/** A continuation token this list never gave (hosts name the field as their callers sent it: `field` is `continuationToken`). */
export function notThisListsToken(): Error {
  return invalid('continuationToken', 'continuationToken is not a token of this list');
}
