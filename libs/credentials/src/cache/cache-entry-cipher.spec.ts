import { randomBytes } from 'node:crypto';
import { cacheEntryKeyId, decodeCacheValue, encodeCacheValue, jitteredTtl, openCacheEntry, sealCacheEntry } from './cache-entry-cipher';

const key = { id: 'a1b2c3', key: randomBytes(32) };

describe('cache entry cipher', () => {
  it('round-trips under its own cache key and never shows the plaintext', () => {
    const sealed = sealCacheEntry(key, 'tenant-a/cred-1', 'sk_live_secret_value');
    expect(sealed).not.toContain('sk_live_secret_value');
    expect(Buffer.from(sealed.split('.')[4], 'base64url').toString('latin1')).not.toContain('secret');
    expect(cacheEntryKeyId(sealed)).toBe('a1b2c3');
    expect(openCacheEntry(key, 'tenant-a/cred-1', sealed)).toBe('sk_live_secret_value');
    // A fresh IV each time: the same value never seals to the same text.
    expect(sealCacheEntry(key, 'tenant-a/cred-1', 'sk_live_secret_value')).not.toBe(sealed);
  });

  it('an entry copied under another cache key does not open (AAD binding) — a miss, not an error', () => {
    const sealed = sealCacheEntry(key, 'tenant-a/cred-1', 'value-of-a');
    expect(openCacheEntry(key, 'tenant-b/cred-1', sealed)).toBeNull();
    expect(openCacheEntry(key, 'tenant-a/cred-2', sealed)).toBeNull();
  });

  it('another key, another key id, a flipped byte or garbage do not open', () => {
    const sealed = sealCacheEntry(key, 'k', 'v');
    expect(openCacheEntry({ id: 'a1b2c3', key: randomBytes(32) }, 'k', sealed)).toBeNull();
    expect(openCacheEntry({ id: 'other', key: key.key }, 'k', sealed)).toBeNull();
    // Relabelling the key id inside the entry breaks the AAD too.
    expect(openCacheEntry({ id: 'other', key: key.key }, 'k', sealed.replace('.a1b2c3.', '.other.'))).toBeNull();
    const parts = sealed.split('.');
    const ct = Buffer.from(parts[4], 'base64url');
    ct[0] ^= 1;
    expect(openCacheEntry(key, 'k', [...parts.slice(0, 4), ct.toString('base64url')].join('.'))).toBeNull();
    for (const junk of ['', 'v', 'c3.a1b2c3..', 'c3.a1b2c3.x.y.z', '{"value":"v"}']) expect(openCacheEntry(key, 'k', junk)).toBeNull();
    expect(cacheEntryKeyId('c3.bad id.x.y.z')).toBeNull();
    // An entry of an earlier scheme (a read cached as an object, the row as JSON) is a miss, not a value of the wrong shape.
    for (const earlier of ['c1.', 'c2.']) {
      expect(openCacheEntry(key, 'k', sealed.replace(/^c3\./, earlier))).toBeNull();
      expect(cacheEntryKeyId(sealed.replace(/^c3\./, earlier))).toBeNull();
    }
  });

  it('refuses a key of the wrong size', () => {
    expect(() => sealCacheEntry({ id: 'x', key: randomBytes(16) }, 'k', 'v')).toThrow(/32 bytes/);
  });

  it('keeps Dates through the codec (a cached row carries timestamps)', () => {
    const value = { value: 'v', row: { expiresAt: new Date('2030-01-02T03:04:05.678Z'), deletedAt: null, tags: { a: '1' } }, n: [1, { $date: 'not a date' }] };
    const back = decodeCacheValue<typeof value>(encodeCacheValue(value));
    expect(back.row.expiresAt).toBeInstanceOf(Date);
    expect(back.row.expiresAt.toISOString()).toBe('2030-01-02T03:04:05.678Z');
    expect(back).toEqual(value);
  });

  it('keeps ArrayBuffers through the codec, byte for byte and of their own size (the reader caches a read packed)', () => {
    const packed = new Uint8Array([0, 1, 2, 253, 254, 255, 0x7b, 0x22]).buffer;
    const back = decodeCacheValue<{ p: ArrayBuffer; s: { $bytes: number } }>(encodeCacheValue({ p: packed, s: { $bytes: 1 } }));
    expect(back.p).toBeInstanceOf(ArrayBuffer);
    expect(back.p.byteLength).toBe(8);
    expect(Buffer.from(back.p).equals(Buffer.from(packed))).toBe(true);
    // Not a marker unless it is exactly one string member.
    expect(back.s).toEqual({ $bytes: 1 });
    expect(decodeCacheValue(encodeCacheValue(packed))).toBeInstanceOf(ArrayBuffer);
  });
});

describe('jitteredTtl', () => {
  it('stays within [ttl × (1 − ratio), ttl] for any random draw', () => {
    expect(jitteredTtl(1000, 0.2, () => 0)).toBe(1000);
    expect(jitteredTtl(1000, 0.2, () => 1)).toBe(800);
    expect(jitteredTtl(1000, 0.2, () => 0.5)).toBe(900);
    // Out-of-range sources are clamped.
    expect(jitteredTtl(1000, 0.2, () => 7)).toBe(800);
    expect(jitteredTtl(1000, 0.2, () => -1)).toBe(1000);
    const seen = new Set<number>();
    for (let i = 0; i < 2000; i++) {
      const ttl = jitteredTtl(300_000, 0.1);
      expect(ttl).toBeGreaterThanOrEqual(270_000);
      expect(ttl).toBeLessThanOrEqual(300_000);
      seen.add(ttl);
    }
    // Actually spread, not a constant.
    expect(seen.size).toBeGreaterThan(100);
    expect(jitteredTtl(1, 0.99, () => 1)).toBe(1);
  });
});
