import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { AuditAction, AuditResult, AuditService } from '@app/audit';
import { CredentialsService, CredentialType } from '@app/credentials';
import { OAuthProviderRegistry } from '@app/oauth-refresh';
import { TestOAuthServer } from '@app/testing';
import { generateApiKey } from '../apps/api/src/auth/api-keys';
import { ConfigValidationError, loadAppConfig } from '../apps/api/src/config/app.config';
import { startTestHost, TestHost } from './support/host';

const key = generateApiKey('acme-app', 'acme', ['credentials:read', 'credentials:read-value', 'credentials:write']);

/** One request with the app's API key; the body parsed, and the Retry-After header. */
async function apiCall(base: string, method: string, path: string, body?: unknown) {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { 'x-api-key': key.key, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, retryAfter: res.headers.get('retry-after'), body: text ? JSON.parse(text) : undefined, text };
}

/**
 * OAuth connections through the host's HTTP API against a real OAuth server (oidc-provider): the
 * code grant's tokens stored, access tokens handed out, a 401 report forcing exactly one refresh.
 */
describe('OAuth connections over HTTP (PostgreSQL, local vault, oidc-provider)', () => {
  let host: TestHost;
  let base: string;
  let idp: TestOAuthServer;
  let secretId: string;
  const call = (method: string, path: string, body?: unknown) => apiCall(base, method, path, body);
  /** The provider of `integrationId` on the test server, its client secret a credential of the system tenant holding `secret`: that credential's id. */
  const registerProvider = async (integrationId: string, secret: string): Promise<string> => {
    const stored = await host.app
      .get(CredentialsService)
      .store({ tenantId: 'system', actor: { id: 'system:setup' } }, { integrationId, connectionId: 'client-secret', type: CredentialType.CUSTOM_SECRET, value: secret });
    // allowInsecureRequests: the test server speaks http on loopback.
    host.app.get(OAuthProviderRegistry).register({ integrationId, issuer: idp.issuer, clientId: idp.clientId, clientSecret: { credentialId: stored.id, tenantId: 'system' }, allowInsecureRequests: true });
    return stored.id;
  };

  beforeAll(async () => {
    idp = await TestOAuthServer.start();
    host = await startTestHost('postgres', { AUTH_API_KEYS: JSON.stringify([key.entry]), OAUTH_PROACTIVE_ENABLED: 'false' });
    base = host.baseUrl;
    // The OAuth client secret is itself a credential (of a system tenant), referenced by the provider.
    secretId = await registerProvider('idp', idp.clientSecret);
  });

  afterAll(async () => {
    await host?.close();
    await idp?.close();
  });

  it('stores the code grant tokens, serves the access token without calling the provider, and refreshes once on a 401 report', async () => {
    const tokens = await idp.authorize('openid');
    expect(tokens.refresh_token).toBeDefined();
    const stored = await call('POST', '/v1/oauth/connections/idp/user-42/tokens', tokens);
    expect(stored.status).toBe(201);
    expect(stored.text).not.toContain(tokens.access_token);
    expect(stored.text).not.toContain(tokens.refresh_token!);
    expect(stored.body.accessTokenCredentialId).toEqual(expect.any(String));

    idp.resetCounters();
    const first = await call('GET', '/v1/oauth/connections/idp/user-42/access-token');
    expect(first.status).toBe(200);
    expect(first.body.accessToken).toBe(tokens.access_token);
    expect(idp.refreshCalls).toBe(0);

    // The provider API said 401 to that token: 20 callers report it at once → one refresh.
    const reports = await Promise.all(
      Array.from({ length: 20 }, () => call('POST', '/v1/oauth/connections/idp/user-42/token-rejected', { accessToken: tokens.access_token })),
    );
    expect(reports.every((r) => r.status === 200)).toBe(true);
    const fresh = reports[0].body.accessToken as string;
    expect(fresh).not.toBe(tokens.access_token);
    expect(reports.every((r) => r.body.accessToken === fresh)).toBe(true);
    expect(idp.refreshCalls).toBe(1);
    expect((await call('GET', '/v1/oauth/connections/idp/user-42/access-token')).body.accessToken).toBe(fresh);
    expect(idp.refreshCalls).toBe(1);

    // Both tokens are versioned credentials of the connection; their metadata never shows a token.
    const listed = await call('GET', '/v1/credentials?integrationId=idp&connectionId=user-42');
    expect(listed.body.items.map((i: { type: string }) => i.type).sort()).toEqual(['oauth_access_token', 'oauth_refresh_token']);
    expect(listed.text).not.toContain(fresh);
  });

  it('a minValidityMs beyond the lifetime of the provider\'s tokens asks the provider for none on every read: the refresh-ahead window applies', async () => {
    const tokens = await idp.authorize('openid'); // one-hour access tokens
    expect((await call('POST', '/v1/oauth/connections/idp/user-long/tokens', tokens)).status).toBe(201);
    idp.resetCounters();
    // Two hours asked of one-hour tokens: no refresh could give them, so each read spent a refresh token.
    const reads = [];
    for (let i = 0; i < 3; i++) reads.push(await call('GET', '/v1/oauth/connections/idp/user-long/access-token?minValidityMs=7200000'));
    expect(reads.map((r) => r.status)).toEqual([200, 200, 200]);
    expect(reads.every((r) => r.body.accessToken === tokens.access_token)).toBe(true);
    expect(idp.refreshCalls).toBe(0);
    // Exactly the lifetime cannot be met either; half of it is, by the token stored.
    for (const ms of [3_600_000, 1_800_000]) {
      expect((await call('GET', `/v1/oauth/connections/idp/user-long/access-token?minValidityMs=${ms}`)).body.accessToken).toBe(tokens.access_token);
    }
    expect(idp.refreshCalls).toBe(0);
  });

  it("a token response's null refresh_token / expires_in / refresh_token_expires_in is taken as absent, as the OpenAPI document says (nullable); a null elsewhere is 400, nothing stored", async () => {
    const doc = (await (await fetch(`${base}/docs/json`)).json()) as { components: { schemas: Record<string, { properties: Record<string, { nullable?: boolean }> }> } };
    const nullable = Object.entries(doc.components.schemas.TokenResponseDoc.properties)
      .filter(([, p]) => p.nullable === true)
      .map(([name]) => name);
    expect(nullable.sort()).toEqual(['expires_in', 'refresh_token', 'refresh_token_expires_in']);
    // What the host forwards from a provider that sends null for what it does not give.
    const stored = await call('POST', '/v1/oauth/connections/idp/nulls/tokens', { access_token: 'at-nulls', refresh_token: null, expires_in: null, refresh_token_expires_in: null, token_type: 'Bearer' });
    expect({ status: stored.status, refresh: stored.body.refreshTokenCredentialId }).toEqual({ status: 201, refresh: undefined });
    for (const field of ['access_token', 'scope', 'token_type']) {
      const refused = await call('POST', '/v1/oauth/connections/idp/nulls-refused/tokens', { access_token: 'at-refused', [field]: null });
      expect({ field, status: refused.status, code: refused.body.codeName }).toEqual({ field, status: 400, code: 'OAUTH_REFRESH_VALIDATION' });
    }
    expect((await call('GET', '/v1/oauth/connections/idp/nulls-refused/access-token')).status).toBe(404);
  });

  it('answers an integration without a provider with 404 and a stable code, and bad ids with 400', async () => {
    const r = await call('GET', '/v1/oauth/connections/nobody/c1/access-token');
    expect(r.status).toBe(404);
    expect(r.body.code).toBe(4001);
    // The message says what to do over HTTP: the host's variable, not only the lib's module option.
    expect(r.body.message).toContain('OAUTH_PROVIDERS');
    // A provider but no stored tokens: the message names the route that stores them.
    const none = await call('GET', '/v1/oauth/connections/idp/never-connected/access-token');
    expect({ status: none.status, code: none.body.code }).toEqual({ status: 404, code: 4005 });
    expect(none.body.message).toContain('POST /v1/oauth/connections/{integrationId}/{connectionId}/tokens');
    expect((await call('GET', '/v1/oauth/connections/bad%20id/c1/access-token')).status).toBe(400);
    const noToken = await call('POST', '/v1/oauth/connections/idp/c2/tokens', { token_type: 'Bearer' });
    expect(noToken.status).toBe(400);
    // A connection id reserved for the host's internal credentials: refused, nothing stored.
    const reserved = await call('POST', '/v1/oauth/connections/idp/whsec-pending.x/tokens', await idp.authorize('openid'));
    expect({ status: reserved.status, code: reserved.body.code }).toEqual({ status: 400, code: 2001 });
    expect((await call('GET', '/v1/credentials?connectionId=whsec-pending.x&includeInternal=true')).body.items).toEqual([]);
  });

  it("a revoked client secret: 500 OAUTH_REFRESH_CONFIGURATION naming nothing of the system tenant's, read once, refreshing at once once unrevoked", async () => {
    const system = { tenantId: 'system', actor: { id: 'user:ops' } };
    const credentials = host.app.get(CredentialsService);
    const tokens = await idp.authorize('openid');
    expect((await call('POST', '/v1/oauth/connections/idp/user-77/tokens', tokens)).status).toBe(201);
    await credentials.revoke(system, secretId);
    const since = new Date();
    idp.resetCounters();
    try {
      const answers = [];
      for (let i = 0; i < 3; i++) answers.push(await call('POST', '/v1/oauth/connections/idp/user-77/token-rejected', {}));
      expect(answers.map((a) => [a.status, a.body.code])).toEqual([[500, 4007], [500, 4007], [500, 4007]]);
      for (const a of answers) expect(a.text).not.toMatch(new RegExp(`${secretId}|system`, 'i'));
      expect(idp.refreshCalls).toBe(0);
      // One refused read of the secret, audited in its tenant; the others checked its metadata only.
      const reads = (await host.app.get(AuditService).query({ tenantId: 'system', action: AuditAction.READ, resource: secretId, from: since })).items;
      expect(reads.map((r) => r.result)).toEqual([AuditResult.DENIED]);
    } finally {
      await credentials.unrevoke(system, secretId);
    }
    // Within the reference's cooldown: checked, read, refreshed.
    const fixed = await call('POST', '/v1/oauth/connections/idp/user-77/token-rejected', {});
    expect(fixed.status).toBe(200);
    expect(fixed.body.accessToken).not.toBe(tokens.access_token);
    expect(idp.refreshCalls).toBe(1);
  });

  it("a client secret the provider refuses (invalid_client): 502 OAUTH_CLIENT_REJECTED naming the configuration, not an outage; the provider asked once, the refusal audited, a still-valid token served", async () => {
    const wrongSecret = 'wrong-client-secret-5f1d9c0b7a';
    const wrongId = await registerProvider('idp-wrong', wrongSecret);
    const tokens = await idp.authorize('openid');
    expect((await call('POST', '/v1/oauth/connections/idp-wrong/user-5/tokens', tokens)).status).toBe(201);
    const since = new Date();
    idp.resetCounters();
    const answers = [];
    for (let i = 0; i < 3; i++) answers.push(await call('POST', '/v1/oauth/connections/idp-wrong/user-5/token-rejected', {}));
    expect(answers.map((a) => [a.status, a.body.code, a.body.codeName, a.retryAfter])).toEqual(Array(3).fill([502, 4009, 'OAUTH_CLIENT_REJECTED', null]));
    expect(answers[0].body.message).toMatch(/^The OAuth provider refused this integration's OAuth client \(invalid_client, HTTP 401\): its client id or secret/);
    for (const a of answers) expect(a.text).not.toMatch(new RegExp(`${wrongSecret}|${idp.clientSecret}|${wrongId}`));
    // Not retried in a loop: the provider was asked once; the later answers come from the cooldown, with the same code.
    expect(idp.refreshCalls).toBe(1);
    const audited = (await host.app.get(AuditService).query({ tenantId: 'acme', action: AuditAction.REFRESH, from: since })).items;
    expect(audited.map((r) => [r.result, r.errorCode])).toEqual([[AuditResult.FAILURE, '4009:OAUTH_CLIENT_REJECTED']]);
    // The access token is still good: a read serves it rather than fail the caller for the provider's configuration.
    const read = await call('GET', '/v1/oauth/connections/idp-wrong/user-5/access-token');
    expect({ status: read.status, token: read.body.accessToken }).toEqual({ status: 200, token: tokens.access_token });
    expect(idp.refreshCalls).toBe(1);
  });

  it('refuses OAUTH_PROVIDERS that is not JSON, and a provider holding a plaintext client secret, at start', () => {
    expect(() => loadAppConfig({ ...host.env, OAUTH_PROVIDERS: '{not json' })).toThrow(ConfigValidationError);
    const plaintext = 'plain-client-secret-value';
    let message = '';
    try {
      loadAppConfig({
        ...host.env,
        OAUTH_PROVIDERS: JSON.stringify([{ integrationId: 'x', tokenEndpoint: 'https://idp.example/token', clientId: 'c', clientSecret: plaintext }]),
      });
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigValidationError);
      message = (e as Error).message;
    }
    // Checked as the OAuth lib checks its providers, before anything starts, naming the variable.
    expect(message).toMatch(/OAUTH_PROVIDERS: \[0\]\.clientSecret/);
    expect(message).not.toContain(plaintext);
  });
});

