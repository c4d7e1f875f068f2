import { Logger } from '@nestjs/common';
import { ManualClock } from '@app/common';
import type { CacheKeyring } from './cache-keyring';
import { CacheInvalidationBus, type HealthListener, type InvalidationListener, type InvalidationMessage } from './invalidation-bus';
import { TieredCredentialCache } from './tiered-credential-cache';

/**
 * A bus the test drives: connection state and incoming messages by hand; published messages recorded
 * (heartbeats apart) and, like pub/sub, heard by the publisher too unless `deaf` (a silently dead link).
 */
class FakeBus extends CacheInvalidationBus {
  readonly transport = 'postgres' as const;
  healthy = false;
  published: InvalidationMessage[] = [];
  heartbeats = 0;
  failPublish = false;
  deaf = false;
  private onMessage!: InvalidationListener;
  private onHealth!: HealthListener;
  async start(onMessage: InvalidationListener, onHealth: HealthListener): Promise<void> {
    this.onMessage = onMessage;
    this.onHealth = onHealth;
    this.setHealthy(true);
  }
  async publish(message: InvalidationMessage): Promise<void> {
    if (this.failPublish) throw new Error('bus down');
    if (message.k === undefined && message.p === undefined) this.heartbeats++;
    else this.published.push(message);
    if (this.healthy && !this.deaf) this.onMessage(message);
  }
  async stop(): Promise<void> {}
  setHealthy(h: boolean): void {
    this.healthy = h;
    this.onHealth(h);
  }
  deliver(m: Partial<InvalidationMessage>): void {
    this.onMessage({ o: 'another-replica', t: Date.now(), ...m });
  }
}

async function build() {
  const bus = new FakeBus();
  const cache = new TieredCredentialCache({ ttlMs: 60_000, jitterRatio: 0, maxEntries: 100, maxStaleMs: 0 }, new ManualClock(), bus);
  await cache.start();
  return { bus, cache };
}

