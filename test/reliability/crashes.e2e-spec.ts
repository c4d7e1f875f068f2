import { crashes } from '../../bench/reliability/crashes';
import { PROFILES } from '../../bench/reliability/profile';
import { expectEveryBoundHolds, figure } from './figures';

/**
 * Reliability, crashes (the short profile of `npm run reliability`, on PostgreSQL with Redis — the
 * deployment of N replicas): kill -9 of a real host process during concurrent stores and rotations →
 * every credential readable with an acknowledged (or in-flight, or previous) value, every acknowledged
 * version kept, no duplicate, the audit chain verifies. The other kinds run in crashes-oauth and
 * crashes-migration (each spec about a minute on a loaded machine: a host boot there takes 10–15 s).
 */
jest.setTimeout(300_000);

describe('kill -9 of the host during stores and rotations (PostgreSQL + Redis)', () => {
  it('no acknowledged write lost, no value never written, no duplicate, audit chain valid', async () => {
    const kinds = ['store', 'rotate'] as const;
    const r = await crashes({ ...PROFILES.short, crashes: { ...PROFILES.short.crashes, trials: kinds.length } }, { kinds });
    expectEveryBoundHolds(r);
    expect(figure(r, 'trials')).toBe(kinds.length);
  });
});
