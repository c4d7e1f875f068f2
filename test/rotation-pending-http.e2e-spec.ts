import { randomBytes } from 'node:crypto';
import { RotationHandlerRegistry } from '@app/rotation';
import { generateApiKey } from '../apps/api/src/auth/api-keys';
import { EmbeddedVault } from '../apps/api/src/vault/embedded-vault';
import { startTestHost, TestHost, ROTATION_JOBS_OFF } from './support/host';

/**
 * A pending rotation value (a value a rotation handler minted whose vault write was refused) as an operator sees it:
 * GET /v1/rotation/credentials/{id}/pending names it (never the value), and /metrics counts every tenant's.
 */
describe('pending rotation values over HTTP and /metrics', () => {
  let host: TestHost;
  const writer = generateApiKey('acme-writer', 'acme', ['credentials:read', 'credentials:write']);
  const rotator = generateApiKey('acme-rotator', 'acme', ['rotation:read', 'rotation:write']);
  const other = generateApiKey('globex', 'globex', ['admin']);
  const minted: string[] = [];
  const vault = () => host.app.get(EmbeddedVault).emulator!;
  const call = async (key: string, method: string, path: string, body?: unknown) => {
    const res = await fetch(`${host.baseUrl}${path}`, {
      method,
      headers: { 'x-api-key': key, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, text, body: text ? JSON.parse(text) : undefined };
  };
  const metric = async (name: string) => (await (await fetch(`${host.baseUrl}/metrics`)).text()).split('\n').filter((l) => l.startsWith(`${name} `));

  beforeAll(async () => {
    host = await startTestHost('sqlite', { AUTH_API_KEYS: JSON.stringify([writer.entry, rotator.entry, other.entry]), ...ROTATION_JOBS_OFF });
    host.app.get(RotationHandlerRegistry).register({
      integrationId: 'github',
      handler: {
        mint: async () => {
          minted.push(`ghp_${randomBytes(16).toString('hex')}`);
          return { value: minted[minted.length - 1] };
        },
      },
    });
  });
  afterEach(() => vault()?.clearDenials());
  afterAll(async () => {
    await host?.close();
  });

  it('names the pending rotation value of a credential (never the value), counts it on /metrics, and 404s another tenant', async () => {
    // The tenant's envelope data key exists (it keeps the pending value), as in a live vault.
    expect((await call(writer.key, 'POST', '/v1/credentials', { integrationId: 'other', connectionId: 'e', type: 'custom_secret', value: 'x'.repeat(24), valueStore: 'envelope' })).status).toBe(201);
    const cred = (await call(writer.key, 'POST', '/v1/credentials', { integrationId: 'github', connectionId: 'ci', type: 'api_key', value: `k-${randomBytes(12).toString('hex')}` })).body as { id: string };
    const path = `/v1/rotation/credentials/${cred.id}/pending`;
    expect(await call(rotator.key, 'GET', path)).toMatchObject({ status: 200, body: { credentialId: cred.id, pendingRotation: null } });

    vault().deny({ operations: ['setSecret'] });
    expect((await call(rotator.key, 'POST', `/v1/rotation/credentials/${cred.id}/rotate`, { reason: 'routine' })).body).toMatchObject({ codeName: 'FORBIDDEN' });
    vault().clearDenials();

    const r = await call(rotator.key, 'GET', path);
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ credentialId: cred.id, pendingRotation: { credentialId: cred.id, pendingCredentialId: expect.any(String), basedOnVersion: 1, since: expect.any(String) } });
    expect(r.text).not.toContain(minted[0]);
    expect((await call(other.key, 'GET', path)).status).toBe(404);
    expect((await call(rotator.key, 'GET', '/v1/rotation/credentials/not-a-uuid/pending')).status).toBe(400);

    // The first scrape reads the count (one query over every tenant, at most once a minute); it may serve the next.
    let lines: string[] = [];
    for (const deadline = Date.now() + 10_000; Date.now() < deadline && lines.length === 0; await new Promise((res) => setTimeout(res, 200))) lines = await metric('credential_vault_rotation_pending_values');
    expect(lines).toEqual(['credential_vault_rotation_pending_values 1']);
  });
});
