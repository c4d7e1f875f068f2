import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { ByteArena, SLAB_BYTES } from './byte-arena';
import { SlabPool } from './slab-pool';

/**
 * `length` bytes, byte i being `(seed * 31 + i * 7) & 0xff`: a 256-byte period (7 × 256 ≡ 0 mod 256), made once and
 * repeated by Buffer.fill (the churn below makes ~700 MB of records per case; byte by byte in JS that was most of its time).
 */
const bytes = (length: number, seed: number): ArrayBuffer => {
  const period = new Uint8Array(Math.min(length, 256));
  for (let i = 0; i < period.length; i++) period[i] = (seed * 31 + i * 7) & 0xff;
  const b = Buffer.allocUnsafeSlow(length);
  if (length > 0) b.fill(period);
  return b.buffer as ArrayBuffer;
};
const same = (a: ArrayBuffer | undefined, b: ArrayBuffer) => a !== undefined && Buffer.from(a).equals(Buffer.from(b));
/**
 * The slots of `0 … count − 1` (every `step`th from `first`) whose record is not `expected(slot)` (undefined: no record);
 * one assertion on it instead of one per slot, which took a second of the churn's 20,000 (jest builds an error per expect).
 */
function wrongSlots(arena: ByteArena, count: number, expected: (slot: number) => ArrayBuffer | undefined, first = 0, step = 1): number[] {
  const wrong: number[] = [];
  for (let slot = first; slot < count; slot += step) {
    const want = expected(slot);
    if (want === undefined ? arena.copyOut(slot) !== undefined : !same(arena.copyOut(slot), want)) wrong.push(slot);
  }
  return wrong;
}

/** A small deterministic generator, so that a failing churn can be replayed. */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

