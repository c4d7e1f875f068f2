import { randomUUID } from 'node:crypto';
import { Logger } from '@nestjs/common';
import { Clock } from '@app/common';
import { CacheEntryKey, jitteredTtl } from './cache-entry-cipher';
import { CacheCaller, CacheLoader, CacheLoadOptions, CredentialCache, CredentialCacheHealth, CredentialCacheStats, type ReplicaEvictions, SharedCacheStats } from './credential-cache';
import { EvictionHearing } from './eviction-hearing';
import { LentEvictions } from './lent-evictions';
import { CacheInvalidationBus, InvalidationMessage, publishedAt as now, RedisInvalidationBus } from './invalidation-bus';
import { DEFAULT_INVALIDATION_LIVENESS, type InvalidationLiveness } from './invalidation-liveness';
import { LruCredentialCache, LruCredentialCacheOptions } from './lru-credential-cache';
import { type AcquireReply, RedisTier, type RedisTierOptions } from './redis-tier';

export type { RedisTierOptions } from './redis-tier';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Two levels, cache-aside: L1 in process (the LRU, with its single-flight and invalidation tokens)
 * and, optionally, L2 in Redis — entries AES-256-GCM-sealed under a key from the vault, bound to
 * their cache key — plus an invalidation bus (Redis pub/sub or PostgreSQL NOTIFY) that carries every
 * eviction to every replica.
 *
 * - An L1 miss asks L2; an L2 miss takes the key's load lock (cluster-wide single-flight), loads and
 *   fills; the other replicas poll for the fill (bounded) and load themselves if the holder dies.
 * - A load that started before an eviction never fills: not L1 (the LRU's token), not L2 (the fill
 *   is refused when the key's generation moved).
 * - Every replica publishes a heartbeat on the bus every `liveness.intervalMs`; one that has heard
 *   none for `liveness.lostAfterMs` (a partition or a paused Redis, which leave the connection "up"), or
 *   whose bus is not connected, cannot rely on hearing evictions. Each time the bus connects (and at
 *   start) this deployment's L2 entries are deleted first: Redis may have come back with old ones.
 *   That state machine, with `setUnheardReplicas`, is `EvictionHearing` (eviction-hearing.ts).
 * - While evictions cannot be heard this replica serves nothing cached
 *   (every read loads for itself, counted as degraded — no single-flight: a load that started before
 *   another replica's write could answer a read that began after it was acknowledged) and empties L1
 *   when connected again. A Redis error is an L2 miss (counted), never a failed read.
 */
export class TieredCredentialCache extends CredentialCache {
  private readonly logger = new Logger('CredentialCache');
  readonly instanceId = randomUUID();
  private readonly l1: LruCredentialCache;
  private readonly l2?: RedisTier;
  /** Evictions that could not reach Redis: sent again when the bus is back (the outbox retries them too). */
  private readonly pending = new Set<string>();
  private readonly listeners = new Set<(message: InvalidationMessage, lagMs: number) => void>();
  private loads = 0;
  private counters = this.zero();
  private started = false;
  /** Whether evictions are heard: until they are, nothing cached is served. */
  private readonly hearingState: EvictionHearing;
  /** The fan-out lent to another cache of the process (`replicaEvictions`). */
  private readonly lent: LentEvictions;

  constructor(
    private readonly options: LruCredentialCacheOptions,
    clock: Clock,
    private readonly bus: CacheInvalidationBus,
    l2Options?: RedisTierOptions,
    private readonly random: () => number = Math.random,
    private readonly liveness: InvalidationLiveness = DEFAULT_INVALIDATION_LIVENESS,
  ) {
    super();
    this.l1 = new LruCredentialCache(options, clock, random);
    const l2 = (this.l2 = l2Options ? new RedisTier(l2Options) : undefined);
    this.hearingState = new EvictionHearing(bus, this.instanceId, liveness, {
      dropLocal: () => {
        const entries = this.l1.stats().size;
        this.l1.clear();
        return entries;
      },
      emptyShared: l2 && (() => l2.clear()),
      resumed: () => {
        const keys = [...this.pending];
        if (keys.length > 0) this.evictShared(keys).catch(() => undefined);
        this.lent.resend();
      },
    });
    this.lent = new LentEvictions(bus, this.instanceId, () => this.hearingState.generation(), now);
  }

  /** Evictions are heard (`EvictionHearing.hearing`): otherwise nothing cached is served. */
  get hearing(): boolean {
    return this.hearingState.hearing;
  }

  /** Connects the bus (not fatal: until it works, reads bypass the cache) and warms the cache key. */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    await this.bus.start(
      (m) => this.receive(m),
      (healthy) => this.onBusHealth(healthy),
    );
    await this.hearingState.start();
    if (this.l2) await this.l2.options.keyring.current().catch((e: Error) => this.logger.warn(`shared cache key unavailable (${e.name}); L2 skipped until it is`));
  }

  async stop(): Promise<void> {
    this.hearingState.stop();
    await this.bus.stop();
  }

  /** The same bus, heartbeats and hearing state, for another cache of the process (the host lends it to the keys lib). */
  override replicaEvictions(): ReplicaEvictions {
    return this.lent;
  }

  /** Observes evictions received from other replicas, with their propagation lag (benches, metrics). */
  onRemoteInvalidation(listener: (message: InvalidationMessage, lagMs: number) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  getOrLoad<T>(key: string, loader: CacheLoader<T>, options: CacheLoadOptions = {}, caller?: CacheCaller): Promise<T> {
    if (!this.hearing) return this.degraded(key, loader, caller);
    return this.l1.getOrLoad(key, (signal) => this.loadShared(key, loader, signal), options, caller);
  }

  /** Rows live in L1 only (evicted with the values there); while evictions cannot be heard, never cached. */
  override getOrLoadRow<T>(key: string, loader: () => Promise<T>): Promise<T> {
    if (!this.hearing) return loader();
    return this.l1.getOrLoadRow(key, loader);
  }

  /** Every drop goes through L1 (local and remote invalidations, bus-health clears). */
  override onDrop(listener: (key: string | null) => void): void {
    this.l1.onDrop(listener);
  }

  invalidate(key: string): void {
    this.l1.invalidate(key);
    this.evictShared([key]).catch(() => undefined);
  }

  override async evictEverywhere(key: string): Promise<void> {
    this.l1.invalidate(key);
    await this.evictShared([key]);
  }

  /** A replica that did not hear it has gone degraded by now: it heard no heartbeat either, for `lostAfterMs`. */
  override async outlastUnheardEviction(): Promise<void> {
    await sleep(this.liveness.lostAfterMs + this.liveness.intervalMs);
  }

  /** See `EvictionHearing.setUnheardReplicas`. */
  override setUnheardReplicas(reason: string | undefined): void {
    this.hearingState.setUnheardReplicas(reason);
  }

  invalidatePrefix(prefix: string): void {
    this.l1.invalidatePrefix(prefix);
    void (async () => {
      if (this.l2) for (const key of await this.l2.keysWithPrefix(prefix)) await this.evictL2(key);
      await this.publish({ o: this.instanceId, p: prefix, t: now() });
    })().catch((e: Error) => this.logger.warn(`could not evict a key prefix everywhere: ${e.name}`));
  }

  /** Empties L1 and this deployment's L2 entries (other replicas' L1 are left to their TTL or evictions). */
  clear(): void {
    this.l1.clear();
    void this.l2?.clear().catch(() => undefined); // counted by the tier
  }

  stats(): CredentialCacheStats {
    const l1 = this.l1.stats();
    const c = this.counters;
    const unheard = this.hearingState.unheardReplicas;
    const hits = l1.hits + c.l2Hits;
    const misses = l1.misses - c.l2Hits + c.degradedReads;
    const shared: SharedCacheStats = {
      l1: { hits: l1.hits, misses: l1.misses },
      l2: {
        enabled: !!this.l2,
        hits: c.l2Hits,
        misses: c.l2Misses,
        errors: this.l2?.errors ?? 0,
        rejected: c.l2Rejected,
        fills: c.fills,
        fillsRefused: c.fillsRefused,
        lockWaits: c.lockWaits,
        lockTimeouts: c.lockTimeouts,
      },
      degradedReads: c.degradedReads,
      invalidation: {
        transport: this.bus.transport,
        healthy: this.bus.healthy && this.hearingState.live,
        ...(unheard !== undefined ? { unheardReplicas: unheard } : {}),
        published: c.published,
        received: c.received,
        publishErrors: c.publishErrors,
        lost: { ...this.hearingState.lost },
      },
    };
    return { ...l1, hits, misses, loads: this.loads, hitRate: hits + misses === 0 ? 0 : hits / (hits + misses), shared };
  }

  resetStats(): void {
    this.l1.resetStats();
    this.loads = 0;
    this.counters = this.zero();
    this.hearingState.resetStats();
    if (this.l2) this.l2.errors = 0;
  }

  override health(): CredentialCacheHealth {
    // Down: its connection is not ready now (no call needs to fail first, and none may be made while no read comes).
    // Failing: the last Redis call failed, recently.
    const l2 = !this.l2 ? undefined : this.l2.disconnected ? 'down' : this.l2.failing ? 'failing' : 'up';
    const status = this.hearing && (l2 ?? 'up') === 'up' ? 'up' : 'degraded';
    const refusal = this.l2?.refusal;
    const why = this.hearingState.whyNotHearing() ?? `the shared cache tier is ${l2 === 'down' ? 'not connected to Redis' : `failing${refusal ? ` (${refusal})` : ''}`}: reads skip it`;
    const unheard = this.hearingState.unheardReplicas;
    return {
      tier: this.l2 ? 'redis' : 'memory',
      invalidation: this.bus.transport,
      status,
      details: {
        invalidationConnected: this.bus.healthy,
        invalidationHeard: this.hearingState.live,
        ...(unheard !== undefined ? { unheardReplicas: unheard } : {}),
        ...(l2 ? { l2 } : {}),
        pendingEvictions: this.pending.size,
        ...(status === 'degraded' ? { message: why } : {}),
      },
    };
  }

  // ─────────────────────────── reads ───────────────────────────

  /** Unheard evictions: no sharing of a load in flight (see the class comment); the vault's bulkhead bounds the burst. */
  private degraded<T>(_key: string, loader: CacheLoader<T>, caller?: CacheCaller): Promise<T> {
    this.counters.degradedReads++;
    // The caller's own load: its own signal.
    return this.load(loader, caller?.signal);
  }

  private load<T>(loader: CacheLoader<T>, signal: AbortSignal | undefined): Promise<T> {
    this.loads++;
    return loader(signal);
  }

  /** `signal`: L1's shared load's, aborted once all its callers left (then it stops waiting for another replica's fill too). */
  private async loadShared<T>(key: string, loader: CacheLoader<T>, signal?: AbortSignal): Promise<T> {
    const l2 = this.l2;
    if (!l2) return this.load(loader, signal);
    let sealKey: CacheEntryKey;
    try {
      sealKey = await l2.sealKey();
    } catch {
      return this.load(loader, signal);
    }
    const token = randomUUID();
    let deadline: number | undefined;
    for (;;) {
      let reply: AcquireReply;
      try {
        reply = await l2.acquire(key, token);
      } catch {
        // A timed-out call may still have run and taken the lock: free it (queued behind it on the same
        // connection), or the other replicas wait up to waitMs for a fill this load will never make.
        void l2.release(key, token);
        return this.load(loader, signal);
      }
      const [kind, payload] = reply;
      if (kind === 'hit') {
        const value = await l2.open<T>(key, payload);
        if (value !== undefined) {
          this.counters.l2Hits++;
          return value;
        }
        this.counters.l2Rejected++;
        return this.load(loader, signal);
      }
      if (deadline === undefined) this.counters.l2Misses++;
      if (kind === 'lock') return this.loadAndFill(l2, key, loader, signal, sealKey, payload, token);
      if (deadline === undefined) {
        this.counters.lockWaits++;
        deadline = Date.now() + l2.options.waitMs;
      } else if (Date.now() >= deadline) {
        // The holder is slow or gone: load ourselves (a fill is still refused after an eviction).
        this.counters.lockTimeouts++;
        return this.loadAndFill(l2, key, loader, signal, sealKey, payload, '');
      }
      await sleep(l2.options.pollMs);
      signal?.throwIfAborted();
    }
  }

  private async loadAndFill<T>(l2: RedisTier, key: string, loader: CacheLoader<T>, signal: AbortSignal | undefined, sealKey: CacheEntryKey, generation: string, token: string): Promise<T> {
    let value: T;
    try {
      value = await this.load(loader, signal);
    } catch (e) {
      // Let a waiter try at once instead of waiting out the lock.
      if (token) await l2.release(key, token);
      throw e;
    }
    try {
      const ttl = jitteredTtl(this.options.ttlMs, this.options.jitterRatio, this.random);
      if (await l2.fill(key, sealKey, value, generation, token, ttl)) this.counters.fills++;
      else this.counters.fillsRefused++;
    } catch {
      // Counted by the tier: the value is served, only not shared.
    }
    return value;
  }

  // ─────────────────────────── evictions ───────────────────────────

  private async evictShared(keys: string[]): Promise<void> {
    try {
      if (this.l2 && this.bus instanceof RedisInvalidationBus) {
        for (const key of keys) await this.evictL2(key, this.bus.channel, { o: this.instanceId, k: [key], t: now() });
        this.counters.published += keys.length;
        for (const key of keys) this.pending.delete(key);
        return;
      }
      for (const key of keys) await this.evictL2(key);
      await this.publish({ o: this.instanceId, k: keys, t: now() });
      for (const key of keys) this.pending.delete(key);
    } catch (e) {
      for (const key of keys) this.pending.add(key);
      throw e;
    }
  }

  private async evictL2(key: string, channel = '', message?: InvalidationMessage): Promise<void> {
    if (!this.l2) return;
    try {
      await this.l2.evict(key, channel, message);
    } catch (e) {
      if (message) this.counters.publishErrors++;
      throw e;
    }
  }

  private async publish(message: InvalidationMessage): Promise<void> {
    try {
      await this.bus.publish(message);
      this.counters.published++;
    } catch (e) {
      this.counters.publishErrors++;
      throw e;
    }
  }

  private receive(message: InvalidationMessage): void {
    this.hearingState.heard();
    if (this.lent.receive(message)) return;
    // Our own announcements (we evicted locally already) and heartbeats (keys of neither kind) drop nothing.
    if (message.o === this.instanceId || (message.k === undefined && message.p === undefined)) return;
    this.counters.received++;
    for (const key of message.k ?? []) this.l1.invalidate(key);
    if (message.p !== undefined) this.l1.invalidatePrefix(message.p);
    const lag = now() - message.t;
    for (const listener of this.listeners) listener(message, lag);
  }

  private onBusHealth(healthy: boolean): void {
    // A confirmed Redis subscription: the server answers again (before the shared tier is emptied).
    if (healthy && this.bus.transport === 'redis') this.l2?.answered();
    this.hearingState.busHealth(healthy);
  }

  private zero() {
    return {
      l2Hits: 0,
      l2Misses: 0,
      l2Rejected: 0,
      fills: 0,
      fillsRefused: 0,
      lockWaits: 0,
      lockTimeouts: 0,
      degradedReads: 0,
      published: 0,
      received: 0,
      publishErrors: 0,
    };
  }
}
