import { SlabPool } from './slab-pool';

/** Bytes of one slab: ~800 cached 1 KB credentials. A record above a quarter of it gets a slab of its own. */
export const SLAB_BYTES = 1 << 20;
const OWN_SLAB_ABOVE = SLAB_BYTES / 4;
const NONE = -1;
/** A record of no bytes: it needs no slab (and must not keep one counted as live). */
const EMPTY = -2;

/** A copy of `array` lengthened to `length` (the new elements 0): how slot-indexed typed arrays grow. */
export function grownTo<A extends Int32Array | Float64Array>(array: A, length: number): A {
  const grown = new (array.constructor as new (length: number) => A)(length);
  grown.set(array);
  return grown;
}

let shared: SlabPool | undefined;

/**
 * An arena dropped without `clear` (a cache of an app closed and discarded) gives its pool slabs back when
 * it is collected: the pool cannot see that, and would otherwise keep them as in use for the process's life.
 */
const collected = new FinalizationRegistry<{ pool: SlabPool; bases: number[] }>(({ pool, bases }) => {
  for (const base of bases) {
    if (base === NONE) continue;
    pool.bytes.fill(0, base, base + pool.slabBytes);
    pool.release(base);
  }
});

/** The process's pool of slabs, shared by every arena that is not given its own. */
export function sharedSlabPool(): SlabPool {
  return (shared ??= new SlabPool(SLAB_BYTES));
}

/**
 * Byte records by slot number, packed into 1 MiB slabs instead of one ArrayBuffer each. An ArrayBuffer of
 * its own costs ~90 B of heap and a native backing store of ~150 B more per record (docs/BENCHMARKS.md,
 * Scale); here a record costs its bytes and 12 B of typed arrays. The slabs come from a `SlabPool` (one
 * WebAssembly memory, outside the C heap); a record above a quarter of a slab, or any record when the pool
 * has no room, gets an ArrayBuffer of its own.
 *
 * A record is only ever read by copying it out (`copyOut`), never through a view handed to a caller, so
 * its room can be reused or moved once it is freed: no reader can see another record's bytes. A freed
 * record's bytes, and the old copy of a moved one, are zeroed at once (~0.15 µs for a 1 KB credential).
 *
 * Freed room in a sealed slab stays dead until its slab empties or is compacted: when the dead bytes
 * pass an eighth of the live ones (and four slabs), the sparsest slabs' records are copied to the
 * current slab and those slabs released — at most ~8 bytes copied per byte freed, amortised.
 */
export class ByteArena {
  /**
   * Per slab id: its offset in the pool, or NONE when it is an ArrayBuffer of its own (`own`) or released.
   * Never replaced (the finalizer holds it).
   */
  private readonly slabBase: number[] = [];
  private own: Array<ArrayBuffer | undefined> = [];
  /** Per slab id: its size in bytes; 0 once released. */
  private slabSize: number[] = [];
  private slabLive: number[] = [];
  private readonly freeSlabIds: number[] = [];
  private current = NONE;
  private used = 0;
  private slabOf = new Int32Array(0);
  private offsetOf = new Int32Array(0);
  private lengthOf = new Int32Array(0);
  private liveBytes = 0;
  private slabBytes = 0;

  constructor(private readonly pool: SlabPool = sharedSlabPool()) {
    collected.register(this, { pool, bases: this.slabBase });
  }

  /** Makes room for slots `0 … capacity − 1` (never shrinks). */
  grow(capacity: number): void {
    if (capacity <= this.slabOf.length) return;
    const firstNew = this.slabOf.length;
    this.slabOf = grownTo(this.slabOf, capacity);
    this.slabOf.fill(NONE, firstNew);
    this.offsetOf = grownTo(this.offsetOf, capacity);
    this.lengthOf = grownTo(this.lengthOf, capacity);
  }

  /** Copies `bytes` in as `slot`'s record, replacing the one it had. */
  store(slot: number, bytes: ArrayBuffer): void {
    this.free(slot);
    const length = bytes.byteLength;
    if (length === 0) {
      this.slabOf[slot] = EMPTY;
      return;
    }
    this.place(slot, length);
    this.viewOf(slot).set(new Uint8Array(bytes));
    this.liveBytes += length;
  }

  /** A copy of `slot`'s record, an ArrayBuffer of its own; undefined when it has none. */
  copyOut(slot: number): ArrayBuffer | undefined {
    const slab = this.slabOf[slot];
    if (slab === NONE) return undefined;
    if (slab === EMPTY) return new ArrayBuffer(0);
    const base = this.slabBase[slab];
    const offset = this.offsetOf[slot];
    const end = offset + this.lengthOf[slot];
    if (base === NONE) return this.own[slab]!.slice(offset, end);
    return (this.pool.bytes.buffer as ArrayBuffer).slice(base + offset, base + end);
  }

  free(slot: number): void {
    if (slot >= this.slabOf.length) return;
    const slab = this.slabOf[slot];
    if (slab === NONE) return;
    if (slab === EMPTY) {
      this.slabOf[slot] = NONE;
      return;
    }
    // A dropped record's bytes (a revoked value, say) do not wait in dead room for reuse.
    this.viewOf(slot).fill(0);
    this.slabOf[slot] = NONE;
    const length = this.lengthOf[slot];
    this.liveBytes -= length;
    this.slabLive[slab] -= length;
    if (this.slabLive[slab] === 0) {
      if (slab === this.current) this.used = 0;
      else this.release(slab);
    }
    if (this.deadBytes() > this.deadLimit()) this.compact();
  }

