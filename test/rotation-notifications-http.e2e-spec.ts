import { randomBytes } from 'node:crypto';
import { DATABASE_KINDS } from '@app/testing';
import { generateApiKey } from '../apps/api/src/auth/api-keys';
import { startTestHost, TestHost } from './support/host';

/**
 * Notification settings over real HTTP (issue #12), on both databases: tenant-scoped, compare-and-set,
 * and the signing secret never in an answer except the one that generated it, nor in an error or a log.
 */
describe.each(DATABASE_KINDS)('rotation notifications HTTP API on %s', (kind) => {
  let host: TestHost;
  let base: string;
  const reader = generateApiKey('acme-reader', 'acme', ['rotation:read']);
  const rotator = generateApiKey('acme-rotator', 'acme', ['rotation:read', 'rotation:write']);
  const writer = generateApiKey('acme-writer', 'acme', ['credentials:read', 'credentials:write']);
  const other = generateApiKey('globex', 'globex', ['admin']);
  /** Every secret this file sent or received: none may show up where it should not. */
  const secrets: string[] = [];

  interface Answer {
    status: number;
    text: string;
    body: Record<string, any>;
  }
  const call = async (key: string | null, method: string, path: string, body?: unknown): Promise<Answer> => {
    const headers: Record<string, string> = {};
    if (key) headers['x-api-key'] = key;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(`${base}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    return { status: res.status, text, body: text ? JSON.parse(text) : {} };
  };
  const newSecret = () => {
    const s = `whsec_${randomBytes(32).toString('base64')}`;
    secrets.push(s);
    return s;
  };
  const expectNoSecret = (a: Answer) => {
    for (const s of secrets) expect(a.text).not.toContain(s);
  };
  const SETTINGS = '/v1/rotation/notifications/settings';
  // A public IP literal: allowed without a DNS lookup (the SSRF guard only resolves names).
  const PUBLIC_URL = 'https://93.184.215.14/hooks/credential-vault';

  beforeAll(async () => {
    host = await startTestHost(kind, {
      AUTH_API_KEYS: JSON.stringify([reader.entry, rotator.entry, writer.entry, other.entry]),
      ROTATION_EXPIRY_MONITOR_ENABLED: 'false',
      ROTATION_CHECK_ENABLED: 'false',
      LOG_LEVEL: 'debug',
    });
    base = host.baseUrl;
  });

  afterAll(async () => {
    await host?.close();
  });

  describe('notification settings', () => {
    it('need rotation:read to read and rotation:write to change', async () => {
      expect((await call(null, 'GET', SETTINGS)).status).toBe(401);
      expect((await call(writer.key, 'GET', SETTINGS)).status).toBe(403);
      expect((await call(reader.key, 'PUT', SETTINGS, { emailRecipients: [] })).status).toBe(403);
      const empty = await call(reader.key, 'GET', SETTINGS);
      expect(empty.status).toBe(200);
      expect(empty.body).toMatchObject({ tenantId: 'acme', webhookUrl: null, webhookSecretConfigured: false, emailRecipients: [], rowVersion: 0 });
    });

    it('generates the signing secret once, sets a given one without returning it, and compare-and-sets', async () => {
      const first = await call(rotator.key, 'PUT', SETTINGS, { webhookUrl: PUBLIC_URL, emailRecipients: ['Ops@Example.com'], expectedRowVersion: 0 });
      expect(first.status).toBe(200);
      const generated = first.body.generatedWebhookSecret as string;
      expect(generated).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
      secrets.push(generated);
      expect(first.body).toMatchObject({ webhookUrl: PUBLIC_URL, webhookSecretConfigured: true, emailRecipients: ['ops@example.com'], rowVersion: 1, updatedBy: 'api-key:acme-rotator' });

      const read = await call(reader.key, 'GET', SETTINGS);
      expect(read.status).toBe(200);
      expect(read.body).toMatchObject({ webhookUrl: PUBLIC_URL, webhookSecretConfigured: true, webhookSecretCredentialId: first.body.webhookSecretCredentialId, rowVersion: 1 });
      expect(read.body).not.toHaveProperty('generatedWebhookSecret');
      expectNoSecret(read);

      const given = newSecret();
      const set = await call(rotator.key, 'PUT', SETTINGS, { webhookSecret: given, expectedRowVersion: 1 });
      expect(set.status).toBe(200);
      expect(set.body).toMatchObject({ webhookSecretConfigured: true, rowVersion: 2 });
      expect(set.body).not.toHaveProperty('generatedWebhookSecret');
      expectNoSecret(set);

      const stale = await call(rotator.key, 'PUT', SETTINGS, { generateWebhookSecret: true, expectedRowVersion: 1 });
      expect(stale.status).toBe(409);
      expect(stale.body.codeName).toBe('NOTIFICATION_SETTINGS_CONFLICT');
      expectNoSecret(stale);

      const again = await call(rotator.key, 'PUT', SETTINGS, { generateWebhookSecret: true, expectedRowVersion: 2 });
      expect(again.status).toBe(200);
      secrets.push(again.body.generatedWebhookSecret);
      expect(again.body.generatedWebhookSecret).not.toBe(generated);
      expect(again.body.rowVersion).toBe(3);
      expectNoSecret(await call(reader.key, 'GET', SETTINGS));

      const off = await call(rotator.key, 'PUT', SETTINGS, { webhookUrl: null, emailRecipients: [] });
      expect(off.status).toBe(200);
      expect(off.body).toMatchObject({ webhookUrl: null, emailRecipients: [], rowVersion: 4 });
      expect(off.body).not.toHaveProperty('generatedWebhookSecret');
    });

    it('are per tenant', async () => {
      const theirs = await call(other.key, 'GET', SETTINGS);
      expect(theirs.status).toBe(200);
      expect(theirs.body).toMatchObject({ tenantId: 'globex', webhookUrl: null, webhookSecretConfigured: false, rowVersion: 0 });
    });

    it('refuse bad input with a 400 that repeats none of it and changes nothing', async () => {
      const before = (await call(reader.key, 'GET', SETTINGS)).body;
      const notASecret = `whsec_${randomBytes(4).toString('hex')}`;
      const pastedSecret = newSecret();
      const bad: Array<[Record<string, unknown>, string[]]> = [
        [{ webhookUrl: 'http://127.0.0.1:8080/steal' }, ['127.0.0.1']],
        [{ webhookUrl: 'http://169.254.169.254/latest/meta-data' }, ['169.254.169.254']],
        [{ webhookUrl: 'ftp://files.example.com/drop' }, ['files.example.com']],
        [{ webhookSecret: notASecret }, [notASecret]],
        [{ webhookSecret: 'sk_live_not_a_whsec_value' }, ['sk_live_not_a_whsec_value']],
        [{ webhookSecret: pastedSecret, generateWebhookSecret: true }, []],
        [{ emailRecipients: ['ops@example.com', 'evil@example.com\r\nBcc: x@y.z'] }, ['evil@example.com']],
        [{ emailRecipients: Array.from({ length: 21 }, (_, i) => `a${i}@example.com`) }, ['a20@example.com']],
        [{ emailRecipients: 'ops@example.com' }, ['ops@example.com']],
        [{ expectedRowVersion: '4' }, []],
        [{ generateWebhookSecret: 'yes' }, []],
        [{ [pastedSecret]: true }, []],
        [{ webhookSecrt: pastedSecret }, []],
      ];
      for (const [body, echoes] of bad) {
        const r = await call(rotator.key, 'PUT', SETTINGS, body);
        expect({ body, status: r.status }).toEqual({ body, status: 400 });
        expect(r.body.statusCode).toBe(400);
        for (const e of echoes) expect(r.text).not.toContain(e);
        expectNoSecret(r);
      }
      expect((await call(reader.key, 'GET', SETTINGS)).body).toEqual(before);
    });
  });

  it('never puts a secret in a log line', () => {
    const logged = host.logs.join('\n');
    expect(secrets.length).toBeGreaterThan(0);
    for (const s of secrets) expect(logged).not.toContain(s);
  });
});