describe('ByteArena', () => {
  it('copies a record in and out: neither the stored bytes nor a copy handed out follow the other', () => {
    const arena = new ByteArena();
    arena.grow(4);
    const input = bytes(1000, 1);
    arena.store(2, input);
    new Uint8Array(input)[0] ^= 0xff;
    const out = arena.copyOut(2)!;
    expect(same(out, bytes(1000, 1))).toBe(true);
    new Uint8Array(out).fill(0);
    expect(same(arena.copyOut(2), bytes(1000, 1))).toBe(true);
    expect(arena.copyOut(3)).toBeUndefined();
  });

  it('replaces and frees records; an empty record is a record; clear drops everything', () => {
    const arena = new ByteArena();
    arena.grow(3);
    arena.store(0, bytes(10, 1));
    arena.store(0, bytes(20, 2));
    arena.store(1, new ArrayBuffer(0));
    expect(same(arena.copyOut(0), bytes(20, 2))).toBe(true);
    expect(arena.copyOut(1)!.byteLength).toBe(0);
    expect(arena.stats().liveBytes).toBe(20);
    arena.free(0);
    arena.free(0);
    expect(arena.copyOut(0)).toBeUndefined();
    expect(arena.stats().liveBytes).toBe(0);
    arena.store(2, bytes(5, 3));
    arena.clear();
    expect(arena.copyOut(2)).toBeUndefined();
    expect(arena.stats()).toEqual({ liveBytes: 0, slabBytes: 0, slabs: 0 });
  });

  it('keeps empty records without a slab, so freeing the records around them releases every slab', () => {
    const arena = new ByteArena();
    arena.grow(3000);
    for (let slot = 0; slot < 3000; slot++) arena.store(slot, slot % 2 ? bytes(1300, slot) : new ArrayBuffer(0));
    for (let slot = 1; slot < 3000; slot += 2) arena.free(slot);
    expect(arena.stats()).toMatchObject({ liveBytes: 0, slabs: 1 });
    expect(wrongSlots(arena, 3000, () => new ArrayBuffer(0), 0, 2)).toEqual([]);
  });

  it('packs small records into shared slabs and gives a large one a slab of its own, released when freed', () => {
    const arena = new ByteArena();
    arena.grow(2001);
    for (let slot = 0; slot < 2000; slot++) arena.store(slot, bytes(1300, slot));
    // 2.6 MB of records in three 1 MiB slabs.
    expect(arena.stats()).toMatchObject({ liveBytes: 2000 * 1300, slabs: 3, slabBytes: 3 * SLAB_BYTES });
    arena.store(2000, bytes(SLAB_BYTES / 2, 9));
    expect(arena.stats()).toMatchObject({ slabs: 4, slabBytes: 3 * SLAB_BYTES + SLAB_BYTES / 2 });
    arena.free(2000);
    expect(arena.stats()).toMatchObject({ slabs: 3, slabBytes: 3 * SLAB_BYTES });
    expect(wrongSlots(arena, 2000, (slot) => bytes(1300, slot))).toEqual([]);
  });

  // The pool's WebAssembly memory; one with room for 8 slabs (then ArrayBuffers of their own); one with none.
  it.each([
    ['the shared pool', undefined],
    ['a pool of 8 slabs', 8],
    ['no pool room', 0],
  ])('under churn keeps every record intact and its slabs within an eighth of the live bytes (plus a few slabs): %s', (_name, poolSlabs) => {
    const slots = 20_000;
    const arena = new ByteArena(poolSlabs === undefined ? undefined : new SlabPool(SLAB_BYTES, poolSlabs * SLAB_BYTES));
    arena.grow(slots);
    const random = lcg(7);
    const model = new Map<number, number>();
    const seedOf = (slot: number, length: number) => slot * 7919 + length;
    let worst = 0;
    for (let op = 0; op < 200_000; op++) {
      const slot = Math.floor(random() * slots);
      if (random() < 0.3) {
        arena.free(slot);
        model.delete(slot);
      } else {
        // Mostly credential-sized records, now and then a large one.
        const length = random() < 0.01 ? 300_000 + Math.floor(random() * 100_000) : 200 + Math.floor(random() * 3000);
        arena.store(slot, bytes(length, seedOf(slot, length)));
        model.set(slot, length);
      }
      const { liveBytes, slabBytes } = arena.stats();
      worst = Math.max(worst, (slabBytes - liveBytes - 6 * SLAB_BYTES) / liveBytes);
    }
    expect(worst).toBeLessThanOrEqual(1 / 8);
    expect(wrongSlots(arena, slots, (slot) => {
      const length = model.get(slot);
      return length === undefined ? undefined : bytes(length, seedOf(slot, length));
    })).toEqual([]);
    expect(arena.stats().liveBytes).toBe([...model.values()].reduce((a, b) => a + b, 0));
  });

  it('gives released slabs back to the pool, where another arena takes them instead of growing it', () => {
    const pool = new SlabPool(SLAB_BYTES);
    const first = new ByteArena(pool);
    first.grow(2000);
    for (let slot = 0; slot < 2000; slot++) first.store(slot, bytes(1300, slot));
    expect(pool.stats()).toEqual({ reservedBytes: 3 * SLAB_BYTES, freeSlabs: 0 });
    first.clear();
    expect(pool.stats()).toEqual({ reservedBytes: 3 * SLAB_BYTES, freeSlabs: 3 });
    const second = new ByteArena(pool);
    second.grow(2000);
    for (let slot = 0; slot < 2000; slot++) second.store(slot, bytes(1200, slot + 1));
    expect(pool.stats()).toEqual({ reservedBytes: 3 * SLAB_BYTES, freeSlabs: 0 });
    expect(wrongSlots(second, 2000, (slot) => bytes(1200, slot + 1))).toEqual([]);
  });

  it('gives the slabs of an arena dropped without clear back to the pool once the arena is collected', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const pool = new SlabPool(SLAB_BYTES);
    (() => {
      const dropped = new ByteArena(pool);
      dropped.grow(2000);
      for (let slot = 0; slot < 2000; slot++) dropped.store(slot, bytes(1300, slot));
    })();
    expect(pool.stats()).toEqual({ reservedBytes: 3 * SLAB_BYTES, freeSlabs: 0 });
    for (let i = 0; i < 20 && pool.stats().freeSlabs === 0; i++) {
      gc();
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(pool.stats()).toEqual({ reservedBytes: 3 * SLAB_BYTES, freeSlabs: 3 });
    // Each forced gc() is a full collection of this jest worker's whole heap: ~50 ms alone, but in CI, with the
    // worker's heap grown by earlier files and the two cores shared, 20 of them took over jest's 5 s default.
  }, 30_000);

  it('zeroes the bytes of a record when it is dropped: freed, replaced, moved by compaction, cleared', () => {
    const pool = new SlabPool(SLAB_BYTES);
    const arena = new ByteArena(pool);
    const secret = (n: number) => new Uint8Array(Buffer.from(`<secret-${n}>`.repeat(60))).buffer;
    /** Each record's markers in the pool's memory: slot → count (one copy of a record holds 60). */
    const copies = () => {
      const text = Buffer.from(pool.bytes.buffer, pool.bytes.byteOffset, pool.bytes.byteLength).toString('latin1');
      const found = new Map<number, number>();
      for (const m of text.matchAll(/<secret-(\d+)>/g)) found.set(Number(m[1]), (found.get(Number(m[1])) ?? 0) + 1);
      return found;
    };
    arena.grow(12_000);
    for (let slot = 0; slot < 12_000; slot++) arena.store(slot, secret(slot));
    arena.free(1);
    arena.store(2, bytes(700, 2));
    let found = copies();
    expect([found.get(0), found.get(1), found.get(2)]).toEqual([60, undefined, undefined]);
    // Free every other record: compaction moves the rest (over 4 MiB dead), leaving no second copy behind.
    const slabsBefore = arena.stats().slabs;
    for (let slot = 4; slot < 12_000; slot += 2) arena.free(slot);
    expect(arena.stats().slabs).toBeLessThan(slabsBefore);
    found = copies();
    expect([...found.keys()].filter((slot) => slot >= 4 && slot % 2 === 0)).toEqual([]);
    expect([...found.values()].every((n) => n === 60)).toBe(true);
    expect(found.size).toBe(1 + 1 + 5998);
    expect(same(arena.copyOut(5), secret(5))).toBe(true);
    arena.clear();
    expect(pool.bytes.every((b) => b === 0)).toBe(true);
  });

  it('falls back to ArrayBuffers of their own once the pool is full, and reads both kinds alike', () => {
    const pool = new SlabPool(SLAB_BYTES, 2 * SLAB_BYTES);
    const arena = new ByteArena(pool);
    arena.grow(4000);
    for (let slot = 0; slot < 4000; slot++) arena.store(slot, bytes(1000, slot));
    expect(pool.stats().reservedBytes).toBe(2 * SLAB_BYTES);
    expect(arena.stats()).toMatchObject({ slabs: 4, liveBytes: 4000 * 1000 });
    expect(wrongSlots(arena, 4000, (slot) => bytes(1000, slot))).toEqual([]);
  });

  it('refuses a slab size that is not whole WebAssembly pages', () => {
    expect(() => new SlabPool(1000)).toThrow(RangeError);
  });
});
