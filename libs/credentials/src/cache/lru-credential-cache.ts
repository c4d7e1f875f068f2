import { Clock, SharedLoad, SharedLoads } from '@app/common';
import { callerLeftError } from '@app/key-vault';
import { ByteArena, grownTo } from './byte-arena';
import { jitteredTtl } from './cache-entry-cipher';
import { CacheCaller, CacheLoadOptions, CacheLoader, CredentialCache, CredentialCacheStats } from './credential-cache';

export interface LruCredentialCacheOptions {
  /** Base time-to-live of an entry. */
  ttlMs: number;
  /** Each entry lives a random time in [ttlMs × (1 − jitterRatio), ttlMs], spreading refreshes. */
  jitterRatio: number;
  /** Entries kept; the least recently used goes first. */
  maxEntries: number;
  /** How long past its expiry an entry may still be served when the loader fails (0 = never). */
  maxStaleMs: number;
}

/**
 * A flat copy of `key` to keep as a Map key. Keys are made per request by concatenation (tenant, "/",
 * an id sliced from the URL): V8 keeps such a string as a tree over its parts, and a long-lived key
 * would keep those alive too (~90 B more per cached credential, measured). The copy is used only when
 * it is the same string (a lone surrogate would not survive UTF-8).
 */
function ownKey(key: string): string {
  const copy = Buffer.from(key, 'utf8').toString('utf8');
  return copy === key ? copy : key;
}

/** Marks a slot whose value is an ArrayBuffer held in the arena (copied in, copied out). */
const PACKED = Symbol('packed');
const NONE = -1;
/** Packed values last handed out, kept as the same ArrayBuffer so that a caller's memo by identity holds. */
const HANDED_OUT = 1024;

/**
 * In-process LRU with jittered TTL, single-flight loads that callers may leave (`SharedLoads`: aborted once every
 * caller has left, never kept then), invalidation that wins over in-flight loads, and bounded serve-stale.
 *
 * Its entries are slots: a Map from key to slot number, the recency list and expiries in typed arrays, and
 * an ArrayBuffer value (a packed read) copied into a `ByteArena` — no JS object per entry. A cached
 * credential costs ~130 B of heap beside its bytes, not ~300 with its ArrayBuffer and entry object
 * (docs/BENCHMARKS.md, Scale). A packed value is copied out when read; the last 1,024 copies (or loaded
 * values) are handed out again as they are, so a credential read in a loop costs two Map lookups and no
 * copy. Other values are kept as they are.
 */
export class LruCredentialCache extends CredentialCache {
  private readonly index = new Map<string, number>();
  private keys: Array<string | undefined> = [];
  private values: unknown[] = [];
  private expires = new Float64Array(0);
  /** The recency list: `oldest` … `newest` through `newer`, back through `older`; free slots chain through `newer`. */
  private older = new Int32Array(0);
  private newer = new Int32Array(0);
  private oldest = NONE;
  private newest = NONE;
  private freeSlot = NONE;
  private readonly arena = new ByteArena();
  private readonly handedOut = new Map<string, ArrayBuffer>();
  /** One load per key; detached (`current` false) when the key is invalidated while it runs, or all its callers left. */
  private readonly inflight = new SharedLoads<unknown>(() => callerLeftError('getSecret', 'shared'));
  private counters = { hits: 0, misses: 0, loads: 0, coalesced: 0, staleServed: 0, invalidations: 0, evictions: 0 };
  /** Metadata rows (`getOrLoadRow`): a sibling with its own counters and bound, evicted with the values. */
  private rows?: LruCredentialCache;
  /** `onDrop` listeners; the rows sibling shares this list. */
  private dropListeners: Array<(key: string | null) => void> = [];

  constructor(
    private readonly options: LruCredentialCacheOptions,
    private readonly clock: Clock,
    private readonly random: () => number = Math.random,
  ) {
    super();
  }

  getOrLoad<T>(key: string, loader: CacheLoader<T>, options: CacheLoadOptions = {}, caller?: CacheCaller): Promise<T> {
    const slot = this.index.get(key);
    if (slot !== undefined && this.expires[slot] > this.clock.now().getTime()) {
      this.counters.hits++;
      this.touch(slot);
      return Promise.resolve(this.valueAt(key, slot) as T);
    }
    return this.miss(key, loader, options, caller);
  }

  override getOrLoadRow<T>(key: string, loader: () => Promise<T>): Promise<T> {
    if (!this.rows) {
      this.rows = new LruCredentialCache(this.options, this.clock, this.random);
      this.rows.dropListeners = this.dropListeners;
    }
    // No serve-stale for rows: a database failure is the caller's error, never an old row.
    return this.rows.getOrLoad(key, loader);
  }

  /** The caller's signal is read here only: a hit never asks for it (the host makes it when first asked). */
  private miss<T>(key: string, loader: CacheLoader<T>, options: CacheLoadOptions, caller?: CacheCaller): Promise<T> {
    this.counters.misses++;
    if (this.inflight.has(key)) this.counters.coalesced++;
    return this.inflight.join(key, (flight) => this.load(key, loader, options, flight), caller?.signal) as Promise<T>;
  }

  private async load<T>(key: string, loader: CacheLoader<T>, options: CacheLoadOptions, flight: SharedLoad): Promise<T> {
    this.counters.loads++;
    try {
      const value = await loader(flight.signal);
      if (flight.current) this.put(key, value);
      return value;
    } catch (error) {
      const stale = this.index.get(key);
      if (
        flight.current &&
        stale !== undefined &&
        this.options.maxStaleMs > 0 &&
        this.clock.now().getTime() - this.expires[stale] <= this.options.maxStaleMs &&
        (options.isServeStaleError?.(error) ?? false)
      ) {
        this.counters.staleServed++;
        return this.valueAt(key, stale) as T;
      }
      throw error;
    }
  }