  /** Drops every record (their bytes zeroed) and gives every slab back. */
  clear(): void {
    this.slabSize.forEach((size, id) => {
      if (size === 0) return;
      if (this.slabLive[id] > 0) this.slabView(id).fill(0);
      this.release(id);
    });
    this.slabBase.length = 0;
    this.own = [];
    this.slabSize = [];
    this.slabLive = [];
    this.freeSlabIds.length = 0;
    this.current = NONE;
    this.used = 0;
    this.slabOf.fill(NONE);
    this.liveBytes = 0;
    this.slabBytes = 0;
  }

  stats(): { liveBytes: number; slabBytes: number; slabs: number } {
    return { liveBytes: this.liveBytes, slabBytes: this.slabBytes, slabs: this.slabSize.length - this.freeSlabIds.length };
  }

  /** Bytes this arena's pool took from the system: slabs in use by any of its arenas, and released ones kept. */
  poolBytes(): number {
    return this.pool.stats().reservedBytes;
  }

  /** Room in sealed slabs that holds no record (the current slab's unused tail is not dead: it will be filled). */
  private deadBytes(): number {
    const tail = this.current === NONE ? 0 : this.slabSize[this.current] - this.used;
    return this.slabBytes - this.liveBytes - tail;
  }

  /** The dead room that starts a compaction: an eighth of the live bytes, and four slabs at least. */
  private deadLimit(): number {
    return Math.max(4 * SLAB_BYTES, this.liveBytes / 8);
  }

  /** `slot`'s room. Valid until the next `place` (which may grow the pool). */
  private viewOf(slot: number): Uint8Array {
    const offset = this.offsetOf[slot];
    return this.slabView(this.slabOf[slot]).subarray(offset, offset + this.lengthOf[slot]);
  }

  /** A slab's room. Valid until the next `place` (which may grow the pool). */
  private slabView(slab: number): Uint8Array {
    const base = this.slabBase[slab];
    if (base === NONE) return new Uint8Array(this.own[slab]!);
    return this.pool.bytes.subarray(base, base + this.slabSize[slab]);
  }

  /** Gives `slot` room for `length` bytes (not yet written). */
  private place(slot: number, length: number): void {
    let slab: number;
    let offset: number;
    if (length > OWN_SLAB_ABOVE) {
      slab = this.open(length);
      offset = 0;
    } else {
      if (this.current === NONE || this.used + length > SLAB_BYTES) {
        // The old current slab is sealed; its unused tail counts as dead from now on.
        if (this.current !== NONE && this.slabLive[this.current] === 0) this.release(this.current);
        this.current = this.open(SLAB_BYTES);
        this.used = 0;
      }
      slab = this.current;
      offset = this.used;
      this.used += length;
    }
    this.slabOf[slot] = slab;
    this.offsetOf[slot] = offset;
    this.lengthOf[slot] = length;
    this.slabLive[slab] += length;
  }

  private open(bytes: number): number {
    const id = this.freeSlabIds.pop() ?? this.slabSize.length;
    const base = bytes === this.pool.slabBytes ? this.pool.acquire() : undefined;
    this.slabBase[id] = base ?? NONE;
    this.own[id] = base === undefined ? new ArrayBuffer(bytes) : undefined;
    this.slabSize[id] = bytes;
    this.slabLive[id] = 0;
    this.slabBytes += bytes;
    return id;
  }

  private release(slab: number): void {
    if (this.slabBase[slab] !== NONE) this.pool.release(this.slabBase[slab]);
    this.slabBytes -= this.slabSize[slab];
    this.slabBase[slab] = NONE;
    this.own[slab] = undefined;
    this.slabSize[slab] = 0;
    this.slabLive[slab] = 0;
    this.freeSlabIds.push(slab);
    if (slab === this.current) {
      this.current = NONE;
      this.used = 0;
    }
  }

  /** Moves the records of the sparsest sealed slabs to the current one until the dead room is down to half the limit. */
  private compact(): void {
    const limit = this.deadLimit();
    const sealed: number[] = [];
    this.slabSize.forEach((size, id) => {
      if (size > 0 && id !== this.current) sealed.push(id);
    });
    sealed.sort((a, b) => this.slabLive[a] / this.slabSize[a] - this.slabLive[b] / this.slabSize[b]);
    const evacuated = new Set<number>();
    let dead = this.deadBytes();
    for (const id of sealed) {
      if (dead <= limit / 2) break;
      evacuated.add(id);
      dead -= this.slabSize[id] - this.slabLive[id];
    }
    // The evacuated slabs are not in freeSlabIds (nor their room in the pool), so `place` cannot reuse one
    // while its records move.
    for (let slot = 0; slot < this.slabOf.length; slot++) {
      const from = this.slabOf[slot];
      if (!evacuated.has(from)) continue;
      const offset = this.offsetOf[slot];
      const length = this.lengthOf[slot];
      this.slabLive[from] -= length;
      this.place(slot, length);
      // The source view is taken after `place`, which may have grown the pool (and detached older views).
      const source = this.slabView(from).subarray(offset, offset + length);
      this.viewOf(slot).set(source);
      source.fill(0);
    }
    for (const id of evacuated) this.release(id);
  }
}