describe('TieredCredentialCache (L1 + invalidation bus, no L2)', () => {
  it('serves from L1 and drops an entry when another replica announces its eviction', async () => {
    const { bus, cache } = await build();
    const loader = jest.fn().mockResolvedValueOnce('v1').mockResolvedValueOnce('v2');
    expect(await cache.getOrLoad('t/a', loader)).toBe('v1');
    expect(await cache.getOrLoad('t/a', loader)).toBe('v1');
    const lags: number[] = [];
    cache.onRemoteInvalidation((_m, lag) => lags.push(lag));
    bus.deliver({ k: ['t/a'] });
    expect(await cache.getOrLoad('t/a', loader)).toBe('v2');
    expect(loader).toHaveBeenCalledTimes(2);
    expect(lags).toHaveLength(1);
    expect(cache.stats().shared).toMatchObject({ l1: { hits: 1 }, invalidation: { received: 1, healthy: true, transport: 'postgres' }, l2: { enabled: false } });
  });

  it('tells onDrop listeners of local and announced evictions, and of the clear when the bus comes back', async () => {
    const { bus, cache } = await build();
    const dropped: Array<string | null> = [];
    cache.onDrop((key) => dropped.push(key));
    await cache.getOrLoad('t1/a', async () => 'a');
    await cache.getOrLoad('t1/b', async () => 'b');
    await cache.getOrLoad('t2/c', async () => 'c');
    await cache.evictEverywhere('t1/a');
    bus.deliver({ k: ['t1/b'] });
    bus.deliver({ p: 't2/' });
    expect(dropped).toEqual(['t1/a', 't1/b', 't2/c']);
    bus.setHealthy(false);
    expect(dropped.at(-1)).toBeNull();
  });

  it('ignores its own announcements (it evicted locally already) and publishes each eviction', async () => {
    const { bus, cache } = await build();
    await cache.evictEverywhere('t/a');
    expect(bus.published).toEqual([expect.objectContaining({ o: cache.instanceId, k: ['t/a'] })]);
    const loader = jest.fn(async () => 'v');
    await cache.getOrLoad('t/b', loader);
    bus.deliver({ o: cache.instanceId, k: ['t/b'] });
    await cache.getOrLoad('t/b', loader);
    expect(loader).toHaveBeenCalledTimes(1);
  });

  it('an announced prefix drops every key of the tenant only', async () => {
    const { bus, cache } = await build();
    await cache.getOrLoad('t1/a', async () => 'a');
    await cache.getOrLoad('t2/b', async () => 'b');
    bus.deliver({ p: 't1/' });
    expect(await cache.getOrLoad('t1/a', async () => 'a2')).toBe('a2');
    expect(await cache.getOrLoad('t2/b', async () => 'b2')).toBe('b');
  });

  it('while the bus is down it serves nothing cached (every read loads, counted) and starts empty when it is back', async () => {
    const { bus, cache } = await build();
    await cache.getOrLoad('t/a', async () => 'old');
    bus.setHealthy(false);
    // An eviction published meanwhile cannot arrive: the cached 'old' must not be served.
    const loader = jest.fn(async () => 'new');
    expect(await Promise.all([cache.getOrLoad('t/a', loader), cache.getOrLoad('t/a', loader)])).toEqual(['new', 'new']);
    expect(loader).toHaveBeenCalledTimes(2);
    expect(cache.stats().shared!.degradedReads).toBe(2);
    expect(cache.health()).toMatchObject({ status: 'degraded', details: { invalidationConnected: false } });
    // Nothing loaded while degraded was kept.
    expect(await cache.getOrLoad('t/a', async () => 'newer')).toBe('newer');

    bus.setHealthy(true);
    expect(cache.health().status).toBe('up');
    expect(await cache.getOrLoad('t/a', async () => 'after')).toBe('after');
    expect(await cache.getOrLoad('t/a', async () => 'x')).toBe('after');
  });

  it('while the bus is down a read never joins a load that started before it (another replica may have written in between)', async () => {
    const { bus, cache } = await build();
    bus.setHealthy(false);
    let release!: (v: string) => void;
    const before = cache.getOrLoad('t/a', () => new Promise<string>((r) => (release = r)));
    // Another replica's write is acknowledged here; this replica cannot hear its eviction.
    const after = cache.getOrLoad('t/a', async () => 'written');
    release('read-before-the-write');
    expect(await before).toBe('read-before-the-write');
    expect(await after).toBe('written');
  });

  it("a loader gets L1's shared load's signal (aborted once all readers left), or, while degraded, the reader's own", async () => {
    const { bus, cache } = await build();
    const signals: Array<AbortSignal | undefined> = [];
    const loader = (signal?: AbortSignal) => {
      signals.push(signal);
      return new Promise<string>(() => undefined);
    };
    const readers = [new AbortController(), new AbortController()];
    const waits = readers.map((r) => cache.getOrLoad('t/a', loader, {}, { signal: r.signal }).catch(() => 'left'));
    readers[0].abort();
    expect(signals[0]?.aborted).toBe(false);
    readers[1].abort();
    expect(await Promise.all(waits)).toEqual(['left', 'left']);
    expect(signals[0]?.aborted).toBe(true);

    bus.setHealthy(false);
    const own = new AbortController();
    void cache.getOrLoad('t/b', loader, {}, { signal: own.signal });
    expect(signals[1]).toBe(own.signal);
  });

  it('a load in flight when the bus drops never fills L1', async () => {
    const { bus, cache } = await build();
    let release!: (v: string) => void;
    const slow = cache.getOrLoad('t/a', () => new Promise<string>((r) => (release = r)));
    bus.setHealthy(false);
    bus.setHealthy(true);
    release('loaded-before-the-gap');
    await slow;
    expect(await cache.getOrLoad('t/a', async () => 'fresh')).toBe('fresh');
  });

  it('an eviction that could not be published fails evictEverywhere (the outbox retries) and is sent again when the bus is back', async () => {
    const { bus, cache } = await build();
    bus.failPublish = true;
    await expect(cache.evictEverywhere('t/a')).rejects.toThrow('bus down');
    cache.invalidate('t/b'); // fire and forget: never throws
    await new Promise((r) => setImmediate(r));
    expect(cache.stats().shared!.invalidation.publishErrors).toBe(2);
    expect(cache.health().details.pendingEvictions).toBe(2);
    bus.failPublish = false;
    bus.setHealthy(false);
    bus.setHealthy(true);
    await new Promise((r) => setImmediate(r));
    expect(bus.published.flatMap((m) => m.k ?? []).sort()).toEqual(['t/a', 't/b']);
    expect(cache.health().details.pendingEvictions).toBe(0);
  });

  it('a bus that stays "connected" but delivers nothing (a partition, a paused Redis): after lostAfterMs nothing cached is served, until a heartbeat is heard again', async () => {
    const bus = new FakeBus();
    const cache = new TieredCredentialCache({ ttlMs: 60_000, jitterRatio: 0, maxEntries: 100, maxStaleMs: 0 }, new ManualClock(), bus, undefined, Math.random, { intervalMs: 10, lostAfterMs: 50 });
    await cache.start();
    try {
      let n = 0;
      const loader = jest.fn(async () => `v${++n}`);
      expect(await cache.getOrLoad('t/a', loader)).toBe('v1');
      expect(await cache.getOrLoad('t/a', loader)).toBe('v1');
      // Another replica revokes t/a now; its announcement never arrives. Neither do the heartbeats.
      bus.deaf = true;
      await new Promise((r) => setTimeout(r, 120));
      expect(bus.healthy).toBe(true);
      expect(cache.health()).toMatchObject({ status: 'degraded', details: { invalidationConnected: true, invalidationHeard: false } });
      expect(await cache.getOrLoad('t/a', loader)).toBe('v2'); // from the store, not the cached v1
      expect(await cache.getOrLoad('t/a', loader)).toBe('v3'); // and not cached meanwhile
      expect(cache.stats().shared!.degradedReads).toBe(2);
      // Heard again (the link is back): caching resumes, from empty.
      bus.deaf = false;
      await new Promise((r) => setTimeout(r, 40));
      expect(cache.health().status).toBe('up');
      expect(await cache.getOrLoad('t/a', loader)).toBe('v4');
      expect(await cache.getOrLoad('t/a', loader)).toBe('v4');
      expect(bus.heartbeats).toBeGreaterThan(5);
    } finally {
      await cache.stop();
    }
  });

  it('a dropped cache is counted by reason and logged: the heartbeat lost (silent how long, against which threshold), heard again, the connection lost', async () => {
    const bus = new FakeBus();
    const cache = new TieredCredentialCache({ ttlMs: 60_000, jitterRatio: 0, maxEntries: 100, maxStaleMs: 0 }, new ManualClock(), bus, undefined, Math.random, { intervalMs: 10, lostAfterMs: 50 });
    const warn = jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    const log = jest.spyOn(Logger.prototype, 'log').mockImplementation(() => undefined);
    const until = async (check: () => boolean) => {
      for (const deadline = Date.now() + 5000; !check(); await new Promise((r) => setTimeout(r, 5))) if (Date.now() > deadline) throw new Error('not in 5 s');
    };
    const lost = () => cache.stats().shared!.invalidation.lost;
    try {
      await cache.start();
      await cache.getOrLoad('t/a', async () => 'v1');
      await cache.getOrLoad('t/b', async () => 'v1');
      expect(lost()).toEqual({ disconnected: 0, heartbeat: 0 });

      bus.deaf = true;
      await until(() => lost().heartbeat === 1);
      const dropped = warn.mock.calls.map(([m]) => String(m)).find((m) => m.startsWith('no cache invalidation heartbeat heard for'));
      expect(dropped).toMatch(/^no cache invalidation heartbeat heard for \d+ ms \(lost after 50 ms\): 2 cached entries dropped, reads bypass the cache until one is heard$/);
      expect(Number(/for (\d+) ms/.exec(dropped!)![1])).toBeGreaterThan(50);

      bus.deaf = false;
      await until(() => cache.health().status === 'up');
      expect(log.mock.calls.map(([m]) => String(m))).toContainEqual(expect.stringMatching(/^cache invalidation heartbeat heard again, \d+ ms after the last one: serving from the cache again$/));
      expect(lost()).toEqual({ disconnected: 0, heartbeat: 1 });

      bus.setHealthy(false);
      expect(lost()).toEqual({ disconnected: 1, heartbeat: 1 });
      expect(warn).toHaveBeenLastCalledWith('cache invalidations cannot be received (connection lost): cached entries dropped, reads bypass the cache until they can');
      // A lost connection is not also a lost heartbeat, and coming back from it is the connection's own line.
      await new Promise((r) => setTimeout(r, 100));
      expect(lost().heartbeat).toBe(1);
    } finally {
      await cache.stop();
      warn.mockRestore();
      log.mockRestore();
    }
  });

  it('a clean stop is not reported as an outage (no "cannot be received" warning)', async () => {
    const { bus, cache } = await build();
    const warn = jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    try {
      bus.stop = async () => bus.setHealthy(false); // as the real buses do
      await cache.stop();
      expect(warn).not.toHaveBeenCalled();
    } finally {
      warn.mockRestore();
    }
  });

  it('while some replicas cannot be heard (setUnheardReplicas) nothing cached is served, and it says so once when it starts and ends', async () => {
    const { cache } = await build();
    const warn = jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    const log = jest.spyOn(Logger.prototype, 'log').mockImplementation(() => undefined);
    try {
      let n = 0;
      const loader = jest.fn(async () => `v${++n}`);
      const dropped: Array<string | null> = [];
      cache.onDrop((key) => dropped.push(key));
      expect(await cache.getOrLoad('t/a', loader)).toBe('v1');
      expect(await cache.getOrLoadRow('t/a', async () => 'r1')).toBe('r1');
      dropped.length = 0;

      cache.setUnheardReplicas('another prefix is live');
      expect(new Set(dropped)).toEqual(new Set([null])); // the unpacked reads forget the values too
      expect(await cache.getOrLoad('t/a', loader)).toBe('v2');
      expect(await cache.getOrLoad('t/a', loader)).toBe('v3');
      expect(await cache.getOrLoadRow('t/a', async () => 'r2')).toBe('r2');
      cache.setUnheardReplicas('another prefix is live');
      cache.setUnheardReplicas('two other prefixes are live');
      expect(cache.stats().shared).toMatchObject({ degradedReads: 2, invalidation: { healthy: true, unheardReplicas: 'two other prefixes are live' } });
      expect(cache.health()).toMatchObject({ status: 'degraded', details: { message: 'two other prefixes are live: reads bypass the cache' } });
      expect(warn.mock.calls.map(([m]) => String(m))).toEqual(['another prefix is live: 1 cached entries dropped, reads bypass the cache until every replica is heard']);

      cache.setUnheardReplicas(undefined);
      cache.setUnheardReplicas(undefined);
      for (const until = Date.now() + 5000; cache.health().status !== 'up' && Date.now() < until; ) await new Promise((r) => setTimeout(r, 5));
      expect(cache.health().status).toBe('up');
      expect(await cache.getOrLoad('t/a', loader)).toBe('v4');
      expect(await cache.getOrLoad('t/a', loader)).toBe('v4');
      expect(log.mock.calls.map(([m]) => String(m)).filter((m) => m.startsWith('every replica'))).toEqual(['every replica is heard again: the cache serves again once a heartbeat is heard']);
      expect(cache.stats().shared!.invalidation).not.toHaveProperty('unheardReplicas');
    } finally {
      warn.mockRestore();
      log.mockRestore();
      await cache.stop();
    }
  });

  it("lends its fan-out to another cache (replicaEvictions): that cache's announcements in a scope of their own, never the credential cache's, and one generation per period of hearing", async () => {
    const { bus, cache } = await build();
    const evictions = cache.replicaEvictions();
    const heard: Array<readonly string[]> = [];
    const stop = evictions.listen('keys', (keys) => heard.push(keys));
    await cache.getOrLoad('t/a', async () => 'v1');
    const first = evictions.heardGeneration();
    expect(first).toEqual(expect.any(Number));

    bus.deliver({ s: 'keys', k: ['t/a'] }); // another cache's key that happens to look like a credential's: not evicted
    bus.deliver({ s: 'other', k: ['x'] });
    expect(heard).toEqual([['t/a']]);
    expect(await cache.getOrLoad('t/a', async () => 'v2')).toBe('v1');
    expect(cache.stats().shared!.invalidation.received).toBe(0);

    await evictions.announce('keys', ['k1']);
    expect(bus.published).toEqual([expect.objectContaining({ o: cache.instanceId, s: 'keys', k: ['k1'] })]);
    expect(heard).toHaveLength(1); // its own announcement is not handed back
    expect(evictions.heardGeneration()).toBe(first);

    // A gap in hearing: no generation meanwhile, a new one after it, even though the bus is back.
    bus.failPublish = true;
    await expect(evictions.announce('keys', ['k2'])).rejects.toThrow('bus down');
    bus.setHealthy(false);
    expect(evictions.heardGeneration()).toBeUndefined();
    bus.failPublish = false;
    bus.setHealthy(true);
    await new Promise((r) => setImmediate(r));
    const second = evictions.heardGeneration();
    expect(second).toEqual(expect.any(Number));
    expect(second).not.toBe(first);
    // The announcement that could not be sent went once the bus was heard again.
    expect(bus.published.filter((m) => m.s === 'keys').map((m) => m.k)).toEqual([['k1'], ['k2']]);
    cache.setUnheardReplicas('another prefix is live');
    expect(evictions.heardGeneration()).toBeUndefined();

    stop();
    bus.deliver({ s: 'keys', k: ['k3'] });
    expect(heard).toHaveLength(1);
    await cache.stop();
  });

  it('metadata rows: kept in L1 only, dropped by an announced eviction, never cached while the bus is down', async () => {
    const { bus, cache } = await build();
    const read = (v: string) => cache.getOrLoadRow('t/a', async () => v);
    expect(await read('r1')).toBe('r1');
    expect(await read('r2')).toBe('r1');
    bus.deliver({ k: ['t/a'] });
    expect(await read('r3')).toBe('r3');
    bus.deliver({ p: 't/' });
    expect(await read('r4')).toBe('r4');
    bus.setHealthy(false);
    expect(await read('r5')).toBe('r5');
    expect(await read('r6')).toBe('r6');
    bus.setHealthy(true);
    expect(await read('r7')).toBe('r7');
    expect(await read('r8')).toBe('r7');
    // Rows are no published entries and no value reads.
    expect(bus.published).toEqual([]);
    expect(cache.stats()).toMatchObject({ hits: 0, misses: 0, loads: 0 });
  });
});

