/** Counters of the shared (L2) tier and the invalidation fan-out; absent for the in-process cache. */
export interface SharedCacheStats {
  l1: { hits: number; misses: number };
  /** Redis tier: `hits` decrypted and served; `rejected` entries that failed to decrypt (another key, tampered: a miss). */
  l2: { enabled: boolean; hits: number; misses: number; errors: number; rejected: number; fills: number; fillsRefused: number; lockWaits: number; lockTimeouts: number };
  /** Reads served straight from the loader because invalidations could not be received, or not from every replica (no L1, no L2). */
  degradedReads: number;
  /**
   * `lost`: how many times this replica stopped hearing evictions and dropped its in-process entries (reads then
   * bypass the cache until it hears again), by reason — the bus connection closed, or it stayed open but no
   * heartbeat was heard within `cache.heartbeat.lostAfterMs`. `healthy`: this replica hears its fan-out (its
   * reads may still bypass the cache: `unheardReplicas`).
   */
  invalidation: {
    transport: 'redis' | 'postgres';
    healthy: boolean;
    /** Why some replicas cannot be heard (`setUnheardReplicas`), while they cannot: reads bypass the cache. */
    unheardReplicas?: string;
    published: number;
    received: number;
    publishErrors: number;
    lost: { disconnected: number; heartbeat: number };
  };
}

/** Counters of one cache instance. `loads` counts value-store fetches made through the cache. */
export interface CredentialCacheStats {
  hits: number;
  misses: number;
  /** hits / (hits + misses), 0 when nothing was read yet. */
  hitRate: number;
  /** Loader calls (each one reached the value store): misses minus those joined to an in-flight load. */
  loads: number;
  /** Misses that joined a load already in flight (single-flight). */
  coalesced: number;
  /** Expired entries served because the value store failed (serve-stale). */
  staleServed: number;
  invalidations: number;
  evictions: number;
  size: number;
  /**
   * Bytes of slab room the in-process tier holds for its packed entries (values and rows, dead room
   * included): memory outside V8's heap that `process.memoryUsage()` counts in `rss` only (not in
   * `external` nor `arrayBuffers`). Absent for a cache that keeps no slabs.
   */
  slabBytes?: number;
  /**
   * Bytes of the process's slab pool, which every cache's slabs come from: slabs in use and released ones
   * kept for reuse (a WebAssembly memory does not shrink). What the slabs add to RSS at most.
   */
  slabPoolBytes?: number;
  /** Only for a cache shared across replicas (`cache.store` redis, or invalidation fan-out on). */
  shared?: SharedCacheStats;
}

export interface CacheLoadOptions {
  /**
   * Decides whether a load failure may be answered with a stale entry (within maxStaleMs). Only
   * availability failures should qualify; "not found" must never be papered over.
   */
  isServeStaleError?: (error: unknown) => boolean;
}

/**
 * Loads a missing entry. `signal` is the load's: for a load shared by several callers it aborts only once every one of
 * them has left (then the result is not kept); for a load that is one caller's own, that caller's signal.
 */
export type CacheLoader<T> = (signal?: AbortSignal) => Promise<T>;

/**
 * Who waits for a read: its `signal` aborts when the caller leaves (`OperationContext` is one). Read only on a miss:
 * the host makes the signal when first asked, and a hit never asks.
 */
export interface CacheCaller {
  readonly signal?: AbortSignal;
}

/** What a health check reports: `degraded` while a shared tier or the fan-out is unavailable. */
export interface CredentialCacheHealth {
  tier: 'memory' | 'redis';
  invalidation: 'none' | 'redis' | 'postgres';
  status: 'up' | 'degraded';
  details: Record<string, unknown>;
}

/**
 * The credential cache's eviction fan-out, lent to another cache of the process whose entries other replicas change
 * (the keys lib's key cache, wired by the host): the same bus, heartbeats and "not hearing" state. Its announcements
 * travel in a `scope` of their own and never touch the credential cache.
 */
