import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { SharedStateRedis } from '../auth/shared-state-redis';
import { realSharedStateRedis } from '../auth/shared-state-redis.testing';
import { RedisSuspiciousActivityCounters } from './redis-suspicious-activity.counters';

const MIN = 60_000;

/** The shared suspicious-activity counters against a real Redis (required: a missing Redis fails the test). */
describe('RedisSuspiciousActivityCounters (real Redis)', () => {
  let shared: SharedStateRedis;
  let counters: RedisSuspiciousActivityCounters;
  let admin: Redis;
  let close: () => Promise<void>;

  beforeAll(async () => {
    ({ shared, admin, close } = await realSharedStateRedis('cvsa'));
    counters = new RedisSuspiciousActivityCounters(shared);
  });

  afterAll(() => close?.());

  it('hold at most alertAt members per window, alert once at the threshold, and again once the window has slid past', async () => {
    const key = `distinct_reads:t1:actor-${randomBytes(3).toString('hex')}`;
    const hit = async (now: number, member: string) => (await counters.hit(now, [{ key, member, windowMs: 10 * MIN, alertAt: 101 }]))[0];
    const results = [];
    for (let i = 0; i < 400; i++) results.push(await hit(1_000_000 + i, `cred-${i}`));
    expect(results.map((r) => r.count)).toEqual(Array.from({ length: 400 }, (_, i) => Math.min(i + 1, 101)));
    expect(results.flatMap((r, i) => (r.alert ? [i] : []))).toEqual([100]);
    expect(await admin.zcard(shared.key('sa', key))).toBe(101);
    // A re-read of the newest member counts once; the window's members are hashed, never the ids.
    expect(await hit(1_000_400, 'cred-399')).toEqual({ count: 101, alert: false });
    expect((await admin.zrange(shared.key('sa', key), 0, -1)).join()).not.toContain('cred-');
    // Past the window (and its quiet period), the next 101 distinct reads alert once more.
    const later = [];
    for (let i = 0; i < 101; i++) later.push(await hit(1_000_400 + 10 * MIN + 1 + i, `late-${i}`));
    expect(later.map((r) => r.count)).toEqual(Array.from({ length: 101 }, (_, i) => i + 1));
    expect(later.flatMap((r, i) => (r.alert ? [i] : []))).toEqual([100]);
    expect(shared.fallbacks.suspicious_activity).toBe(0);
  });
});
