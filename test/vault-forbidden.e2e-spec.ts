import { randomBytes } from 'node:crypto';
import { generateApiKey } from '../apps/api/src/auth/api-keys';
import { EmbeddedVault } from '../apps/api/src/vault/embedded-vault';
import { startTestHost, TestHost } from './support/host';

/**
 * The host's vault identity lacks a permission (Azure's 403 ForbiddenByRbac / ForbiddenByPolicy): the client gets a
 * clear 502 FORBIDDEN (an operator's problem, not its own), once, with no value or vault text, and nothing changes.
 */
describe('a vault permission the host lacks, over HTTP', () => {
  let host: TestHost;
  const admin = generateApiKey('acme-admin', 'acme', ['credentials:read', 'credentials:read-value', 'credentials:write']);
  const vault = () => host.app.get(EmbeddedVault).emulator!;
  const call = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${host.baseUrl}${path}`, {
      method,
      headers: { 'x-api-key': admin.key, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, text, body: text ? JSON.parse(text) : undefined };
  };

  beforeAll(async () => {
    host = await startTestHost('sqlite', { AUTH_API_KEYS: JSON.stringify([admin.entry]), CREDENTIALS_INTEGRATIONS: 'github' });
  });
  afterEach(() => vault()?.clearDenials());
  afterAll(async () => {
    await host?.close();
  });

  it.each(['rbac', 'accessPolicy'] as const)('%s: a store the vault refuses is 502 FORBIDDEN (1010), tried once, and stores nothing', async (model) => {
    const value = `sk_live_${randomBytes(18).toString('hex')}`;
    // The connection id ends up in the secret's name, which Azure's RBAC message quotes.
    const connectionId = `disabled-users-${model}`;
    vault().deny({ operations: ['setSecret'], model });
    vault().resetStats();
    const r = await call('POST', '/v1/credentials', { integrationId: 'github', connectionId, type: 'api_key', value });
    expect(r.status).toBe(502);
    expect(r.body).toMatchObject({ code: 1010, codeName: 'FORBIDDEN' });
    for (const leak of [value, connectionId, 'Caller', 'appid', 'ForbiddenBy']) expect(r.text).not.toContain(leak);
    expect(vault().stats().byOperationAndStatus['setSecret:403']).toBe(1);

    vault().clearDenials();
    const listed = await call('GET', `/v1/credentials?integrationId=github&connectionId=${connectionId}`);
    expect(listed.status).toBe(200);
    expect(JSON.stringify(listed.body)).not.toContain(connectionId);
  });
});
