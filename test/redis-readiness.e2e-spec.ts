import { randomBytes } from 'node:crypto';
import { REDIS_URL } from './support/database';
import { startTestHost, type TestHost } from './support/host';
import { startRedisForwarder, type RedisForwarder } from './support/redis-forwarder';
import { deleteRedisKeys, requireRedis } from './support/replica';
import { startStallProxy, type StallProxy } from './support/stall-proxy';

interface Readiness {
  status: number;
  ms: number;
  body: { status: string; details: { cache: Record<string, unknown> } };
}

async function readiness(host: TestHost): Promise<Readiness> {
  const started = Date.now();
  const res = await fetch(`${host.baseUrl}/health/ready`);
  const body = (await res.json()) as Readiness['body'];
  return { status: res.status, ms: Date.now() - started, body };
}

/** Polls readiness until `done` accepts it (or `withinMs` passed: the last answer, for the assertion to show). */
async function readinessUntil(host: TestHost, done: (r: Readiness) => boolean, withinMs: number): Promise<Readiness> {
  let r = await readiness(host);
  for (const until = Date.now() + withinMs; !done(r) && Date.now() < until; r = await readiness(host)) await new Promise((res) => setTimeout(res, 200));
  return r;
}

/**
 * What readiness says of the shared cache tier (L2, in Redis) while Redis is gone — whether or not a cache call has
 * failed meanwhile: no credential is read in these tests, so only readiness itself can find out. Degraded, still 200.
 */
describe('readiness while Redis is unreachable or stalled (SQLite host)', () => {
  let prefix: string;
  let host: TestHost | undefined;

  beforeAll(async () => {
    await requireRedis().then((r) => r.quit());
  });

  beforeEach(() => {
    prefix = `cvt-ready-${randomBytes(4).toString('hex')}:`;
  });

  /**
   * Each case closes its host before its proxy, while Redis answers through it: a host closed with its Redis connections
   * between reconnection attempts leaves ioredis's 2 s disconnect timer running past this file (see
   * closeRedisConnection) — a jest worker that ran it last was force-killed ('failed to exit gracefully').
   */
  const closeHost = async () => {
    await host?.close();
    host = undefined;
  };

  afterEach(async () => {
    await closeHost(); // a case that failed before its own close
    const redis = await requireRedis();
    await deleteRedisKeys(redis, prefix);
    await redis.quit();
  });

  const start = (redisUrl: string) => startTestHost('sqlite', { REDIS_URL: redisUrl, REDIS_KEY_PREFIX: prefix });
  const down = (r: Readiness) => r.body.details.cache.redis === 'down';

  it('Redis unreachable: cache degraded with l2 and redis down, still 200; up again when it is back', async () => {
    let proxy: RedisForwarder = await startRedisForwarder(new URL(REDIS_URL));
    try {
      host = await start(`redis://127.0.0.1:${proxy.port}`);
      expect((await readiness(host)).body.details.cache).toMatchObject({ status: 'up', l2: 'up', redis: 'up' });

      await proxy.close();
      const r = await readinessUntil(host, down, 5_000);
      expect(r.status).toBe(200);
      expect(r.body.status).toBe('degraded');
      expect(r.body.details.cache).toMatchObject({ status: 'degraded', l2: 'down', redis: 'down' });

      proxy = await startRedisForwarder(new URL(REDIS_URL), proxy.port);
      const back = await readinessUntil(host, (x) => x.body.details.cache.l2 === 'up' && x.body.details.cache.redis === 'up', 15_000);
      expect(back.body.details.cache).toMatchObject({ l2: 'up', redis: 'up' });
      await closeHost();
    } finally {
      await proxy.close().catch(() => undefined);
    }
  }, 60_000);

  it('Redis stalled: probes while a PING is unanswered send no other, and answer down at once once it is overdue', async () => {
    const proxy = await startRedisForwarder(new URL(REDIS_URL));
    try {
      host = await start(`redis://127.0.0.1:${proxy.port}`);
      expect((await readiness(host)).body.details.cache).toMatchObject({ status: 'up', redis: 'up' });

      proxy.stall();
      // A probe every 300 ms for 2.4 s: each one sent a PING of its own, queued behind the first on the open socket.
      const probes: Readiness[] = [];
      for (let i = 0; i < 8; i++) {
        probes.push(await readiness(host));
        await new Promise((r) => setTimeout(r, 300));
      }
      expect(probes.map((p) => [p.status, p.body.details.cache.redis, p.body.details.cache.l2])).toEqual(probes.map(() => [200, 'down', 'down']));
      expect(proxy.heldCommands('ping')).toBe(1);
      // The first waits its PING's bound; the probes after it is overdue answer at once.
      expect(Math.max(...probes.slice(1).map((p) => p.ms))).toBeLessThan(500);
    } finally {
      await proxy.close();
    }
  }, 60_000);

  it('Redis stalled (connection open, nothing answers): l2 and redis down within the PING bound, still 200', async () => {
    const proxy: StallProxy = await startStallProxy(REDIS_URL);
    try {
      host = await start(proxy.url);
      expect((await readiness(host)).body.details.cache).toMatchObject({ status: 'up', l2: 'up', redis: 'up' });

      proxy.stall();
      const r = await readiness(host);
      expect(r.status).toBe(200);
      expect(r.body.details.cache).toMatchObject({ status: 'degraded', l2: 'down', redis: 'down' });
      expect(r.ms).toBeLessThan(2_500);

      // Resumed: up again (its connections reopened through the proxy), then closed while they are.
      proxy.resume();
      const back = await readinessUntil(host, (x) => x.body.details.cache.l2 === 'up' && x.body.details.cache.redis === 'up', 15_000);
      expect(back.body.details.cache).toMatchObject({ l2: 'up', redis: 'up' });
      await closeHost();
    } finally {
      proxy.resume();
      await proxy.close();
    }
  }, 60_000);
});
