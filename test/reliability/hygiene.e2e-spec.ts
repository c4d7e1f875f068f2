import { hygiene } from '../../bench/reliability/hygiene';
import { PROFILES } from '../../bench/reliability/profile';
import { expectEveryBoundHolds, figure } from './figures';

/**
 * Reliability, secret hygiene (the short profile of `npm run reliability`): every stored value is a
 * unique marker; none is found, plain or base64, in the logs, the database files (SQLite and WAL) or
 * PostgreSQL tables, audit and outbox rows, Redis, /metrics or any answer that is not a value by design.
 */
jest.setTimeout(180_000);

describe('secret hygiene after a run through every value-carrying path', () => {
  it('0 markers in logs, database, Redis, /metrics and non-value answers, on SQLite and PostgreSQL', async () => {
    const r = await hygiene(PROFILES.short);
    expectEveryBoundHolds(r);
    // Stored, rotated, refused, OAuth and webhook values on both databases.
    expect(figure(r, 'markers stored')).toBeGreaterThanOrEqual(PROFILES.short.hygiene.credentials * 3 * 2);
  });
});
