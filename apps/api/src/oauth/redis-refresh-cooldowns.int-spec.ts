import { randomBytes } from 'node:crypto';
import { closeRedisConnection } from '@app/credentials';
import { Redis } from 'ioredis';
import { SharedStateRedis } from '../auth/shared-state-redis';
import type { AppConfig } from '../config/app.config';
import { HostRedis } from '../redis/host-redis';
import { RedisOAuthRefreshCooldowns } from './redis-refresh-cooldowns';

const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** OAuth refresh cooldowns in a real Redis (required: a missing Redis fails the test), as two replicas see them. */
describe('RedisOAuthRefreshCooldowns (real Redis)', () => {
  const prefix = `cvt-${randomBytes(4).toString('hex')}:`;
  const policy = { baseMs: 30_000, maxMs: 100_000 };
  const t0 = new Date('2026-03-01T00:00:00Z');
  const at = (ms: number) => new Date(t0.getTime() + ms);
  let hosts: HostRedis[];
  let replicas: RedisOAuthRefreshCooldowns[];
  let shared: SharedStateRedis[];
  let admin: Redis;

  beforeAll(async () => {
    hosts = [0, 1].map(() => new HostRedis({ redis: { url: REDIS_URL, keyPrefix: prefix } } as AppConfig));
    shared = hosts.map((h) => new SharedStateRedis(h, { timeoutMs: 1000 }));
    for (const s of shared) await s.onApplicationBootstrap();
    if (hosts.some((h) => h.client.status !== 'ready')) throw new Error(`Redis is required for this test but is not reachable at ${REDIS_URL}`);
    replicas = shared.map((s) => new RedisOAuthRefreshCooldowns(s));
    admin = new Redis(REDIS_URL);
  });

  afterAll(async () => {
    const keys = await admin.keys(`${prefix}*`);
    if (keys.length) await admin.del(...keys);
    await closeRedisConnection(admin);
    for (const h of hosts) await h.onApplicationShutdown();
  });

  it('grows the cooldown per consecutive failure (on any replica) up to the cap; clear ends it everywhere', async () => {
    const key = JSON.stringify(['acme', 'google', `user-${randomBytes(3).toString('hex')}`]);
    const [a, b] = replicas;
    expect(await b.activeUntil(key, t0)).toBeUndefined();
    expect(await a.recordFailure(key, t0, policy)).toEqual({ until: at(30_000), failures: 1 });
    expect(await b.activeUntil(key, at(29_999))).toEqual(at(30_000));
    expect(await b.activeUntil(key, at(30_000))).toBeUndefined();
    expect(await b.recordFailure(key, at(30_000), policy)).toEqual({ until: at(90_000), failures: 2 });
    expect(await a.recordFailure(key, at(90_000), policy)).toEqual({ until: at(190_000), failures: 3 });
    const [redisKey] = await admin.keys(`${prefix}oauth-cd:*`);
    expect(redisKey).not.toContain('acme');
    expect(await admin.pttl(redisKey)).toBeGreaterThan(100_000); // the count outlives the cooldown
    await b.clear(key);
    expect(await a.activeUntil(key, at(90_001))).toBeUndefined();
    expect(await a.recordFailure(key, at(200_000), policy)).toMatchObject({ failures: 1 });
    expect(shared.map((s) => s.fallbacks.oauth_cooldown)).toEqual([0, 0]);
  });

  it("lasts at least the provider's Retry-After (atLeastMs), past the cap, on every replica", async () => {
    const key = JSON.stringify(['acme', 'google', `user-${randomBytes(3).toString('hex')}`]);
    const [a, b] = replicas;
    expect(await a.recordFailure(key, t0, { ...policy, atLeastMs: 600_000 })).toEqual({ until: at(600_000), failures: 1 });
    expect(await b.activeUntil(key, at(599_999))).toEqual(at(600_000));
    expect(await b.recordFailure(key, at(600_000), { ...policy, atLeastMs: 1_000 })).toEqual({ until: at(660_000), failures: 2 });
  });

  it("keeps the failure's cause with the cooldown, answered by every replica; a failure without one, or written by the previous release, has none", async () => {
    const key = JSON.stringify(['acme', 'google', `user-${randomBytes(3).toString('hex')}`]);
    const [a, b] = replicas;
    const cause = { code: 'OAUTH_CLIENT_REJECTED' as const, status: 401, oauthError: 'invalid_client' };
    expect(await a.recordFailure(key, t0, policy, cause)).toEqual({ until: at(30_000), failures: 1 });
    expect(await b.activeCooldown(key, at(1))).toEqual({ until: at(30_000), cause });
    expect(await b.activeUntil(key, at(1))).toEqual(at(30_000));
    expect(await b.activeCooldown(key, at(30_000))).toBeUndefined();
    // The next failure is of another kind: its cooldown carries no cause, on either replica.
    expect(await b.recordFailure(key, at(30_000), policy)).toEqual({ until: at(90_000), failures: 2 });
    expect(await a.activeCooldown(key, at(30_001))).toEqual({ until: at(90_000) });
    // The stored cause: the code, the status and a registered OAuth error (no id: the key is hashed).
    await a.recordFailure(key, at(90_000), policy, cause);
    expect(await admin.hgetall(shared[0].key('oauth-cd', key))).toEqual({ failures: '3', until: String(at(190_000).getTime()), cause: JSON.stringify(cause), causeUntil: String(at(190_000).getTime()) });

    // A record of the previous release (failures and until only): answered as before, without a cause.
    const old = JSON.stringify(['acme', 'google', `user-${randomBytes(3).toString('hex')}`]);
    const oldKey = shared[0].key('oauth-cd', old);
    await admin.hset(oldKey, 'failures', '1', 'until', String(at(30_000).getTime()));
    await admin.pexpire(oldKey, 60_000);
    expect(await b.activeCooldown(old, at(1))).toEqual({ until: at(30_000) });
    // A previous-release replica recording a failure over a refused client's cooldown (it sets `until`, leaves `cause`):
    // that later cooldown is not answered with the earlier cause.
    await a.recordFailure(old, at(30_000), policy, cause);
    expect(await b.activeCooldown(old, at(30_001))).toEqual({ until: at(90_000), cause });
    await admin.hset(oldKey, 'failures', '3', 'until', String(at(190_000).getTime()));
    expect(await b.activeCooldown(old, at(90_001))).toEqual({ until: at(190_000) });
  });
});
