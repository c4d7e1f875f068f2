import { badInput } from '../../bench/reliability/bad-input';
import { PROFILES } from '../../bench/reliability/profile';
import { expectEveryBoundHolds, figure } from './figures';

/**
 * Reliability, bad input (the short profile of `npm run reliability`): generated malformed requests over
 * every route of the host's OpenAPI document, on SQLite and PostgreSQL → never 5xx, every 4xx in the
 * documented shape, never repeating input, a refused request changes no stored state, and no null the document
 * does not mark `nullable` (a field, a list item, a map value) is taken with a 2xx. A failure
 * lists the first violations and the seed; replay with FUZZ_SEED=<seed> (FUZZ_RUNS=<n> for more).
 */
jest.setTimeout(240_000);

describe('bad input over every HTTP route (property-based)', () => {
  it('0 responses 5xx, every 4xx in the documented shape, nothing written, no input repeated', async () => {
    const short = PROFILES.short;
    const runs = Number(process.env.FUZZ_RUNS ?? short.badInput.requests);
    const r = await badInput({ ...short, badInput: { ...short.badInput, requests: runs } }, { seed: process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : undefined });
    expectEveryBoundHolds(r);
    expect(figure(r, 'requests')).toBeGreaterThanOrEqual(runs);
    // The document lists the credentials, OAuth, rotation, webhook, audit, health and metrics routes.
    expect(figure(r, 'routes in the OpenAPI document')).toBeGreaterThanOrEqual(40);
    expect(figure(r, 'requests refused (4xx)')).toBeGreaterThan(runs / 2);
  });
});
