/**
 * Integration (real Redis): the cache's first invalidation heartbeat at start. A replica caches nothing until it
 * hears one (it cannot know it hears evictions before); `start` waits for it at most `lostAfterMs`.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type Server, Socket } from 'node:net';
import { Logger } from '@nestjs/common';
import { SystemClock } from '@app/common';
import { CapturingLogger, REDIS_URL } from '@app/testing';
import { Redis } from 'ioredis';
import { RedisInvalidationBus } from './invalidation-bus';
import { closeRedisConnection } from './redis-connection';
import { TieredCredentialCache } from './tiered-credential-cache';

jest.setTimeout(30_000);

const PREFIX = `cvtest:${randomBytes(4).toString('hex')}:start:`;
const LIVENESS = { intervalMs: 200, lostAfterMs: 1000 };
const connections: Redis[] = [];

function redisAt(url: string): Redis {
  const r = new Redis(url, { maxRetriesPerRequest: 1, connectTimeout: 1000, retryStrategy: (n) => Math.min(n * 50, 300) });
  r.on('error', () => undefined);
  connections.push(r);
  return r;
}

/**
 * A TCP proxy to Redis that, once Redis has confirmed a subscription, holds back what Redis sends (the connection
 * stays open: a subscriber whose messages stop arriving) until `release`.
 */
class SubscriptionStallingProxy {
  private server!: Server;
  private readonly sockets = new Set<Socket>();
  private held?: Array<[Socket, Buffer]>;
  private releasedOnce = false;
  port = 0;

  async start(): Promise<void> {
    const target = new URL(REDIS_URL);
    this.server = createServer((client) => {
      const upstream = new Socket();
      upstream.connect(Number(target.port || 6379), target.hostname);
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('error', () => undefined);
        s.on('close', () => this.sockets.delete(s));
      }
      client.on('data', (d: Buffer) => upstream.write(d));
      upstream.on('data', (d: Buffer) => {
        if (this.held) return void this.held.push([client, d]);
        client.write(d);
        if (!this.releasedOnce && d.includes('subscribe')) this.held = [];
      });
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as { port: number }).port;
  }

  release(): void {
    const held = this.held ?? [];
    this.held = undefined;
    this.releasedOnce = true;
    for (const [to, d] of held) to.write(d);
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise((r) => this.server.close(r));
  }
}

describe('the credential cache at start: its first invalidation heartbeat (real Redis)', () => {
  const logger = new CapturingLogger();
  let proxy: SubscriptionStallingProxy;
  let cache: TieredCredentialCache | undefined;

  beforeAll(() => Logger.overrideLogger(logger));
  beforeEach(async () => {
    logger.lines.length = 0;
    proxy = new SubscriptionStallingProxy();
    await proxy.start();
  });
  afterEach(async () => {
    await cache?.stop();
    cache = undefined;
    await proxy.stop();
  });
  afterAll(async () => {
    await Promise.all(connections.map((c) => closeRedisConnection(c)));
    Logger.overrideLogger(new Logger());
  });

  const build = (subscriberUrl: string) =>
    new TieredCredentialCache(
      { ttlMs: 60_000, jitterRatio: 0, maxEntries: 100, maxStaleMs: 0 },
      new SystemClock(),
      new RedisInvalidationBus(redisAt(REDIS_URL), () => redisAt(subscriberUrl), PREFIX, 1000),
      undefined,
      Math.random,
      LIVENESS,
    );
  const loads = { count: 0 };
  const read = (c: TieredCredentialCache) => c.getOrLoad('k', () => Promise.resolve(`v${++loads.count}`));

  it('hears its own first heartbeat within start: caching from the first read', async () => {
    cache = build(REDIS_URL);
    const startedAt = Date.now();
    await cache.start();
    expect(Date.now() - startedAt).toBeLessThan(LIVENESS.lostAfterMs);
    expect(cache.health().status).toBe('up');
    loads.count = 0;
    await read(cache);
    await read(cache);
    expect(loads.count).toBe(1);
  });

  it('hears none: start ends after lostAfterMs, reads bypass the cache, readiness and the log say why; once one is heard, it caches and says so', async () => {
    cache = build(`redis://127.0.0.1:${proxy.port}`);
    const startedAt = Date.now();
    await cache.start();
    const took = Date.now() - startedAt;
    expect(took).toBeGreaterThanOrEqual(LIVENESS.lostAfterMs - 50);
    expect(took).toBeLessThan(LIVENESS.lostAfterMs + 2000);
    expect(cache.health()).toMatchObject({ status: 'degraded', details: { invalidationConnected: true, invalidationHeard: false } });
    loads.count = 0;
    await read(cache);
    await read(cache);
    expect(loads.count).toBe(2);
    // An operator reading the log learns why this replica reads everything from the store.
    expect(logger.lines.filter((l) => l.startsWith('warn') && /no cache invalidation heartbeat heard within 1000 ms of start/.test(l))).toHaveLength(1);

    proxy.release();
    const deadline = Date.now() + 5000;
    while (cache.health().status !== 'up' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(cache.health().status).toBe('up');
    expect(logger.lines.some((l) => l.startsWith('log') && /cache invalidation heartbeat heard .*: serving from the cache/.test(l))).toBe(true);
    loads.count = 0;
    await read(cache);
    await read(cache);
    expect(loads.count).toBe(1);
  });
});
