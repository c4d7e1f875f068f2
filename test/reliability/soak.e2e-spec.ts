import { PROFILES } from '../../bench/reliability/profile';
import { soak } from '../../bench/reliability/soak';
import { expectEveryBoundHolds, figure } from './figures';

/**
 * Reliability, soak (the short profile of `npm run reliability`, ~20 s instead of 10 minutes): the host
 * as its own process under a fixed-rate mix of reads and writes → 0 errors, RSS growth after warm-up
 * ≤ 10%, p99 of the last two windows at most 20% above the second's, every scheduled request sent at most 2.5 s late.
 */
jest.setTimeout(180_000);

describe('soak at a fixed rate', () => {
  it('0 errors, RSS growth ≤ 10% after warm-up, p99 stable', async () => {
    const r = await soak(PROFILES.short);
    expectEveryBoundHolds(r);
    // The load really ran at its rate for the whole duration: every request due by the sender's clock within it
    // was sent and answered (the lag behind schedule is a bound above), and that is rate × duration.
    const { ratePerSec, durationMs } = PROFILES.short.soak;
    expect(figure(r, 'requests')).toBe((ratePerSec * durationMs) / 1000);
  });
});
