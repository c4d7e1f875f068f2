import { PROFILES } from '../../bench/reliability/profile';
import { redisLoss } from '../../bench/reliability/redis-loss';
import { expectEveryBoundHolds, figure } from './figures';

/**
 * Reliability, Redis loss (the short profile of `npm run reliability`): two host processes on one
 * PostgreSQL schema share a Redis of the test's own, shut down under reads and writes and started again
 * → no value served older than the last acknowledged write, no error answer (the host documents none
 * for a Redis loss: reads bypass the cache, shared state falls back per process), readiness 200 with
 * the cache degraded, and both replicas back on Redis by themselves.
 */
jest.setTimeout(240_000);

describe('Redis goes away under load and comes back (2 replicas, PostgreSQL)', () => {
  it('0 stale reads, 0 error answers, readiness degraded not down, recovery by itself', async () => {
    const r = await redisLoss(PROFILES.short);
    expectEveryBoundHolds(r);
    // The outage really carried load, and reads really bypassed the cache during it.
    expect(figure(r, 'requests during the outage')).toBeGreaterThan(50);
    expect(figure(r, 'reads served uncached during the outage (degraded)')).toBeGreaterThan(0);
  });
});
