import { createHmac, randomBytes } from 'node:crypto';
import { resolvePersistenceOptions, type OutboxEvent } from '@app/common';
import { Webhook } from 'standardwebhooks';
import { buildNotification, notificationText } from './notification-message';
import { NotificationConfigurationError, NotificationSettingsInvalidError, NotificationTargetForbiddenError } from './notification.errors';
import { NOTIFICATION_EVENT_NAMES, notificationHostOptions, resolveNotificationOptions, retryDelayMs } from './notification.options';
import { assertPublicTarget, isPrivateAddress, parseWebhookUrl } from './notifiers/ssrf-guard';
import { standardWebhookHeaders } from './notifiers/standard-webhook-signature';

const event = (name: string, payload: Record<string, unknown>, tenantId: string | null = 'acme'): OutboxEvent => ({
  id: '6f9f3a4e-8d1b-4c55-9a2e-0d6c1f2b3a4c',
  name,
  tenantId,
  payload: payload as OutboxEvent['payload'],
  createdAt: new Date('2026-12-01T10:00:00Z'),
  attempts: 0,
});

describe('notification options', () => {
  it('defaults: every event, bus and webhook on, e-mail off, bounded retries, SSRF guard on', () => {
    const o = resolveNotificationOptions();
    expect(o.events).toEqual(NOTIFICATION_EVENT_NAMES);
    expect(o).toMatchObject({ enabled: true, bus: { enabled: true, eventName: 'rotation.notification' }, webhook: { enabled: true, allowPrivateTargets: false }, email: { enabled: false } });
    expect(o.retry).toEqual({ maxAttempts: 5, baseMs: 30_000, maxMs: 3_600_000, leaseMs: 60_000 });
    expect(() => resolveNotificationOptions({ retry: { leaseMs: 5000 } })).toThrow('retry.leaseMs: must exceed webhook.timeoutMs; retry.leaseMs: must exceed email.timeoutMs');
    // Cross-field checks still run when an unrelated option has the wrong type: one error, every problem.
    const mixed = () => resolveNotificationOptions({ retentionMs: 'long' as never, retry: { leaseMs: 5000 }, email: { enabled: true, port: 'smtp' as never } });
    expect(mixed).toThrow(/retentionMs[\s\S]*email\.port[\s\S]*email\.host: is required when e-mail is enabled; email\.from: is required when e-mail is enabled/);
    expect(mixed).toThrow('retry.leaseMs: must exceed webhook.timeoutMs; retry.leaseMs: must exceed email.timeoutMs');
    expect([o.retentionMs, o.pruneEveryMs]).toEqual([30 * 86_400_000, 600_000]);
    expect(o.mutedTypes).toEqual({ 'credential.rotated': ['oauth_access_token', 'oauth_refresh_token'] });
    expect(resolveNotificationOptions({ mutedTypes: {} }).mutedTypes).toEqual({});
    expect([1, 2, 3, 10].map((a) => retryDelayMs(o.retry, a))).toEqual([30_000, 60_000, 120_000, 3_600_000]);
  });

  it("refuses a sendWaitMs the dispatching outbox's handlerTimeoutMs cannot hold (with its headroom), in the one error", () => {
    const outbox = { outboxHandlerTimeoutMs: 10_000 };
    expect(resolveNotificationOptions({ sendWaitMs: 9000 }, outbox).sendWaitMs).toBe(9000);
    expect(resolveNotificationOptions({}, { outboxHandlerTimeoutMs: 2000 }).sendWaitMs).toBe(1000);
    let error: unknown;
    try {
      resolveNotificationOptions({ sendWaitMs: 10_000, retry: { maxAttempts: 0 } }, outbox);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(NotificationConfigurationError);
    expect((error as NotificationConfigurationError).problems).toEqual([
      expect.stringMatching(/^retry\.maxAttempts: /),
      expect.stringMatching(/^sendWaitMs: must be at least 1000 ms less than the outbox's handlerTimeoutMs \(PersistenceModule\)/),
    ]);
    expect(() => resolveNotificationOptions({}, { outboxHandlerTimeoutMs: 1999 })).toThrow(/sendWaitMs: must be at least 1000 ms less/);
    // Nothing to check without notifications, or in a process that does not dispatch the outbox.
    expect(resolveNotificationOptions({ enabled: false, sendWaitMs: 60_000 }, outbox).sendWaitMs).toBe(60_000);
    expect(notificationHostOptions(resolvePersistenceOptions({ outbox: { dispatch: false } }))).toBeUndefined();
    expect(notificationHostOptions(resolvePersistenceOptions({ outbox: { handlerTimeoutMs: 4000 } }))).toEqual({ outboxHandlerTimeoutMs: 4000 });
  });

  it('lists every problem in one error, without the values (the SMTP password stays out)', () => {
    let error: unknown;
    try {
      resolveNotificationOptions({ events: ['credential.nope' as never], retry: { maxAttempts: 0 }, email: { enabled: true, auth: { user: 'u', pass: 'hunter2-smtp-pass' } } });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(NotificationConfigurationError);
    const e = error as NotificationConfigurationError;
    expect(e.code).toBe(3201);
    expect(e.problems.map((p) => p.split(':')[0]).sort()).toEqual(['email.from', 'email.host', 'events.0', 'retry.maxAttempts']);
    expect(JSON.stringify(e) + e.message).not.toContain('hunter2');
  });
});

describe('buildNotification', () => {
  it('names credential, integration, connection, what happened and what to do, from allow-listed fields only', () => {
    const n = buildNotification(
      event('credential.expiring', {
        credentialId: 'c-1', tenantId: 'acme', integrationId: 'github', connectionId: 'org-1', type: 'api_key',
        expiresAt: '2026-12-15T00:00:00.000Z', thresholdDays: 14, value: 'sk_live_leak', token: 'tok_leak',
      }),
    )!;
    expect(n.subject).toBe('api_key for github/org-1 expires within 14 day(s)');
    expect(n.summary).toBe('Expires 2026-12-15T00:00:00.000Z: Credential c-1 (api_key) of integration "github" connection "org-1".');
    expect(n.action).toMatch(/Rotate the credential/);
    const text = notificationText(n) + JSON.stringify(n);
    expect(text).not.toMatch(/leak/);
    expect(n.facts).toEqual({ credentialId: 'c-1', integrationId: 'github', connectionId: 'org-1', type: 'api_key', expiresAt: '2026-12-15T00:00:00.000Z', thresholdDays: 14 });
  });

  it("a webhook secret due without an updater: says how to stage and activate in an embedding app too, not only on the reference host's routes", () => {
    const n = buildNotification(event('webhook_secret.rotation_due', { credentialId: 'c', tenantId: 'acme', integrationId: 'github', connectionId: 'org-1' }))!;
    expect(n.action).toMatch(/WebhookSecretsService\.stageConnection\(\).*activateConnection\(\)/);
    expect(n.action).toMatch(/reference host: POST \/v1\/rotation\/webhooks\/\{integration\}\/\{connection\}\/secret\/stage/);
  });

  it('has wording for every notifiable event; ignores other events and events without a tenant', () => {
    for (const name of NOTIFICATION_EVENT_NAMES) {
      const n = buildNotification(event(name, { credentialId: 'c', integrationId: 'i', connectionId: 'k', reason: 'leaked\nin chat', severity: 'critical' }))!;
      expect(n.subject.length).toBeGreaterThan(10);
      expect(n.action.length).toBeGreaterThan(10);
      expect(n.facts.reason).toBe('leaked in chat');
    }
    expect(buildNotification(event('credential.stored', { credentialId: 'c' }))).toBeNull();
    expect(buildNotification(event('credential.expired', { credentialId: 'c' }, null))).toBeNull();
    expect(buildNotification(event('credential.expired', { credentialId: 'c', tenantId: 'from-payload' }, null))!.tenantId).toBe('from-payload');
  });

  it('reads the payloads the rotation core and the webhook rotator write', () => {
    const failed = buildNotification(event('webhook_secret.rotation_failed', { credentialId: 'c', integrationId: 'gh', connectionId: 'app', rotationId: 'r', step: 'push', attempts: 3, error: 'WebhookUpdaterError(UPDATER_FAILED)' }))!;
    expect(failed.summary).toBe('Webhook secret rotation failed at step push (WebhookUpdaterError(UPDATER_FAILED)) after 3 attempt(s): Credential c of integration "gh" connection "app".');
    const due = buildNotification(event('credential.rotation_due', { credentialId: 'c', integrationId: 'gh', connectionId: 'k', type: 'api_key', version: 2, expiresAt: null, dueAt: '2026-11-30T00:00:00.000Z', action: 'x' } as never))!;
    expect(due.summary).toContain('since 2026-11-30T00:00:00.000Z');
    expect(buildNotification(event('credential.rotation_failed', { credentialId: 'c', type: 'api_key', error: 'RotationHandlerError' }))!.subject).toBe('Automatic rotation of api_key for c failed');
  });

  it('tells the operator to check the provider when a superseded push could not be repaired (the job does not retry it)', () => {
    const failed = buildNotification(event('webhook_secret.rotation_failed', { credentialId: 'c', integrationId: 'gh', connectionId: 'app', rotationId: 'r', step: 'repair', error: 'Error' }))!;
    expect(failed.summary).toBe('Webhook secret rotation failed at step repair (Error): Credential c of integration "gh" connection "app".');
    expect(failed.action).toContain('older secret');
    expect(failed.action).not.toContain('the job retries');
  });

  it('says when a revoke came again for a rotation that made the credential active during it', () => {
    const base = { credentialId: 'c', integrationId: 'gh', connectionId: 'k', type: 'api_key', reason: 'leaked', severity: 'high', actorId: 'user:ops' };
    const first = buildNotification(event('credential.revoked', { ...base, version: 1 }))!;
    expect([first.subject, first.summary]).toEqual(['api_key for gh/k was revoked (high)', 'Revoked (reason: leaked): Credential c (api_key) of integration "gh" connection "k".']);
    const again = buildNotification(event('credential.revoked', { ...base, version: 2, again: true, cause: 'rotated_during_revoke', revokedVersion: 1 }))!;
    expect(again.subject).toBe('api_key for gh/k was revoked again (high)');
    expect(again.summary).toBe('Revoked again — a rotation made version 2 active during the revoke of version 1 (reason: leaked): Credential c (api_key) of integration "gh" connection "k".');
    expect(again.facts).toMatchObject({ version: 2, cause: 'rotated_during_revoke', revokedVersion: 1, actorId: 'user:ops' });
  });

  it('drops malformed ids rather than forwarding them', () => {
    const n = buildNotification(event('credential.revoked', { credentialId: 'has space', integrationId: 'x'.repeat(200), reason: 'r'.repeat(500) }))!;
    expect(n.facts.credentialId).toBeUndefined();
    expect(n.facts.integrationId).toBeUndefined();
    expect(n.facts.reason).toHaveLength(200);
  });
});

describe('SSRF guard', () => {
  it.each(['127.0.0.1', '10.1.2.3', '172.16.0.1', '192.168.1.1', '169.254.169.254', '100.64.0.1', '0.0.0.0', '::1', '::', 'fe80::1', 'fd00::1', '::ffff:127.0.0.1', '224.0.0.1',
    // IPv4 inside IPv6 (IPv4-compatible, IPv4-translated, 6to4, NAT64 local-use, Teredo): a gateway may translate them.
    '::7f00:1', '::ffff:0:7f00:1', '2002:7f00:1::', '64:ff9b:1::a00:1', '2001:0:4136:e378:8000:63bf:3fff:fdd2'])(
    '%s is private',
    (ip) => expect(isPrivateAddress(ip)).toBe(true),
  );
  it.each(['8.8.8.8', '1.1.1.1', '2606:4700:4700::1111', '::ffff:8.8.8.8'])('%s is public', (ip) => expect(isPrivateAddress(ip)).toBe(false));

  it('accepts only http(s) URLs without user info; messages never quote the URL', () => {
    expect(parseWebhookUrl('https://hooks.example.com/x?y=1').hostname).toBe('hooks.example.com');
    expect(() => parseWebhookUrl('file:///etc/passwd')).toThrow(NotificationTargetForbiddenError);
    expect(() => parseWebhookUrl('gopher://example.com/')).toThrow(NotificationTargetForbiddenError);
    expect(() => parseWebhookUrl('https://user:pw-secret@example.com/')).toThrow(NotificationSettingsInvalidError);
    expect(() => parseWebhookUrl('not a url')).toThrow(NotificationSettingsInvalidError);
    try {
      parseWebhookUrl('https://user:pw-secret@example.com/');
    } catch (e) {
      expect((e as Error).message).not.toContain('pw-secret');
    }
  });

  it('refuses private targets by literal, by name and by what a name resolves to, unless allowed', async () => {
    const resolveTo = (address: string) => ((_h: string, _o: unknown, cb: (e: null, a: unknown) => void) => cb(null, [{ address, family: address.includes(':') ? 6 : 4 }])) as never;
    await expect(assertPublicTarget(new URL('http://127.0.0.1:8080/'), false)).rejects.toBeInstanceOf(NotificationTargetForbiddenError);
    await expect(assertPublicTarget(new URL('http://[::1]/'), false)).rejects.toBeInstanceOf(NotificationTargetForbiddenError);
    await expect(assertPublicTarget(new URL('http://[::ffff:127.0.0.1]/'), false)).rejects.toBeInstanceOf(NotificationTargetForbiddenError);
    await expect(assertPublicTarget(new URL('http://2130706433/'), false)).rejects.toBeInstanceOf(NotificationTargetForbiddenError);
    await expect(assertPublicTarget(new URL('http://localhost/'), false)).rejects.toBeInstanceOf(NotificationTargetForbiddenError);
    await expect(assertPublicTarget(new URL('https://internal.example/'), false, resolveTo('10.0.0.5'))).rejects.toBeInstanceOf(NotificationTargetForbiddenError);
    await expect(assertPublicTarget(new URL('https://hooks.example/'), false, resolveTo('93.184.216.34'))).resolves.toBeUndefined();
    await expect(assertPublicTarget(new URL('http://127.0.0.1/'), true)).resolves.toBeUndefined();
  });
});

describe('standardWebhookHeaders', () => {
  it('signs id.timestamp.body with the base64-decoded whsec_ key; the reference implementation verifies it', () => {
    const key = randomBytes(32);
    const secret = `whsec_${key.toString('base64')}`;
    const body = JSON.stringify({ type: 'credential.expired', data: { credentialId: 'c' } });
    const ts = Math.floor(Date.now() / 1000);
    const headers = standardWebhookHeaders(secret, 'evt_1', ts, body);
    const expected = createHmac('sha256', key).update(`evt_1.${ts}.${body}`).digest('base64');
    expect(headers).toEqual({ 'webhook-id': 'evt_1', 'webhook-timestamp': String(ts), 'webhook-signature': `v1,${expected}` });
    expect(new Webhook(secret).verify(body, headers)).toEqual(JSON.parse(body));
    expect(() => new Webhook(`whsec_${randomBytes(32).toString('base64')}`).verify(body, headers)).toThrow();
  });
});
