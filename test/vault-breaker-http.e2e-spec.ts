import { randomBytes } from 'node:crypto';
import { generateApiKey } from '../apps/api/src/auth/api-keys';
import { EmbeddedVault } from '../apps/api/src/vault/embedded-vault';
import { startTestHost, TestHost } from './support/host';

const HALF_OPEN_AFTER_MS = 5000;

/**
 * The vault down, over HTTP: its failures answer 503 SERVICE_UNAVAILABLE (no Retry-After: the vault gave none, and when
 * it will answer again is unknown); once the client's breaker opens, 503 CIRCUIT_OPEN says when it lets a trial call
 * through — Retry-After, whole seconds rounded up, as the OpenAPI document declares for the operation's 503.
 */
describe('a vault that fails, over HTTP', () => {
  let host: TestHost;
  const admin = generateApiKey('acme-admin', 'acme', ['credentials:write', 'admin']);
  const vault = () => host.app.get(EmbeddedVault).emulator!;
  const store = async (connectionId: string) => {
    const res = await fetch(`${host.baseUrl}/v1/credentials`, {
      method: 'POST',
      headers: { 'x-api-key': admin.key, 'content-type': 'application/json' },
      body: JSON.stringify({ integrationId: 'github', connectionId, type: 'api_key', value: `sk_live_${randomBytes(18).toString('hex')}` }),
    });
    return { status: res.status, retryAfter: res.headers.get('retry-after'), body: (await res.json()) as { code: number; codeName: string; message: string } };
  };

  beforeAll(async () => {
    // One attempt a call: five failing stores open the breaker (five failures in a row, its default), for 5 s.
    host = await startTestHost('sqlite', {
      AUTH_API_KEYS: JSON.stringify([admin.entry]),
      CREDENTIALS_INTEGRATIONS: 'github',
      KEY_VAULT_MAX_ATTEMPTS: '1',
      KEY_VAULT_BREAKER_HALF_OPEN_AFTER_MS: String(HALF_OPEN_AFTER_MS),
    });
  });
  /** Stores until the breaker answers CIRCUIT_OPEN (the vault failing with 500s); when the last store the breaker let through was sent. */
  const openBreaker = async () => {
    vault().injectFault({ kind: 'status', status: 500 });
    let beforeLastFailure = 0;
    for (let i = 0; i < 6; i++) {
      const sent = Date.now();
      const down = await store(`down-${randomBytes(4).toString('hex')}`);
      if (down.body.codeName === 'CIRCUIT_OPEN') return { open: down, beforeLastFailure };
      beforeLastFailure = sent;
    }
    throw new Error('six failing stores did not open the breaker');
  };
  afterAll(async () => {
    vault()?.clearFaults();
    await host?.close();
  });

  it('answers 503 SERVICE_UNAVAILABLE without Retry-After, then, the breaker open, 503 CIRCUIT_OPEN with Retry-After: the seconds until its trial call', async () => {
    const declared = (await (await fetch(`${host.baseUrl}/docs/json`)).json()) as { paths: Record<string, Record<string, { responses: Record<string, { headers?: object }> }>> };
    expect(declared.paths['/v1/credentials'].post.responses['503'].headers).toEqual({ 'Retry-After': { schema: { type: 'integer' }, description: 'seconds' } });

    vault().injectFault({ kind: 'status', status: 500 });
    // Five failures in a row open the breaker (a background vault call of the host may be one of them).
    let beforeLastFailure = 0;
    let open: Awaited<ReturnType<typeof store>> | undefined;
    for (let i = 0; i < 6 && !open; i++) {
      const sent = Date.now();
      const down = await store(`down-${i}`);
      if (down.body.codeName === 'CIRCUIT_OPEN') open = down;
      else {
        // The breaker let it through: it opened later, so its break ends no sooner than 5 s after this.
        beforeLastFailure = sent;
        expect({ status: down.status, codeName: down.body.codeName, retryAfter: down.retryAfter }).toEqual({ status: 503, codeName: 'SERVICE_UNAVAILABLE', retryAfter: null });
      }
    }
    if (!open) throw new Error('six failing stores did not open the breaker');
    expect({ status: open.status, code: open.body.code, codeName: open.body.codeName }).toEqual({ status: 503, code: 1011, codeName: 'CIRCUIT_OPEN' });
    expect(open.retryAfter).toMatch(/^\d+$/);
    const seconds = Number(open.retryAfter);
    expect(seconds).toBeGreaterThanOrEqual(1);
    expect(seconds).toBeLessThanOrEqual(HALF_OPEN_AFTER_MS / 1000);
    // Rounded up: never sooner than the break's end (a client coming back then finds the trial let through).
    expect(seconds * 1000).toBeGreaterThanOrEqual(HALF_OPEN_AFTER_MS - (Date.now() - beforeLastFailure));
    expect(open.body.message).toMatch(new RegExp(`retry after ${seconds} s$`));

    // The vault back, a client that waits as told is let through (the trial call), not failed fast again.
    vault().clearFaults();
    await new Promise((r) => setTimeout(r, seconds * 1000));
    expect((await store('back')).status).toBe(201);
  });

  it("an audit verify refused because the anchor's read met the open breaker (503 AUDIT_ANCHOR_UNAVAILABLE) says when to come back, as CIRCUIT_OPEN does", async () => {
    const { beforeLastFailure } = await openBreaker();
    try {
      const res = await fetch(`${host.baseUrl}/v1/audit/verify`, { method: 'POST', headers: { 'x-api-key': admin.key } });
      const body = (await res.json()) as { code: number; codeName: string; message: string };
      expect({ status: res.status, code: body.code, codeName: body.codeName }).toEqual({ status: 503, code: 5006, codeName: 'AUDIT_ANCHOR_UNAVAILABLE' });
      expect(body.message).toContain('CIRCUIT_OPEN');
      const retryAfter = res.headers.get('retry-after');
      expect(retryAfter).toMatch(/^\d+$/);
      const seconds = Number(retryAfter);
      expect(seconds).toBeGreaterThanOrEqual(1);
      expect(seconds).toBeLessThanOrEqual(HALF_OPEN_AFTER_MS / 1000);
      expect(seconds * 1000).toBeGreaterThanOrEqual(HALF_OPEN_AFTER_MS - (Date.now() - beforeLastFailure));
    } finally {
      vault().clearFaults();
    }
  });
});
