import { randomInt } from 'node:crypto';
import { withTimeout } from '@app/common';
import { CacheEntryKey, cacheEntryKeyId, decodeCacheValue, encodeCacheValue, openCacheEntry, sealCacheEntry } from './cache-entry-cipher';
import type { CacheKeyring } from './cache-keyring';
import type { InvalidationMessage } from './invalidation-bus';
import { type CacheRedisClient, redisCommandRefusal } from './redis-connection';

/** The Redis (L2) tier of a TieredCredentialCache. */
export interface RedisTierOptions {
  client: CacheRedisClient;
  keyring: CacheKeyring;
  /** Every key starts with it (entries `<p>e:{key}`, generations `<p>g:{key}`, locks `<p>l:{key}`). */
  keyPrefix: string;
  /** How long a replica may hold the load lock of a key. */
  lockMs: number;
  /** How long the others wait for its fill before loading themselves. */
  waitMs: number;
  /** How often a waiter looks for the fill. */
  pollMs: number;
  /** Bound on each Redis round trip: a slow Redis is an L2 miss, not a slow read. */
  operationTimeoutMs: number;
  /** Generation keys (the "an eviction happened" marks) live this long: longer than any load (see credential-cache.provider.ts). */
  generationTtlMs: number;
}

/** What one ACQUIRE round trip found: the sealed entry, or the key's generation with its load lock taken or not. */
export type AcquireReply = ['hit', string] | ['lock', string] | ['wait', string];

// One round trip: the entry if any, else the key's generation and, if free, its load lock. A key with no
// generation gets a random one, never a default: a fill compares it exactly, so one begun before Redis lost
// the key (deleted, restarted empty, evicted for memory) finds it changed. A held lock without expiry (restored
// from a snapshot without TTL, a manual SET) gets the lock's again: else it is never freed, every miss on the key
// waits out waitMs and single-flight is lost for ever.
const ACQUIRE = `
local v = redis.call('GET', KEYS[1])
if v then return {'hit', v} end
local g = redis.call('GET', KEYS[2])
if not g then g = ARGV[4]; redis.call('SET', KEYS[2], g, 'PX', ARGV[3]) end
if redis.call('SET', KEYS[3], ARGV[1], 'NX', 'PX', ARGV[2]) then return {'lock', g} end
if redis.call('PTTL', KEYS[3]) == -1 then redis.call('PEXPIRE', KEYS[3], ARGV[2]) end
return {'wait', g}`;
// Fill only if no eviction happened since the load started (the generation is still the one it read); free our lock.
const FILL = `
local filled = 0
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]); filled = 1 end
if ARGV[4] ~= '' and redis.call('GET', KEYS[3]) == ARGV[4] then redis.call('DEL', KEYS[3]) end
return filled`;
const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;
// An eviction: bump the generation (in-flight fills are refused) and drop the entry. A missing generation gets a
// random one here too, never 1: a load that read a 1 an earlier eviction created would match it after Redis lost the key.
// With the Redis bus, the announcement goes in the same round trip, after the entry is gone (an L1
// dropped before its L2 entry could be refilled from it).
const EVICT = `
if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('INCR', KEYS[2]) else redis.call('SET', KEYS[2], ARGV[4]) end
redis.call('PEXPIRE', KEYS[2], ARGV[1])
redis.call('DEL', KEYS[1])
if ARGV[2] ~= '' then redis.call('PUBLISH', ARGV[2], ARGV[3]) end
return 1`;

/** How long "the last Redis call failed" keeps the tier reported failing. */
const FAILING_FOR_MS = 10_000;

/**
 * The Redis side of the shared cache: entries AES-256-GCM-sealed under a key from the vault and bound to
 * their cache key, a generation per key that refuses fills begun before an eviction, and a load lock per
 * key (cluster-wide single-flight). Every call is bounded by `operationTimeoutMs` and counted: a failure
 * rejects (the cache treats it as a miss), and marks the tier failing for a while.
 */
export class RedisTier {
  /** Calls that failed or timed out (stats). */
  errors = 0;
  private lastError = 0;
  private lastOk = 0;
  /** The last failed call's refusal for lack of permission (`redisCommandRefusal`), if that is what it was. */
  private lastRefusal?: string;

  constructor(readonly options: RedisTierOptions) {}

  /** The last call failed, within the last 10 s. */
  get failing(): boolean {
    return this.lastError > this.lastOk && Date.now() - this.lastError < FAILING_FOR_MS;
  }

  /** While `failing`: Redis refused the last failed call for lack of permission, in words (readiness names it). */
  get refusal(): string | undefined {
    return this.failing ? this.lastRefusal : undefined;
  }

  /** The connection cannot run a command now (reconnecting, not yet connected, closed): its calls would wait and fail. */
  get disconnected(): boolean {
    const status = this.options.client.status;
    return status !== undefined && status !== 'ready';
  }

