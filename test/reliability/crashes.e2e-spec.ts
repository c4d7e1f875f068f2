import { crashes } from '../../bench/reliability/crashes';
import { PROFILES } from '../../bench/reliability/profile';
import { expectEveryBoundHolds, figure } from './figures';

/**
 * Reliability, crashes (the short profile of `npm run reliability`): kill -9 of a real host process
 * during stores, rotations, OAuth refreshes and webhook-secret rotations, and of the CLI during a
 * migration → every credential readable with an acknowledged (or in-flight, or previous) value, no
 * duplicate, OAuth and webhooks still work, the audit chain verifies, the migration completes on resume.
 */
jest.setTimeout(300_000);

describe('kill -9 at random points', () => {
  it('no acknowledged write lost, no duplicate, audit chain valid, migration exact on resume', async () => {
    const r = await crashes(PROFILES.short);
    expectEveryBoundHolds(r);
    expect(figure(r, 'trials')).toBe(PROFILES.short.crashes.trials);
  });
});
