import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { dirname } from 'node:path';
import { CredentialsService, CredentialType } from '@app/credentials';
import { OAuthProviderRegistry } from '@app/oauth-refresh';
import { WebhookSecretUpdaterRegistry } from '@app/rotation';
import { TestOAuthServer } from '@app/testing';
import { Webhook } from 'standardwebhooks';
import { generateApiKey } from '../apps/api/src/auth/api-keys';
import { EmbeddedVault } from '../apps/api/src/vault/embedded-vault';
import { selfSignedCertificate } from './support/certificates';
import { startTestHost, TestHost, ROTATION_JOBS_OFF } from './support/host';

// ajv-formats (a devDependency) brings the Ajv 8 it is built for; the top-level `ajv` is eslint's 6.x. Load the one ajv-formats resolves.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const addFormats = require('ajv-formats') as (ajv: AjvInstance) => void;
// eslint-disable-next-line @typescript-eslint/no-require-imports
const Ajv = require(require.resolve('ajv', { paths: [dirname(require.resolve('ajv-formats'))] })) as { default: new (options: object) => AjvInstance };

interface AjvInstance {
  addSchema(schema: object): AjvInstance;
  addFormat(name: string, format: RegExp): AjvInstance;
  addKeyword(keyword: string): AjvInstance;
  compile(schema: object): { (data: unknown): boolean; errors?: unknown[] | null };
}

type Method = 'get' | 'post' | 'put' | 'patch' | 'delete';
type Json = Record<string, any>;

interface OpenApiOperation {
  responses: Record<string, { content?: Record<string, { schema?: object }> }>;
}
interface OpenApiDocument {
  paths: Record<string, Partial<Record<Method, OpenApiOperation>>>;
  components: { schemas: Record<string, object> };
}