export interface ReplicaEvictions {
  /**
   * Synchronous and cheap (read before each cached use): a number that stays the same for as long as this replica
   * hears every replica's evictions without a gap, `undefined` while it may miss some (the fan-out is disconnected, no
   * heartbeat heard within `lostAfterMs`, or `setUnheardReplicas`). An entry cached under one number may be trusted
   * only while that number is still the current one: a gap, even one that has ended, changes it.
   */
  heardGeneration(): number | undefined;
  /**
   * Tells every other replica to drop `keys` of `scope`; resolves once published, rejects when it could not be
   * (they are then sent again once this replica hears the fan-out again).
   */
  announce(scope: string, keys: readonly string[]): Promise<void>;
  /** Calls `listener` with the keys of `scope` other replicas announce; returns what stops it. */
  listen(scope: string, listener: (keys: readonly string[]) => void): () => void;
}

/**
 * A read-through cache of credential reads, keyed by tenant + credential. An abstract class so it is
 * also the DI token: the in-process LRU or the two-level (L1 + Redis L2) cache is bound by the module.
 *
 * Implementations must: coalesce concurrent misses of one key into one load (single-flight); let each
 * caller who leaves (`caller.signal`) stop waiting at once, rejected with CANCELLED (`callerLeftError`,
 * stage `shared`), and abort the shared load (its loader's signal) only once every caller waiting for it
 * has left — a caller who comes after that starts a fresh load, and a cancelled load is never kept; never
 * store the result of a load that started before an `invalidate` of the same key; hold values in
 * process memory only (or encrypted, for a shared tier).
 */
export abstract class CredentialCache {
  abstract getOrLoad<T>(key: string, loader: CacheLoader<T>, options?: CacheLoadOptions, caller?: CacheCaller): Promise<T>;
  /**
   * A credential's metadata row under the key of its value entry, kept in process only (never in a
   * shared tier), with the same single-flight and TTL, and dropped with that entry by `invalidate`,
   * `invalidatePrefix`, `clear` and `evictEverywhere` — so every change that evicts a value evicts its
   * row. Not counted in `stats()`. This default keeps nothing: an implementation that cannot evict
   * rows together with values must not cache them.
   */
  getOrLoadRow<T>(_key: string, loader: () => Promise<T>): Promise<T> {
    return loader();
  }

  /**
   * Registers `listener`, called with each key this cache drops (invalidated, evicted for room) and with
   * `null` when it drops everything, so that a caller's memo of what it read from the cache (the unpacked
   * reads) forgets it at once: a revoked value must not stay in memory. This default never calls it.
   */
  onDrop(_listener: (key: string | null) => void): void {}

  /** Drops a key and makes any in-flight load for it unable to populate the cache. */
  abstract invalidate(key: string): void;
  /** Drops every key starting with `prefix` (e.g. a whole tenant). */
  abstract invalidatePrefix(prefix: string): void;
  abstract clear(): void;
  abstract stats(): CredentialCacheStats;
  abstract resetStats(): void;

  /**
   * Evicts a key on every replica (and from a shared tier) and resolves once that is done; rejects
   * when it could not be (the caller — the outbox handler — retries). In process: `invalidate`.
   */
  evictEverywhere(key: string): Promise<void> {
    this.invalidate(key);
    return Promise.resolve();
  }

  /**
   * After an eviction `evictEverywhere` could not announce: resolves once every replica that cannot hear
   * announcements has stopped serving from its cache (the shared cache's liveness bound). In process: at once.
   */
  outlastUnheardEviction(): Promise<void> {
    return Promise.resolve();
  }

  /**
   * Tells the cache that some replicas of the deployment announce their evictions where it cannot hear them (the
   * host: another `REDIS_KEY_PREFIX` live on the same database and vault) — `reason` says so, for the log and health
   * — or, with `undefined`, that every replica is heard again. Meanwhile nothing cached is served: every read goes
   * to the store, as while the fan-out is down, and the in-process entries are dropped; when it ends, a shared tier
   * is emptied (it may hold values changed on the unheard side) before anything is cached again. This default, for
   * a cache that hears no other replica anyway (the in-process LRU), ignores it.
   */
  setUnheardReplicas(_reason: string | undefined): void {}

  /**
   * The eviction fan-out for another cache of the process (`ReplicaEvictions`), or `undefined` when this cache has
   * none (the in-process LRU: one process, or no fan-out configured) — that other cache then hears nothing from other
   * replicas and relies on its own TTL.
   */
  replicaEvictions(): ReplicaEvictions | undefined {
    return undefined;
  }

  health(): CredentialCacheHealth {
    return { tier: 'memory', invalidation: 'none', status: 'up', details: {} };
  }
}
