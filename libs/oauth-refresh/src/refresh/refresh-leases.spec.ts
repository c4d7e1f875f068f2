import type { LeaseClaim, LockLeases } from '@app/common';
import type { ResolvedOAuthProvider } from '../providers/oauth-provider.config';
import { LEASE_TTL_MS, RefreshLeases } from './refresh-leases';
import type { RefreshDeps } from './refresh-support';

/** The refresh lease's timing against a fake LockLeases (the real one: lock-leases.int-spec, oauth-refresh.int-spec). */
describe('RefreshLeases', () => {
  const provider = { integrationId: 'idp', requestTimeoutMs: 10_000 } as ResolvedOAuthProvider;
  const options = { retry: { maxAttempts: 3, maxDelayMs: 5_000 }, lateAnswerMs: 60_000 };
  let claims: Array<{ holder: string; expiresAt: number; at: number }>;
  let released: string[];
  let leases: RefreshLeases;

  beforeEach(() => {
    jest.useFakeTimers({ now: new Date('2026-12-06T00:00:00Z') });
    claims = [];
    released = [];
    const fake = {
      claim: async (_name: string, holder: string, expiresAt: Date, now: Date): Promise<LeaseClaim> => {
        claims.push({ holder, expiresAt: expiresAt.getTime(), at: now.getTime() });
        return { claimed: true, expiresAt };
      },
      release: async (_name: string, holder: string) => void released.push(holder),
      clear: async () => undefined,
    } as unknown as LockLeases;
    const logger = { warn: jest.fn(), log: jest.fn(), error: jest.fn(), debug: jest.fn() };
    leases = new RefreshLeases({ leases: fake, options, logger } as unknown as RefreshDeps);
  });

  afterEach(() => jest.useRealTimers());

  it('holds a lease LEASE_TTL_MS ahead and renews it while held, so a crashed holder’s lease lapses within LEASE_TTL_MS', async () => {
    const held = await leases.claim(provider, 'c1', 'tenant/idp/c1');
    expect(claims).toHaveLength(1);
    expect(claims[0].expiresAt - claims[0].at).toBe(LEASE_TTL_MS);
    // While the exchange may still be under way, the live holder keeps it ahead.
    await jest.advanceTimersByTimeAsync(30_000);
    expect(claims.length).toBeGreaterThanOrEqual(6);
    for (const c of claims) expect(c.holder).toBe(claims[0].holder);
    const last = claims[claims.length - 1];
    expect(last.expiresAt - last.at).toBe(LEASE_TTL_MS);
    // Released: no renewal after it (one would take the lease again).
    await held.release();
    const n = claims.length;
    await jest.advanceTimersByTimeAsync(30_000);
    expect(claims).toHaveLength(n);
    expect(released).toEqual([claims[0].holder]);
  });

  it('never renews past the longest the exchange can last (every attempt, the delays, a late answer, the margin)', async () => {
    await leases.claim(provider, 'c1', 'tenant/idp/c1');
    const bound = claims[0].at + leases.durationMs(provider);
    await jest.advanceTimersByTimeAsync(leases.durationMs(provider) + 60_000);
    for (const c of claims) expect(c.expiresAt).toBeLessThanOrEqual(bound);
    expect(claims[claims.length - 1].at).toBeLessThan(bound);
  });
});
