import { randomBytes, randomUUID } from 'node:crypto';
import { OAuthProviderRegistry } from '@app/oauth-refresh';
import { generateApiKey } from '../../apps/api/src/auth/api-keys';
import type { TestDatabaseKind } from './database';
import { startTestHost, TestHost } from './host';
import { stateSnapshot } from './state-snapshot';

/** An answer of the host: status, text, and the text as JSON (the error shape's members typed). */
export interface Answer {
  status: number;
  text: string;
  body: { statusCode?: number; error?: string; message?: string | string[]; code?: number; codeName?: string; value?: string } & Record<string, unknown>;
}

/**
 * The hardening specs' host (issue #10: what probing the API from outside found) and its callers: boots it in
 * the calling describe's beforeAll — tenant acme's API keys of each role plus another tenant's, an OAuth provider
 * `prov` whose token endpoint nobody listens on — and closes it in afterAll. `host` and `base` are set once booted.
 */
export function hardenedApi(kind: TestDatabaseKind) {
  const key = generateApiKey('acme-app', 'acme', ['credentials:read', 'credentials:read-value', 'credentials:write']);
  const auditor = generateApiKey('acme-audit', 'acme', ['audit:read']);
  // credentials:write too: a PATCH to status revoked needs both (the revoke route needs only credentials:revoke).
  const revoker = generateApiKey('acme-revoker', 'acme', ['credentials:write', 'credentials:revoke']);
  const keyAdmin = generateApiKey('acme-keys', 'acme', ['keys:read', 'keys:write']);
  const rotationAdmin = generateApiKey('acme-rotation', 'acme', ['rotation:read', 'rotation:write']);
  const otherTenant = generateApiKey('globex-app', 'globex', ['credentials:read', 'credentials:write', 'audit:read']);

  const api = {
    host: undefined as unknown as TestHost,
    base: '',
    key,
    auditor,
    revoker,
    keyAdmin,
    rotationAdmin,
    otherTenant,
    send: async (method: string, path: string, init: { body?: string | Buffer; contentType?: string; contentEncoding?: string; apiKey?: string | null } = {}): Promise<Answer> => {
      const headers: Record<string, string> = {};
      if (init.apiKey !== null) headers['x-api-key'] = init.apiKey ?? key.key;
      if (init.contentType) headers['content-type'] = init.contentType;
      if (init.contentEncoding) headers['content-encoding'] = init.contentEncoding;
      const res = await fetch(`${api.base}${path}`, { method, headers, body: init.body });
      const text = await res.text();
      return { status: res.status, text, body: text ? JSON.parse(text) : {} };
    },
    json: (method: string, path: string, body: unknown) => api.send(method, path, { body: JSON.stringify(body), contentType: 'application/json' }),
    secret: () => `SECRET-${randomBytes(12).toString('hex')}`,
    store: async (over: Record<string, unknown> = {}) => {
      const r = await api.json('POST', '/v1/credentials', { integrationId: 'github', connectionId: `c-${randomBytes(4).toString('hex')}`, type: 'api_key', value: api.secret(), ...over });
      expect(r.status).toBe(201);
      return r.body as unknown as { id: string; rowVersion: number };
    },
    /** The request is refused with `status`, in the documented error shape, and leaves every stored thing as it was. */
    refusedWithoutWrites: async (status: number, request: () => Promise<Answer>): Promise<Answer> => {
      const before = await stateSnapshot(api.host.app);
      const r = await request();
      expect({ status: r.status, text: r.text.slice(0, 300) }).toEqual({ status, text: expect.any(String) });
      expect(r.body).toEqual(expect.objectContaining({ statusCode: status, error: expect.any(String), message: expect.anything(), requestId: expect.any(String) }));
      expect(await stateSnapshot(api.host.app)).toEqual(before);
      return r;
    },
  };

  beforeAll(async () => {
    api.host = await startTestHost(kind, { AUTH_API_KEYS: JSON.stringify([key.entry, auditor.entry, revoker.entry, keyAdmin.entry, rotationAdmin.entry, otherTenant.entry]), OAUTH_PROACTIVE_ENABLED: 'false', LOG_LEVEL: 'debug' });
    api.base = api.host.baseUrl;
    // A provider whose token endpoint nobody listens on: storing tokens never calls it; a forced refresh would fail (503).
    api.host.app.get(OAuthProviderRegistry).register({ integrationId: 'prov', tokenEndpoint: 'http://127.0.0.1:9/token', clientId: 'client', clientSecret: { credentialId: randomUUID(), tenantId: 'system' }, allowInsecureRequests: true });
  });

  afterAll(async () => {
    await api.host?.close();
  });

  return api;
}
