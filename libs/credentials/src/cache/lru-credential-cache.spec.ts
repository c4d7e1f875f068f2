import { Test } from '@nestjs/testing';
import { Clock, ManualClock } from '@app/common';
import { isKeyVaultError, KeyVaultErrorCode } from '@app/key-vault';
import { CredentialCache } from './credential-cache';
import { SLAB_BYTES } from './byte-arena';
import { LruCredentialCache } from './lru-credential-cache';

class Unavailable extends Error {}

async function build(opts: Partial<{ ttlMs: number; jitterRatio: number; maxEntries: number; maxStaleMs: number }> = {}, random = () => 0) {
  const clock = new ManualClock(new Date('2030-01-01T00:00:00Z'));
  const mod = await Test.createTestingModule({
    providers: [
      { provide: Clock, useValue: clock },
      {
        provide: CredentialCache,
        inject: [Clock],
        useFactory: (c: Clock) => new LruCredentialCache({ ttlMs: 1000, jitterRatio: 0, maxEntries: 100, maxStaleMs: 0, ...opts }, c, random),
      },
    ],
  }).compile();
  return { cache: mod.get(CredentialCache), clock };
}

describe('LruCredentialCache', () => {
  it('serves from memory until the TTL passes, then loads again', async () => {
    const { cache, clock } = await build();
    const loader = jest.fn(async () => 'v1');
    await cache.getOrLoad('k', loader);
    clock.advance(999);
    expect(await cache.getOrLoad('k', loader)).toBe('v1');
    expect(loader).toHaveBeenCalledTimes(1);
    clock.advance(1);
    await cache.getOrLoad('k', loader);
    expect(loader).toHaveBeenCalledTimes(2);
    expect(cache.stats()).toMatchObject({ hits: 1, misses: 2, loads: 2, hitRate: 1 / 3 });
  });

  it('finds, invalidates and prefix-invalidates a key however it was built, even one UTF-8 cannot carry', async () => {
    const { cache } = await build();
    const tenant = ['tenant', '-a'].join('');
    for (const id of ['0190a3c4-0000-7000-8000-000000000001', 'ключ-🔑', 'lone-\uD800-surrogate', 'lone-\uDC00']) {
      const built = `${tenant}/${id}`;
      const loader = jest.fn(async () => id);
      expect(await cache.getOrLoad(built, loader)).toBe(id);
      expect(await cache.getOrLoad(`tenant-a/${id}`, loader)).toBe(id);
      expect(loader).toHaveBeenCalledTimes(1);
      cache.invalidate(`tenant-a/${id}`);
      await cache.getOrLoad(built, loader);
      expect(loader).toHaveBeenCalledTimes(2);
    }
    cache.invalidatePrefix('tenant-a/');
    expect(cache.stats().size).toBe(0);
  });

  it('tells onDrop listeners of every key it drops: invalidated, by prefix, evicted for room, rows; null when cleared', async () => {
    const { cache } = await build({ maxEntries: 2 });
    const dropped: Array<string | null> = [];
    cache.onDrop((key) => dropped.push(key));
    await cache.getOrLoad('t1/a', async () => 'a');
    await cache.getOrLoad('t1/b', async () => 'b');
    cache.invalidate('t1/a');
    expect(dropped).toEqual(['t1/a']);
    await cache.getOrLoad('t2/c', async () => 'c');
    await cache.getOrLoad('t2/d', async () => 'd');
    // Room for two: b goes first.
    expect(dropped).toEqual(['t1/a', 't1/b']);
    cache.invalidatePrefix('t2/');
    expect(dropped.slice(2).sort()).toEqual(['t2/c', 't2/d']);
    // A metadata row dropped for room is told too (the rows' memo forgets it).
    await cache.getOrLoadRow('t3/r1', async () => 'r1');
    await cache.getOrLoadRow('t3/r2', async () => 'r2');
    await cache.getOrLoadRow('t3/r3', async () => 'r3');
    expect(dropped).toContain('t3/r1');
    cache.clear();
    expect(dropped.at(-1)).toBeNull();
  });

  it('jitters the TTL within [ttl × (1 − ratio), ttl]', async () => {
    const { cache, clock } = await build({ ttlMs: 1000, jitterRatio: 0.2 }, () => 1);
    const loader = jest.fn(async () => 'v');
    await cache.getOrLoad('k', loader);
    clock.advance(799);
    await cache.getOrLoad('k', loader);
    expect(loader).toHaveBeenCalledTimes(1);
    clock.advance(1);
    await cache.getOrLoad('k', loader);
    expect(loader).toHaveBeenCalledTimes(2);
  });

  it('single-flight: 200 concurrent misses of one key make one load', async () => {
    const { cache } = await build();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const loader = jest.fn(async () => {
      await gate;
      return 'value';
    });
    const reads = Array.from({ length: 200 }, () => cache.getOrLoad('k', loader));
    release();
    expect(await Promise.all(reads)).toEqual(Array(200).fill('value'));
    expect(loader).toHaveBeenCalledTimes(1);
    expect(cache.stats()).toMatchObject({ loads: 1, coalesced: 199 });
  });

  it('a failed load is not cached and is shared by its joiners', async () => {
    const { cache } = await build();
    const loader = jest.fn(async () => {
      throw new Error('boom');
    });
    const results = await Promise.allSettled([cache.getOrLoad('k', loader), cache.getOrLoad('k', loader)]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    expect(loader).toHaveBeenCalledTimes(1);
    await expect(cache.getOrLoad('k', async () => 'ok')).resolves.toBe('ok');
  });

  it('invalidation drops the entry and a load that started before it cannot repopulate', async () => {
    const { cache } = await build();
    await cache.getOrLoad('k', async () => 'old');
    cache.invalidate('k');
    expect(await cache.getOrLoad('k', async () => 'new')).toBe('new');

    let release!: (v: string) => void;
    const slow = cache.getOrLoad('k2', () => new Promise<string>((r) => (release = r)));
    cache.invalidate('k2');
    release('stale-from-before-the-write');
    await slow;
    expect(await cache.getOrLoad('k2', async () => 'fresh')).toBe('fresh');
  });

  it('invalidatePrefix drops every key of a tenant only', async () => {
    const { cache } = await build();
    await cache.getOrLoad('t1/a', async () => 'a');
    await cache.getOrLoad('t2/b', async () => 'b');
    cache.invalidatePrefix('t1/');
    const l1 = jest.fn(async () => 'a2');
    const l2 = jest.fn(async () => 'b2');
    expect(await cache.getOrLoad('t1/a', l1)).toBe('a2');
    expect(await cache.getOrLoad('t2/b', l2)).toBe('b');
  });

  it('serves stale within maxStaleMs only for availability errors', async () => {
    const { cache, clock } = await build({ ttlMs: 1000, maxStaleMs: 5000 });
    const opts = { isServeStaleError: (e: unknown) => e instanceof Unavailable };
    await cache.getOrLoad('k', async () => 'last-good', opts);
    clock.advance(1000 + 4000);
    expect(await cache.getOrLoad('k', async () => Promise.reject(new Unavailable()), opts)).toBe('last-good');
    await expect(cache.getOrLoad('k', async () => Promise.reject(new Error('not found')), opts)).rejects.toThrow('not found');
    clock.advance(2000); // 6 s past expiry
    await expect(cache.getOrLoad('k', async () => Promise.reject(new Unavailable()), opts)).rejects.toBeInstanceOf(Unavailable);
    expect(cache.stats().staleServed).toBe(1);
  });

  it('never serves stale after an invalidation', async () => {
    const { cache, clock } = await build({ ttlMs: 1000, maxStaleMs: 60_000 });
    const opts = { isServeStaleError: () => true };
    await cache.getOrLoad('k', async () => 'v1', opts);
    cache.invalidate('k');
    clock.advance(2000);
    await expect(cache.getOrLoad('k', async () => Promise.reject(new Unavailable()), opts)).rejects.toBeInstanceOf(Unavailable);
  });

  describe('readers who leave a shared load', () => {
    const cancelled = (e: unknown) => isKeyVaultError(e, KeyVaultErrorCode.CANCELLED) && e.sent === true;
    /** A load the test ends by hand, recording the signal it was given. */
    const manual = () => {
      const calls: Array<{ signal?: AbortSignal; resolve: (v: string) => void }> = [];
      const loader = jest.fn((signal?: AbortSignal) => new Promise<string>((resolve) => calls.push({ signal, resolve })));
      return { loader, calls };
    };

    it('one who leaves is refused at once (CANCELLED); the others get the value, loaded once and cached', async () => {
      const { cache } = await build();
      const { loader, calls } = manual();
      const leaving = new AbortController();
      const gone = cache.getOrLoad('k', loader, {}, { signal: leaving.signal });
      const staying = cache.getOrLoad('k', loader, {}, { signal: new AbortController().signal });
      leaving.abort();
      expect(cancelled(await gone.catch((e: unknown) => e))).toBe(true);
      expect(calls[0].signal?.aborted).toBe(false);
      calls[0].resolve('v');
      expect(await staying).toBe('v');
      expect(await cache.getOrLoad('k', loader)).toBe('v');
      expect(loader).toHaveBeenCalledTimes(1);
    });

    it('once all have left the load is aborted and its late result not kept; a reader after them loads afresh', async () => {
      const { cache } = await build();
      const { loader, calls } = manual();
      const readers = [new AbortController(), new AbortController()];
      const waits = readers.map((r) => cache.getOrLoad('k', loader, {}, { signal: r.signal }));
      readers.forEach((r) => r.abort());
      expect((await Promise.allSettled(waits)).map((r) => r.status === 'rejected' && cancelled(r.reason))).toEqual([true, true]);
      expect(calls[0].signal?.aborted).toBe(true);

      const late = cache.getOrLoad('k', loader, {}, { signal: new AbortController().signal });
      expect(loader).toHaveBeenCalledTimes(2);
      calls[0].resolve('abandoned'); // a load that did not stop on its signal
      calls[1].resolve('fresh');
      expect(await late).toBe('fresh');
      expect(await cache.getOrLoad('k', loader)).toBe('fresh');
    });

    it("reads the caller's signal on a miss only (the host makes it when first asked)", async () => {
      const { cache } = await build();
      await cache.getOrLoad('k', async () => 'v');
      const caller = {
        get signal(): AbortSignal {
          throw new Error('asked on a hit');
        },
      };
      expect(await cache.getOrLoad('k', async () => 'w', {}, caller)).toBe('v');
    });
  });

  it('evicts the least recently used entry beyond maxEntries', async () => {
    const { cache } = await build({ maxEntries: 2 });
    await cache.getOrLoad('a', async () => 'a');
    await cache.getOrLoad('b', async () => 'b');
    await cache.getOrLoad('a', async () => 'x'); // touch a
    await cache.getOrLoad('c', async () => 'c'); // evicts b
    const lb = jest.fn(async () => 'b2');
    expect(await cache.getOrLoad('a', async () => 'a2')).toBe('a');
    expect(await cache.getOrLoad('b', lb)).toBe('b2');
    expect(cache.stats().evictions).toBeGreaterThanOrEqual(1);
  });

  describe('packed values (ArrayBuffers, kept in slabs)', () => {
    const packed = (text: string) => new Uint8Array(Buffer.from(text)).buffer;
    const text = (value: unknown) => Buffer.from(value as ArrayBuffer).toString();

    it('hand out the same ArrayBuffer while among the last 1,024 handed out, then an equal copy that is handed out again', async () => {
      const { cache } = await build({ maxEntries: 5000 });
      const first = packed('value of a');
      expect(await cache.getOrLoad('t/a', async () => first)).toBe(first);
      expect(await cache.getOrLoad('t/a', async () => packed('reloaded'))).toBe(first);
      for (let i = 0; i < 1024; i++) await cache.getOrLoad(`t/other-${i}`, async () => packed(`other ${i}`));
      const copy = await cache.getOrLoad('t/a', async () => packed('reloaded'));
      expect(copy).not.toBe(first);
      expect(text(copy)).toBe('value of a');
      expect(await cache.getOrLoad('t/a', async () => packed('reloaded'))).toBe(copy);
      expect(cache.stats()).toMatchObject({ loads: 1025, hits: 3, size: 1025 });
    });

    it('report the slab room they take, values and rows together, and give it back when cleared', async () => {
      const { cache } = await build({ maxEntries: 5000 });
      expect(cache.stats().slabBytes).toBe(0);
      for (let i = 0; i < 1100; i++) await cache.getOrLoad(`t/${i}`, async () => packed(`${i}:`.padEnd(1024, 'x')));
      await cache.getOrLoadRow('t/0', async () => packed('row of 0'));
      // 1.1 MB of values in two 1 MiB slabs, and a slab for the row.
      expect(cache.stats().slabBytes).toBe(2 * SLAB_BYTES + SLAB_BYTES);
      const pool = cache.stats().slabPoolBytes!;
      expect(pool).toBeGreaterThanOrEqual(3 * SLAB_BYTES);
      cache.clear();
      // Released slabs stay in the (process's) pool for reuse.
      expect(cache.stats()).toMatchObject({ slabBytes: 0, slabPoolBytes: pool });
    });

    it('never give one key the bytes of another through eviction, replacement, invalidation and serve-stale', async () => {
      const { cache, clock } = await build({ maxEntries: 300, ttlMs: 1000, maxStaleMs: 60_000 });
      const opts = { isServeStaleError: (e: unknown) => e instanceof Unavailable };
      // What each key was last given (kept past expiry, for serve-stale), and what is still fresh.
      const last = new Map<string, string>();
      const expected = new Map<string, string>();
      let random = 1;
      const next = () => (random = (random * 48271) % 2147483647) / 2147483647;
      for (let op = 0; op < 20_000; op++) {
        const key = `t${Math.floor(next() * 3)}/${Math.floor(next() * 500)}`;
        const roll = next();
        if (roll < 0.05) {
          cache.invalidate(key);
          expected.delete(key);
          last.delete(key);
        } else if (roll < 0.1) {
          // Everything expires; a failing load of this key gets its last value (if still held) or the error.
          clock.advance(1000);
          const read = await cache.getOrLoad(key, async () => Promise.reject(new Unavailable()), opts).then(text, (e: unknown) => e);
          if (!(read instanceof Unavailable)) expect(read).toBe(last.get(key));
          expected.clear();
        } else {
          // The last value this key was given while it is held, else (evicted, expired) a fresh load.
          const fresh = `${key} v${op} `.padEnd(100 + Math.floor(next() * 2000), '.');
          const read = text(await cache.getOrLoad(key, async () => packed(fresh), opts));
          expect([expected.get(key), fresh]).toContain(read);
          expected.set(key, read);
          last.set(key, read);
        }
      }
      expect(cache.stats().evictions).toBeGreaterThan(0);
    });
  });

  describe('metadata rows (getOrLoadRow)', () => {
    it('are kept apart from the value under the same key, until the TTL passes, and do not count in stats()', async () => {
      const { cache, clock } = await build();
      const rowLoader = jest.fn(async () => 'row1');
      expect(await cache.getOrLoad('t/a', async () => 'value')).toBe('value');
      expect(await cache.getOrLoadRow('t/a', rowLoader)).toBe('row1');
      expect(await cache.getOrLoadRow('t/a', rowLoader)).toBe('row1');
      expect(rowLoader).toHaveBeenCalledTimes(1);
      expect(await cache.getOrLoad('t/a', async () => 'other')).toBe('value');
      expect(cache.stats()).toMatchObject({ hits: 1, misses: 1, loads: 1, size: 1 });
      clock.advance(1000);
      expect(await cache.getOrLoadRow('t/a', async () => 'row2')).toBe('row2');
    });

    it('are dropped with the value by invalidate, invalidatePrefix, clear and evictEverywhere', async () => {
      const { cache } = await build();
      const fill = async () => {
        for (const k of ['t1/a', 't1/b', 't2/c']) await cache.getOrLoadRow(k, async () => `old ${k}`);
      };
      const read = (k: string) => cache.getOrLoadRow(k, async () => `new ${k}`);
      await fill();
      cache.invalidate('t1/a');
      expect([await read('t1/a'), await read('t1/b')]).toEqual(['new t1/a', 'old t1/b']);
      cache.clear();
      await fill();
      cache.invalidatePrefix('t1/');
      expect([await read('t1/a'), await read('t1/b'), await read('t2/c')]).toEqual(['new t1/a', 'new t1/b', 'old t2/c']);
      await cache.evictEverywhere('t2/c');
      expect(await read('t2/c')).toBe('new t2/c');
      cache.clear();
      expect(await read('t1/b')).toBe('new t1/b');
    });

    it('a row load that started before an invalidation never fills; a failed load is not kept', async () => {
      const { cache } = await build();
      let release!: (v: string) => void;
      const slow = cache.getOrLoadRow('t/a', () => new Promise<string>((r) => (release = r)));
      cache.invalidate('t/a');
      release('read-before-the-write');
      expect(await slow).toBe('read-before-the-write');
      await expect(cache.getOrLoadRow('t/a', async () => Promise.reject(new Error('not found')))).rejects.toThrow('not found');
      expect(await cache.getOrLoadRow('t/a', async () => 'fresh')).toBe('fresh');
    });

    it('the base class caches no row: an implementation that cannot evict rows does not keep them', async () => {
      class ValuesOnly extends CredentialCache {
        getOrLoad<T>(_k: string, loader: () => Promise<T>) {
          return loader();
        }
        invalidate() {}
        invalidatePrefix() {}
        clear() {}
        stats() {
          return { hits: 0, misses: 0, hitRate: 0, loads: 0, coalesced: 0, staleServed: 0, invalidations: 0, evictions: 0, size: 0 };
        }
        resetStats() {}
      }
      const loader = jest.fn(async () => 'row');
      const cache = new ValuesOnly();
      await cache.getOrLoadRow('t/a', loader);
      await cache.getOrLoadRow('t/a', loader);
      expect(loader).toHaveBeenCalledTimes(2);
    });
  });
});
