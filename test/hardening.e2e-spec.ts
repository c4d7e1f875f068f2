import { randomBytes, randomUUID } from 'node:crypto';
import { request } from 'node:http';
import { AuditService } from '@app/audit';
import { OAuthProviderRegistry } from '@app/oauth-refresh';
import { DATABASE_KINDS } from '@app/testing';
import { generateApiKey } from '../apps/api/src/auth/api-keys';
import { UNAUTHENTICATED_TENANT } from '../apps/api/src/auth/auth.guard';
import { startTestHost, TestHost } from './support/host';
import { stateSnapshot } from './support/state-snapshot';

/**
 * Regressions of what probing the API from outside found (issue #10): each finding over real HTTP,
 * on both databases. "Writes nothing" is checked against every state row and the vault's contents.
 */
describe.each(DATABASE_KINDS)('hardened HTTP API on %s', (kind) => {
  let host: TestHost;
  let base: string;
  const key = generateApiKey('acme-app', 'acme', ['credentials:read', 'credentials:read-value', 'credentials:write']);
  const auditor = generateApiKey('acme-audit', 'acme', ['audit:read']);
  const revoker = generateApiKey('acme-revoker', 'acme', ['credentials:revoke']);
  const keyAdmin = generateApiKey('acme-keys', 'acme', ['keys:read', 'keys:write']);
  const rotationAdmin = generateApiKey('acme-rotation', 'acme', ['rotation:read', 'rotation:write']);
  const otherTenant = generateApiKey('globex-app', 'globex', ['credentials:read', 'credentials:write', 'audit:read']);

  interface Answer {
    status: number;
    text: string;
    body: { statusCode?: number; error?: string; message?: string | string[]; code?: number; codeName?: string; value?: string } & Record<string, unknown>;
  }
  const send = async (method: string, path: string, init: { body?: string | Buffer; contentType?: string; contentEncoding?: string; apiKey?: string | null } = {}): Promise<Answer> => {
    const headers: Record<string, string> = {};
    if (init.apiKey !== null) headers['x-api-key'] = init.apiKey ?? key.key;
    if (init.contentType) headers['content-type'] = init.contentType;
    if (init.contentEncoding) headers['content-encoding'] = init.contentEncoding;
    const res = await fetch(`${base}${path}`, { method, headers, body: init.body });
    const text = await res.text();
    return { status: res.status, text, body: text ? JSON.parse(text) : {} };
  };
  const json = (method: string, path: string, body: unknown) => send(method, path, { body: JSON.stringify(body), contentType: 'application/json' });
  const secret = () => `SECRET-${randomBytes(12).toString('hex')}`;
  const store = async (over: Record<string, unknown> = {}) => {
    const r = await json('POST', '/v1/credentials', { integrationId: 'github', connectionId: `c-${randomBytes(4).toString('hex')}`, type: 'api_key', value: secret(), ...over });
    expect(r.status).toBe(201);
    return r.body as unknown as { id: string; rowVersion: number };
  };
  /** The request is refused with `status`, in the documented error shape, and leaves every stored thing as it was. */
  const refusedWithoutWrites = async (status: number, request: () => Promise<Answer>): Promise<Answer> => {
    const before = await stateSnapshot(host.app);
    const r = await request();
    expect({ status: r.status, text: r.text.slice(0, 300) }).toEqual({ status, text: expect.any(String) });
    expect(r.body).toEqual(expect.objectContaining({ statusCode: status, error: expect.any(String), message: expect.anything(), requestId: expect.any(String) }));
    expect(await stateSnapshot(host.app)).toEqual(before);
    return r;
  };

  beforeAll(async () => {
    host = await startTestHost(kind, { AUTH_API_KEYS: JSON.stringify([key.entry, auditor.entry, revoker.entry, keyAdmin.entry, rotationAdmin.entry, otherTenant.entry]), OAUTH_PROACTIVE_ENABLED: 'false', LOG_LEVEL: 'debug' });
    base = host.baseUrl;
    // A provider whose token endpoint nobody listens on: storing tokens never calls it; a forced refresh would fail (503).
    host.app.get(OAuthProviderRegistry).register({ integrationId: 'prov', tokenEndpoint: 'http://127.0.0.1:9/token', clientId: 'client', clientSecret: { credentialId: randomUUID(), tenantId: 'system' }, allowInsecureRequests: true });
  });

  afterAll(async () => {
    await host?.close();
  });

  describe('1. deeply nested JSON', () => {
    it.each([
      ['an array 10,000 deep', '['.repeat(10_000) + ']'.repeat(10_000)],
      ['a value object 5,000 deep', `{"integrationId":"x","connectionId":"y","type":"custom_secret","value":${'{"a":'.repeat(5000)}1${'}'.repeat(5000)}}`],
      ['33 levels', '['.repeat(33) + ']'.repeat(33)],
    ])('answers 400 for %s on every body route, writing nothing', async (_, body) => {
      const { id } = await store();
      for (const [method, path] of [
        ['POST', '/v1/credentials'],
        ['POST', `/v1/credentials/${id}/rotate`],
        ['PATCH', `/v1/credentials/${id}`],
        ['POST', '/v1/credentials/delete-batch'],
        ['POST', '/v1/oauth/connections/prov/c1/tokens'],
        ['POST', '/v1/oauth/connections/prov/c1/token-rejected'],
      ]) {
        const r = await refusedWithoutWrites(400, () => send(method, path, { body, contentType: 'application/json' }));
        expect(r.body.message).toMatch(/nests deeper than 32 levels/);
      }
      expect(host.logs.join('\n')).not.toMatch(/Maximum call stack/);
    });

    it('still accepts a body nested 32 levels deep', async () => {
      const r = await send('POST', '/v1/credentials', { body: '['.repeat(32) + ']'.repeat(32), contentType: 'application/json' });
      expect(r.body.message).toBe('request body must be a JSON object');
    });
  });

  describe('2. a refused OAuth token response writes nothing', () => {
    it.each([
      ['expires_in 1e308', { expires_in: 1e308 }],
      ['expires_in "0x10"', { expires_in: '0x10' }],
      ['expires_in -1', { expires_in: -1 }],
      ['a 30 KB access token', { access_token: `AT-${'a'.repeat(30_000)}` }],
      ['a refresh token with a lone surrogate', { refresh_token: 'RT-\ud800-1' }],
      ['an access token with a newline', { access_token: 'AT-1\nAT-2' }],
    ])('%s → 400, no credential, version or vault secret', async (_, over) => {
      await refusedWithoutWrites(400, () => json('POST', `/v1/oauth/connections/prov/c-${randomBytes(3).toString('hex')}/tokens`, { access_token: 'AT-1', refresh_token: 'RT-1', ...over }));
    });

    it('on an existing connection, too: the stored tokens stay current', async () => {
      const path = '/v1/oauth/connections/prov/existing/tokens';
      expect((await json('POST', path, { access_token: 'AT-first', refresh_token: 'RT-first', expires_in: 3600 })).status).toBe(201);
      await refusedWithoutWrites(400, () => json('POST', path, { access_token: `AT-${'b'.repeat(30_000)}`, refresh_token: 'RT-second', expires_in: 3600 }));
      const token = await send('GET', '/v1/oauth/connections/prov/existing/access-token');
      expect(token.body.accessToken).toBe('AT-first');
    });
  });

  describe('3. error messages never repeat request values', () => {
    it('a form-encoded body is 415 and the answer does not contain the value', async () => {
      const value = secret();
      const body = JSON.stringify({ integrationId: 'x', connectionId: 'y', type: 'api_key', value });
      for (const contentType of ['application/x-www-form-urlencoded', 'text/plain', 'multipart/form-data; boundary=x', 'application/xml']) {
        const r = await refusedWithoutWrites(415, () => send('POST', '/v1/credentials', { body, contentType }));
        expect(r.text).not.toContain(value);
      }
      const { id } = await store();
      const r = await refusedWithoutWrites(415, () => send('POST', `/v1/credentials/${id}/rotate`, { body: `value=${value}`, contentType: 'application/x-www-form-urlencoded' }));
      expect(r.text).not.toContain(value);
    });

    it('a body with a Content-Encoding is 415 (not decoded here: a gzip body was stored as its compressed bytes)', async () => {
      const value = secret();
      const body = JSON.stringify({ integrationId: 'x', connectionId: 'enc', type: 'api_key', value });
      for (const contentEncoding of ['gzip', 'br', 'deflate, gzip']) {
        const r = await refusedWithoutWrites(415, () => send('POST', '/v1/credentials', { body, contentType: 'application/json', contentEncoding }));
        expect(r.body.message).toBe('request bodies must not be compressed (Content-Encoding)');
        expect(r.text).not.toContain(value);
      }
      expect((await send('POST', '/v1/credentials', { body, contentType: 'application/json', contentEncoding: 'identity' })).status).toBe(201);
    });

    it('an unknown property is never named; a near miss of a declared field gets the declared name', async () => {
      const value = secret();
      const r = await refusedWithoutWrites(400, () => json('POST', '/v1/credentials', { integrationId: 'x', connectionId: 'y', type: 'api_key', value: 'ok-value-1', [value]: '' }));
      expect(r.text).not.toContain(value);
      expect(r.body.message).toContain('the body has a property that is not accepted');
      const typo = await refusedWithoutWrites(400, () => json('POST', '/v1/credentials', { integrationId: 'x', connectionId: 'y', type: 'api_key', value: 'ok-value-2', expiresat: '2030-01-01T00:00:00Z' }));
      expect(typo.body.message).toContain('the body has a property that is not accepted (did you mean expiresAt?)');
      expect(typo.text).not.toContain('expiresat');
      const named = await refusedWithoutWrites(400, () => json('POST', '/v1/credentials', { integrationId: 'x', connectionId: 'y', type: 'api_key', value: 'ok-value-4', constructorzq: 1 }));
      expect(named.text).not.toContain('constructorzq');
    });

    it('tag keys and values are not echoed', async () => {
      const value = secret();
      const r = await refusedWithoutWrites(400, () => json('POST', '/v1/credentials', { integrationId: 'x', connectionId: 'y', type: 'api_key', value: 'ok-value-3', tags: { [`${value} `]: 'v' } }));
      expect(r.text).not.toContain(value);
    });

    it('a body that is not UTF-8 is 400, not silently repaired', async () => {
      const body = Buffer.concat([Buffer.from('{"integrationId":"x","connectionId":"y","type":"custom_secret","value":"a'), Buffer.from([0xff, 0xfe]), Buffer.from('"}')]);
      const r = await refusedWithoutWrites(400, () => send('POST', '/v1/credentials', { body, contentType: 'application/json' }));
      expect(r.body.message).toBe('request body is not valid UTF-8');
    });
  });

  describe('4. revoked and expired values are refused', () => {
    it('a revoked credential: 409 REVOKED for the value and every version, cached or not; un-revoking serves it again', async () => {
      const first = secret();
      const value = secret();
      const { id } = await store({ value: first });
      const rotated = await json('POST', `/v1/credentials/${id}/rotate`, { value });
      const rowVersion = rotated.body.rowVersion as number;
      expect((await send('GET', `/v1/credentials/${id}/value`)).body.value).toBe(value); // now cached
      const revoked = await json('PATCH', `/v1/credentials/${id}`, { status: 'revoked', expectedVersion: rowVersion });
      expect(revoked.status).toBe(200);
      for (const path of [`/v1/credentials/${id}/value`, `/v1/credentials/${id}/versions/1/value`, `/v1/credentials/${id}/value?allowExpired=true`]) {
        const r = await send('GET', path);
        expect(r.status).toBe(409);
        expect(r.body).toMatchObject({ code: 2009, codeName: 'REVOKED' });
        expect(r.text).not.toContain(value);
      }
      // Only un-revoke (credentials:revoke) lifts it: neither a status change nor a rollback to the withdrawn value.
      for (const lift of [
        () => json('PATCH', `/v1/credentials/${id}`, { status: 'active' }),
        () => json('PATCH', `/v1/credentials/${id}`, { status: 'expired' }),
        () => json('POST', `/v1/credentials/${id}/rollback`, { version: 1 }),
      ]) {
        const r = await refusedWithoutWrites(409, lift);
        expect(r.body).toMatchObject({ code: 2009, codeName: 'REVOKED' });
      }
      const unrevoked = await send('POST', `/v1/rotation/credentials/${id}/unrevoke`, { body: JSON.stringify({ reason: 'false alarm' }), contentType: 'application/json', apiKey: revoker.key });
      expect(unrevoked.status).toBe(200);
      expect((await send('GET', `/v1/credentials/${id}/value`)).body.value).toBe(value);
      expect((await json('POST', `/v1/credentials/${id}/rollback`, { version: 1 })).status).toBe(200);
      expect((await send('GET', `/v1/credentials/${id}/value`)).body.value).toBe(first);
    });

    it('an expired credential: 409 EXPIRED once its expiry passed (cache hit included), served with allowExpired=true', async () => {
      const value = secret();
      const { id } = await store({ value, expiresAt: new Date(Date.now() + 1500).toISOString() });
      expect((await send('GET', `/v1/credentials/${id}/value`)).body.value).toBe(value);
      await new Promise((r) => setTimeout(r, 1600));
      for (const path of [`/v1/credentials/${id}/value`, `/v1/credentials/${id}/versions/1/value`]) {
        const r = await send('GET', path);
        expect(r.status).toBe(409);
        expect(r.body).toMatchObject({ code: 2010, codeName: 'EXPIRED' });
        expect(r.text).not.toContain(value);
        expect((await send('GET', `${path}?allowExpired=true`)).body.value).toBe(value);
      }
      const status = await json('PATCH', `/v1/credentials/${id}`, { status: 'expired' });
      expect(status.status).toBe(200);
      expect((await send('GET', `/v1/credentials/${id}/value`)).status).toBe(409);
    });

    it('refused reads are audited as denied', async () => {
      const { id, rowVersion } = await store();
      await json('PATCH', `/v1/credentials/${id}`, { status: 'revoked', expectedVersion: rowVersion });
      await send('GET', `/v1/credentials/${id}/value`);
      const audit = host.app.get(AuditService);
      await audit.flush();
      const rows = await audit.query({ tenantId: 'acme', resource: id, action: ['read'] });
      expect(rows.items.map((r) => [r.result, r.errorCode])).toContainEqual(['denied', '2009:REVOKED']);
    });
  });

  it('5. a value with a lone surrogate is refused (400), never stored to come back changed', async () => {
    const r = await refusedWithoutWrites(400, () => json('POST', '/v1/credentials', { integrationId: 'x', connectionId: 'y', type: 'custom_secret', value: 'abc\ud800def' }));
    expect(r.body.message).toEqual(expect.stringContaining('well-formed Unicode'));
    const { id } = await store();
    await refusedWithoutWrites(400, () => json('POST', `/v1/credentials/${id}/rotate`, { value: 'x\udc00y' }));
    await refusedWithoutWrites(400, () => json('PATCH', `/v1/credentials/${id}`, { tags: { env: 'p\ud800' } }));
  });

  it('5b. a tag value holding NUL or another control character is 400 naming the tag by position (PostgreSQL cannot store NUL), writing nothing', async () => {
    const { id } = await store({ tags: { env: 'prod' } });
    for (const bad of ['p\u0000', 'two\nlines', 'del\u007f']) {
      const stored = await refusedWithoutWrites(400, () => json('POST', '/v1/credentials', { integrationId: 'x', connectionId: 'y', type: 'api_key', value: secret(), tags: { env: 'prod', note: bad } }));
      const patched = await refusedWithoutWrites(400, () => json('PATCH', `/v1/credentials/${id}`, { tags: { note: bad } }));
      for (const r of [stored, patched]) expect({ bad, code: r.body.codeName, message: r.body.message }).toEqual({ bad, code: 'VALIDATION', message: expect.stringContaining('tag #') });
    }
  });

  describe('6. only what the OpenAPI document says is accepted', () => {
    it.each([true, 123, -1, '2030-01-01T00:00:00Z\u0000', '2030-02-30T00:00:00Z', '2030-01-01', 'tomorrow', ''])('expiresAt %p on store → 400', async (expiresAt) => {
      await refusedWithoutWrites(400, () => json('POST', '/v1/credentials', { integrationId: 'x', connectionId: 'y', type: 'api_key', value: 'value-123456', expiresAt }));
    });

    it('expectedVersion must be a JSON integer', async () => {
      const { id } = await store();
      for (const expectedVersion of [true, '1', 1.5, 0, -1, '0x1']) {
        await refusedWithoutWrites(400, () => json('POST', `/v1/credentials/${id}/rotate`, { value: secret(), expectedVersion }));
        await refusedWithoutWrites(400, () => json('PATCH', `/v1/credentials/${id}`, { tags: {}, expectedVersion }));
      }
      for (const q of ['0x1', '1e0', '', ' 1', '+1', '1.0']) {
        await refusedWithoutWrites(400, () => send('DELETE', `/v1/credentials/${id}?expectedVersion=${encodeURIComponent(q)}`));
      }
    });

    it('a JSON integer past 2^53 − 1 is 400 naming its range, never rounded to another number (…993 was taken as …992)', async () => {
      const { id } = await store();
      const rotator = { apiKey: rotationAdmin.key, contentType: 'application/json' };
      for (const big of ['9007199254740993', '1e23']) {
        for (const [method, path, body, init] of [
          ['POST', `/v1/credentials/${id}/rotate`, `{"value":"${secret()}","expectedVersion":${big}}`, {}],
          ['PATCH', `/v1/credentials/${id}`, `{"tags":{},"expectedVersion":${big}}`, {}],
          ['POST', `/v1/credentials/${id}/rollback`, `{"version":${big}}`, {}],
          ['POST', `/v1/rotation/credentials/${id}/rotate`, `{"value":"${secret()}","expectedVersion":${big}}`, rotator],
          ['POST', `/v1/rotation/credentials/${id}/rollback`, `{"version":${big}}`, rotator],
          ['PUT', '/v1/rotation/policies', `{"level":"tenant","rotateAfterDays":5,"expectedVersion":${big}}`, rotator],
          ['PUT', '/v1/rotation/notifications/settings', `{"emailRecipients":[],"expectedRowVersion":${big}}`, rotator],
        ] as const) {
          const r = await refusedWithoutWrites(400, () => send(method, path, { body, contentType: 'application/json', ...init }));
          expect(r.body.message).toEqual([expect.stringMatching(/^(expectedVersion|version|expectedRowVersion) must be an integer from [01] to 9007199254740991 \(a JSON number\)$/)]);
        }
      }
      // The largest exact one is still a version like any other: the compare-and-set answers, it does not refuse.
      expect((await send('PATCH', `/v1/credentials/${id}`, { body: '{"tags":{},"expectedVersion":9007199254740991}', contentType: 'application/json' })).status).toBe(409);
    });

    it('an explicit null in a field the OpenAPI document does not mark nullable is 400 naming the field, writing nothing; where it is nullable, null keeps its meaning', async () => {
      const { id, rowVersion } = await store({ tags: { team: 'core' } });
      const as = (apiKey: string) => ({ apiKey, contentType: 'application/json' });
      const mine = as(key.key);
      const rotator = as(rotationAdmin.key);
      const cases: Array<[string, string, Record<string, unknown>, { apiKey: string; contentType: string }, string]> = [
        ['POST', '/v1/credentials', { integrationId: 'github', connectionId: 'c-null', type: 'api_key', value: secret(), tags: null }, mine, 'tags'],
        ['POST', '/v1/credentials', { integrationId: 'github', connectionId: 'c-null', type: 'api_key', value: secret(), expiresAt: null }, mine, 'expiresAt'],
        ['POST', '/v1/credentials', { integrationId: 'github', connectionId: 'c-null', type: 'api_key', value: secret(), valueStore: null }, mine, 'valueStore'],
        ['POST', '/v1/credentials', { integrationId: 'github', connectionId: 'c-null', type: 'api_key', value: null }, mine, 'value'],
        ['PATCH', `/v1/credentials/${id}`, { tags: null }, mine, 'tags'],
        ['PATCH', `/v1/credentials/${id}`, { status: null }, mine, 'status'],
        // A null compare-and-set taken as absent wrote unconditionally.
        ['PATCH', `/v1/credentials/${id}`, { tags: { team: 'ops' }, expectedVersion: null }, mine, 'expectedVersion'],
        ['POST', `/v1/credentials/${id}/rotate`, { value: secret(), expectedVersion: null }, mine, 'expectedVersion'],
        ['POST', `/v1/rotation/credentials/${id}/rotate`, { value: null }, rotator, 'value'],
        ['POST', `/v1/rotation/credentials/${id}/rotate`, { value: secret(), reason: null }, rotator, 'reason'],
        ['POST', `/v1/rotation/credentials/${id}/rollback`, { version: 1, reason: null }, rotator, 'reason'],
        ['PUT', '/v1/rotation/policies', { level: 'tenant', rotateAfterDays: 30, expectedVersion: null }, rotator, 'expectedVersion'],
        ['PUT', '/v1/rotation/policies', { level: 'tenant', target: null, rotateAfterDays: 30 }, rotator, 'target'],
        ['POST', '/v1/rotation/revoke', { credentialId: id, tenant: null, reason: 'leak' }, as(revoker.key), 'tenant'],
        ['POST', '/v1/rotation/revoke', { credentialId: id, reason: 'leak', severity: null }, as(revoker.key), 'severity'],
        ['PUT', '/v1/rotation/notifications/settings', { emailRecipients: null }, rotator, 'emailRecipients'],
        ['PUT', '/v1/rotation/notifications/settings', { emailRecipients: [], generateWebhookSecret: null }, rotator, 'generateWebhookSecret'],
        ['POST', '/v1/keys', { name: `k-null-${kind}`, type: 'EC', tags: null }, as(keyAdmin.key), 'tags'],
        ['POST', '/v1/oauth/connections/prov/c1/token-rejected', { accessToken: null }, mine, 'accessToken'],
      ];
      for (const [method, path, body, init, field] of cases) {
        const r = await refusedWithoutWrites(400, () => send(method, path, { body: JSON.stringify(body), ...init }));
        expect({ method, path, field, message: r.body.message }).toEqual({ method, path, field, message: expect.arrayContaining([expect.stringMatching(new RegExp(`^${field} must not be null`))]) });
      }
      // Documented nulls: an expiry cleared, a policy field inherited, the webhook removed.
      const cleared = await json('PATCH', `/v1/credentials/${id}`, { expiresAt: null, expectedVersion: rowVersion });
      expect({ status: cleared.status, expiresAt: cleared.body.expiresAt ?? null }).toEqual({ status: 200, expiresAt: null });
      expect((await send('PUT', '/v1/rotation/policies', { body: JSON.stringify({ level: 'tenant', rotateAfterDays: null, warnBeforeDays: 7, rotation: null }), ...rotator })).status).toBe(200);
      expect((await send('PUT', '/v1/rotation/notifications/settings', { body: JSON.stringify({ webhookUrl: null }), ...rotator })).status).toBe(200);
    });

    it('a null inside a list or a tag map is 400 naming the field and the position, writing nothing (their items are never nullable)', async () => {
      const { id } = await store({ tags: { team: 'core' } });
      const as = (apiKey: string) => ({ apiKey, contentType: 'application/json' });
      const cases: Array<[string, string, Record<string, unknown>, { apiKey: string; contentType: string }, string]> = [
        ['POST', '/v1/credentials', { integrationId: 'github', connectionId: 'c-null', type: 'api_key', value: secret(), tags: { team: 'core', env: null } }, as(key.key), 'tags #2'],
        ['PATCH', `/v1/credentials/${id}`, { tags: { team: null } }, as(key.key), 'tags #1'],
        ['POST', '/v1/credentials/delete-batch', { ids: [id, null] }, as(key.key), 'ids #2'],
        // 'an e-mail address is at most 254 characters' before, for a null.
        ['PUT', '/v1/rotation/notifications/settings', { emailRecipients: ['ops@example.com', null] }, as(rotationAdmin.key), 'emailRecipients #2'],
        ['POST', '/v1/keys', { name: `k-null-${kind}`, type: 'EC', keyOps: ['sign', null] }, as(keyAdmin.key), 'keyOps #2'],
        ['PATCH', '/v1/keys/nokey', { tags: { t: null } }, as(keyAdmin.key), 'tags #1'],
      ];
      for (const [method, path, body, init, field] of cases) {
        const r = await refusedWithoutWrites(400, () => send(method, path, { body: JSON.stringify(body), ...init }));
        expect({ method, path, message: r.body.message }).toEqual({ method, path, message: [`${field} must not be null`] });
      }
    });

    it.each([
      '/v1/credentials?limit=0x10',
      '/v1/credentials?limit=',
      '/v1/credentials?limit=1e1',
      '/v1/credentials?limit=10&limit=20',
      '/v1/credentials?expiringBefore=2030-01-01T00:00:00Z%00',
      '/v1/credentials?expiringBefore=1',
      '/v1/credentials/expiring?days=0x1f',
      '/v1/credentials/expiring?days=',
      '/v1/credentials/expiring?days=-1',
      '/v1/oauth/connections/prov/c1/access-token?minValidityMs=',
      '/v1/oauth/connections/prov/c1/access-token?minValidityMs=0x10',
      `/v1/credentials/${randomUUID()}/versions/0x1/value`,
      `/v1/credentials/${randomUUID()}/versions/1e0/value`,
      `/v1/credentials/${randomUUID()}/versions/0/value`,
      `/v1/credentials/${randomUUID()}/value?allowExpired=1`,
      '/v1/credentials?status=deleted', // deleted credentials are never listed: the filter could match nothing
    ])('GET %s → 400', async (path) => {
      await refusedWithoutWrites(400, () => send('GET', path));
    });

    it('a query parameter or a body the route does not declare is 400, never ignored (a PATCH ?expectedVersion= wrote without its compare-and-set)', async () => {
      const { id, rowVersion } = await store();
      await json('PATCH', `/v1/credentials/${id}`, { tags: { a: '1' }, expectedVersion: rowVersion });
      // A stale version given where this route does not read it: refused, not a silent unconditional write.
      const stale = await refusedWithoutWrites(400, () => json('PATCH', `/v1/credentials/${id}?expectedVersion=${rowVersion}`, { tags: { a: '2' } }));
      expect(stale.body.message).toBe('this route takes no query parameters');
      await refusedWithoutWrites(400, () => send('GET', `/v1/credentials/${id}?bogus=1`));
      // DELETE reads expectedVersion from the query: in a body it was ignored, and the delete unconditional.
      const body = await refusedWithoutWrites(400, () => json('DELETE', `/v1/credentials/${id}`, { expectedVersion: rowVersion }));
      expect(body.body.message).toBe('this route takes no request body');
      const named = await refusedWithoutWrites(400, () => send('GET', `/v1/oauth/connections/prov/c1/access-token?minValidityMs=1&secretName=x`));
      expect(named.body.message).not.toContain('secretName');
      // Declared ones still work.
      expect((await send('DELETE', `/v1/credentials/${id}?expectedVersion=${rowVersion + 1}`)).status).toBe(204);
    });

    it('HEAD is not an implicit twin of GET: on a value route it reads nothing and audits nothing (405, Allow: GET)', async () => {
      const { id } = await store();
      const audit = host.app.get(AuditService);
      await audit.flush();
      const reads = async () => (await audit.query({ tenantId: 'acme', resource: id, action: ['read'], limit: 100 })).items.length;
      const before = await reads();
      for (const path of [`/v1/credentials/${id}/value`, `/v1/credentials/${id}/versions/1/value`, '/v1/oauth/connections/prov/c1/access-token']) {
        expect((await send('HEAD', path)).status).toBe(405);
      }
      await audit.flush();
      expect(await reads()).toBe(before);
    });

    it('the audit query takes RFC 3339 dates and decimal limits only', async () => {
      for (const q of ['from=2030-01-01T00:00:00Z%00', 'to=true', 'from=2030-13-01T00:00:00Z', 'limit=0x10', 'limit=']) {
        await refusedWithoutWrites(400, () => send('GET', `/v1/audit?${q}`, { apiKey: auditor.key }));
      }
      expect((await send('GET', '/v1/audit?from=2020-01-01T00:00:00Z&limit=5', { apiKey: auditor.key })).status).toBe(200);
    });
  });

  it('7. token-rejected with a null (or non-object) body is 400 and refreshes nothing', async () => {
    for (const body of ['null', '[]', '"AT-1"', '42']) {
      const r = await refusedWithoutWrites(400, () => send('POST', '/v1/oauth/connections/prov/c1/token-rejected', { body, contentType: 'application/json' }));
      expect(r.body.message).toBe('request body must be a JSON object');
    }
  });

  it('8. an unauthenticated request is 401 whatever its body', async () => {
    for (const [body, contentType] of [
      ['{not json', 'application/json'],
      ['['.repeat(10_000), 'application/json'],
      ['value=x', 'application/x-www-form-urlencoded'],
      [Buffer.from([0xff, 0xfe]), 'application/json'],
    ] as const) {
      const r = await refusedWithoutWrites(401, () => send('POST', '/v1/credentials', { body, contentType, apiKey: null }));
      expect(r.body.error).toBe('UNAUTHORIZED');
      expect((await send('POST', '/v1/credentials', { body, contentType, apiKey: 'cvk_nobody_invalid' })).status).toBe(401);
    }
    // A 401 names the ways to authenticate (RFC 9110 §11.6.1).
    const res = await fetch(`${base}/v1/credentials`);
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toBe('Bearer realm="credential-vault", ApiKey realm="credential-vault", header="X-API-Key"');
  });

  it('11. a request the HTTP parser refuses (headers over 16 KB) answers 431 in the error shape, with a request id', async () => {
    const res = await fetch(`${base}/v1/credentials`, { headers: { 'x-api-key': key.key, 'x-padding': 'a'.repeat(20_000) } });
    expect(res.status).toBe(431);
    const body = (await res.json()) as Record<string, unknown>;
    expect(body).toEqual({ statusCode: 431, error: 'REQUEST_HEADER_FIELDS_TOO_LARGE', message: expect.stringContaining('larger than the server accepts'), requestId: expect.any(String) });
    expect(res.headers.get('x-request-id')).toBe(body.requestId);
  });

  it('12. every answer says nosniff: a value, an error, an unknown route, an unroutable URL, a request the parser refuses', async () => {
    const { id } = await store();
    const answers = [
      await fetch(`${base}/v1/credentials/${id}/value`, { headers: { 'x-api-key': key.key } }),
      await fetch(`${base}/v1/credentials`),
      await fetch(`${base}/nope`),
      await fetch(`${base}/v1/credentials/%E0%A4%A`, { headers: { 'x-api-key': key.key } }),
      await fetch(`${base}/v1/credentials`, { headers: { 'x-api-key': key.key, 'x-padding': 'a'.repeat(20_000) } }),
    ];
    expect(answers.map((r) => r.status)).toEqual([200, 401, 404, 400, 431]);
    for (const r of answers) expect(r.headers.get('x-content-type-options')).toBe('nosniff');
  });

  it('19. the OpenAPI UI (the one HTML page) cannot be framed by another site: a click there is the reader\'s own', async () => {
    for (const path of ['/docs', '/docs/']) {
      const res = await fetch(`${base}${path}`);
      expect({ path, status: res.status, type: res.headers.get('content-type') }).toEqual({ path, status: 200, type: expect.stringContaining('text/html') });
      expect(res.headers.get('x-frame-options')).toBe('DENY');
      expect(res.headers.get('content-security-policy')).toBe("frame-ancestors 'none'");
    }
  });

  it('20. a GET with a body is 400, like any body a route does not declare: it was never read (a filter sent there listed every credential)', async () => {
    const { id } = await store({ integrationId: 'get-body' });
    /** node:http, not fetch: fetch refuses to send a GET with a body. Framed by Content-Length unless chunked is asked for. */
    const get = (path: string, body: string, headers: Record<string, string> = {}) =>
      new Promise<Answer>((resolve, reject) => {
        const framing = headers['transfer-encoding'] ? {} : { 'content-length': String(Buffer.byteLength(body)) };
        const req = request(`${base}${path}`, { method: 'GET', headers: { 'x-api-key': key.key, 'content-type': 'application/json', ...framing, ...headers } }, (res) => {
          let text = '';
          res.setEncoding('utf8').on('data', (c: string) => (text += c)).on('end', () => resolve({ status: res.statusCode ?? 0, text, body: JSON.parse(text) as Answer['body'] }));
        });
        req.on('error', reject);
        req.end(body);
      });
    for (const [path, body, headers] of [
      ['/v1/credentials', JSON.stringify({ integrationId: 'none-such' }), {}],
      [`/v1/credentials/${id}/value`, JSON.stringify({ allowExpired: true }), {}],
      ['/v1/credentials', '{"integrationId":"none-such"}', { 'transfer-encoding': 'chunked' }],
    ] as const) {
      const r = await refusedWithoutWrites(400, () => get(path, body, headers));
      expect(r.body.message).toBe('this route takes no request body');
    }
    // Without a body it is served as before.
    expect((await get('/v1/credentials?integrationId=get-body', '')).status).toBe(200);
  });

  it('21. a key restore takes the 1 MiB backup its schema allows (a 10-version RSA-4096 key backs up to 76 KB): a forged one is 400, not 413 at 256 KiB', async () => {
    const restore = (bytes: number) =>
      send('POST', '/v1/keys/restore', { body: JSON.stringify({ backup: randomBytes(bytes).toString('base64url') }), contentType: 'application/json', apiKey: keyAdmin.key });
    for (const bytes of [300 * 1024, 1024 * 1024]) {
      const r = await refusedWithoutWrites(400, () => restore(bytes));
      expect(r.body.codeName).toBe('INVALID_KEY_BACKUP');
    }
    // Past what the schema allows the body is still bounded.
    expect((await restore(2 * 1024 * 1024)).status).toBe(413);
  });

  it('10. a credential id in upper case names the same credential (UUIDs are case-insensitive): read, revoke, delete', async () => {
    const { id } = await store();
    const upper = id.toUpperCase();
    expect((await send('GET', `/v1/credentials/${upper}`)).body.id).toBe(id);
    const revoked = await send('POST', '/v1/rotation/revoke', { body: JSON.stringify({ credentialId: upper, reason: 'leaked in a ticket' }), contentType: 'application/json', apiKey: revoker.key });
    expect(revoked.status).toBe(200);
    expect((await send('GET', `/v1/credentials/${id}`)).body.status).toBe('revoked');
    expect((await json('POST', '/v1/credentials/delete-batch', { ids: [upper] })).body).toEqual({ deleted: [id], notFound: [] });
  });

  it('13. a tag named like a member of every object (toString, valueOf, …) is stored, not silently dropped; constructor and prototype are 400', async () => {
    // class-transformer skipped keys an object inherits a method for, and Nest's ValidationPipe deletes
    // `constructor` and `prototype` keys at any depth: a 201/200 answered without those tags.
    const tags = { toString: 't', valueOf: 'v', hasOwnProperty: 'h', __defineGetter__: 'g', isPrototypeOf: 'i', plain: 'p' };
    const created = await json('POST', '/v1/credentials', { integrationId: 'github', connectionId: `c-${randomBytes(4).toString('hex')}`, type: 'api_key', value: secret(), tags });
    expect(created.status).toBe(201);
    expect(created.body.tags).toEqual(tags);
    const id = created.body.id as string;
    expect((await send('GET', `/v1/credentials/${id}`)).body.tags).toEqual(tags);
    const replaced = { toLocaleString: 'l', propertyIsEnumerable: 'e' };
    expect((await json('PATCH', `/v1/credentials/${id}`, { tags: replaced })).body.tags).toEqual(replaced);
    expect((await send('GET', `/v1/credentials/${id}`)).body.tags).toEqual(replaced);

    const name = `tags-${randomBytes(3).toString('hex')}`;
    const keyJson = (method: string, path: string, body: unknown) => send(method, path, { body: JSON.stringify(body), contentType: 'application/json', apiKey: keyAdmin.key });
    const keyCreated = await keyJson('POST', '/v1/keys', { name, type: 'EC', curve: 'P-256', tags });
    expect(keyCreated.status).toBe(201);
    expect(keyCreated.body.tags).toEqual(tags);
    expect((await send('GET', `/v1/keys/${name}`, { apiKey: keyAdmin.key })).body.tags).toEqual(tags);
    expect((await keyJson('PATCH', `/v1/keys/${name}`, { tags: replaced })).body.tags).toEqual(replaced);

    for (const forbidden of ['constructor', 'prototype']) {
      const r = await refusedWithoutWrites(400, () => json('PATCH', `/v1/credentials/${id}`, { tags: { [forbidden]: 'x', plain: 'p' } }));
      expect(r.body.message).toMatch(/forbidden key/);
      await refusedWithoutWrites(400, () => json('POST', '/v1/credentials', { integrationId: 'github', connectionId: 'c-forbidden', type: 'api_key', value: secret(), tags: { [forbidden]: 'x' } }));
      expect((await keyJson('PATCH', `/v1/keys/${name}`, { tags: { [forbidden]: 'x' } })).status).toBe(400);
    }
    expect((await send('GET', `/v1/credentials/${id}`)).body.tags).toEqual(replaced);
    expect((await send('GET', `/v1/keys/${name}`, { apiKey: keyAdmin.key })).body.tags).toEqual(replaced);
  });

  it('14. a body that repeats a member name in one object is 400 (which one counts is up to each parser), never the last one silently', async () => {
    const { id, rowVersion } = await store();
    const first = secret();
    const second = secret();
    const create = (members: string) => send('POST', '/v1/credentials', { body: `{"integrationId":"github","connectionId":"dup","type":"api_key",${members}}`, contentType: 'application/json' });
    for (const members of [`"value":"${first}","value":"${second}"`, `"value":"${first}","v\\u0061lue":"${second}"`, `"value":"${first}","tags":{"a":"1","b":"2","a":"3"}`]) {
      const r = await refusedWithoutWrites(400, () => create(members));
      expect(r.body.message).toBe('request body repeats a member name within one object');
      expect(r.text).not.toContain(first);
      expect(r.text).not.toContain(second);
    }
    // A compare-and-set that a proxy reads as one version and the host as another.
    const patch = `{"tags":{"k":"v"},"expectedVersion":${rowVersion},"expectedVersion":${rowVersion + 5}}`;
    await refusedWithoutWrites(400, () => send('PATCH', `/v1/credentials/${id}`, { body: patch, contentType: 'application/json' }));
    // The same name in different objects, or as a value, is no repeat.
    const ok = await create(`"value":"value","tags":{"value":"integrationId","type":"x"}`);
    expect(ok.status).toBe(201);
  });

  it('15. a list route refuses a query parameter it does not declare, named as a query parameter — constructor, prototype and __proto__ too (they were ignored)', async () => {
    for (const q of ['bogus=1', 'constructor=1', 'prototype=1', '__proto__=1', 'limit=5&constructor=1']) {
      const r = await refusedWithoutWrites(400, () => send('GET', `/v1/credentials?${q}`));
      expect(r.body.message).toEqual(['the query has a parameter that is not accepted']);
    }
    const typo = await refusedWithoutWrites(400, () => send('GET', '/v1/credentials/expiring?dayz=1'));
    expect(typo.body.message).toEqual(['the query has a parameter that is not accepted (did you mean days?)']);
    expect((await send('GET', '/v1/credentials?limit=5')).status).toBe(200);
  });

  it('16. a refused request is audited with its route pattern, never its path: a token pasted into the path stays out of the audit log', async () => {
    const pasted = `ghp_${randomBytes(16).toString('hex')}`;
    const audit = host.app.get(AuditService);
    const rowsOf = async (tenantId: string, requestId: unknown) => {
      await audit.flush();
      return (await audit.query({ tenantId, correlationId: String(requestId), limit: 10 })).items;
    };
    // Unauthenticated (401) and authenticated without the scope (403): both refused before the id is validated.
    const anonymous = await send('GET', `/v1/credentials/${pasted}/value`, { apiKey: 'cvk_nobody_invalid' });
    expect(anonymous.status).toBe(401);
    const denied = await send('GET', `/v1/credentials/${pasted}/versions/1/value`, { apiKey: auditor.key });
    expect(denied.status).toBe(403);
    const rows = [...(await rowsOf(UNAUTHENTICATED_TENANT, anonymous.body.requestId)), ...(await rowsOf('acme', denied.body.requestId))];
    // (Earlier refusals in this file may add a suspicious_activity row to the same request.)
    const refusals = rows.filter((r) => r.action === 'auth_failure' || r.action === 'access_denied');
    expect(refusals.map((r) => [r.action, r.resource])).toEqual([
      ['auth_failure', 'GET /v1/credentials/:id/value'],
      ['access_denied', 'GET /v1/credentials/:id/versions/:version/value'],
    ]);
    expect(JSON.stringify(rows)).not.toContain(pasted);
  });

  it('17. a list cursor the server did not write is 400 with the invalid-cursor error, never another page', async () => {
    const b64u = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v), 'utf8').toString('base64url');
    const unb64u = (c: string): unknown => JSON.parse(Buffer.from(c, 'base64url').toString('utf8'));
    const beyondDates = 8_640_000_000_000_001; // one ms past the last instant a JavaScript Date holds
    /** Each forged cursor's answer: status, error code and whether the message speaks of the cursor. Writes nothing. */
    const answers = async (path: string, apiKey: string, forged: Record<string, string>) => {
      const out: Record<string, unknown> = {};
      for (const [name, cursor] of Object.entries(forged)) {
        const before = await stateSnapshot(host.app);
        const r = await send('GET', `${path}${path.includes('?') ? '&' : '?'}cursor=${encodeURIComponent(cursor)}`, { apiKey });
        out[name] = [r.status, r.body.code, /cursor/i.test(JSON.stringify(r.body.message))];
        expect(await stateSnapshot(host.app)).toEqual(before);
      }
      return out;
    };
    const refusedAll = (forged: Record<string, string>, code: number) => Object.fromEntries(Object.keys(forged).map((name) => [name, [400, code, true]]));

    // Credentials: [createdAt, id].
    const integrationId = `cursor-${randomBytes(3).toString('hex')}`;
    for (let i = 0; i < 3; i++) await store({ integrationId });
    const list = `/v1/credentials?integrationId=${integrationId}&limit=1`;
    const first = await send('GET', list);
    const next = first.body.nextCursor as string;
    const [createdAt, id] = unb64u(next) as [number, string];
    const second = await send('GET', `${list}&cursor=${encodeURIComponent(next)}`);
    expect(second.status).toBe(200);
    expect((second.body.items as Array<{ id: string }>)[0].id).not.toBe(id);
    const badCode = (await send('GET', `${list}&cursor=bm90LWEtY3Vyc29y`)).body.code as number;
    const credentialCursors = {
      'a trailing element': b64u([createdAt, id, 'extra']),
      'an upper-case id': b64u([createdAt, id.toUpperCase()]),
      'a date past Date': b64u([beyondDates, id]),
      'spaced JSON': b64u(`[ ${createdAt}, "${id}" ]`),
      'a trailing =': `${next}=`,
      'a character outside base64url': `${next}!`,
    };
    const credentials = await answers(list, key.key, credentialCursors);

    // The audit trail: by sequence (a tenant's chain), and by (occurredAt, id) over a time range.
    const audit = '/v1/audit?limit=1';
    const byTime = '/v1/audit?limit=1&from=2000-01-01T00:00:00Z';
    const seqCursor = (await send('GET', audit, { apiKey: auditor.key })).body.nextCursor as string;
    const timeCursor = (await send('GET', byTime, { apiKey: auditor.key })).body.nextCursor as string;
    const [, , sequence] = unb64u(seqCursor) as [string, string, number];
    const [, , occurredAt, rowId] = unb64u(timeCursor) as [string, string, number, string];
    const seqCursors = { 'sequence 0': b64u(['d', 's', 0]), 'a negative sequence': b64u(['d', 's', -sequence]), 'sequence as 5.0': b64u(`["d","s",${sequence}.0]`), 'a trailing =': `${seqCursor}=` };
    const bySequence = await answers(audit, auditor.key, seqCursors);
    const timeCursors = {
      'an upper-case id': b64u(['d', 't', occurredAt, rowId.toUpperCase()]),
      'a date past Date': b64u(['d', 't', beyondDates, rowId]),
      'an id that is no UUID': b64u(['d', 't', occurredAt, 'not-a-row-id']),
    };
    const byInstant = await answers(byTime, auditor.key, timeCursors);

    // Keys: { l: the vault's continuation, s: matches of its page already answered }.
    const keyCursors = { 'an extra member': b64u({ s: 0, x: 1 }), 'spaced JSON': b64u('{ "s": 0 }'), 'a trailing =': `${b64u({ s: 0 })}=` };
    const keys = await answers('/v1/keys', keyAdmin.key, keyCursors);
    expect({ credentials, bySequence, byInstant, keys }).toEqual({
      credentials: refusedAll(credentialCursors, badCode),
      bySequence: refusedAll(seqCursors, 5004),
      byInstant: refusedAll(timeCursors, 5004),
      keys: refusedAll(keyCursors, 10005),
    });
  });

  // An edited cursor that is well formed (another position, another tenant's cursor) is not refused: it only says where
  // to resume. The tenant and the filters come from the caller and the query, never from the cursor.
  it('17b. a well-formed cursor, edited or another tenant\'s, pages only the caller\'s own tenant and filters', async () => {
    const b64u = (v: unknown) => Buffer.from(JSON.stringify(v), 'utf8').toString('base64url');
    type Page = { items: Array<Record<string, unknown>>; nextCursor?: string };
    const page = async (apiKey: string, path: string) => {
      const r = await send('GET', path, { apiKey });
      expect(r.status).toBe(200);
      return r.body as unknown as Page;
    };
    const integrationId = `xt-${randomBytes(3).toString('hex')}`;
    const storeAs = async (apiKey: string, connectionId: string, integration = integrationId) => {
      const r = await send('POST', '/v1/credentials', { apiKey, contentType: 'application/json', body: JSON.stringify({ integrationId: integration, connectionId, type: 'api_key', value: secret() }) });
      expect(r.status).toBe(201);
      return r.body.id as string;
    };
    const mine = [await storeAs(key.key, 'a1'), await storeAs(key.key, 'a2')];
    await storeAs(key.key, 'a3', `${integrationId}-else`);
    for (const c of ['o1', 'o2', 'o3']) await storeAs(otherTenant.key, c);
    const list = `/v1/credentials?integrationId=${integrationId}&limit=5`;
    // The other tenant's cursor, and a cursor edited to the start of time: the caller's own matching rows only.
    const theirCursor = (await page(otherTenant.key, `/v1/credentials?integrationId=${integrationId}&limit=1`)).nextCursor as string;
    expect((await page(key.key, `${list}&cursor=${encodeURIComponent(theirCursor)}`)).items.map((c) => c.id).filter((id) => !mine.includes(id as string))).toEqual([]);
    expect((await page(key.key, `${list}&cursor=${encodeURIComponent(b64u([0, '00000000-0000-0000-0000-000000000000']))}`)).items.map((c) => c.id)).toEqual(mine);
    // The audit trail: another tenant's chain position, or a sequence edited past every row, reads the caller's rows.
    const theirAuditCursor = (await page(otherTenant.key, '/v1/audit?limit=1')).nextCursor as string;
    for (const cursor of [theirAuditCursor, b64u(['d', 's', Number.MAX_SAFE_INTEGER])]) {
      const rows = (await page(auditor.key, `/v1/audit?limit=50&cursor=${encodeURIComponent(cursor)}`)).items;
      expect(rows.length).toBeGreaterThan(0);
      expect(new Set(rows.map((row) => row.tenantId))).toEqual(new Set(['acme']));
    }
  });

  it('18. a query string whose percent-encoding is not UTF-8 (or malformed) is 400 on every route, never a silently different value', async () => {
    const { id } = await store({ integrationId: 'utf8q' });
    const message = 'the request URL is not valid (its query string: malformed percent-encoding, or bytes that are not UTF-8)';
    const answers: Record<string, unknown> = {};
    for (const [path, apiKey] of [
      ['/v1/keys?tag=%FF', keyAdmin.key],
      ['/v1/keys?tag=env=%C3%28', keyAdmin.key],
      ['/v1/credentials?integrationId=utf8q%FF', key.key],
      ['/v1/credentials?%FF=1', key.key],
      ['/v1/audit?resource=%ED%A0%80', auditor.key], // an encoded lone surrogate
      ['/v1/credentials/expiring?days=1%', key.key],
      [`/v1/credentials/${id}?x=%E2%82`, key.key],
      ['/v1/credentials?integrationId=%FF', 'cvk_nobody_invalid'], // refused before authentication
      ['/nope?q=%FF', key.key],
    ] as const) {
      const before = await stateSnapshot(host.app);
      const r = await send('GET', path, { apiKey });
      answers[path] = { status: r.status, message: r.body.message, requestId: typeof r.body.requestId };
      expect(await stateSnapshot(host.app)).toEqual(before);
    }
    expect(answers).toEqual(Object.fromEntries(Object.keys(answers).map((path) => [path, { status: 400, message, requestId: 'string' }])));
    // Well-formed UTF-8, percent-encoded, is read as such.
    const decoded = await send('GET', '/v1/credentials?integrationId=%75tf8q');
    expect((decoded.body.items as Array<{ id: string }>).map((c) => c.id)).toEqual([id]);
    expect((await send('GET', '/v1/keys?tag=env%3D%C3%A9t%C3%A9', { apiKey: keyAdmin.key })).status).toBe(200);
  });

  it('18b. a single-valued query parameter given twice is 400 saying so, once; a list parameter may repeat', async () => {
    const repeated = { 'audit?resource=a&resource=b': 'resource', 'audit?limit=1&limit=2': 'limit', 'credentials?status=active&status=disabled': 'status', 'keys?limit=1&limit=2': 'limit' };
    const callerOf = (path: string) => (path.startsWith('audit') ? auditor.key : path.startsWith('keys') ? keyAdmin.key : key.key);
    const answers = await Promise.all(
      Object.keys(repeated).map(async (path) => {
        const r = await send('GET', `/v1/${path}`, { apiKey: callerOf(path) });
        return [path, [r.status, r.body.message]];
      }),
    );
    expect(Object.fromEntries(answers)).toEqual(Object.fromEntries(Object.entries(repeated).map(([path, name]) => [path, [400, [`${name} may be given once`]]])));
    expect((await send('GET', '/v1/audit?action=read&action=rotate', { apiKey: auditor.key })).status).toBe(200);
    expect((await send('GET', '/v1/keys?tag=env=a&tag=team=b', { apiKey: keyAdmin.key })).status).toBe(200);
  });

  it('9. a batch delete with one malformed id is 400 and deletes nothing; unknown well-formed ids are reported', async () => {
    const { id } = await store();
    const r = await refusedWithoutWrites(400, () => json('POST', '/v1/credentials/delete-batch', { ids: [id, 'not-a-uuid'] }));
    expect(r.text).not.toContain('not-a-uuid');
    expect((await send('GET', `/v1/credentials/${id}`)).status).toBe(200);
    const unknown = randomUUID();
    const ok = await json('POST', '/v1/credentials/delete-batch', { ids: [id, unknown] });
    expect(ok.body).toEqual({ deleted: [id], notFound: [unknown] });
  });
});
