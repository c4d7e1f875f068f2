import { randomBytes } from 'node:crypto';
import { AuditService } from '@app/audit';
import { WebhookSecretUpdaterRegistry, type WebhookSecretUpdate } from '@app/rotation';
import { DATABASE_KINDS } from '@app/testing';
import { Webhook } from 'standardwebhooks';
import { generateApiKey } from '../apps/api/src/auth/api-keys';
import { startTestHost, TestHost, ROTATION_JOBS_OFF } from './support/host';

/**
 * Notification settings over real HTTP (issue #12), on both databases: tenant-scoped, compare-and-set,
 * and the signing secret never in an answer except the one that generated it, nor in an error or a log.
 */
describe.each(DATABASE_KINDS)('rotation notifications HTTP API on %s', (kind) => {
  let host: TestHost;
  let base: string;
  const reader = generateApiKey('acme-reader', 'acme', ['rotation:read']);
  const rotator = generateApiKey('acme-rotator', 'acme', ['rotation:read', 'rotation:write']);
  const writer = generateApiKey('acme-writer', 'acme', ['credentials:read', 'credentials:write', 'credentials:revoke']);
  const auditor = generateApiKey('acme-auditor', 'acme', ['audit:read']);
  const other = generateApiKey('globex', 'globex', ['admin']);
  /** Every secret this file sent or received: none may show up where it should not. */
  const secrets: string[] = [];

  interface Answer {
    status: number;
    text: string;
    body: Record<string, any>;
    cacheControl: string | null;
  }
  const call = async (key: string | null, method: string, path: string, body?: unknown): Promise<Answer> => {
    const headers: Record<string, string> = {};
    if (key) headers['x-api-key'] = key;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(`${base}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    return { status: res.status, text, body: text ? JSON.parse(text) : {}, cacheControl: res.headers.get('cache-control') };
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
  // A public IP literal: allowed without a DNS lookup (the SSRF guard only resolves names). Nothing is
  // ever sent to it: this host runs with the webhook channel off (tests send traffic to loopback only).
  const PUBLIC_URL = 'https://93.184.215.14/hooks/credential-vault';

  beforeAll(async () => {
    host = await startTestHost(kind, {
      AUTH_API_KEYS: JSON.stringify([reader.entry, rotator.entry, writer.entry, auditor.entry, other.entry]),
      ...ROTATION_JOBS_OFF,
      NOTIFICATIONS_WEBHOOK_ENABLED: 'false',
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
      // An answer that carries a secret is never stored by a cache.
      expect(first.cacheControl).toBe('no-store');
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

    it('a signing secret credential deleted by hand is no secret: the settings say none, and a new one is generated or set', async () => {
      const first = await call(rotator.key, 'PUT', SETTINGS, { webhookUrl: PUBLIC_URL });
      expect(first.status).toBe(200);
      const oldId = first.body.webhookSecretCredentialId as string;
      if (first.body.generatedWebhookSecret) secrets.push(first.body.generatedWebhookSecret);
      // A credentials:write caller may delete it like any credential of the tenant (the connections screen, a batch).
      expect((await call(writer.key, 'DELETE', `/v1/credentials/${oldId}`)).status).toBe(204);
      const read = await call(reader.key, 'GET', SETTINGS);
      expect(read.body).toMatchObject({ webhookSecretConfigured: false, webhookSecretCredentialId: null });

      // It answered 404 naming the deleted credential, so the tenant could never sign its webhooks again.
      const generated = await call(rotator.key, 'PUT', SETTINGS, { generateWebhookSecret: true });
      expect(generated.status).toBe(200);
      secrets.push(generated.body.generatedWebhookSecret);
      expect(generated.body.generatedWebhookSecret).toMatch(/^whsec_/);
      const newId = generated.body.webhookSecretCredentialId as string;
      expect(newId).not.toBe(oldId);
      expect(generated.body.webhookSecretConfigured).toBe(true);
      expect((await call(writer.key, 'GET', `/v1/credentials/${newId}`)).status).toBe(200);

      expect((await call(writer.key, 'DELETE', `/v1/credentials/${newId}`)).status).toBe(204);
      const set = await call(rotator.key, 'PUT', SETTINGS, { webhookSecret: newSecret() });
      expect(set.status).toBe(200);
      expect(set.body.webhookSecretConfigured).toBe(true);
      expect((await call(writer.key, 'GET', `/v1/credentials/${set.body.webhookSecretCredentialId}`)).status).toBe(200);
      expectNoSecret(set);

      // A URL set again while none is left generates one, as a first URL does.
      expect((await call(writer.key, 'DELETE', `/v1/credentials/${set.body.webhookSecretCredentialId}`)).status).toBe(204);
      const url = await call(rotator.key, 'PUT', SETTINGS, { webhookUrl: `${PUBLIC_URL}/v2` });
      expect(url.status).toBe(200);
      expect(url.body.generatedWebhookSecret).toMatch(/^whsec_/);
      secrets.push(url.body.generatedWebhookSecret);
      expect((await call(rotator.key, 'PUT', SETTINGS, { webhookUrl: null })).status).toBe(200);
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
        // Port 0 (no destination: every delivery would fail), and characters the URL parser drops without a word
        // (tabs and line breaks anywhere, spaces and control characters around it): a URL other than the one sent.
        [{ webhookUrl: 'https://93.184.215.14:0/hooks' }, ['93.184.215.14']],
        [{ webhookUrl: 'https://93.184.2\t15.14/ho\noks' }, ['93.184']],
        [{ webhookUrl: 'https://93.184.215.14/hooks\u0000' }, ['93.184']],
        [{ webhookUrl: ' https://93.184.215.14/hooks ' }, ['93.184']],
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

  describe('webhook secrets', () => {
    const HOOKS = '/v1/rotation/webhooks/github/hooks-1';
    const payload = '{"type":"invoice.paid",  "id":"evt_1"}\n'; // exact bytes: whitespace kept, not re-serialised
    let first: string;
    const verify = async (key: string, headers: Record<string, string>, body: string | Buffer = payload, path = HOOKS) => {
      const res = await fetch(`${base}${path}/verify`, { method: 'POST', headers: { 'x-api-key': key, 'content-type': 'application/json', ...headers }, body });
      const text = await res.text();
      return { status: res.status, text, body: text ? JSON.parse(text) : {} } as Answer;
    };
    const signed = (secret: string, at = new Date(), msgId = `msg_${randomBytes(6).toString('hex')}`, body = payload) => ({
      'webhook-id': msgId,
      'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
      'webhook-signature': new Webhook(secret).sign(msgId, at, body),
    });

    it('creates the secret once and answers its value only then', async () => {
      expect((await call(reader.key, 'POST', `${HOOKS}/secret`, {})).status).toBe(403);
      const created = await call(rotator.key, 'POST', `${HOOKS}/secret`, {});
      expect(created.status).toBe(201);
      first = created.body.secret;
      expect(first).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
      expect(created.cacheControl).toBe('no-store');
      secrets.push(first);
      expect(created.body).toMatchObject({ integrationId: 'github', connectionId: 'hooks-1', type: 'webhook_secret', version: 1 });
      const again = await call(rotator.key, 'POST', `${HOOKS}/secret`, {});
      expect(again.status).toBe(409);
      expect(again.text).not.toContain('hooks-1');
      expectNoSecret(again);
      expect((await call(rotator.key, 'POST', '/v1/rotation/webhooks/git%20hub/hooks-2/secret', {})).status).toBe(400);
      expect((await call(rotator.key, 'POST', '/v1/rotation/webhooks/github/hooks-2/secret', { value: first })).status).toBe(400);
      const versions = await call(reader.key, 'GET', `${HOOKS}/versions`);
      expect(versions.status).toBe(200);
      expect(versions.body).toMatchObject({ credentialId: created.body.id, items: [{ version: 1, state: 'current' }] });
      expectNoSecret(versions);
      expect((await call(other.key, 'GET', `${HOOKS}/versions`)).status).toBe(404);
    });

    it('verifies the raw body and the three Standard Webhooks headers; a failure is a typed 4xx that repeats nothing', async () => {
      const ok = await verify(reader.key, signed(first));
      expect(ok.status).toBe(200);
      expect(ok.body).toMatchObject({ valid: true, version: 1 });
      // Any content type: the bytes are verified, never parsed.
      const plain = await fetch(`${base}${HOOKS}/verify`, { method: 'POST', headers: { 'x-api-key': reader.key, 'content-type': 'text/plain', ...signed(first, new Date(), 'msg_plain', 'not json') }, body: 'not json' });
      expect(plain.status).toBe(200);

      const headers = signed(first);
      const tampered = await verify(reader.key, headers, payload.replace('evt_1', 'evt_2'));
      expect(tampered.status).toBe(401);
      expect(tampered.body.codeName).toBe('WEBHOOK_SIGNATURE_MISMATCH');
      expect(tampered.text).not.toContain(headers['webhook-signature'].slice(3));
      expect(tampered.text).not.toContain('evt_2');
      expectNoSecret(tampered);

      const { 'webhook-signature': _sig, ...unsigned } = headers;
      const missing = await verify(reader.key, unsigned);
      expect(missing.status).toBe(400);
      expect(missing.body.codeName).toBe('WEBHOOK_MISSING_SIGNATURE');
      const old = await verify(reader.key, signed(first, new Date(Date.now() - 10 * 60_000)));
      expect(old.status).toBe(401);
      expect(old.body.codeName).toBe('WEBHOOK_TIMESTAMP_TOO_OLD');
      const forged = await verify(reader.key, signed(newSecret()));
      expect(forged.status).toBe(401);
      expectNoSecret(forged);

      expect((await verify(writer.key, signed(first))).status).toBe(403);
      expect((await verify(other.key, signed(first))).status).toBe(404);
      expect((await verify(reader.key, signed(first), payload, '/v1/rotation/webhooks/github/nobody')).status).toBe(404);
    });

    it('rotates in two phases through the updater; both secrets verify inside the overlap window', async () => {
      const none = await call(rotator.key, 'POST', `${HOOKS}/rotate`);
      expect(none.status).toBe(409);
      expect(none.body.codeName).toBe('WEBHOOK_UPDATER_NOT_REGISTERED');
      expect(none.text).not.toMatch(/github|hooks-1/);
      expect((await call(reader.key, 'GET', `${HOOKS}/versions`)).body.items).toHaveLength(1);
      expect((await call(reader.key, 'POST', `${HOOKS}/rotate`)).status).toBe(403);

      const pushed: WebhookSecretUpdate[] = [];
      const unregister = host.app.get(WebhookSecretUpdaterRegistry).register('github', { update: async (u) => void pushed.push(u) });
      try {
        const rotated = await call(rotator.key, 'POST', `${HOOKS}/rotate`);
        expect(rotated.status).toBe(200);
        expect(rotated.body).toMatchObject({ outcome: 'rotated', version: 2, previousVersion: 1 });
        expect(pushed).toHaveLength(1);
        const second = pushed[0].newSecret;
        secrets.push(second);
        expectNoSecret(rotated);

        expect((await verify(reader.key, signed(first))).body).toMatchObject({ valid: true, version: 1 });
        expect((await verify(reader.key, signed(second))).body).toMatchObject({ valid: true, version: 2 });
        const versions = await call(reader.key, 'GET', `${HOOKS}/versions`);
        expect(versions.body.items.map((v: { version: number; state: string }) => [v.version, v.state])).toEqual([
          [2, 'current'],
          [1, 'live'],
        ]);
        expectNoSecret(versions);
      } finally {
        unregister();
      }
    });

    // Rotated twice through the credentials route with no webhook between: the middle one was never seen here, and a
    // provider switched to it failed verification at once while the older one still verified.
    it('a secret rotated outside the two phases, twice between uses: every replaced one stays live for the overlap window', async () => {
      const hooks = '/v1/rotation/webhooks/github/hooks-plain';
      const created = await call(rotator.key, 'POST', `${hooks}/secret`, {});
      const original = created.body.secret as string;
      secrets.push(original);
      expect((await verify(reader.key, signed(original), payload, hooks)).status).toBe(200);
      const [middle, latest] = [newSecret(), newSecret()];
      for (const value of [middle, latest]) expect((await call(writer.key, 'POST', `/v1/credentials/${created.body.id}/rotate`, { value })).status).toBe(200);

      const verified = [];
      for (const s of [original, middle, latest]) verified.push((await verify(reader.key, signed(s), payload, hooks)).body);
      expect(verified).toEqual([1, 2, 3].map((version) => expect.objectContaining({ valid: true, version })));
      const versions = await call(reader.key, 'GET', `${hooks}/versions`);
      expect(versions.body.items.map((v: { version: number; state: string }) => [v.version, v.state])).toEqual([
        [3, 'current'],
        [2, 'live'],
        [1, 'live'],
      ]);
    });

    // A revoke withdrew v1 and v2; rotated twice since, outside the two phases. They never verified, but the pick-up
    // listed both as live (each read refused, audited as a denied read) and its audit row named neither change.
    it('a pick-up after a revoke gives no live row to a withdrawn version, and its audit row names the versions made live and retired', async () => {
      const hooks = '/v1/rotation/webhooks/github/hooks-revoked';
      const created = await call(rotator.key, 'POST', `${hooks}/secret`, {});
      const id = created.body.id as string;
      const [original, second, third, fourth] = [created.body.secret as string, newSecret(), newSecret(), newSecret()];
      secrets.push(original);
      expect((await verify(reader.key, signed(original), payload, hooks)).status).toBe(200);
      expect((await call(writer.key, 'POST', `/v1/credentials/${id}/rotate`, { value: second })).status).toBe(200);
      expect((await call(writer.key, 'POST', '/v1/rotation/revoke', { credentialId: id, reason: 'leaked' })).status).toBe(200);
      for (const value of [third, fourth]) expect((await call(writer.key, 'POST', `/v1/credentials/${id}/rotate`, { value })).status).toBe(200);

      const statuses = [];
      for (const s of [original, second, third, fourth]) statuses.push((await verify(reader.key, signed(s), payload, hooks)).status);
      expect(statuses).toEqual([401, 401, 200, 200]);
      const versions = await call(reader.key, 'GET', `${hooks}/versions`);
      expect(versions.body.items.map((v: { version: number; state: string }) => [v.version, v.state])).toEqual([
        [4, 'current'],
        [3, 'live'],
        [1, 'retired'],
      ]);
      await host.app.get(AuditService).flush();
      const audit = await call(auditor.key, 'GET', `/v1/audit?resource=${id}&action=webhook_secret.enrolled,read&limit=500`);
      expect(audit.status).toBe(200);
      const rows = audit.body.items as Array<{ action: string; result: string; details: Record<string, unknown> }>;
      expect(rows.filter((r) => r.action === 'webhook_secret.enrolled').map((r) => r.details)).toEqual([
        { version: 4, replacedVersion: 1, liveVersions: [3], retiredVersions: [1] },
        { version: 1, replacedVersion: null },
      ]);
      expect(rows.filter((r) => r.action === 'read' && r.result !== 'success')).toEqual([]);
      expectNoSecret(audit);
    });
  });

  it('publishes notification attempts on /metrics by channel and outcome, without tenant or credential labels', async () => {
    // The rotations above (the settings' signing secret, the webhook secret) raised notified events;
    // the outbox delivers them in the background.
    const sent = /^credential_vault_notifications_total\{channel="bus",outcome="sent"\} (\d+)/m;
    let text = '';
    for (let i = 0; i < 100 && !sent.test(text); i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, 100));
      text = await (await fetch(`${base}/metrics`)).text();
    }
    expect(text).toContain('# TYPE credential_vault_notifications_total counter');
    expect(Number(sent.exec(text)?.[1])).toBeGreaterThanOrEqual(1);
    const lines = text.split('\n').filter((l) => l.startsWith('credential_vault_notifications_total{'));
    for (const line of lines) expect(line).toMatch(/^credential_vault_notifications_total\{channel="[a-z_-]+",outcome="(sent|skipped|failed|given_up|refused|duplicate)"\} \d+$/);
    expect(text).not.toMatch(/acme|globex/);
  });

  it('never puts a secret in a log line', () => {
    const logged = host.logs.join('\n');
    expect(secrets.length).toBeGreaterThan(0);
    for (const s of secrets) expect(logged).not.toContain(s);
  });
});