const DAY = 86_400_000;
const DOC_ID = 'https://credential-vault.test/openapi.json';
/** A JSON pointer segment (RFC 6901). */
const pointer = (segment: string) => segment.replace(/~/g, '~0').replace(/\//g, '~1');
const b64u = (bytes: Buffer) => bytes.toString('base64url');
const sha256 = (text: string) => b64u(createHash('sha256').update(text).digest());

/**
 * The OpenAPI document (GET /docs/json) holds for what the host answers: one successful request of every
 * operation it declares, each body validated (Ajv, formats checked) against the schema the document
 * declares for the status and media type answered — `$ref`s resolved against the document's own
 * components —, and a 204 declared without a body. Every operation must declare a 2xx answer with a
 * schema (or a 204 without one), and every operation is exercised here. One host on SQLite, the local
 * vault, a real OAuth server (oidc-provider) for the OAuth routes.
 */
describe('the OpenAPI document describes every success answer (SQLite, local vault, oidc-provider)', () => {
  const admin = generateApiKey('acme-admin', 'acme', ['admin']);
  let host: TestHost;
  let idp: TestOAuthServer;
  let doc: OpenApiDocument;
  let ajv: AjvInstance;
  const exercised = new Set<string>();

  const operations = () =>
    Object.entries(doc.paths).flatMap(([path, item]) => (Object.keys(item) as Method[]).map((method) => ({ method, path, op: item[method]! })));

  /**
   * One request of the operation `method template` (path parameters from `params`), answered `status`:
   * its body must match the schema the document declares for that status and content type. The parsed body.
   */
  async function call(
    method: Method,
    template: string,
    status: number,
    options: { params?: Record<string, string | number>; query?: Record<string, string>; body?: unknown; raw?: string; headers?: Record<string, string>; key?: string | null } = {},
  ): Promise<Json> {
    const path = template.replace(/\{(\w+)\}/g, (_m, name: string) => encodeURIComponent(String(options.params?.[name])));
    const query = options.query ? `?${new URLSearchParams(options.query)}` : '';
    const headers: Record<string, string> = { ...(options.key === null ? {} : { 'x-api-key': options.key ?? admin.key }), ...options.headers };
    const body = options.raw ?? (options.body === undefined ? undefined : JSON.stringify(options.body));
    if (body !== undefined) headers['content-type'] ??= 'application/json';
    const res = await fetch(`${host.baseUrl}${path}${query}`, { method: method.toUpperCase(), headers, body });
    const text = await res.text();
    expect({ operation: `${method} ${template}`, status: res.status, body: res.status === status ? undefined : text }).toEqual({ operation: `${method} ${template}`, status, body: undefined });
    exercised.add(`${method} ${template}`);

    const declared = doc.paths[template]?.[method]?.responses[String(status)];
    expect({ operation: `${method} ${template}`, declares: status, found: declared !== undefined }).toEqual({ operation: `${method} ${template}`, declares: status, found: true });
    if (!declared!.content) {
      expect({ operation: `${method} ${template}`, body: text }).toEqual({ operation: `${method} ${template}`, body: '' });
      return {};
    }
    const answered = (res.headers.get('content-type') ?? '').split(';')[0].trim();
    const media = Object.keys(declared!.content).find((m) => m === answered);
    expect({ operation: `${method} ${template}`, answered, declared: media }).toEqual({ operation: `${method} ${template}`, answered, declared: answered });
    const location = `${DOC_ID}#/paths/${pointer(template)}/${method}/responses/${status}/content/${pointer(media!)}/schema`;
    const validate = ajv.compile({ $ref: location });
    const parsed: unknown = media === 'application/json' ? JSON.parse(text) : text;
    const valid = validate(parsed);
    expect({ operation: `${method} ${template}`, status, errors: valid ? [] : validate.errors, body: valid ? undefined : parsed }).toEqual({
      operation: `${method} ${template}`,
      status,
      errors: [],
      body: undefined,
    });
    return parsed as Json;
  }

  beforeAll(async () => {
    idp = await TestOAuthServer.start();
    host = await startTestHost('sqlite', {
      AUTH_API_KEYS: JSON.stringify([admin.entry]),
      OAUTH_PROACTIVE_ENABLED: 'false',
      ...ROTATION_JOBS_OFF,
      WEBHOOK_SECRET_ROTATION_ENABLED: 'false',
      NOTIFICATIONS_WEBHOOK_ENABLED: 'false',
      NOTIFICATIONS_WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true',
    });
    // The OAuth client secret is a credential of a system tenant, referenced by the provider (as in oauth-http).
    const secret = await host.app.get(CredentialsService).store(
      { tenantId: 'system', actor: { id: 'system:setup' } },
      { integrationId: 'idp', connectionId: 'client-secret', type: CredentialType.CUSTOM_SECRET, value: idp.clientSecret },
    );
    host.app.get(OAuthProviderRegistry).register({
      integrationId: 'idp',
      issuer: idp.issuer,
      clientId: idp.clientId,
      clientSecret: { credentialId: secret.id, tenantId: 'system' },
      allowInsecureRequests: true,
    });
    doc = (await (await fetch(`${host.baseUrl}/docs/json`)).json()) as OpenApiDocument;
    ajv = new Ajv.default({ allErrors: true, strict: true, strictRequired: false });
    addFormats(ajv);
    ajv.addFormat('base64url', /^[A-Za-z0-9_-]*$/);
    // OpenAPI's annotation keyword, and the document's own top-level members (it is added whole, to resolve pointers into it).
    for (const keyword of ['example', 'openapi', 'info', 'paths', 'components', 'tags', 'servers', 'security']) ajv.addKeyword(keyword);
    ajv.addSchema({ ...doc, $id: DOC_ID });
  });

  afterAll(async () => {
    await host?.close();
    await idp?.close();
  });

  it('declares, for every operation, a 2xx answer with a schema (or a 204 without a body)', () => {
    const lacking = operations()
      .filter(({ op }) => {
        const success = Object.entries(op.responses).filter(([status]) => /^2\d\d$/.test(status));
        return success.length === 0 || success.some(([status, r]) => (status === '204' ? r.content !== undefined : !Object.values(r.content ?? {}).some((c) => c.schema)));
      })
      .map(({ method, path }) => `${method} ${path}`);
    expect(lacking).toEqual([]);
  });

  it('declares every path parameter of every operation (a generated client or the UI can fill in the path)', () => {
    const undeclared = operations().flatMap(({ method, path, op }) => {
      const declared = new Set(((op as { parameters?: { in: string; name: string; required?: boolean }[] }).parameters ?? []).filter((p) => p.in === 'path' && p.required).map((p) => p.name));
      return [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).filter((name) => !declared.has(name)).map((name) => `${method} ${path}: ${name}`);
    });
    expect(undeclared).toEqual([]);
  });

  it('credentials and connections', async () => {
    const expiresAt = new Date(Date.now() + 10 * DAY).toISOString();
    const store = (connectionId: string, extra: Json = {}) =>
      call('post', '/v1/credentials', 201, { body: { integrationId: 'github', connectionId, type: 'api_key', value: `ghp_${randomBytes(12).toString('hex')}`, ...extra } });
    const a = await store('acme-main', { expiresAt, tags: { env: 'prod' } });
    await store('acme-envelope', { valueStore: 'envelope' });
    const cert = await call('post', '/v1/credentials', 201, {
      body: { integrationId: 'bank', connectionId: 'mtls', type: 'client_certificate', value: selfSignedCertificate(new Date(Date.now() + 90 * DAY), 'client.example') },
    });
    expect(cert.certificate).toMatchObject({ subject: expect.any(String) });
    const gone = await store('acme-gone');
    const deleted = await store('acme-batch');
    await store('acme-throwaway');

    const page = await call('get', '/v1/credentials', 200, { query: { integrationId: 'github', limit: '1' } });
    expect(page.nextCursor).toEqual(expect.any(String));
    await call('get', '/v1/credentials', 200, { query: { cursor: page.nextCursor } });
    expect(await call('get', '/v1/credentials/expiring', 200, { query: { days: '30' } })).toMatchObject({ items: { length: 1 }, truncated: false });
    await call('get', '/v1/credentials/statistics', 200);
    // The two hot read routes answer through Fastify's compiled serializer (credential-response.schemas.ts): twice, the second from the cache.
    for (const id of [a.id, a.id, cert.id]) await call('get', '/v1/credentials/{id}', 200, { params: { id } });
    for (const id of [a.id, a.id, cert.id]) await call('get', '/v1/credentials/{id}/value', 200, { params: { id } });
    await call('patch', '/v1/credentials/{id}', 200, { params: { id: a.id }, body: { tags: { env: 'staging' }, expectedVersion: a.rowVersion } });
    await call('post', '/v1/credentials/{id}/rotate', 200, { params: { id: a.id }, body: { value: `ghp_${randomBytes(12).toString('hex')}`, expiresAt } });
    const rolledBack = await call('post', '/v1/credentials/{id}/rollback', 200, { params: { id: a.id }, body: { version: 1 } });
    expect(rolledBack.version).toBe(3);
    const versions = await call('get', '/v1/credentials/{id}/versions', 200, { params: { id: a.id } });
    expect(versions.items.map((v: Json) => v.sourceVersion)).toContain(1);
    await call('get', '/v1/credentials/{id}/versions/{version}/value', 200, { params: { id: a.id, version: 2 } });
    const batch = await call('post', '/v1/credentials/delete-batch', 200, { body: { ids: [deleted.id, randomUUID()] } });
    expect(batch.notFound).toHaveLength(1);
    await call('delete', '/v1/credentials/{id}', 204, { params: { id: gone.id } });

    const connections = await call('get', '/v1/connections', 200);
    expect(connections.items.length).toBeGreaterThan(1);
    await call('delete', '/v1/connections/{integrationId}/{connectionId}', 200, { params: { integrationId: 'github', connectionId: 'acme-throwaway' } });
  });

  it('rotation: policies, rotate, rollback, history, revoke, expiries, due', async () => {
    const store = (connectionId: string, expiresAt?: Date) =>
      call('post', '/v1/credentials', 201, { body: { integrationId: 'stripe', connectionId, type: 'api_key', value: `sk_${randomBytes(12).toString('hex')}`, expiresAt } });
    const rotated = await store('rotated');
    const expiring = await store('expiring', new Date(Date.now() + 5 * DAY));
    const revoked = await store('revoked');

    await call('put', '/v1/rotation/policies', 200, { body: { level: 'integration', target: 'stripe', rotateAfterDays: 30, warnBeforeDays: 7, rotation: 'manual' } });
    await call('put', '/v1/rotation/policies', 200, { body: { level: 'tenant', credentialType: 'api_key', rotateAfterDays: 60, warnBeforeDays: null } });
    expect((await call('get', '/v1/rotation/policies', 200)).items).toHaveLength(2);
    await call('get', '/v1/rotation/policies/scope', 200, { query: { level: 'integration', target: 'stripe' } });
    const effective = await call('get', '/v1/rotation/credentials/{id}/policy', 200, { params: { id: rotated.id } });
    expect(effective.sources.warnBeforeDays.level).toBe('integration');
    await call('delete', '/v1/rotation/policies', 204, { query: { level: 'tenant', credentialType: 'api_key' } });

    expect((await call('post', '/v1/rotation/credentials/{id}/rotate', 200, { params: { id: rotated.id }, body: { reason: 'schedule' } })).method).toBe('generator');
    await call('post', '/v1/rotation/credentials/{id}/rollback', 200, { params: { id: rotated.id }, body: { version: 1, reason: 'regression' } });
    expect((await call('post', '/v1/rotation/revoke', 200, { body: { credentialId: revoked.id, reason: 'leaked', severity: 'high' } })).revoked).toEqual([revoked.id]);
    await call('post', '/v1/rotation/credentials/{id}/unrevoke', 200, { params: { id: revoked.id }, body: { reason: 'false alarm' } });
    const history = await call('get', '/v1/rotation/credentials/{id}/history', 200, { params: { id: revoked.id } });
    expect(history.items.map((h: Json) => h.action)).toEqual(['unrevoke', 'revoke']);
    await call('get', '/v1/rotation/credentials/{id}/history', 200, { params: { id: rotated.id } });
    expect((await call('get', '/v1/rotation/credentials/{id}/pending', 200, { params: { id: rotated.id } })).pendingRotation).toBeNull();

    const expiries = await call('get', '/v1/rotation/expiries', 200, { query: { days: '30' } });
    expect(expiries.items.map((e: Json) => e.credential.id)).toContain(expiring.id);
    expect(expiries.truncated).toBe(false);
    const due = await call('get', '/v1/rotation/due', 200, { query: { days: '400' } });
    expect(due.items.length).toBeGreaterThan(0);
    expect(due.truncated).toBe(false);
  });

  it('rotation: notification settings', async () => {
    await call('get', '/v1/rotation/notifications/settings', 200);
    // A first webhook URL without a secret generates one, answered once.
    const updated = await call('put', '/v1/rotation/notifications/settings', 200, { body: { webhookUrl: 'http://127.0.0.1:9/hooks', emailRecipients: ['ops@example.com'] } });
    expect(updated.generatedWebhookSecret).toEqual(expect.any(String));
    const again = await call('put', '/v1/rotation/notifications/settings', 200, { body: { emailRecipients: [], expectedRowVersion: updated.rowVersion } });
    expect(again).not.toHaveProperty('generatedWebhookSecret');
    await call('get', '/v1/rotation/notifications/settings', 200);
  });

  it('rotation: webhook secrets (create, verify, stage, activate, discard, rotate, versions)', async () => {
    const params = { integrationId: 'acme-pay', connectionId: 'main' };
    const created = await call('post', '/v1/rotation/webhooks/{integrationId}/{connectionId}/secret', 201, { params, body: {} });
    const payload = '{"type":"invoice.paid","id":"evt_1"}';
    const msgId = `msg_${randomBytes(6).toString('hex')}`;
    const at = new Date();
    const verified = await call('post', '/v1/rotation/webhooks/{integrationId}/{connectionId}/verify', 200, {
      params,
      raw: payload,
      headers: { 'webhook-id': msgId, 'webhook-timestamp': String(Math.floor(at.getTime() / 1000)), 'webhook-signature': new Webhook(created.secret).sign(msgId, at, payload) },
    });
    expect(verified).toMatchObject({ valid: true, version: 1, msgId });

    const staged = await call('post', '/v1/rotation/webhooks/{integrationId}/{connectionId}/secret/stage', 201, { params });
    await call('post', '/v1/rotation/webhooks/{integrationId}/{connectionId}/secret/activate', 200, { params, body: { rotationId: staged.rotationId } });
    await call('post', '/v1/rotation/webhooks/{integrationId}/{connectionId}/secret/stage', 201, { params });
    await call('post', '/v1/rotation/webhooks/{integrationId}/{connectionId}/secret/discard', 200, { params, body: {} });
    // The automatic rotation needs the integration's WebhookSecretUpdater (an embedding app registers one).
    const unregister = host.app.get(WebhookSecretUpdaterRegistry).register('acme-pay', { update: async () => undefined });
    try {
      expect((await call('post', '/v1/rotation/webhooks/{integrationId}/{connectionId}/rotate', 200, { params })).outcome).toBe('rotated');
    } finally {
      unregister();
    }
    const versions = await call('get', '/v1/rotation/webhooks/{integrationId}/{connectionId}/versions', 200, { params });
    expect(versions.items.length).toBeGreaterThan(2);
  });

  it('oauth connections against a real OAuth server', async () => {
    const params = { integrationId: 'idp', connectionId: 'user-42' };
    const tokens = await idp.authorize('openid');
    await call('post', '/v1/oauth/connections/{integrationId}/{connectionId}/tokens', 201, { params, body: tokens });
    const first = await call('get', '/v1/oauth/connections/{integrationId}/{connectionId}/access-token', 200, { params });
    const fresh = await call('post', '/v1/oauth/connections/{integrationId}/{connectionId}/token-rejected', 200, { params, body: { accessToken: first.accessToken } });
    expect(fresh.accessToken).not.toBe(first.accessToken);
  });

  it('keys: lifecycle and cryptography', async () => {
    const signer = await call('post', '/v1/keys', 201, { body: { name: 'signer', type: 'EC', curve: 'P-256', tags: { team: 'core' } } });
    const kek = await call('post', '/v1/keys', 201, { body: { name: 'kek', type: 'RSA', size: 2048, expiresOn: new Date(Date.now() + 365 * DAY).toISOString() } });
    expect(kek.publicKey).toMatchObject({ kty: 'RSA', n: expect.any(String), e: expect.any(String) });
    const page = await call('get', '/v1/keys', 200, { query: { limit: '1' } });
    if (page.nextCursor) await call('get', '/v1/keys', 200, { query: { cursor: page.nextCursor } });
    await call('get', '/v1/keys/{name}', 200, { params: { name: 'signer' } });
    await call('get', '/v1/keys/{name}/versions', 200, { params: { name: 'signer' } });
    await call('get', '/v1/keys/{name}/versions/{version}', 200, { params: { name: 'signer', version: signer.version } });
    await call('patch', '/v1/keys/{name}', 200, { params: { name: 'signer' }, body: { tags: { team: 'ops' } } });
    await call('patch', '/v1/keys/{name}/versions/{version}', 200, { params: { name: 'signer', version: signer.version }, body: { enabled: true } });
    await call('post', '/v1/keys/{name}/rotate', 200, { params: { name: 'signer' } });

    const digest = sha256('payload');
    const signed = await call('post', '/v1/keys/{name}/sign', 200, { params: { name: 'signer' }, body: { algorithm: 'ES256', digest } });
    expect((await call('post', '/v1/keys/{name}/verify', 200, { params: { name: 'signer' }, body: { algorithm: 'ES256', digest, signature: signed.signature } })).valid).toBe(true);
    const plaintext = b64u(Buffer.from('secret'));
    const encrypted = await call('post', '/v1/keys/{name}/encrypt', 200, { params: { name: 'kek' }, body: { algorithm: 'RSA-OAEP-256', plaintext } });
    const decrypted = await call('post', '/v1/keys/{name}/decrypt', 200, { params: { name: 'kek' }, body: { version: encrypted.version, algorithm: 'RSA-OAEP-256', ciphertext: encrypted.ciphertext } });
    expect(decrypted.plaintext).toBe(plaintext);
    const key = b64u(randomBytes(32));
    const wrapped = await call('post', '/v1/keys/{name}/wrap-key', 200, { params: { name: 'kek' }, body: { algorithm: 'RSA-OAEP', key } });
    const unwrapped = await call('post', '/v1/keys/{name}/unwrap-key', 200, { params: { name: 'kek' }, body: { version: wrapped.version, algorithm: 'RSA-OAEP', wrappedKey: wrapped.wrappedKey } });
    expect(unwrapped.key).toBe(key);

    // Delete and recover one key; back up, delete, purge and restore the other.
    await call('delete', '/v1/keys/{name}', 200, { params: { name: 'signer' } });
    await call('post', '/v1/deleted-keys/{name}/recover', 200, { params: { name: 'signer' } });
    const { backup } = await call('post', '/v1/keys/{name}/backup', 200, { params: { name: 'kek' } });
    await call('delete', '/v1/keys/{name}', 200, { params: { name: 'kek' } });
    await call('delete', '/v1/deleted-keys/{name}', 204, { params: { name: 'kek' } });
    // As on Azure, a purge completes asynchronously (the local vault's 1 s): until then the name answers 409 (1017).
    await new Promise((r) => setTimeout(r, 1200));
    expect((await call('post', '/v1/keys/restore', 200, { body: { backup } })).name).toBe('kek');
  });

  it('audit, health and metrics', async () => {
    const page = await call('get', '/v1/audit', 200, { query: { limit: '2' } });
    expect(page.nextCursor).toEqual(expect.any(String));
    await call('get', '/v1/audit', 200, { query: { cursor: page.nextCursor, action: 'read,rotate' } });
    expect((await call('post', '/v1/audit/verify', 200)).valid).toBe(true);
    await call('get', '/health/live', 200, { key: null });
    await call('get', '/health/ready', 200, { key: null });
    await call('get', '/metrics', 200, { key: null });
  });

  it("error answers match the declared ErrorBody, which requires the stable code: a lib's or the host's own", async () => {
    expect((doc.components.schemas.ErrorBody as { required?: string[] }).required).toEqual(expect.arrayContaining(['code', 'codeName']));
    const invalid = await call('get', '/v1/credentials/{id}', 400, { params: { id: 'not-a-uuid' } });
    const anonymous = await call('get', '/v1/credentials', 401, { key: 'cvk_nobody_invalid' });
    const missing = await call('get', '/v1/credentials/{id}', 404, { params: { id: '6f1c9a52-0d1e-4c1b-9a57-3b8f0e2d4c11' } });
    expect([invalid, anonymous, missing].map((b) => [b.code, b.codeName])).toEqual([
      [90001, 'VALIDATION_FAILED'],
      [90004, 'UNAUTHENTICATED'],
      [2002, 'NOT_FOUND'],
    ]);
  });

  /**
   * `call` fails on any status the document does not declare for the operation answering it: here the error answers
   * a client meets in practice — a lost compare-and-set, a name taken, a connection to authorize again, a policy
   * changed meanwhile (409), a body too large or not JSON (413, 415), a refused integration or vault (502), a vault
   * that is down (503), an input the route does not take (400) — each with the code that says which.
   */
  it('declares the error answers the routes really give (409, 413, 414, 415, 502, 503, 400), each an ErrorBody', async () => {
    const vault = host.app.get(EmbeddedVault).emulator!;
    const stored = (connectionId: string) => ({ integrationId: 'github', connectionId, type: 'api_key', value: `ghp_${randomBytes(12).toString('hex')}` });
    const a = await call('post', '/v1/credentials', 201, { body: stored('errors-main') });
    const codes: Array<[string, number]> = [];
    const expectCode = (body: Json, code: string, answered = body.codeName as string) => codes.push([code, answered === code ? 1 : 0]);

    expectCode(await call('patch', '/v1/credentials/{id}', 409, { params: { id: a.id }, body: { tags: { env: 'x' }, expectedVersion: a.rowVersion + 5 } }), 'CONFLICT');
    expectCode(await call('post', '/v1/credentials', 409, { body: stored('errors-main') }), 'ALREADY_EXISTS');
    await call('put', '/v1/rotation/policies', 200, { body: { level: 'integration', target: 'github', rotateAfterDays: 30 } });
    expectCode(await call('put', '/v1/rotation/policies', 409, { body: { level: 'integration', target: 'github', rotateAfterDays: 31, expectedVersion: 99 } }), 'POLICY_CONFLICT');
    // Tokens without a refresh token: a rejected access token cannot be replaced, the user must authorize again.
    const params = { integrationId: 'idp', connectionId: 'no-refresh' };
    await call('post', '/v1/oauth/connections/{integrationId}/{connectionId}/tokens', 201, { params, body: { access_token: 'at-1', token_type: 'Bearer', expires_in: 3600 } });
    expectCode(await call('post', '/v1/oauth/connections/{integrationId}/{connectionId}/token-rejected', 409, { params, body: { accessToken: 'at-1' } }), 'REAUTH_REQUIRED');

    expectCode(await call('post', '/v1/credentials', 413, { raw: JSON.stringify({ ...stored('errors-big'), value: 'x'.repeat(300 * 1024) }) }), 'BODY_TOO_LARGE');
    expectCode(await call('post', '/v1/credentials', 415, { raw: 'value=x', headers: { 'content-type': 'text/plain' } }), 'UNSUPPORTED_MEDIA_TYPE');
    expectCode(await call('post', '/v1/audit/verify', 400, { body: { unexpected: true } }), 'VALIDATION_FAILED');
    expectCode(await call('get', '/v1/rotation/policies', 400, { query: { unexpected: '1' } }), 'VALIDATION_FAILED');

    // The integration refuses the new webhook secret: 502, nothing rotated.
    const hook = { integrationId: 'errors-pay', connectionId: 'main' };
    await call('post', '/v1/rotation/webhooks/{integrationId}/{connectionId}/secret', 201, { params: hook, body: {} });
    const unregister = host.app.get(WebhookSecretUpdaterRegistry).register('errors-pay', {
      update: async () => {
        throw new Error('the integration refused the secret');
      },
    });
    try {
      expectCode(await call('post', '/v1/rotation/webhooks/{integrationId}/{connectionId}/rotate', 502, { params: hook }), 'WEBHOOK_UPDATE_FAILED');
    } finally {
      unregister();
    }
    // The vault refuses our identity (502), then is down (503, after the client's retries).
    vault.deny({ operations: ['setSecret'], model: 'rbac' });
    try {
      expectCode(await call('post', '/v1/credentials', 502, { body: stored('errors-denied') }), 'FORBIDDEN');
    } finally {
      vault.clearDenials();
    }
    vault.injectFault({ kind: 'status', status: 503, retryAfterSeconds: 0, operations: ['getSecret'] });
    try {
      const down = await call('get', '/v1/credentials/{id}/value', 503, { params: { id: a.id } });
      codes.push(['vault unavailable', ['SERVICE_UNAVAILABLE', 'RATE_LIMITED', 'CIRCUIT_OPEN'].includes(down.codeName) ? 1 : 0]);
    } finally {
      vault.clearFaults();
    }
    // Un-revoke re-enables the vault versions its revoke disabled: the vault refusing that is 502, as any vault call.
    const revoked = await call('post', '/v1/credentials', 201, { body: { ...stored('errors-unrevoke'), valueStore: 'vault' } });
    await call('post', '/v1/rotation/revoke', 200, { body: { credentialId: revoked.id, reason: 'leaked' } });
    vault.deny({ operations: ['updateSecret'], model: 'rbac' });
    try {
      expectCode(await call('post', '/v1/rotation/credentials/{id}/unrevoke', 502, { params: { id: revoked.id }, body: { reason: 'false alarm' } }), 'FORBIDDEN');
    } finally {
      vault.clearDenials();
    }
    // A route that takes no body still parses one a client sends (`{}` is taken as none only when it is JSON): 415.
    expectCode(await call('delete', '/v1/credentials/{id}', 415, { params: { id: a.id }, raw: '{}', headers: { 'content-type': 'text/plain' } }), 'UNSUPPORTED_MEDIA_TYPE');
    expectCode(await call('post', '/v1/audit/verify', 415, { raw: '{}', headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' } }), 'UNSUPPORTED_MEDIA_TYPE');
    // A path parameter longer than the router takes is refused before the route: 414.
    expectCode(await call('get', '/v1/credentials/{id}', 414, { params: { id: 'x'.repeat(300) } }), 'URI_TOO_LONG');
    expect(codes.filter(([, ok]) => !ok)).toEqual([]);
  });

  it('exercised every operation the document declares', () => {
    expect(operations().map(({ method, path }) => `${method} ${path}`).filter((op) => !exercised.has(op))).toEqual([]);
  });
});
