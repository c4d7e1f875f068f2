import { isolation } from '../../bench/reliability/isolation';
import { PROFILES } from '../../bench/reliability/profile';
import { expectEveryBoundHolds, figure } from './figures';

/**
 * Reliability, tenant isolation (the short profile of `npm run reliability`): tenant A addressing tenant
 * B's ids on every route gets exactly what a missing id gets, sees nothing of B anywhere, and changes
 * nothing of B's.
 */
jest.setTimeout(180_000);

describe('tenant isolation on every route', () => {
  it("another tenant's ids are indistinguishable from missing ones; nothing of it is visible or changed", async () => {
    const r = await isolation(PROFILES.short, { seed: process.env.ISOLATION_SEED ? Number(process.env.ISOLATION_SEED) : undefined });
    expectEveryBoundHolds(r);
    expect(figure(r, 'request pairs compared')).toBeGreaterThanOrEqual(PROFILES.short.isolation.requests / 2);
    expect(figure(r, 'routes covered')).toBeGreaterThanOrEqual(20);
  });
});