  /** The server answered outside a call of ours (a confirmed subscription). */
  answered(): void {
    this.lastOk = Date.now();
  }

  /** Counts a failure that happened around the tier (not in one of its calls). */
  failed(): void {
    this.errors++;
    this.lastError = Date.now();
  }

  /** The key new entries are sealed with (fetched from the vault once, then kept by the keyring). */
  sealKey(): Promise<CacheEntryKey> {
    return this.call(this.options.keyring.current());
  }

  /** The entry, or the generation and whether this caller got the load lock (`token`). */
  async acquire(key: string, token: string): Promise<AcquireReply> {
    const { lockMs, generationTtlMs } = this.options;
    return (await this.call(this.options.client.eval(ACQUIRE, 3, this.entryKey(key), this.genKey(key), this.lockKey(key), token, String(lockMs), String(generationTtlMs), freshGeneration()))) as AcquireReply;
  }

  /** Writes the sealed entry unless the key's generation moved since `generation`; frees the lock `token` holds. */
  async fill(key: string, sealKey: CacheEntryKey, value: unknown, generation: string, token: string, ttlMs: number): Promise<boolean> {
    let sealed: string;
    try {
      sealed = sealCacheEntry(sealKey, key, encodeCacheValue(value));
    } catch (e) {
      this.failed();
      throw e;
    }
    const filled = await this.call(this.options.client.eval(FILL, 3, this.entryKey(key), this.genKey(key), this.lockKey(key), generation, sealed, String(ttlMs), token));
    return filled === 1;
  }

  /** Frees the load lock so a waiter can try at once (best effort: it expires anyway). */
  async release(key: string, token: string): Promise<void> {
    await this.call(this.options.client.eval(RELEASE, 1, this.lockKey(key), token)).catch(() => undefined);
  }

  /** The entry's value, or undefined when it does not open (another key's entry, tampered, a key no longer known, an old format). */
  async open<T>(key: string, sealed: string): Promise<T | undefined> {
    const id = cacheEntryKeyId(sealed);
    const sealKey = id ? await this.options.keyring.version(id) : null;
    const text = sealKey ? openCacheEntry(sealKey, key, sealed) : null;
    if (text === null) return undefined;
    try {
      return decodeCacheValue<T>(text);
    } catch {
      return undefined;
    }
  }

  /** Bumps the key's generation and drops its entry; with `channel`, publishes `message` in the same round trip. */
  async evict(key: string, channel = '', message?: InvalidationMessage): Promise<void> {
    const announce = message ? JSON.stringify(message) : '';
    await this.call(this.options.client.eval(EVICT, 2, this.entryKey(key), this.genKey(key), String(this.options.generationTtlMs), channel, announce, freshGeneration()));
  }

  /** Deletes this deployment's entries. */
  async clear(): Promise<void> {
    const client = this.options.client;
    await Promise.all((await this.keysWithPrefix('')).map((k) => this.call(client.del(this.entryKey(k)))));
  }

  /** Cache keys with an entry starting with `prefix` (SCAN, never KEYS). */
  async keysWithPrefix(prefix: string): Promise<string[]> {
    const head = `${this.options.keyPrefix}e:{`;
    const match = `${escapeGlob(head + prefix)}*`;
    const keys: string[] = [];
    let cursor = '0';
    do {
      const [next, batch] = await this.call(this.options.client.scan(cursor, 'MATCH', match, 'COUNT', 500));
      cursor = next;
      for (const k of batch) keys.push(k.slice(head.length, -1));
    } while (cursor !== '0');
    return keys;
  }

  /** One bounded round trip, its outcome recorded. */
  private async call<T>(work: Promise<T>): Promise<T> {
    try {
      const value = await withTimeout(work, this.options.operationTimeoutMs);
      this.lastOk = Date.now();
      return value;
    } catch (e) {
      this.failed();
      this.lastRefusal = redisCommandRefusal(e);
      throw e;
    }
  }

  // The hash tag keeps a key's entry, generation and lock in one Redis Cluster slot (one script).
  private entryKey(key: string): string {
    return `${this.options.keyPrefix}e:{${key}}`;
  }

  private genKey(key: string): string {
    return `${this.options.keyPrefix}g:{${key}}`;
  }

  private lockKey(key: string): string {
    return `${this.options.keyPrefix}l:{${key}}`;
  }
}

/** A generation for a key Redis has none of: an integer (EVICT increments it, as replicas of earlier releases do) in [2^52, 2^53), exact as a double, far from a counter started at 0. */
function freshGeneration(): string {
  return String(2 ** 52 + randomInt(2 ** 47) * 32 + randomInt(32));
}

function escapeGlob(s: string): string {
  return s.replace(/[*?[\]\\]/g, (c) => `\\${c}`);
}
