import { randomBytes } from 'node:crypto';
import { getDataSourceToken } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import { DataKeyService, dataKeySecretName } from '@app/credentials';
import { KeyVaultErrorCode, KeyVaultKeysProvider, KeyVaultProvider, isKeyVaultError } from '@app/key-vault';
import { generateApiKey } from '../apps/api/src/auth/api-keys';
import { startTestHost, TestHost } from './support/host';

/** /metrics once it shows `line`: a scrape waits at most 500 ms for the key check, a slower one serves the next scrape. */
async function metricsShowing(host: TestHost, line: string | RegExp): Promise<string> {
  const shows = (text: string) => (typeof line === 'string' ? text.includes(line) : line.test(text));
  let text = '';
  for (const deadline = Date.now() + 10_000; Date.now() < deadline && !shows(text); await new Promise((r) => setTimeout(r, 200))) {
    text = await (await fetch(`${host.baseUrl}/metrics`)).text();
  }
  return text;
}

/**
 * ENVELOPE_KEY_ENCRYPTION_KEY: the stock host wraps tenants' envelope data keys with a vault RSA key
 * instead of keeping them as readable vault secrets (the credentials lib's `envelope.keyEncryptionKey`).
 */
describe('host: envelope data keys wrapped by ENVELOPE_KEY_ENCRYPTION_KEY', () => {
  let host: TestHost;
  const kek = `cv-kek-${randomBytes(3).toString('hex')}`;
  const admin = generateApiKey('wrap-admin', 'wrap', ['admin']);

  beforeAll(async () => {
    host = await startTestHost('sqlite', { AUTH_API_KEYS: JSON.stringify([admin.entry]), ENVELOPE_KEY_ENCRYPTION_KEY: kek });
    // Operators create the key encryption key in the vault (wrapKey/unwrapKey only) before the first write.
    await host.app.get(KeyVaultKeysProvider).createKey(kek, { keyType: 'RSA', keySize: 2048, keyOps: ['wrapKey', 'unwrapKey'] });
  });

  afterAll(async () => {
    await host?.close();
  });

  it('stores and serves an envelope credential with its data key wrapped in the database, never as a vault secret', async () => {
    const value = `ya29.${randomBytes(24).toString('base64url')}`;
    const call = (method: string, path: string, body?: unknown) =>
      fetch(`${host.baseUrl}${path}`, {
        method,
        headers: { 'x-api-key': admin.key, ...(body ? { 'content-type': 'application/json' } : {}) },
        body: body ? JSON.stringify(body) : undefined,
      });
    // OAuth access tokens go to the envelope store by default.
    const created = await call('POST', '/v1/credentials', { integrationId: 'gh', connectionId: 'c1', type: 'oauth_access_token', value });
    expect(created.status).toBe(201);
    const { id, valueStore } = (await created.json()) as { id: string; valueStore: string };
    expect(valueStore).toBe('envelope');
    const read = await call('GET', `/v1/credentials/${id}/value`);
    expect(read.status).toBe(200);
    expect(((await read.json()) as { value: string }).value).toBe(value);

    const rows = (await host.app.get<DataSource>(getDataSourceToken()).query('SELECT kek_name FROM cv_wrapped_data_keys WHERE tenant_id = ?', ['wrap'])) as Array<{ kek_name: string }>;
    expect(rows).toEqual([{ kek_name: kek }]);
    const secret = await host.app.get(KeyVaultProvider).getSecret(dataKeySecretName('wrap')).catch((e: unknown) => e);
    expect(isKeyVaultError(secret, KeyVaultErrorCode.KEY_NOT_FOUND)).toBe(true);
  });

  it('readiness shows the key usable once it exists, and the gauge is 1', async () => {
    host.app.get(DataKeyService).clear(); // the verdict from before the key was created stands for 5 s
    const body = (await (await fetch(`${host.baseUrl}/health/ready`)).json()) as { status: string; details: Record<string, { status: string; keyName?: string; verdict?: string }> };
    expect(body.details.envelopeKek).toMatchObject({ status: 'up', keyName: kek, verdict: 'usable' });
    expect(await metricsShowing(host, `credential_vault_envelope_kek_usable{key="${kek}"} 1`)).toContain(`credential_vault_envelope_kek_usable{key="${kek}"} 1`);
  });
});

describe('host: an envelope key-encryption key that cannot be used is the server\'s error, not the caller\'s', () => {
  let host: TestHost;
  const admin = generateApiKey('kek-admin', 'nokek', ['admin']);

  beforeAll(async () => {
    // The operator named a key that was never created.
    host = await startTestHost('sqlite', { AUTH_API_KEYS: JSON.stringify([admin.entry]), ENVELOPE_KEY_ENCRYPTION_KEY: `cv-missing-kek-${randomBytes(3).toString('hex')}` });
  });

  afterAll(async () => {
    await host?.close();
  });

  it('a store answers 500 (CREDENTIALS_CONFIGURATION), not 404 KEY_NOT_FOUND as if the caller had named something missing, and stores nothing', async () => {
    const res = await fetch(`${host.baseUrl}/v1/credentials`, {
      method: 'POST',
      headers: { 'x-api-key': admin.key, 'content-type': 'application/json' },
      body: JSON.stringify({ integrationId: 'gh', connectionId: 'c1', type: 'oauth_access_token', value: `ya29.${randomBytes(24).toString('base64url')}` }),
    });
    expect(res.status).toBe(500);
    const list = await fetch(`${host.baseUrl}/v1/credentials`, { headers: { 'x-api-key': admin.key } });
    expect(((await list.json()) as { items: unknown[] }).items).toEqual([]);
    expect(host.logs.join('\n')).toMatch(/CREDENTIALS_CONFIGURATION/);
  });

  it('readiness and /metrics say so before any write does: envelopeKek degraded with the reason, the gauge at 0, an error logged at start', async () => {
    const ready = await fetch(`${host.baseUrl}/health/ready`);
    expect(ready.status).toBe(200); // degraded, not down: every replica has the same problem
    const body = (await ready.json()) as { status: string; details: Record<string, { status: string; verdict?: string; message?: string }> };
    expect(body.details.envelopeKek).toMatchObject({ status: 'degraded', verdict: 'unusable', message: expect.stringContaining('the vault answered KEY_NOT_FOUND') });
    const unusable = /^credential_vault_envelope_kek_usable\{key="cv-missing-kek-[0-9a-f]+"\} 0$/m;
    expect(await metricsShowing(host, unusable)).toMatch(unusable);
    expect(host.logs.join('\n')).toMatch(/the key-encryption key cv-missing-kek-[0-9a-f]+ cannot be used: the vault answered KEY_NOT_FOUND/);
  });
});
