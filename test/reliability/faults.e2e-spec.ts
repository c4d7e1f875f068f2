import { faults } from '../../bench/reliability/faults';
import { PROFILES } from '../../bench/reliability/profile';
import { expectEveryBoundHolds, figure } from './figures';

/**
 * Reliability, faults (the short profile of `npm run reliability`): ~20% mixed faults injected at the
 * local vault (429, 500, 503, resets, 2 s latency) under mixed operations through the host → no
 * acknowledged write lost, every failure a typed error with a code, retries within the documented
 * attempts; an outage opens the breaker, /health/ready reflects it, and it recovers.
 */
jest.setTimeout(240_000);

describe('the host under injected vault faults', () => {
  it('0 lost writes, 0 unmapped errors, bounded retries; the breaker opens, readiness follows, it recovers', async () => {
    const r = await faults(PROFILES.short);
    expectEveryBoundHolds(r);
    // The faults really happened and were retried. ~16% of vault requests are expected to answer an error or
    // reset, but the short profile sends only a few hundred, so the share swings by several points (CI saw 9.5%):
    // the bound says "clearly faulted", not the rate.
    expect(figure(r, 'vault requests answered with an error or reset (2 s latency, ~4.4%, comes on top)')).toBeGreaterThan(5);
    expect(figure(r, 'retries per Key Vault call')).toBeGreaterThan(0.05);
  });
});
