import type { KeyPage, KeyProperties } from '../keys.types';
import { invalid } from '../validation/key-request-checks';

/**
 * Where a list continues: `l` is the vault's own continuation token, `s` how many of that vault
 * page's matches were already returned (a tenant's page can end inside a vault page).
 */
export interface KeyPageCursor {
  l?: string;
  s: number;
}

export function keyPage(items: KeyProperties[], next: KeyPageCursor | undefined): KeyPage<KeyProperties> {
  return next ? { items, continuationToken: Buffer.from(JSON.stringify(next), 'utf8').toString('base64url') } : { items };
}

export function decodeKeyPageCursor(token: string | undefined): KeyPageCursor {
  if (token === undefined) return { s: 0 };
  try {
    if (typeof token !== 'string' || token.length > 4096) throw new Error('bad');
    const c = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as { l?: unknown; s?: unknown };
    if ((c.l !== undefined && typeof c.l !== 'string') || !Number.isInteger(c.s) || (c.s as number) < 0 || (c.s as number) > 25) throw new Error('bad');
    return { l: c.l as string | undefined, s: c.s as number };
  } catch {
    throw notThisListsToken();
  }
}

/** A continuation token this list never gave (hosts name the field as their callers sent it: `field` is `continuationToken`). */
export function notThisListsToken(): Error {
  return invalid('continuationToken', 'continuationToken is not a token of this list');
}
