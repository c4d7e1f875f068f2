import { crashes } from '../../bench/reliability/crashes';
import { PROFILES } from '../../bench/reliability/profile';
import { expectEveryBoundHolds, figure } from './figures';

/**
 * Reliability, crashes of a migration (the short profile's migration kind, on PostgreSQL with Redis):
 * `kill -9` of the real CLI `migrate` once a random number of legacy rows is checkpointed, then the same
 * command again → it exits 0 with exactly one credential per legacy token, no duplicate, one MIGRATE
 * audit row each, and `cli audit:verify` finds the migrated tenant's chain valid.
 */
jest.setTimeout(300_000);

describe('kill -9 of cli migrate mid-run, then resume (PostgreSQL + Redis)', () => {
  it('the resume completes with exact totals, no duplicate credential, and the audit chain verifies', async () => {
    const r = await crashes({ ...PROFILES.short, crashes: { ...PROFILES.short.crashes, trials: 1 } }, { kinds: ['migration'] });
    expectEveryBoundHolds(r);
    expect(figure(r, 'trials')).toBe(1);
    expect(figure(r, 'kills before the work finished')).toBe(1);
  });
});
