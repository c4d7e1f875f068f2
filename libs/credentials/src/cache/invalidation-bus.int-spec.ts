/**
 * Integration: the Redis invalidation bus owns the subscriber connection it makes with the host's factory
 * — the app's close closes it, and a Redis that is down does not hold the close. Real Redis. The PostgreSQL
 * bus finds a LISTEN connection that stalled. Real PostgreSQL behind a proxy that can stall.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:net';
import { Redis, type RedisOptions } from 'ioredis';
import { DataSource, type DataSourceOptions } from 'typeorm';
import { createTestDatabase, startStallProxy, type StallProxy, type TestDatabase } from '@app/testing';
import { ManualClock } from '@app/common';
import { PostgresInvalidationBus, RedisInvalidationBus } from './invalidation-bus';
import { closeRedisConnection } from './redis-connection';
import { TieredCredentialCache } from './tiered-credential-cache';

const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

describe('RedisInvalidationBus: its subscriber connection', () => {
  const opened: Redis[] = [];
  afterAll(() => Promise.all(opened.map((r) => closeRedisConnection(r))));
  const connect = (url: string, options: RedisOptions = {}) => {
    const r = new Redis(url, options);
    r.on('error', () => undefined);
    opened.push(r);
    return r;
  };

  it('is closed by stop() (the host never got it to close): an app built on the README snippet can exit', async () => {
    const client = connect(REDIS_URL, { maxRetriesPerRequest: 1 });
    await client.ping().catch((e: Error) => {
      throw new Error(`Redis is required for this test but is not reachable at ${REDIS_URL} (${e.message})`);
    });
    let sub: Redis | undefined;
    const bus = new RedisInvalidationBus(client, () => (sub = client.duplicate()), `cvtest:${randomBytes(4).toString('hex')}:`, 500);
    await bus.start(() => undefined, () => undefined);
    expect(bus.healthy).toBe(true);
    await bus.stop();
    expect(sub?.status).toBe('end'); // its socket closed, not only asked to
  });

  it('stops within its timeout when Redis is down, even with maxRetriesPerRequest: null (its commands queue forever)', async () => {
    // A port nothing listens on: ioredis keeps reconnecting, and queues every command meanwhile.
    const probe: Server = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as { port: number }).port;
    await new Promise<void>((r) => probe.close(() => r()));
    const down = `redis://127.0.0.1:${port}`;
    const client = connect(down, { maxRetriesPerRequest: null });
    let sub: Redis | undefined;
    const bus = new RedisInvalidationBus(client, () => (sub = connect(down, { maxRetriesPerRequest: null })), 'cvtest:down:', 300);
    await bus.start(() => undefined, () => undefined);
    expect(bus.healthy).toBe(false);
    const disconnect = jest.spyOn(sub as Redis, 'disconnect');
    const started = Date.now();
    await bus.stop();
    expect(Date.now() - started).toBeLessThan(2000);
    expect(disconnect).toHaveBeenCalled(); // no reconnection left to keep the process alive
  });

  describe('through a TCP proxy (closing a socket takes a round trip)', () => {
    let proxy: StallProxy;
    beforeAll(async () => {
      proxy = await startStallProxy(REDIS_URL);
    });
    afterAll(() => proxy?.close());

    const busVia = async (timeoutMs: number) => {
      const made: Redis[] = [];
      const ended: Redis[] = [];
      const client = connect(REDIS_URL, { maxRetriesPerRequest: 1 });
      const bus = new RedisInvalidationBus(
        client,
        () => {
          const sub = connect(proxy.url, { maxRetriesPerRequest: 1 });
          sub.once('end', () => ended.push(sub));
          made.push(sub);
          return sub;
        },
        `cvtest:${randomBytes(4).toString('hex')}:`,
        timeoutMs,
      );
      await bus.start(() => undefined, () => undefined);
      expect(bus.healthy).toBe(true);
      return { bus, made, ended };
    };

    it('stop() resolves once every connection the bus made has ended (no socket left behind), and a second stop() closes nothing again', async () => {
      const { bus, made, ended } = await busVia(500);
      await bus.stop();
      expect(made.length).toBeGreaterThan(0);
      expect(made.map((s) => s.status)).toEqual(made.map(() => 'end'));
      expect(ended).toEqual(made);

      // Disconnecting an ended ioredis client again leaves a 2 s timer of its own running.
      const disconnects = made.map((s) => jest.spyOn(s, 'disconnect'));
      await bus.stop();
      for (const d of disconnects) expect(d).not.toHaveBeenCalled();
    });

    it('stop() returns within its timeout when Redis never answers the QUIT (a stalled path)', async () => {
      const { bus } = await busVia(300);
      proxy.stall();
      try {
        const started = Date.now();
        await bus.stop();
        expect(Date.now() - started).toBeLessThan(300 + 500); // the bound, with room for a loaded CI machine
      } finally {
        proxy.resume();
      }
    });
  });
});

describe('PostgresInvalidationBus: its LISTEN connection', () => {
  let db: TestDatabase;
  let proxy: StallProxy;
  let ds: DataSource | undefined;
  let bus: PostgresInvalidationBus | undefined;
  beforeAll(async () => {
    db = await createTestDatabase('postgres');
    proxy = await startStallProxy((db.options as { url: string }).url);
  });
  afterAll(async () => {
    proxy?.resume();
    await bus?.stop();
    await ds?.destroy();
    await proxy?.close();
    await db?.drop();
  });

  it('is opened again when it stalls without closing (TCP keepalive never notices): evictions are heard again', async () => {
    ds = await new DataSource({ ...db.options, url: proxy.url, extra: { ...(db.options as { extra?: object }).extra, connectionTimeoutMillis: 1000 } } as DataSourceOptions).initialize();
    bus = new PostgresInvalidationBus(ds, `t${randomBytes(4).toString('hex')}:`, 1000);
    const heard: string[] = [];
    await bus.start((m) => heard.push(m.o), () => undefined);
    expect(bus.healthy).toBe(true);

    proxy.stall();
    proxy.passNew(); // PostgreSQL answers on new connections; the LISTEN one stays wedged
    const deadline = Date.now() + 30_000;
    while (!heard.includes('after') && Date.now() < deadline) {
      await bus.publish({ o: 'after', t: Date.now() }).catch(() => undefined);
      await new Promise((r) => setTimeout(r, 500));
    }
    expect(heard).toContain('after');
  }, 60_000);
});

describe('PostgresInvalidationBus: heartbeats while the pool is busy', () => {
  let db: TestDatabase;
  let ds: DataSource | undefined;
  let cache: TieredCredentialCache | undefined;
  beforeAll(async () => {
    db = await createTestDatabase('postgres');
  });
  afterAll(async () => {
    await cache?.stop();
    await ds?.destroy();
    await db?.drop();
  });

  it("keeps serving from the cache while every pooled connection is busy longer than the heartbeat's threshold: the heartbeat goes over the LISTEN connection, which is what it vouches for", async () => {
    // A pool of 2 beside the LISTEN connection's own; heartbeats every 100 ms, the cache dropped after 600 ms without one.
    ds = await new DataSource({ ...db.options, extra: { ...(db.options as { extra?: object }).extra, max: 3 } } as DataSourceOptions).initialize();
    const bus = new PostgresInvalidationBus(ds, `t${randomBytes(4).toString('hex')}:`, 1000);
    cache = new TieredCredentialCache({ ttlMs: 60_000, jitterRatio: 0, maxEntries: 100, maxStaleMs: 0 }, new ManualClock(), bus, undefined, Math.random, { intervalMs: 100, lostAfterMs: 600 });
    await cache.start();
    expect(cache.hearing).toBe(true);
    let loads = 0;
    const read = () => cache!.getOrLoad('k', async () => ({ value: `v${++loads}` }));
    expect(await read()).toEqual({ value: 'v1' });

    // Requests hold both pooled connections for 2.5 s (a saturated pool: anything else queues for one).
    const busy = Promise.all([ds.query('SELECT pg_sleep(2.5)'), ds.query('SELECT pg_sleep(2.5)')]);
    await new Promise((r) => setTimeout(r, 2_000));
    expect(cache.stats().shared?.invalidation.lost).toEqual({ disconnected: 0, heartbeat: 0 });
    expect(await read()).toEqual({ value: 'v1' }); // still the cached value: no drop, no vault read
    await busy;

    // An eviction announced by another replica is still heard (the heartbeat did not stand in for it).
    await ds.query('SELECT pg_notify($1, $2)', [bus.channel, JSON.stringify({ o: 'other', k: ['k'], t: Date.now() })]);
    for (let i = 0; i < 50 && cache.stats().shared?.invalidation.received === 0; i++) await new Promise((r) => setTimeout(r, 100));
    expect(await read()).toEqual({ value: 'v2' });
  }, 30_000);
});
