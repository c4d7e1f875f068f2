import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { exactArrayBuffer } from '../internal/packed-read';

const IV_BYTES = 12;
const TAG_BYTES = 16;
const KEY_BYTES = 32;
/**
 * Format marker, in the entry and in the AAD, so another scheme can never be confused with this one.
 * c3: reads cached packed (an ArrayBuffer), the row's columns tagged binary; a c1 entry (a read as an object) or
 * a c2 one (the row as a JSON tuple) is a miss for this version.
 */
const SCHEME = 'c3';
const KEY_ID = /^[A-Za-z0-9-]{1,64}$/;

/** A cache-entry key: the vault secret version it came from (recorded in each entry) and its 32 bytes. */
export interface CacheEntryKey {
  id: string;
  key: Buffer;
}

/** The AAD binds an entry to its cache key and key id: an entry copied under another key does not open. */
function aad(keyId: string, cacheKey: string): Buffer {
  return Buffer.from(JSON.stringify(['cv-cache', SCHEME, keyId, cacheKey]), 'utf8');
}

/** AES-256-GCM with a fresh IV: `c1.<keyId>.<iv>.<tag>.<ciphertext>` (base64url parts). */
export function sealCacheEntry(key: CacheEntryKey, cacheKey: string, plaintext: string): string {
  if (key.key.length !== KEY_BYTES || !KEY_ID.test(key.id)) throw new Error('cache key must be 32 bytes with a [A-Za-z0-9-] id');
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key.key, iv, { authTagLength: TAG_BYTES });
  cipher.setAAD(aad(key.id, cacheKey));
  const ct = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return [SCHEME, key.id, iv.toString('base64url'), cipher.getAuthTag().toString('base64url'), ct.toString('base64url')].join('.');
}

/** The key id an entry names (to fetch that key version), or null when the entry is not one of ours. */
export function cacheEntryKeyId(sealed: string): string | null {
  const parts = sealed.split('.');
  return parts.length === 5 && parts[0] === SCHEME && KEY_ID.test(parts[1]) ? parts[1] : null;
}

/** The plaintext, or null when anything does not match (key, cache key, a byte): the caller treats it as a miss. */
export function openCacheEntry(key: CacheEntryKey, cacheKey: string, sealed: string): string | null {
  const parts = sealed.split('.');
  if (parts.length !== 5 || parts[0] !== SCHEME || parts[1] !== key.id) return null;
  try {
    const iv = Buffer.from(parts[2], 'base64url');
    const tag = Buffer.from(parts[3], 'base64url');
    if (iv.length !== IV_BYTES || tag.length !== TAG_BYTES) return null;
    const decipher = createDecipheriv('aes-256-gcm', key.key, iv, { authTagLength: TAG_BYTES });
    decipher.setAAD(aad(key.id, cacheKey));
    decipher.setAuthTag(tag);
    return Buffer.concat([decipher.update(Buffer.from(parts[4], 'base64url')), decipher.final()]).toString('utf8');
  } catch {
    return null;
  }
}

/** JSON that keeps `Date`s and ArrayBuffers (the reader caches a read packed into an ArrayBuffer). */
export function encodeCacheValue(value: unknown): string {
  return JSON.stringify(value, function (this: Record<string, unknown>, k: string, v: unknown) {
    const raw = this[k];
    if (raw instanceof Date) return { $date: raw.getTime() };
    return raw instanceof ArrayBuffer ? { $bytes: Buffer.from(raw).toString('base64') } : v;
  });
}

export function decodeCacheValue<T>(text: string): T {
  return JSON.parse(text, (_k, v: unknown) => {
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      const keys = Object.keys(v);
      if (keys.length === 1 && keys[0] === '$date' && typeof (v as { $date: unknown }).$date === 'number') return new Date((v as { $date: number }).$date);
      if (keys.length === 1 && keys[0] === '$bytes' && typeof (v as { $bytes: unknown }).$bytes === 'string') return exactArrayBuffer(Buffer.from((v as { $bytes: string }).$bytes, 'base64'));
    }
    return v;
  }) as T;
}

/** A time-to-live in [ttlMs × (1 − jitterRatio), ttlMs], at least 1 ms: spreads the refreshes of entries filled together. */
export function jitteredTtl(ttlMs: number, jitterRatio: number, random: () => number = Math.random): number {
  const r = Math.min(Math.max(random(), 0), 1);
  return Math.max(1, Math.round(ttlMs * (1 - jitterRatio * r)));
}
