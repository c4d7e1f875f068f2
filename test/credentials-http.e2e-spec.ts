import { randomBytes, randomUUID } from 'node:crypto';
import { getDataSourceToken } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import { CredentialsService, CredentialType } from '@app/credentials';
import { KeyVaultProvider } from '@app/key-vault';
import { DATABASE_KINDS } from '@app/testing';
import { generateApiKey } from '../apps/api/src/auth/api-keys';
import { startTestHost, TestHost } from './support/host';

/** The tenant-scoped credentials API through real HTTP, a real database and the local vault. */
describe.each(DATABASE_KINDS)('credentials HTTP API on %s', (kind) => {
  let host: TestHost;
  let base: string;
  const admin = generateApiKey('acme-admin', 'acme', ['credentials:read', 'credentials:read-value', 'credentials:write']);
  const reader = generateApiKey('acme-reader', 'acme', ['credentials:read']);
  const other = generateApiKey('globex', 'globex', ['admin']);
  const auditor = generateApiKey('acme-auditor', 'acme', ['audit:read']);
  const acmeRoot = generateApiKey('acme-root', 'acme', ['admin']);
  const storedValues: string[] = [];

  const call = async (key: string, method: string, path: string, body?: unknown) => {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: { 'x-api-key': key, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined, headers: res.headers };
  };
  const secretValue = () => {
    const v = `sk_live_${randomBytes(18).toString('hex')}`;
    storedValues.push(v);
    return v;
  };

  beforeAll(async () => {
    host = await startTestHost(kind, {
      AUTH_API_KEYS: JSON.stringify([admin.entry, reader.entry, other.entry, auditor.entry, acmeRoot.entry]),
      CREDENTIALS_INTEGRATIONS: 'github,slack',
      LOG_LEVEL: 'debug', // log everything the host would, then look for values in it
    });
    base = host.baseUrl;
  });

  afterAll(async () => {
    await host?.close();
  });

  it('refuses calls without credentials (401) and with a missing scope (403)', async () => {
    expect((await fetch(`${base}/v1/credentials`)).status).toBe(401);
    const r = await call(reader.key, 'POST', '/v1/credentials', { integrationId: 'github', connectionId: 'c1', type: 'api_key', value: secretValue() });
    expect(r.status).toBe(403);
    expect(r.body.message).toMatch(/credentials:write/);
  });

  it('refuses a PATCH to status revoked without credentials:revoke (403, audited, nothing changed), as the revoke route does', async () => {
    const created = await call(admin.key, 'POST', '/v1/credentials', { integrationId: 'github', connectionId: 'patch-revoke', type: 'api_key', value: secretValue() });
    const id = created.body.id as string;
    const refused = await call(admin.key, 'PATCH', `/v1/credentials/${id}`, { status: 'revoked', tags: { env: 'x' } });
    expect({ status: refused.status, message: refused.body.message }).toEqual({ status: 403, message: 'missing scope: credentials:revoke' });
    const after = await call(admin.key, 'GET', `/v1/credentials/${id}`);
    expect({ status: after.body.status, tags: after.body.tags, rowVersion: after.body.rowVersion }).toEqual({
      status: 'active',
      tags: created.body.tags,
      rowVersion: created.body.rowVersion,
    });
    // Refusals are audited in batches: poll until this one shows up.
    type Row = { actorId: string; resource: string; errorCode: string; details: { missing?: string[] } };
    const isThisRefusal = (r: Row) => r.actorId === 'api-key:acme-admin' && r.resource === 'PATCH /v1/credentials/:id' && r.errorCode === 'MISSING_SCOPE';
    let denied: Row[] = [];
    for (let i = 0; i < 50 && !denied.some(isThisRefusal); i++) {
      await new Promise((res) => setTimeout(res, 100));
      denied = (await call(auditor.key, 'GET', '/v1/audit?action=access_denied')).body.items;
    }
    expect(denied.find(isThisRefusal)?.details.missing).toEqual(['credentials:revoke']);
    // Other status changes still need only credentials:write; with the scope, the PATCH revokes.
    expect((await call(admin.key, 'PATCH', `/v1/credentials/${id}`, { status: 'needs_reauth' })).status).toBe(200);
    const revoked = await call(acmeRoot.key, 'PATCH', `/v1/credentials/${id}`, { status: 'revoked' });
    expect({ status: revoked.status, credentialStatus: revoked.body.status }).toEqual({ status: 200, credentialStatus: 'revoked' });
  });

  it('stores, reads metadata and value, rotates with compare-and-set, rolls back and deletes', async () => {
    const v1 = secretValue();
    const created = await call(admin.key, 'POST', '/v1/credentials', {
      integrationId: 'github',
      connectionId: 'org_acme.main',
      type: 'api_key',
      value: v1,
      tags: { env: 'prod' },
    });
    expect(created.status).toBe(201);
    expect(JSON.stringify(created.body)).not.toContain(v1);
    expect(created.body).toMatchObject({ tenantId: 'acme', integrationId: 'github', connectionId: 'org_acme.main', version: 1, status: 'active' });
    expect(created.body.maskedValue).toBe(`***${v1.slice(-3)}`);
    const id = created.body.id as string;

    const meta = await call(reader.key, 'GET', `/v1/credentials/${id}`);
    expect(meta.status).toBe(200);
    expect(JSON.stringify(meta.body)).not.toContain(v1);
    // Reading the value needs its own scope.
    expect((await call(reader.key, 'GET', `/v1/credentials/${id}/value`)).status).toBe(403);
    const val = await call(admin.key, 'GET', `/v1/credentials/${id}/value`);
    expect(val.status).toBe(200);
    expect(val.body.value).toBe(v1);
    expect(val.headers.get('cache-control')).toBe('no-store');

    const v2 = secretValue();
    const rotated = await call(admin.key, 'POST', `/v1/credentials/${id}/rotate`, { value: v2, expectedVersion: meta.body.rowVersion });
    expect(rotated.status).toBe(200);
    expect(rotated.body.version).toBe(2);
    expect((await call(admin.key, 'GET', `/v1/credentials/${id}/value`)).body.value).toBe(v2);
    // The metadata route serves the row from the cache: the next read after a write sees it.
    expect((await call(reader.key, 'GET', `/v1/credentials/${id}`)).body).toMatchObject({ version: 2, rowVersion: rotated.body.rowVersion });
    const patched = await call(admin.key, 'PATCH', `/v1/credentials/${id}`, { tags: { env: 'staging' }, expectedVersion: rotated.body.rowVersion });
    expect(patched.status).toBe(200);
    expect((await call(reader.key, 'GET', `/v1/credentials/${id}`)).body).toMatchObject({ tags: { env: 'staging' }, rowVersion: patched.body.rowVersion });

    // A writer holding the old row version loses, and nothing changes.
    const stale = await call(admin.key, 'POST', `/v1/credentials/${id}/rotate`, { value: secretValue(), expectedVersion: meta.body.rowVersion });
    expect(stale.status).toBe(409);
    expect(stale.body.code).toBe(2003);
    expect((await call(admin.key, 'GET', `/v1/credentials/${id}/value`)).body.value).toBe(v2);

    const old = await call(admin.key, 'GET', `/v1/credentials/${id}/versions/1/value`);
    expect(old.body.value).toBe(v1);
    const back = await call(admin.key, 'POST', `/v1/credentials/${id}/rollback`, { version: 1 });
    expect(back.status).toBe(200);
    expect(back.body.version).toBe(3);
    expect((await call(admin.key, 'GET', `/v1/credentials/${id}/value`)).body.value).toBe(v1);
    expect((await call(reader.key, 'GET', `/v1/credentials/${id}/versions`)).body.items).toHaveLength(3);

    expect((await call(admin.key, 'DELETE', `/v1/credentials/${id}`)).status).toBe(204);
    expect((await call(admin.key, 'GET', `/v1/credentials/${id}`)).status).toBe(404);
  });

  it('answers a PATCH that changes nothing 200 with the unchanged metadata: same rowVersion, no audit row; a stale expectedVersion is still 409', async () => {
    const expiresAt = '2099-03-01T12:00:00.000Z';
    const created = await call(admin.key, 'POST', '/v1/credentials', { integrationId: 'github', connectionId: 'patch-unchanged', type: 'api_key', value: secretValue(), tags: { env: 'prod', team: 'core' }, expiresAt });
    expect(created.status).toBe(201);
    const id = created.body.id as string;
    const stored = (await call(reader.key, 'GET', `/v1/credentials/${id}`)).body;
    for (const body of [
      { tags: { team: 'core', env: 'prod' } },
      { expiresAt: '2099-03-01T12:00:00Z', status: 'active', expectedVersion: 1 },
      { tags: { env: 'prod', team: 'core' }, expiresAt, status: 'active' },
    ]) {
      const again = await call(admin.key, 'PATCH', `/v1/credentials/${id}`, body);
      expect({ body, status: again.status, answer: again.body }).toEqual({ body, status: 200, answer: stored });
    }
    expect((await call(reader.key, 'GET', `/v1/credentials/${id}`)).body).toEqual(stored);
    const updates = async (filter = '') => (await call(auditor.key, 'GET', `/v1/audit?resource=${id}&action=update_metadata${filter}`)).body.items as { details: { changed: string[] } }[];
    expect(await updates()).toEqual([]);
    const stale = await call(admin.key, 'PATCH', `/v1/credentials/${id}`, { tags: { env: 'prod', team: 'core' }, expectedVersion: 2 });
    expect({ status: stale.status, code: stale.body.code }).toEqual({ status: 409, code: 2003 });
    // One field of two changed: the audit row names that one.
    const changed = await call(admin.key, 'PATCH', `/v1/credentials/${id}`, { tags: { env: 'staging', team: 'core' }, expiresAt, expectedVersion: 1 });
    expect({ status: changed.status, rowVersion: changed.body.rowVersion }).toEqual({ status: 200, rowVersion: 2 });
    expect((await updates('&result=success')).map((r) => r.details.changed)).toEqual([['tags']]);
  });

  it("answers another tenant's credential exactly like a missing one", async () => {
    const created = await call(admin.key, 'POST', '/v1/credentials', { integrationId: 'slack', connectionId: 'ws-1', type: 'api_key', value: secretValue() });
    const foreign = await call(other.key, 'GET', `/v1/credentials/${created.body.id}/value`);
    const missingId = randomUUID();
    const missing = await call(other.key, 'GET', `/v1/credentials/${missingId}/value`);
    expect(foreign.status).toBe(404);
    expect(missing.status).toBe(404);
    expect(foreign.body.code).toBe(missing.body.code);
    expect(foreign.body.message.replace(created.body.id, 'ID')).toBe(missing.body.message.replace(missingId, 'ID'));
    expect((await call(other.key, 'POST', `/v1/credentials/${created.body.id}/rotate`, { value: secretValue() })).status).toBe(404);
    expect((await call(other.key, 'DELETE', `/v1/credentials/${created.body.id}`)).status).toBe(404);
    expect((await call(admin.key, 'GET', `/v1/credentials/${created.body.id}`)).status).toBe(200);
  });

  it.each([
    ['an id with a space', { integrationId: 'git hub', connectionId: 'c', type: 'api_key', value: 'x'.repeat(20) }, /integrationId/],
    ['a value over 25 KB', { integrationId: 'github', connectionId: 'big', type: 'custom_secret', value: 'x'.repeat(26_000) }, /value/],
    ['an unknown type', { integrationId: 'github', connectionId: 'c', type: 'password', value: 'x'.repeat(20) }, /type must be one of/],
    ['a malformed PEM', { integrationId: 'github', connectionId: 'c', type: 'client_certificate', value: '-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----' }, /certificate/i],
    [
      'more than 15 tags',
      { integrationId: 'github', connectionId: 'c', type: 'api_key', value: 'x'.repeat(20), tags: Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`t${i}`, 'v'])) },
      /15 tags/,
    ],
    // The unknown name is never repeated (it could be a pasted secret); a near miss gets the declared name.
    ['an unknown field', { integrationId: 'github', connectionId: 'c', type: 'api_key', value: 'x'.repeat(20), expiresOn: '2030-01-01' }, /not accepted \(did you mean expiresAt\?\)/],
  ])('rejects %s with 400, says what is wrong, and writes nothing', async (_name, body, message) => {
    const before = await call(admin.key, 'GET', '/v1/credentials/statistics');
    const r = await call(admin.key, 'POST', '/v1/credentials', body);
    expect(r.status).toBe(400);
    expect(JSON.stringify(r.body.message)).toMatch(message);
    expect(JSON.stringify(r.body)).not.toContain('x'.repeat(20));
    const after = await call(admin.key, 'GET', '/v1/credentials/statistics');
    expect(after.body.total).toBe(before.body.total);
  });

  it("refuses a connection id reserved for the host's internal credentials (rotation-pending.*, whsec-pending.*) with 400, storing nothing", async () => {
    const target = await call(admin.key, 'POST', '/v1/credentials', { integrationId: 'github', connectionId: 'reserved-target', type: 'api_key', value: secretValue() });
    expect(target.status).toBe(201);
    const before = await call(admin.key, 'GET', '/v1/credentials/statistics?includeInternal=true');
    for (const [connectionId, type] of [
      [`rotation-pending.${target.body.id}`, 'custom_secret'],
      ['whsec-pending.r1', 'custom_secret'],
      ['whsec-pending.r1', 'api_key'],
    ]) {
      // Tagged as the rotation lib tags a pending value: it would be written as the target's next value.
      const r = await call(admin.key, 'POST', '/v1/credentials', { integrationId: 'github', connectionId, type, value: secretValue(), tags: { 'cv.rotation.minted-for': target.body.id, 'cv.rotation.minted-based-on': '1' } });
      expect({ status: r.status, code: r.body.code }).toEqual({ status: 400, code: 2001 });
      expect(r.body.message).toMatch(/connectionId must not start with rotation-pending\. or whsec-pending\.: reserved/);
      expect((await call(admin.key, 'GET', `/v1/credentials?connectionId=${connectionId}&includeInternal=true`)).body.items).toEqual([]);
    }
    expect((await call(admin.key, 'GET', '/v1/credentials/statistics?includeInternal=true')).body.total).toBe(before.body.total);
  });

  it('refuses an integration or connection id made only of dots (clients resolve "." and ".." path segments away) with 400 naming the field, storing nothing', async () => {
    const before = (await call(admin.key, 'GET', '/v1/credentials/statistics')).body.total;
    for (const [field, id] of [['integrationId', '.'], ['integrationId', '..'], ['connectionId', '.'], ['connectionId', '..']]) {
      const r = await call(admin.key, 'POST', '/v1/credentials', { integrationId: 'github', connectionId: 'dots', type: 'api_key', value: secretValue(), [field]: id });
      expect({ field, id, status: r.status, message: String(r.body.message) }).toEqual({ field, id, status: 400, message: expect.stringMatching(new RegExp(`^${field} .*only of dots`)) });
    }
    expect((await call(admin.key, 'GET', '/v1/credentials/statistics')).body.total).toBe(before);
  });

  it("refuses a change of an internal credential (PATCH tags/expiry, rotate, rollback) with 400, changing nothing; delete is still the tenant's", async () => {
    const target = await call(admin.key, 'POST', '/v1/credentials', { integrationId: 'github', connectionId: 'pending-target', type: 'api_key', value: secretValue() });
    const tags = { 'cv.rotation.minted-for': target.body.id, 'cv.rotation.minted-based-on': '1' };
    // Written as the Rotation lib keeps a pending rotation value.
    const pending = await host.app
      .get(CredentialsService)
      .store({ tenantId: 'acme', actor: { id: 'system:rotation' } }, { integrationId: 'github', connectionId: `rotation-pending.${target.body.id}`, type: CredentialType.CUSTOM_SECRET, value: secretValue(), tags }, { internal: true });
    const path = `/v1/credentials/${pending.id}`;
    for (const [method, suffix, body] of [
      ['PATCH', '', { tags: { ...tags, 'cv.rotation.minted-based-on': '2' } }],
      ['PATCH', '', { expiresAt: '2099-01-01T00:00:00.000Z' }],
      ['POST', '/rotate', { value: secretValue() }],
      ['POST', '/rollback', { version: 1 }],
    ] as const) {
      const r = await call(admin.key, method, `${path}${suffix}`, body);
      expect({ status: r.status, code: r.body.code }).toEqual({ status: 400, code: 2001 });
      expect(r.body.message).toMatch(/reserved for the credentials the libs keep themselves: it can only be deleted or revoked/);
    }
    expect((await call(admin.key, 'GET', path)).body).toMatchObject({ rowVersion: pending.rowVersion, version: 1, tags, expiresAt: null });
    expect((await call(admin.key, 'DELETE', path)).status).toBe(204);
    expect((await call(admin.key, 'GET', path)).status).toBe(404);
  });

  it('rejects a malformed credential id with 400', async () => {
    expect((await call(admin.key, 'GET', '/v1/credentials/not-a-uuid')).status).toBe(400);
  });

  it("refuses a connection path that is no identifier as the other connection routes do (the host's 400, not the lib's pattern)", async () => {
    for (const [integrationId, connectionId] of [['a%20b', 'c'], ['github', 'x%E2%80%AEy']]) {
      const refused = await call(admin.key, 'DELETE', `/v1/connections/${integrationId}/${connectionId}`);
      const field = integrationId === 'github' ? 'connectionId' : 'integrationId';
      expect({ status: refused.status, message: refused.body.message, code: refused.body.code }).toEqual({ status: 400, message: [`${field} must be 1–128 characters of letters, digits and . _ : @ -`], code: 90001 });
    }
  });

  it('refuses a connection path that is no identifier on every route that names one (credentials, webhook secrets, OAuth) with the same 400', async () => {
    const doc = (await call(acmeRoot.key, 'GET', '/docs/json')).body as { paths: Record<string, Record<string, unknown>> };
    const routes = Object.entries(doc.paths)
      .filter(([path]) => path.includes('/{integrationId}/{connectionId}'))
      .flatMap(([path, operations]) => Object.keys(operations).map((method) => [method.toUpperCase(), path] as const));
    expect(new Set(routes.map(([, path]) => path.split('/')[2]))).toEqual(new Set(['connections', 'rotation', 'oauth']));
    const answers = [];
    for (const [method, path] of routes) {
      for (const [integrationId, connectionId, field] of [['a%20b', 'c', 'integrationId'], ['github', 'x%E2%80%AEy', 'connectionId']]) {
        const refused = await call(acmeRoot.key, method, path.replace('{integrationId}', integrationId).replace('{connectionId}', connectionId), method === 'GET' || method === 'DELETE' ? undefined : {});
        answers.push({ method, path, status: refused.status, message: refused.body?.message, expected: [`${field} must be 1–128 characters of letters, digits and . _ : @ -`] });
      }
    }
    expect(answers.filter((a) => a.status !== 400 || JSON.stringify(a.message) !== JSON.stringify(a.expected))).toEqual([]);
    expect(answers.length).toBeGreaterThanOrEqual(2 * 11);
  });

  it('shows the connections screen with statuses and masked values only', async () => {
    const v = secretValue();
    await call(admin.key, 'POST', '/v1/credentials', { integrationId: 'github', connectionId: 'screen', type: 'api_key', value: v });
    const r = await call(reader.key, 'GET', '/v1/connections');
    expect(r.status).toBe(200);
    const row = r.body.items.find((c: { integrationId: string; connectionId: string }) => c.integrationId === 'github' && c.connectionId === 'screen');
    expect(row.status).toBe('connected');
    expect(JSON.stringify(r.body)).not.toContain(v);
    expect(JSON.stringify(r.body)).toContain(`***${v.slice(-3)}`);
  });

  it('lists with filters and cursor paging, and counts statistics from SQL', async () => {
    for (let i = 0; i < 5; i++) {
      await call(admin.key, 'POST', '/v1/credentials', { integrationId: 'paging', connectionId: `p${i}`, type: 'custom_secret', value: secretValue() });
    }
    const seen: string[] = [];
    let cursor: string | undefined;
    do {
      const r = await call(reader.key, 'GET', `/v1/credentials?integrationId=paging&limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      expect(r.status).toBe(200);
      seen.push(...r.body.items.map((i: { connectionId: string }) => i.connectionId));
      cursor = r.body.nextCursor;
    } while (cursor);
    expect(seen.sort()).toEqual(['p0', 'p1', 'p2', 'p3', 'p4']);
    // A cursor the server did not write: 400, and the message says where a cursor comes from and what to do.
    const forged = await call(reader.key, 'GET', '/v1/credentials?integrationId=paging&limit=2&cursor=bm90LWEtY3Vyc29y');
    expect({ status: forged.status, code: forged.body.code }).toEqual({ status: 400, code: 2001 });
    expect(forged.body.message).toContain('nextCursor');
    expect(forged.body.message).not.toContain('list()');
    const stats = await call(reader.key, 'GET', '/v1/credentials/statistics');
    expect(stats.body.byIntegration.paging).toBe(5);
  });

  it("audits the tenant's operations, refusals included, and keeps its hash chain verifiable", async () => {
    const created = await call(admin.key, 'POST', '/v1/credentials', { integrationId: 'github', connectionId: 'audited', type: 'api_key', value: secretValue() });
    const id = created.body.id as string;
    await call(admin.key, 'GET', `/v1/credentials/${id}/value`);
    expect((await call(reader.key, 'GET', `/v1/credentials/${id}/value`)).status).toBe(403);

    // audit:read is its own scope.
    expect((await call(admin.key, 'GET', `/v1/audit?resource=${id}`)).status).toBe(403);
    // Reads are flushed in batches: poll until the read shows up.
    let rows: { action: string; result: string; actorId: string }[] = [];
    for (let i = 0; i < 50 && !rows.some((x) => x.action === 'read'); i++) {
      await new Promise((res) => setTimeout(res, 100));
      rows = (await call(auditor.key, 'GET', `/v1/audit?resource=${id}`)).body.items;
    }
    expect(rows.map((r) => [r.action, r.result, r.actorId]).sort()).toEqual(
      [
        ['read', 'success', 'api-key:acme-admin'],
        ['store', 'success', 'api-key:acme-admin'],
      ].sort(),
    );
    const denied = await call(auditor.key, 'GET', '/v1/audit?action=access_denied');
    expect(denied.body.items.some((r: { actorId: string; result: string }) => r.actorId === 'api-key:acme-reader' && r.result === 'denied')).toBe(true);
    // Another tenant sees nothing of acme's trail.
    expect((await call(other.key, 'GET', `/v1/audit?resource=${id}`)).body.items).toEqual([]);

    const verify = await call(acmeRoot.key, 'POST', '/v1/audit/verify');
    expect(verify.status).toBe(200);
    expect(verify.body).toMatchObject({ valid: true });
    expect(verify.body.checked).toBeGreaterThan(5);
    expect(JSON.stringify((await call(auditor.key, 'GET', '/v1/audit?limit=500')).body)).not.toMatch(/sk_live_/);
  });

  it('audits every value read as its own row, even when the caller repeats its X-Request-Id', async () => {
    const created = await call(admin.key, 'POST', '/v1/credentials', { integrationId: 'github', connectionId: 'each-read', type: 'api_key', value: secretValue() });
    const id = created.body.id as string;
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${base}/v1/credentials/${id}/value`, { headers: { 'x-api-key': admin.key, 'x-request-id': 'same-request-id' } });
      expect(res.status).toBe(200);
    }
    let rows: { action: string; correlationId: string; details: Record<string, unknown> }[] = [];
    for (let i = 0; i < 50 && rows.length < 3; i++) {
      await new Promise((res) => setTimeout(res, 100));
      rows = (await call(auditor.key, 'GET', `/v1/audit?resource=${id}&action=read`)).body.items;
    }
    expect(rows).toHaveLength(3);
    for (const r of rows) {
      expect(r.correlationId).toBe('same-request-id');
      expect(r.details.reads).toBeUndefined();
    }
  });

  // The Azure SDK sends a secret's exp as 32-bit seconds: @app/key-vault refuses a date it would wrap (INVALID_REQUEST),
  // so the credential's vault write must leave such an expiry off, not fail the store.
  it('stores a credential whose expiry the vault cannot carry (after 2038, before 1901) as any other: its own expiry kept, none at the vault', async () => {
    const vault = host.app.get(KeyVaultProvider);
    const vaultExpiry = async (id: string) => {
      for await (const s of vault.listAllSecrets()) if (s.tags?.['cv-credential'] === id) return s.expiresOn?.toISOString() ?? null;
      throw new Error(`no vault secret tagged ${id}`);
    };
    const cases = [
      { connectionId: 'exp-2100', expiresAt: '2100-01-01T00:00:00.000Z', vault: null },
      { connectionId: 'exp-1850', expiresAt: '1850-06-01T00:00:00.000Z', vault: null },
      { connectionId: 'exp-2038', expiresAt: '2038-01-19T03:14:07.000Z', vault: '2038-01-19T03:14:07.000Z' },
      { connectionId: 'exp-2030', expiresAt: '2030-06-01T12:00:00.750Z', vault: '2030-06-01T12:00:00.000Z' },
    ];
    for (const c of cases) {
      const value = secretValue();
      const created = await call(admin.key, 'POST', '/v1/credentials', { integrationId: 'slack', connectionId: c.connectionId, type: 'api_key', value, expiresAt: c.expiresAt });
      expect([c.connectionId, created.status, created.body.expiresAt]).toEqual([c.connectionId, 201, c.expiresAt]);
      expect([c.connectionId, await vaultExpiry(created.body.id as string)]).toEqual([c.connectionId, c.vault]);
      // A new version (a rotate naming the expiry again) goes the same way.
      const rotated = await call(admin.key, 'POST', `/v1/credentials/${created.body.id as string}/rotate`, { value: secretValue(), expiresAt: c.expiresAt });
      expect([c.connectionId, rotated.status, rotated.body.version, rotated.body.expiresAt]).toEqual([c.connectionId, 200, 2, c.expiresAt]);
      expect([c.connectionId, await vaultExpiry(created.body.id as string)]).toEqual([c.connectionId, c.vault]);
    }
  });

  it('never writes a value, an API key or a bearer token to the log, even at debug level', async () => {
    await fetch(`${base}/v1/credentials`, { headers: { 'x-api-key': reader.key, 'x-request-id': 'trace-me-123' } });
    await new Promise((r) => setTimeout(r, 50));
    const all = host.logs.join('');
    // Requests are logged as JSON lines carrying the correlation id the caller sent.
    expect(host.logs.some((l) => l.includes('"id":"trace-me-123"') && l.includes('"url":"/v1/credentials"'))).toBe(true);
    expect(all).toContain('stored credential');
    for (const v of storedValues) expect(all).not.toContain(v);
    for (const k of [admin, reader, other, auditor, acmeRoot]) expect(all).not.toContain(k.key);
  });

  it('never stores a value in plaintext in any database table', async () => {
    const ds = host.app.get<DataSource>(getDataSourceToken());
    const tables = ds.entityMetadatas.map((m) => (m.schema ? `${ds.driver.escape(m.schema)}.` : '') + ds.driver.escape(m.tableName));
    expect(storedValues.length).toBeGreaterThan(5);
    for (const table of tables) {
      const rows = await ds.query(`SELECT * FROM ${table}`);
      const dump = JSON.stringify(rows);
      for (const v of storedValues) expect(dump).not.toContain(v);
    }
  });
});