  override onDrop(listener: (key: string | null) => void): void {
    this.dropListeners.push(listener);
  }

  invalidate(key: string): void {
    this.drop(key);
    this.rows?.invalidate(key);
  }

  invalidatePrefix(prefix: string): void {
    for (const key of new Set([...this.index.keys(), ...this.inflight.keys()])) {
      if (key.startsWith(prefix)) this.drop(key);
    }
    // The rows go by the same prefix, once (not again per value key).
    this.rows?.invalidatePrefix(prefix);
  }

  clear(): void {
    this.index.clear();
    this.handedOut.clear();
    this.arena.clear();
    // Back to no slots at all: what a full cache held goes with it.
    this.keys = [];
    this.values = [];
    this.expires = new Float64Array(0);
    this.older = new Int32Array(0);
    this.newer = new Int32Array(0);
    this.oldest = this.newest = this.freeSlot = NONE;
    this.inflight.forgetAll();
    this.rows?.clear();
    this.dropped(null);
  }

  stats(): CredentialCacheStats {
    const { hits, misses } = this.counters;
    const slabBytes = this.arena.stats().slabBytes + (this.rows?.arena.stats().slabBytes ?? 0);
    return { ...this.counters, hitRate: hits + misses === 0 ? 0 : hits / (hits + misses), size: this.index.size, slabBytes, slabPoolBytes: this.arena.poolBytes() };
  }

  resetStats(): void {
    this.counters = { hits: 0, misses: 0, loads: 0, coalesced: 0, staleServed: 0, invalidations: 0, evictions: 0 };
  }

  /** Drops the value and makes a load in flight for it not store its result. */
  private drop(key: string): void {
    this.counters.invalidations++;
    const slot = this.index.get(key);
    if (slot !== undefined) this.remove(key, slot);
    this.dropped(key);
    this.inflight.forget(key);
  }

  private put(key: string, value: unknown): void {
    const ttl = jitteredTtl(this.options.ttlMs, this.options.jitterRatio, this.random);
    let slot = this.index.get(key);
    if (slot === undefined) {
      if (this.index.size >= this.options.maxEntries) {
        const oldest = this.keys[this.oldest]!;
        this.remove(oldest, this.oldest);
        this.counters.evictions++;
        this.dropped(oldest);
      }
      slot = this.allocate();
      const own = ownKey(key);
      this.index.set(own, slot);
      this.keys[slot] = own;
    } else {
      this.unlink(slot);
    }
    this.link(slot);
    this.expires[slot] = this.clock.now().getTime() + ttl;
    if (value instanceof ArrayBuffer) {
      this.arena.store(slot, value);
      this.values[slot] = PACKED;
      this.handOut(key, value);
    } else {
      this.arena.free(slot);
      this.values[slot] = value;
      this.handedOut.delete(key);
    }
  }

  private valueAt(key: string, slot: number): unknown {
    const value = this.values[slot];
    if (value !== PACKED) return value;
    let packed = this.handedOut.get(key);
    if (packed === undefined) {
      packed = this.arena.copyOut(slot)!;
      this.handOut(key, packed);
    }
    return packed;
  }

  private handOut(key: string, packed: ArrayBuffer): void {
    this.handedOut.delete(key);
    this.handedOut.set(key, packed);
    if (this.handedOut.size > HANDED_OUT) this.handedOut.delete(this.handedOut.keys().next().value as string);
  }

  private remove(key: string, slot: number): void {
    this.index.delete(key);
    this.handedOut.delete(key);
    this.arena.free(slot);
    this.unlink(slot);
    this.keys[slot] = undefined;
    this.values[slot] = undefined;
    this.newer[slot] = this.freeSlot;
    this.freeSlot = slot;
  }

  /** A free slot, growing the arrays (doubling, up to maxEntries) when there is none. */
  private allocate(): number {
    if (this.freeSlot === NONE) {
      const from = this.expires.length;
      const to = Math.min(this.options.maxEntries, Math.max(64, from * 2));
      this.expires = grownTo(this.expires, to);
      this.older = grownTo(this.older, to);
      this.newer = grownTo(this.newer, to);
      this.arena.grow(to);
      for (let slot = to - 1; slot >= from; slot--) {
        this.newer[slot] = this.freeSlot;
        this.freeSlot = slot;
      }
    }
    const slot = this.freeSlot;
    this.freeSlot = this.newer[slot];
    return slot;
  }

  /** Makes `slot` the most recently used. */
  private touch(slot: number): void {
    if (slot === this.newest) return;
    this.unlink(slot);
    this.link(slot);
  }

  private link(slot: number): void {
    this.older[slot] = this.newest;
    this.newer[slot] = NONE;
    if (this.newest === NONE) this.oldest = slot;
    else this.newer[this.newest] = slot;
    this.newest = slot;
  }

  private unlink(slot: number): void {
    const older = this.older[slot];
    const newer = this.newer[slot];
    if (older === NONE) this.oldest = newer;
    else this.newer[older] = newer;
    if (newer === NONE) this.newest = older;
    else this.older[newer] = older;
  }

  private dropped(key: string | null): void {
    for (const listener of this.dropListeners) listener(key);
  }
}
