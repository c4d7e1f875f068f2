import { Clock } from '@app/common';
import { jitteredTtl } from './cache-entry-cipher';
import { CacheLoadOptions, CredentialCache, CredentialCacheStats } from './credential-cache';

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

interface Entry {
  value: unknown;
  expiresAt: number;
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

/**
 * In-process LRU (a Map in recency order) with jittered TTL, single-flight loads, invalidation that
 * wins over in-flight loads, and bounded serve-stale.
 */
export class LruCredentialCache extends CredentialCache {
  private readonly entries = new Map<string, Entry>();
  /** One load per key; `valid` turns false when the key is invalidated while the load runs. */
  private readonly inflight = new Map<string, { promise: Promise<unknown>; token: { valid: boolean } }>();
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

  getOrLoad<T>(key: string, loader: () => Promise<T>, options: CacheLoadOptions = {}): Promise<T> {
    const entry = this.entries.get(key);
    if (entry && entry.expiresAt > this.clock.now().getTime()) {
      this.counters.hits++;
      // Refresh recency: a Map iterates in insertion order, so re-insert at the end.
      this.entries.delete(key);
      this.entries.set(key, entry);
      return Promise.resolve(entry.value as T);
    }
    return this.miss(key, loader, options);
  }

  override getOrLoadRow<T>(key: string, loader: () => Promise<T>): Promise<T> {
    if (!this.rows) {
      this.rows = new LruCredentialCache(this.options, this.clock, this.random);
      this.rows.dropListeners = this.dropListeners;
    }
    // No serve-stale for rows: a database failure is the caller's error, never an old row.
    return this.rows.getOrLoad(key, loader);
  }

  private miss<T>(key: string, loader: () => Promise<T>, options: CacheLoadOptions): Promise<T> {
    this.counters.misses++;
    const running = this.inflight.get(key);
    if (running) {
      this.counters.coalesced++;
      return running.promise as Promise<T>;
    }
    const token = { valid: true };
    const promise = (async () => {
      this.counters.loads++;
      try {
        const value = await loader();
        if (token.valid) this.put(key, value);
        return value;
      } catch (error) {
        const stale = this.entries.get(key);
        if (
          token.valid &&
          stale &&
          this.options.maxStaleMs > 0 &&
          this.clock.now().getTime() - stale.expiresAt <= this.options.maxStaleMs &&
          (options.isServeStaleError?.(error) ?? false)
        ) {
          this.counters.staleServed++;
          return stale.value as T;
        }
        throw error;
      } finally {
        if (this.inflight.get(key)?.token === token) this.inflight.delete(key);
      }
    })();
    this.inflight.set(key, { promise, token });
    return promise;
  }

  override onDrop(listener: (key: string | null) => void): void {
    this.dropListeners.push(listener);
  }

  invalidate(key: string): void {
    this.drop(key);
    this.rows?.invalidate(key);
  }

  invalidatePrefix(prefix: string): void {
    for (const key of new Set([...this.entries.keys(), ...this.inflight.keys()])) {
      if (key.startsWith(prefix)) this.drop(key);
    }
    // The rows go by the same prefix, once (not again per value key).
    this.rows?.invalidatePrefix(prefix);
  }

  clear(): void {
    this.entries.clear();
    for (const running of this.inflight.values()) running.token.valid = false;
    this.inflight.clear();
    this.rows?.clear();
    this.dropped(null);
  }

  stats(): CredentialCacheStats {
    const { hits, misses } = this.counters;
    return { ...this.counters, hitRate: hits + misses === 0 ? 0 : hits / (hits + misses), size: this.entries.size };
  }

  resetStats(): void {
    this.counters = { hits: 0, misses: 0, loads: 0, coalesced: 0, staleServed: 0, invalidations: 0, evictions: 0 };
  }

  /** Drops the value and makes a load in flight for it not store its result. */
  private drop(key: string): void {
    this.counters.invalidations++;
    this.entries.delete(key);
    this.dropped(key);
    const running = this.inflight.get(key);
    if (running) {
      running.token.valid = false;
      this.inflight.delete(key);
    }
  }

  private put(key: string, value: unknown): void {
    const ttl = jitteredTtl(this.options.ttlMs, this.options.jitterRatio, this.random);
    this.entries.delete(key);
    this.entries.set(ownKey(key), { value, expiresAt: this.clock.now().getTime() + ttl });
    while (this.entries.size > this.options.maxEntries) {
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
      this.counters.evictions++;
      this.dropped(oldest);
    }
  }

  private dropped(key: string | null): void {
    for (const listener of this.dropListeners) listener(key);
  }
}
