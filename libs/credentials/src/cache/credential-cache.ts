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
}

export interface CacheLoadOptions {
  /**
   * Decides whether a load failure may be answered with a stale entry (within maxStaleMs). Only
   * availability failures should qualify; "not found" must never be papered over.
   */
  isServeStaleError?: (error: unknown) => boolean;
}

/**
 * A read-through cache of credential reads, keyed by tenant + credential. An abstract class so it is
 * also the DI token: a Redis (L2) implementation can be bound later without touching the service.
 *
 * Implementations must: coalesce concurrent misses of one key into one load (single-flight); never
 * store the result of a load that started before an `invalidate` of the same key; hold values in
 * process memory only (or encrypted, for a shared tier).
 */
export abstract class CredentialCache {
  abstract getOrLoad<T>(key: string, loader: () => Promise<T>, options?: CacheLoadOptions): Promise<T>;
  /** Drops a key and makes any in-flight load for it unable to populate the cache. */
  abstract invalidate(key: string): void;
  /** Drops every key starting with `prefix` (e.g. a whole tenant). */
  abstract invalidatePrefix(prefix: string): void;
  abstract clear(): void;
  abstract stats(): CredentialCacheStats;
  abstract resetStats(): void;
}
