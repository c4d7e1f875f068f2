import { crashes } from '../../bench/reliability/crashes';
import { PROFILES } from '../../bench/reliability/profile';
import { expectEveryBoundHolds, figure } from './figures';

/**
 * Reliability, crashes of OAuth refreshes and webhook-secret rotations (the short profile's kinds, on
 * PostgreSQL with Redis): kill -9 of a real host process during a stage → activate of webhook secrets,
 * then during refreshes of OAuth connections at a real provider (rotating refresh tokens) → each
 * connection serves the access token the client last got or the one the interrupted refresh issued,
 * refreshes again or — only when the kill interrupted its refresh — answers 409 REAUTH_REQUIRED and
 * then fails fast without calling the provider; webhooks verify and rotate again; the chain verifies.
 */
jest.setTimeout(300_000);

describe('kill -9 of the host during webhook-secret rotations and OAuth refreshes (PostgreSQL + Redis)', () => {
  it('OAuth re-auth only inside the kill window and then fail-fast, tokens readable, webhook secrets usable again, audit chain valid', async () => {
    // Webhooks first: the host that boots after that kill knows the provider (no extra boot for it).
    const kinds = ['webhook-rotation', 'oauth-refresh'] as const;
    const r = await crashes({ ...PROFILES.short, crashes: { ...PROFILES.short.crashes, trials: kinds.length } }, { kinds });
    expectEveryBoundHolds(r);
    expect(figure(r, 'trials')).toBe(kinds.length);
  });
});
