import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { Webhook } from 'standardwebhooks';
import { generateApiKey } from '../apps/api/src/auth/api-keys';
import { startTestHost, TestHost } from './support/host';
import { stateSnapshot } from './support/state-snapshot';

/**
 * A Content-Type header that is no media type (`foo`, empty, a list): Fastify answered it with its own 415 before
 * any hook or guard — to anonymous callers (no 401), wrong scopes (no 403), unknown paths (no 404), and the webhook
 * verify route that takes any content type. One host on SQLite, over real HTTP (node:http sends the header as given).
 */
describe('a Content-Type that is no media type', () => {
  let host: TestHost;
  const writer = generateApiKey('ct-app', 'ct', ['credentials:read', 'credentials:write', 'rotation:read', 'rotation:write']);
  const reader = generateApiKey('ct-reader', 'ct', ['credentials:read']);
  const ODD_TYPES = ['foo', '', 'application/json, text/plain', 'a/b/c'];

  const send = (method: string, path: string, headers: Record<string, string>, body: string) =>
    new Promise<{ status: number; body: Record<string, unknown> }>((resolve, reject) => {
      const url = new URL(path, host.baseUrl);
      const req = request({ host: url.hostname, port: url.port, method, path, headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as Record<string, unknown> }));
      });
      req.on('error', reject);
      req.end(body);
    });

  beforeAll(async () => {
    host = await startTestHost('sqlite', { AUTH_API_KEYS: JSON.stringify([writer.entry, reader.entry]), OAUTH_PROACTIVE_ENABLED: 'false' });
  });
  afterAll(async () => {
    await host?.close();
  });

  it('is answered after authentication, scopes and routing, as any other type: 401, 403, 404, then the host’s own 415; nothing written', async () => {
    const body = JSON.stringify({ integrationId: 'github', connectionId: 'odd-type', type: 'api_key', value: `SECRET-${randomBytes(8).toString('hex')}` });
    const before = await stateSnapshot(host.app);
    for (const contentType of ODD_TYPES) {
      const answers = [
        await send('POST', '/v1/credentials', { 'content-type': contentType }, body),
        await send('POST', '/v1/credentials', { 'content-type': contentType, 'x-api-key': 'cvk_nobody_invalid' }, body),
        await send('POST', '/v1/credentials', { 'content-type': contentType, 'x-api-key': reader.key }, body),
        await send('POST', '/v1/nothing-here', { 'content-type': contentType }, body),
        await send('POST', '/v1/credentials', { 'content-type': contentType, 'x-api-key': writer.key }, body),
      ].map((a) => [a.status, a.body.message]);
      expect({ contentType, answers }).toEqual({
        contentType,
        answers: [
          [401, expect.stringContaining('missing credentials')],
          [401, 'invalid API key'],
          [403, 'missing scope: credentials:write'],
          [404, 'no route matches this method and path'],
          [415, 'request bodies must be application/json'],
        ],
      });
    }
    expect(await stateSnapshot(host.app)).toEqual(before);
  });

  it('the webhook verify route takes its body whatever the Content-Type says, as documented', async () => {
    const hooks = '/v1/rotation/webhooks/stripe/odd-type';
    const created = await send('POST', `${hooks}/secret`, { 'content-type': 'application/json', 'x-api-key': writer.key }, '{}');
    expect(created.status).toBe(201);
    const payload = '{"type":"invoice.paid"}';
    for (const contentType of ODD_TYPES) {
      const msgId = `msg_${randomBytes(6).toString('hex')}`;
      const at = new Date();
      const signature = new Webhook(created.body.secret as string).sign(msgId, at, payload);
      const headers = { 'content-type': contentType, 'x-api-key': writer.key, 'webhook-id': msgId, 'webhook-timestamp': String(Math.floor(at.getTime() / 1000)), 'webhook-signature': signature };
      const r = await send('POST', `${hooks}/verify`, headers, payload);
      expect({ contentType, status: r.status, valid: r.body.valid }).toEqual({ contentType, status: 200, valid: true });
    }
  });
});