/**
 * A token endpoint that misbehaves (a plain loopback server, per `mode`): the API's answer blames the
 * provider, and a provider's Retry-After is honoured — no second call before it, and callers told so.
 */
describe('OAuth provider faults over HTTP (SQLite, local vault, a misbehaving token endpoint)', () => {
  let host: TestHost;
  let idp: Server;
  let mode: 'no-access-token' | 'rate-limited' | 'odd-scope' = 'no-access-token';
  let scope = '';
  let calls = 0;
  const call = (method: string, path: string, body?: unknown) => apiCall(host.baseUrl, method, path, body);
  const connect = (connectionId: string, granted?: string) =>
    call('POST', `/v1/oauth/connections/faulty/${connectionId}/tokens`, { access_token: `at_${connectionId}_0001`, refresh_token: `rt_${connectionId}_0001`, expires_in: 3600, token_type: 'Bearer', scope: granted });

  beforeAll(async () => {
    idp = createServer((req, res) => {
      calls++;
      req.resume();
      req.on('end', () => {
        if (mode === 'no-access-token') res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token_type: 'Bearer' }));
        else if (mode === 'odd-scope') {
          const token = { access_token: `at_refreshed_${calls}`, refresh_token: `rt_refreshed_${calls}`, expires_in: 3600, token_type: 'Bearer', scope };
          res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(token));
        }
        else res.writeHead(429, { 'content-type': 'application/json', 'retry-after': '600' }).end(JSON.stringify({ error: 'rate_limited' }));
      });
    });
    await new Promise<void>((resolve) => idp.listen(0, '127.0.0.1', resolve));
    host = await startTestHost('sqlite', { AUTH_API_KEYS: JSON.stringify([key.entry]), OAUTH_PROACTIVE_ENABLED: 'false' });
    host.app.get(OAuthProviderRegistry).register({
      integrationId: 'faulty',
      tokenEndpoint: `http://127.0.0.1:${(idp.address() as AddressInfo).port}/token`,
      clientId: 'client',
      clientAuthMethod: 'none',
      allowInsecureRequests: true,
    });
  });

  afterAll(async () => {
    await host?.close();
    await new Promise((resolve) => idp?.close(resolve));
  });

  it('a 200 without an access token is the provider’s fault: 502 INVALID_TOKEN_RESPONSE, not a 4xx', async () => {
    mode = 'no-access-token';
    expect((await connect('c1')).status).toBe(201);
    const r = await call('POST', '/v1/oauth/connections/faulty/c1/token-rejected', {});
    expect(r.status).toBe(502);
    expect(r.body).toMatchObject({ code: 4004 });
  });

  it('a 429 with Retry-After: 600 is asked once, and the caller is told to come back after 600 s', async () => {
    mode = 'rate-limited';
    expect((await connect('c2')).status).toBe(201);
    calls = 0;
    const r = await call('POST', '/v1/oauth/connections/faulty/c2/token-rejected', {});
    expect(r.status).toBe(503);
    expect(Number(r.retryAfter)).toBeGreaterThanOrEqual(599);
    expect(calls).toBe(1);
    // The connection cools down for the provider's 600 s: a second report does not call it again.
    const again = await call('POST', '/v1/oauth/connections/faulty/c2/token-rejected', {});
    expect(again.status).toBe(503);
    expect(calls).toBe(1);
  });

  it("a refresh whose provider answers a scope that is no tag value keeps the new tokens: the scope is cut on a character boundary or made one line, never a 400 blaming the caller nor the old scope kept", async () => {
    mode = 'odd-scope';
    const credentials = host.app.get(CredentialsService);
    // 511 characters and an emoji (a surrogate pair across the 512-character tag limit); a line break and a tab, a
    // lone surrogate (no one-line text) after a wider scope was stored: the tag must say the new one.
    const cases = [
      ['c3', `${'s'.repeat(511)}\u{1F600}`, 's'.repeat(511)],
      ['c4', 'read\n\twrite\u0000', 'read write'],
      ['c5', 'read\uD800', 'read\uFFFD'],
    ] as const;
    for (const [connectionId, odd, tag] of cases) {
      expect((await connect(connectionId, 'read write admin')).status).toBe(201);
      scope = odd;
      const r = await call('POST', `/v1/oauth/connections/faulty/${connectionId}/token-rejected`, {});
      expect({ status: r.status, code: r.body.codeName }).toEqual({ status: 200, code: undefined });
      expect(r.body.accessToken).toMatch(/^at_refreshed_/);
      expect((await call('GET', `/v1/oauth/connections/faulty/${connectionId}/access-token`)).body.accessToken).toBe(r.body.accessToken);
      const { metadata } = await credentials.get({ tenantId: 'acme', actor: { id: 'test' } }, r.body.credentialId);
      expect(metadata.tags['oauth.scope']).toBe(tag);
    }
  });

  it('a refresh token past its refresh_token_expires_in is not presented: the valid access token is served, a forced refresh is 409 REAUTH_REQUIRED', async () => {
    const stored = await call('POST', '/v1/oauth/connections/faulty/rt-expired/tokens', {
      access_token: 'at_rt_expired_0001',
      refresh_token: 'rt_rt_expired_0001',
      expires_in: 3600,
      refresh_token_expires_in: 1,
    });
    expect(stored.status).toBe(201);
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    calls = 0;
    // Inside the asked validity (less than the token's lifetime), so a refresh is due: none can be made, the token stands.
    const served = await call('GET', '/v1/oauth/connections/faulty/rt-expired/access-token?minValidityMs=3599000');
    expect({ status: served.status, token: served.body.accessToken }).toEqual({ status: 200, token: 'at_rt_expired_0001' });
    // It answered 409 EXPIRED (2010) naming the refresh token's credential and an allowExpired this route does not take.
    const rejected = await call('POST', '/v1/oauth/connections/faulty/rt-expired/token-rejected', {});
    expect({ status: rejected.status, code: rejected.body.codeName }).toEqual({ status: 409, code: 'REAUTH_REQUIRED' });
    expect(rejected.text).not.toContain(stored.body.refreshTokenCredentialId);
    expect(rejected.text).not.toContain('allowExpired');
    expect(calls).toBe(0);
  });

  it('a revoked connection is 409 REAUTH_REQUIRED naming the route that stores new tokens, not only the library method', async () => {
    const stored = await call('POST', '/v1/oauth/connections/faulty/revoked-1/tokens', { access_token: 'at_revoked_0001', refresh_token: 'rt_revoked_0001', expires_in: 3600 });
    expect(stored.status).toBe(201);
    await host.app.get(CredentialsService).revoke({ tenantId: 'acme', actor: { id: 'test' } }, stored.body.accessTokenCredentialId);
    const r = await call('GET', '/v1/oauth/connections/faulty/revoked-1/access-token');
    expect({ status: r.status, code: r.body.codeName }).toEqual({ status: 409, code: 'REAUTH_REQUIRED' });
    expect(r.body.message).toContain('the connection is revoked');
    expect(r.body.message).toContain('POST /v1/oauth/connections/{integrationId}/{connectionId}/tokens');
  });

  it("a stored token response's scope or token_type that is not one line of text is 400 naming that field, nothing stored; a long one is cut on a character boundary", async () => {
    for (const [field, odd] of [['scope', 'read\nwrite'], ['token_type', 'Bearer\u0000'], ['scope', 'read\uD800']] as const) {
      const r = await call('POST', '/v1/oauth/connections/faulty/odd-fields/tokens', { access_token: 'at_odd_fields_0001', [field]: odd });
      expect({ field, status: r.status, code: r.body.codeName }).toEqual({ field, status: 400, code: 'OAUTH_REFRESH_VALIDATION' });
      expect(r.body.message).toContain(field);
    }
    expect((await call('GET', '/v1/oauth/connections/faulty/odd-fields/access-token')).status).toBe(404);
    const long = await call('POST', '/v1/oauth/connections/faulty/long-scope/tokens', { access_token: 'at_long_scope_0001', scope: `${'s'.repeat(511)}\u{1F600}`, token_type: `${'b'.repeat(63)}\u{1F600}` });
    expect(long.status).toBe(201);
    const { metadata } = await host.app.get(CredentialsService).get({ tenantId: 'acme', actor: { id: 'test' } }, long.body.accessTokenCredentialId);
    expect(metadata.tags).toMatchObject({ 'oauth.scope': 's'.repeat(511), 'oauth.token_type': 'b'.repeat(63) });
  });
});
