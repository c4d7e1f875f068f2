import { createServer, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { AuditService } from '@app/audit';
import { generateApiKey } from '../apps/api/src/auth/api-keys';
import { RATE_LIMITED_MESSAGE, UNAUTHENTICATED_TENANT } from '../apps/api/src/auth/auth.guard';
import { startTestHost, TestHost } from './support/host';

/**
 * Authentication as an operator configures it: JWTs from an issuer's JWKS (served over HTTP here, as
 * an identity provider would) next to static API keys, and per-client rate limiting.
 */
describe('host authentication and rate limiting (SQLite)', () => {
  let jwks: Server;
  let jwksUrl: string;
  let host: TestHost;
  let sign: (claims: Record<string, unknown>, opts?: { aud?: string; exp?: string }) => Promise<string>;
  const issuer = 'https://idp.example.test';
  const audience = 'credential-vault';
  const apiKey = generateApiKey('acme-ci', 'acme', ['credentials:read']);

  beforeAll(async () => {
    const { privateKey, publicKey } = await generateKeyPair('ES256');
    const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
    jwks = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk] })));
    await new Promise<void>((r) => jwks.listen(0, '127.0.0.1', r));
    jwksUrl = `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/jwks`;
    sign = (claims, opts = {}) =>
      new SignJWT(claims)
        .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
        .setSubject('user-7')
        .setIssuer(issuer)
        .setAudience(opts.aud ?? audience)
        .setIssuedAt()
        .setExpirationTime(opts.exp ?? '5m')
        .sign(privateKey);
    host = await startTestHost('sqlite', {
      AUTH_JWT_ISSUER: issuer,
      AUTH_JWT_AUDIENCE: audience,
      AUTH_JWT_JWKS_URL: jwksUrl,
      AUTH_API_KEYS: JSON.stringify([apiKey.entry]),
      RATE_LIMIT_PER_MINUTE: '8',
    });
  });

  afterAll(async () => {
    await host?.close();
    await new Promise((r) => jwks?.close(r));
  });

  const get = (path: string, headers: Record<string, string>) => fetch(`${host.baseUrl}${path}`, { headers });

  it('accepts a valid JWT for its tenant and scopes, and refuses a wrong audience, an expired token and a missing scope', async () => {
    const writer = await sign({ tenant_id: 'acme', scope: 'credentials:write credentials:read' });
    const created = await fetch(`${host.baseUrl}/v1/credentials`, {
      method: 'POST',
      headers: { authorization: `Bearer ${writer}`, 'content-type': 'application/json' },
      body: JSON.stringify({ integrationId: 'jira', connectionId: 'j1', type: 'api_key', value: 'jira-token-0123456789' }),
    });
    expect(created.status).toBe(201);
    expect(((await created.json()) as { createdBy: string }).createdBy).toBe('jwt:user-7');

    expect((await get('/v1/credentials', { authorization: `Bearer ${await sign({ tenant_id: 'acme', scope: 'credentials:read' }, { aud: 'other' })}` })).status).toBe(401);
    expect((await get('/v1/credentials', { authorization: `Bearer ${await sign({ tenant_id: 'acme', scope: 'credentials:read' }, { exp: '-5m' })}` })).status).toBe(401);
    const noScope = await get('/v1/credentials', { authorization: `Bearer ${await sign({ tenant_id: 'acme', scope: 'audit:read' })}` });
    expect(noScope.status).toBe(403);
    // A token of another tenant sees none of acme's credentials.
    const globex = await get('/v1/credentials', { authorization: `Bearer ${await sign({ tenant_id: 'globex', scope: 'credentials:read' })}` });
    expect(((await globex.json()) as { items: unknown[] }).items).toEqual([]);
    // One credential per request (RFC 6750 §2): an API key and a bearer token together are refused, both valid here.
    const both = await get('/v1/credentials', { 'x-api-key': apiKey.key, authorization: `Bearer ${await sign({ tenant_id: 'globex', scope: 'credentials:read' })}` });
    expect(both.status).toBe(401);
    expect(((await both.json()) as { message: string }).message).toMatch(/X-API-Key or Authorization: Bearer, not both/);
  });

  it('limits each client separately and answers 429 past the limit', async () => {
    const other = await sign({ tenant_id: 'acme', scope: 'credentials:read' });
    const responses: Response[] = [];
    for (let i = 0; i < 10; i++) responses.push(await get('/v1/credentials', { 'x-api-key': apiKey.key }));
    const statuses = responses.map((r) => r.status);
    expect(statuses.slice(0, 8).every((s) => s === 200)).toBe(true);
    expect(statuses.slice(8)).toEqual([429, 429]);
    // Allowed answers say how many are left; refused ones say when to come back (the block lasts the 60 s window).
    expect([responses[0].headers.get('x-ratelimit-limit'), responses[0].headers.get('x-ratelimit-remaining')]).toEqual(['8', '7']);
    expect(responses[7].headers.get('x-ratelimit-remaining')).toBe('0');
    for (const refused of responses.slice(8)) {
      const retryAfter = Number(refused.headers.get('retry-after'));
      expect(retryAfter).toBeGreaterThanOrEqual(59);
      expect(retryAfter).toBeLessThanOrEqual(60);
      // The error shape with a message of the host's, not the throttler's class name ("ThrottlerException: Too Many Requests").
      expect(await refused.json()).toEqual({ statusCode: 429, error: 'TOO_MANY_REQUESTS', message: RATE_LIMITED_MESSAGE, code: 90013, codeName: 'RATE_LIMIT_EXCEEDED', requestId: refused.headers.get('x-request-id') });
    }
    // Another client (another JWT subject would too) is not affected; health is never limited.
    expect((await get('/v1/credentials', { authorization: `Bearer ${other}` })).status).toBe(200);
    expect((await get('/health/live', {})).status).toBe(200);
  });

  it('limits failed authentications per IP across routes: past the limit 429s, and no more audit rows', async () => {
    const guess = (i: number) => `cvk_guesser_${String(i).padStart(43, 'x')}`;
    const statuses: number[] = [];
    for (let i = 0; i < 12; i++) statuses.push((await get(i % 2 ? '/v1/credentials' : '/v1/audit', { 'x-api-key': guess(i) })).status);
    // The earlier tests' refusals from this IP count too: some 401s (at most the limit), then only 429s.
    const refused = statuses.indexOf(429);
    expect(refused).toBeGreaterThan(0);
    expect(refused).toBeLessThanOrEqual(8);
    expect(statuses).toEqual([...Array(refused).fill(401), ...Array(12 - refused).fill(429)]);
    expect(await (await get('/v1/credentials', { 'x-api-key': guess(99) })).json()).toMatchObject({ statusCode: 429, message: RATE_LIMITED_MESSAGE });
    const audit = host.app.get(AuditService);
    await audit.flush();
    const rows = await audit.query({ tenantId: UNAUTHENTICATED_TENANT, actorId: 'claimed-api-key:guesser', limit: 100 });
    expect(rows.items).toHaveLength(refused);
    // An authenticated client from the same IP is counted as itself: not blocked by the guesses.
    expect((await get('/v1/credentials', { authorization: `Bearer ${await sign({ tenant_id: 'acme', scope: 'credentials:read' })}` })).status).toBe(200);
  });
});
