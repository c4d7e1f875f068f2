import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { RedisThrottlerStorage } from './redis-throttler.storage';
import type { SharedStateRedis } from './shared-state-redis';
import { realSharedStateRedis } from './shared-state-redis.testing';

/**
 * The Redis rate-limit storage against a real Redis (required: a missing Redis fails the test), with
 * the semantics of the per-process FixedWindowThrottlerStorage. Windows are short so expiry is real.
 */
describe('RedisThrottlerStorage (real Redis)', () => {
  let prefix: string;
  let shared: SharedStateRedis;
  let storage: RedisThrottlerStorage;
  let admin: Redis;
  let close: () => Promise<void>;

  beforeAll(async () => {
    ({ prefix, shared, admin, close } = await realSharedStateRedis('cvt'));
    storage = new RedisThrottlerStorage(shared);
  });

  afterAll(async () => {
    storage?.onModuleDestroy();
    await close?.();
  });

  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  it('counts within the window, blocks past the limit without counting blocked hits, then starts a fresh window after the block', async () => {
    const key = `k-${randomBytes(3).toString('hex')}`;
    const hit = () => storage.increment(key, 60_000, 2, 600, 'default');
    expect(await hit()).toEqual({ totalHits: 1, timeToExpire: 60, isBlocked: false, timeToBlockExpire: 0 });
    expect(await hit()).toMatchObject({ totalHits: 2, isBlocked: false });
    expect(await hit()).toEqual({ totalHits: 3, timeToExpire: 1, isBlocked: true, timeToBlockExpire: 1 });
    expect(await hit()).toMatchObject({ totalHits: 3, isBlocked: true }); // not counted
    await sleep(700);
    expect(await hit()).toEqual({ totalHits: 1, timeToExpire: 60, isBlocked: false, timeToBlockExpire: 0 });
    expect(shared.fallbacks.rate_limit).toBe(0);
  });

  it('starts a fresh window once the window has passed, and keeps throttlers and keys apart', async () => {
    const key = `k-${randomBytes(3).toString('hex')}`;
    for (let i = 0; i < 2; i++) await storage.increment(key, 400, 2, 400, 'default');
    expect(await storage.increment(key, 400, 5, 400, 'burst')).toMatchObject({ totalHits: 1 });
    expect(await storage.increment(`${key}-other`, 400, 2, 400, 'default')).toMatchObject({ totalHits: 1 });
    await sleep(450);
    expect(await storage.increment(key, 400, 2, 400, 'default')).toMatchObject({ totalHits: 1, isBlocked: false });
  });

  it('a blocked key left without expiry (a crash or failover between increment and expire, a restore without TTL) gets one again: a positive Retry-After, then a fresh window', async () => {
    for (const [block, expected] of [[600, 1], [0, 1]] as const) {
      const key = `k-${randomBytes(3).toString('hex')}`;
      const redisKey = shared.key('rl', `default\u0000${key}`);
      await admin.set(redisKey, '5'); // past the limit, and no TTL (PTTL -1)
      expect(await admin.pttl(redisKey)).toBe(-1);
      const blocked = await storage.increment(key, 700, 2, block, 'default');
      expect(blocked).toEqual({ totalHits: 5, timeToExpire: expected, isBlocked: true, timeToBlockExpire: expected });
      const pttl = await admin.pttl(redisKey);
      expect(pttl).toBeGreaterThan(0);
      expect(pttl).toBeLessThanOrEqual(block || 700);
      await sleep((block || 700) + 100);
      expect(await storage.increment(key, 700, 2, block, 'default')).toMatchObject({ totalHits: 1, isBlocked: false });
    }
  });

  it('keeps the key hashed under the prefix, with a TTL', async () => {
    // Only the keys this hit made: the earlier tests' 400 ms keys may expire between KEYS and PTTL.
    const before = new Set(await admin.keys(`${prefix}rl:*`));
    await storage.increment('ClientsController-list-default-api-key:acme-ci', 60_000, 5, 60_000, 'default');
    const keys = (await admin.keys(`${prefix}rl:*`)).filter((k) => !before.has(k));
    expect(keys.length).toBeGreaterThan(0);
    expect(keys.join()).not.toContain('acme-ci');
    for (const k of keys) expect(await admin.pttl(k)).toBeGreaterThan(0);
  });
});