describe('TieredCredentialCache health with L2 (a Redis client the test drives)', () => {
  it('reports L2 down while its connection is not ready, before any call of the tier has failed, and up when it is ready again', async () => {
    const client = {
      status: 'ready',
      eval: jest.fn(),
      scan: jest.fn().mockResolvedValue(['0', []]), // an empty shared tier, emptied at start
      del: jest.fn(),
      publish: jest.fn(),
    };
    const keyring = { current: async () => ({ id: 'k1', key: Buffer.alloc(32) }), version: async () => null } as unknown as CacheKeyring;
    const l2 = { client, keyring, keyPrefix: 'p:', lockMs: 1000, waitMs: 500, pollMs: 50, operationTimeoutMs: 500, generationTtlMs: 300_000 };
    const cache = new TieredCredentialCache({ ttlMs: 60_000, jitterRatio: 0, maxEntries: 100, maxStaleMs: 0 }, new ManualClock(), new FakeBus(), l2);
    await cache.start();
    expect(cache.health()).toMatchObject({ tier: 'redis', status: 'up', details: { l2: 'up' } });

    client.status = 'reconnecting'; // Redis went away; no read came since, so no call failed
    expect(cache.health()).toMatchObject({ status: 'degraded', details: { l2: 'down', message: 'the shared cache tier is not connected to Redis: reads skip it' } });
    expect(client.eval).not.toHaveBeenCalled();

    client.status = 'ready';
    expect(cache.health()).toMatchObject({ status: 'up', details: { l2: 'up' } });
  });
});
