/**
 * Integration: the notifications on the real stack (CredentialsService against the local Key Vault
 * over HTTPS, AuditService, PersistenceModule's outbox dispatching, SQLite / PostgreSQL), a real SMTP
 * server (smtp-server) and a real HTTP receiver on 127.0.0.1. Events go through `Outbox.add`.
 */
import { createHmac, randomBytes, randomUUID as randomUUIDv4 } from 'node:crypto';
import { Logger } from '@nestjs/common';
import { EventEmitter2 } from '@nestjs/event-emitter';
import type { TestingModule } from '@nestjs/testing';
import { AuditService } from '@app/audit';
import { ManualClock, Outbox, OutboxHandlerRegistry, SystemClock, TransactionRunner, type OperationContext, type OutboxEvent } from '@app/common';
import { CredentialsService, CredentialType } from '@app/credentials';
import { KeyVaultEmulator } from '@app/keyvault-emulator';
import { CapturingLogger, createTestDatabase, DATABASE_KINDS, rejection, type TestDatabase, type TestDatabaseKind } from '@app/testing';
import { Webhook } from 'standardwebhooks';
import { DataSource } from 'typeorm';
import {
  EmailNotifier,
  NotificationCounters,
  NotificationDeliveryFailedError,
  NotificationDeliveryRepository,
  NotificationDeliveryPendingError,
  NotificationDeliveryStatus,
  NotificationDispatcher,
  NotificationSettingsConflictError,
  NotificationSettingsInvalidError,
  NotificationSettingsRepository,
  NotificationSettingsService,
  NotificationTargetForbiddenError,
  NotifierRegistry,
  resolveNotificationOptions,
  WebhookNotifier,
  type Notification,
  type NotificationOptions,
} from './index';
import { buildNotificationsApp } from './testing/notifications-app';
import { DrippingSmtpServer, parseMail, TestSmtpServer, TestWebhookReceiver, waitFor, type ReceivedWebhook } from './testing/receivers';

const options = (smtpPort: number): NotificationOptions => ({
  retry: { maxAttempts: 3, baseMs: 1, maxMs: 5 },
  webhook: { allowPrivateTargets: true, timeoutMs: 3000 }, // the receiver is on 127.0.0.1
  email: { enabled: true, host: '127.0.0.1', port: smtpPort, ignoreTLS: true, from: 'vault@example.test', timeoutMs: 5000 },
});

/** The signature a Standard Webhooks receiver computes, with node:crypto only. */
function expectedSignature(secret: string, w: ReceivedWebhook): string {
  const key = Buffer.from(secret.slice('whsec_'.length), 'base64');
  return `v1,${createHmac('sha256', key).update(`${w.headers['webhook-id']}.${w.headers['webhook-timestamp']}.${w.body}`).digest('base64')}`;
}

describe.each(DATABASE_KINDS)('notifications on %s', (kind: TestDatabaseKind) => {
  let emu: KeyVaultEmulator;
  let db: TestDatabase;
  let smtp: TestSmtpServer;
  let receiver: TestWebhookReceiver;
  let app: TestingModule;
  let settings: NotificationSettingsService;
  let runner: TransactionRunner;
  let outbox: Outbox;
  let deliveries: NotificationDeliveryRepository;
  let counters: NotificationCounters;
  const logger = new CapturingLogger();
  const bus: Notification[] = [];
  /** Every secret of the run: none may appear in a message, a row, an audit entry or a log line. */
  const secrets = new Set<string>();
  const run = randomBytes(3).toString('hex');
  const ctxOf = (t: string): OperationContext => ({ tenantId: `${t}_${run}`, actor: { id: 'user:alice' } });

  const emit = (ctx: OperationContext, name: string, payload: Record<string, string | number>): Promise<string> =>
    runner.run(() => outbox.add({ name, tenantId: ctx.tenantId, payload: { tenantId: ctx.tenantId, ...payload } }));
  const rowsOf = async (eventId: string) => Object.fromEntries((await deliveries.listForEvent(eventId)).map((r) => [r.channel, r]));
  const param = kind === 'postgres' ? '$1' : '?';
  /** The outbox has marked the event delivered (it does so once every handler and the bus have returned). */
  const outboxDelivered = async (eventId: string) => (await app.get(DataSource).query(`SELECT delivered_at FROM cv_outbox WHERE id = ${param}`, [eventId]))[0].delivered_at !== null;
  const mailsFor = (eventId: string) => smtp.messages.filter((m) => m.raw.includes(`<${eventId}.notification@credential-vault>`));
  const setUp = async (ctx: OperationContext, path: string) => {
    const r = await settings.update(ctx, { webhookUrl: `${receiver.url}${path}`, emailRecipients: [`ops-${ctx.tenantId}@example.test`] });
    secrets.add(r.generatedWebhookSecret!);
    return r.generatedWebhookSecret!;
  };

  beforeAll(async () => {
    Logger.overrideLogger(logger);
    emu = await KeyVaultEmulator.start({ quiet: true, throttle: false });
    db = await createTestDatabase(kind);
    smtp = await TestSmtpServer.start();
    receiver = await TestWebhookReceiver.start();
    receiver.respond = (r, n) => (r.path.startsWith('/down') ? 503 : r.path.startsWith('/flaky') && n === 1 ? 500 : 204);
    app = await buildNotificationsApp(db, emu, logger, options(smtp.port));
    settings = app.get(NotificationSettingsService);
    runner = app.get(TransactionRunner);
    outbox = app.get(Outbox);
    deliveries = app.get(NotificationDeliveryRepository);
    counters = app.get(NotificationCounters);
    app.get(EventEmitter2).on('rotation.notification', (n: Notification) => bus.push(n));
  });

  afterAll(async () => {
    await app?.close();
    await receiver?.close();
    await smtp?.close();
    await emu?.stop();
    await db?.drop();
    Logger.overrideLogger(new Logger());
  });

  it('settings: the signing secret is a webhook_secret credential, the row and the audit entry hold no secret and no full URL', async () => {
    const ctx = ctxOf('settings');
    const r = await settings.update(ctx, { webhookUrl: `${receiver.url}/hooks/t0k3n-in-path?sig=q`, emailRecipients: ['Ops@Example.test', 'ops@example.test', 'sec@example.test'] });
    secrets.add(r.generatedWebhookSecret!);
    expect(r.generatedWebhookSecret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(r.settings).toMatchObject({ tenantId: ctx.tenantId, webhookSecretConfigured: true, emailRecipients: ['ops@example.test', 'sec@example.test'], rowVersion: 1 });
    expect(await settings.getWebhookSecret(ctx)).toBe(r.generatedWebhookSecret);
    const meta = await app.get(CredentialsService).getMetadata(ctx, r.settings.webhookSecretCredentialId!);
    expect(meta).toMatchObject({ type: CredentialType.WEBHOOK_SECRET, integrationId: 'credential-vault', connectionId: 'notifications-webhook' });

    const audit = await app.get(AuditService).query({ tenantId: ctx.tenantId, action: 'notification_settings_change' });
    expect(audit.items).toHaveLength(1);
    expect(audit.items[0].details).toMatchObject({ changed: ['webhookUrl', 'webhookSecret', 'emailRecipients'], webhookOrigin: receiver.url, emailRecipientCount: 2 });

    // A new secret rotates the same credential; a stale rowVersion and bad input change nothing.
    const mine = `whsec_${randomBytes(24).toString('base64')}`;
    secrets.add(mine);
    const r2 = await settings.update(ctx, { webhookSecret: mine, expectedRowVersion: 1 });
    expect(r2.generatedWebhookSecret).toBeUndefined();
    expect(r2.settings.webhookSecretCredentialId).toBe(r.settings.webhookSecretCredentialId);
    expect(await settings.getWebhookSecret(ctx)).toBe(mine);
    expect(await rejection(settings.update(ctx, { emailRecipients: [], expectedRowVersion: 1 }))).toBeInstanceOf(NotificationSettingsConflictError);
    expect(await rejection(settings.update(ctx, { emailRecipients: ['a@b.example', 'x <y@z.example>'] }))).toBeInstanceOf(NotificationSettingsInvalidError);
    expect(await rejection(settings.update(ctx, { webhookUrl: 'ftp://example.com/' }))).toBeInstanceOf(NotificationTargetForbiddenError);
    expect((await settings.get(ctx)).rowVersion).toBe(2);
  });

  it('settings: a save that changes nothing writes nothing (same rowVersion, no audit entry); one that changes a field audits that field only', async () => {
    const ctx = ctxOf('settings-unchanged');
    const auditRows = async () => (await app.get(AuditService).query({ tenantId: ctx.tenantId, action: 'notification_settings_change' })).items;
    // Nothing stored yet, and nothing asked for: still none.
    expect((await settings.update(ctx, { webhookUrl: null, emailRecipients: [] })).settings).toMatchObject({ rowVersion: 0, updatedAt: null });
    expect(await auditRows()).toHaveLength(0);
    const first = await settings.update(ctx, { webhookUrl: `${receiver.url}/unchanged`, emailRecipients: ['ops@example.test'] });
    secrets.add(first.generatedWebhookSecret!);
    const stored = await settings.get(ctx);
    // The same values again (the address as given before it was lower-cased), with and without a compare-and-set.
    for (const input of [
      { webhookUrl: `${receiver.url}/unchanged`, emailRecipients: ['Ops@Example.test'] },
      { webhookUrl: `${receiver.url}/unchanged`, expectedRowVersion: 1 },
      { emailRecipients: ['ops@example.test', 'OPS@example.test'] },
      {},
    ]) {
      const again = await settings.update(ctx, input);
      expect({ input, settings: again.settings, generated: again.generatedWebhookSecret }).toEqual({ input, settings: stored, generated: undefined });
    }
    expect(await settings.get(ctx)).toEqual(stored);
    expect(await auditRows()).toHaveLength(1);
    // A stale compare-and-set is still refused, changed or not.
    expect(await rejection(settings.update(ctx, { emailRecipients: ['ops@example.test'], expectedRowVersion: 0 }))).toBeInstanceOf(NotificationSettingsConflictError);
    // One field of two changed: the entry names that one.
    const changed = await settings.update(ctx, { webhookUrl: `${receiver.url}/unchanged`, emailRecipients: ['sec@example.test'] });
    expect(changed.settings.rowVersion).toBe(2);
    const rows = await auditRows();
    expect(rows).toHaveLength(2);
    expect(rows.map((r) => r.details?.changed)).toContainEqual(['emailRecipients']);
  });

  it('an e-mail recipient holding a control character (NUL, C0, DEL, C1) or a lone surrogate is refused and nothing is stored; accented and astral ones are kept', async () => {
    const ctx = ctxOf('settings-email-text');
    await settings.update(ctx, { emailRecipients: ['ops@example.test'] });
    for (const bad of ['a\u0000b@example.test', '\u0000@example.test', 'a\u0001@example.test', 'a\u007f@example.test', 'a\u0085@example.test', 'a\ud800@example.test', '\udc00x@example.test']) {
      expect({ bad, error: await rejection(settings.update(ctx, { emailRecipients: ['sec@example.test', bad] })) }).toEqual({ bad, error: expect.any(NotificationSettingsInvalidError) });
    }
    expect(await settings.get(ctx)).toMatchObject({ emailRecipients: ['ops@example.test'], rowVersion: 1 });
    const kept = await settings.update(ctx, { emailRecipients: ['zoë@example.test', '\u{1F600}ops@example.test'] });
    expect(kept.settings.emailRecipients).toEqual(['zoë@example.test', '\u{1F600}ops@example.test']);
  });

  it('concurrent updates: a stale one writes nothing (no secret rotated), unconditional ones apply one after another', async () => {
    const ctx = ctxOf('settings-race');
    const first = await settings.update(ctx, { webhookUrl: `${receiver.url}/settings-race` });
    secrets.add(first.generatedWebhookSecret!);
    const id = first.settings.webhookSecretCredentialId!;
    const credentials = app.get(CredentialsService);
    const results = await Promise.allSettled(Array.from({ length: 6 }, () => settings.update(ctx, { generateWebhookSecret: true, expectedRowVersion: 1 })));
    const won = results.filter((r): r is PromiseFulfilledResult<Awaited<ReturnType<typeof settings.update>>> => r.status === 'fulfilled');
    expect(won).toHaveLength(1);
    for (const r of results) if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(NotificationSettingsConflictError);
    const handedOut = won[0].value.generatedWebhookSecret!;
    secrets.add(handedOut);
    // The secret the winner was given is the one that signs, and the losers rotated nothing.
    expect(await settings.getWebhookSecret(ctx)).toBe(handedOut);
    expect((await credentials.getMetadata(ctx, id)).version).toBe(2);
    // Without expectedRowVersion none is refused: each applies on top of the last.
    const unconditional = await Promise.all(Array.from({ length: 4 }, (_, i) => settings.update(ctx, { emailRecipients: [`ops${i}@example.test`] })));
    expect(unconditional.map((u) => u.settings.rowVersion).sort()).toEqual([3, 4, 5, 6]);
  });

  it('an expiring credential reaches the bus, the signed webhook and the SMTP server — once each, also when the outbox redelivers it', async () => {
    const ctx = ctxOf('acme');
    const secret = await setUp(ctx, '/acme');
    const value = `sk_live_${randomBytes(16).toString('hex')}`;
    secrets.add(value);
    const cred = await app.get(CredentialsService).store(ctx, { integrationId: 'github', connectionId: 'org-1', type: CredentialType.API_KEY, value });
    const expiresAt = new Date(Date.now() + 14 * 86_400_000).toISOString();
    // A slower handler of the same event: the outbox marks it delivered well after its notifications are.
    const offSlow = app.get(OutboxHandlerRegistry).register('credential.expiring', () => new Promise((r) => setTimeout(r, 100)));
    try {
      const eventId = await emit(ctx, 'credential.expiring', { credentialId: cred.id, integrationId: 'github', connectionId: 'org-1', type: 'api_key', expiresAt, thresholdDays: 14 });

      await waitFor(async () => Object.values(await rowsOf(eventId)).filter((r) => r.status === NotificationDeliveryStatus.DELIVERED).length === 3, 'three deliveries');
      // Webhook: verified by the test with node:crypto, and by the reference implementation.
      const [hook] = receiver.on('/acme');
      expect(receiver.on('/acme')).toHaveLength(1);
      expect(hook.headers['webhook-id']).toBe(eventId);
      expect(Math.abs(Number(hook.headers['webhook-timestamp']) - Date.now() / 1000)).toBeLessThan(60);
      expect(hook.headers['webhook-signature']).toBe(expectedSignature(secret, hook));
      const verified = new Webhook(secret).verify(hook.body, hook.headers as Record<string, string>) as { type: string; data: Record<string, unknown> };
      expect(verified).toMatchObject({ type: 'credential.expiring', data: { eventId, tenantId: ctx.tenantId, credentialId: cred.id, integrationId: 'github', connectionId: 'org-1', type: 'api_key', thresholdDays: 14 } });
      expect(() => new Webhook(`whsec_${randomBytes(32).toString('base64')}`).verify(hook.body, hook.headers as Record<string, string>)).toThrow();
      // E-mail: subject and body name the credential, integration, connection and what to do.
      const [mail] = mailsFor(eventId);
      expect(mailsFor(eventId)).toHaveLength(1);
      expect(mail.to).toEqual([`ops-${ctx.tenantId}@example.test`]);
      const { headers, text } = parseMail(mail.raw);
      expect(headers.subject).toBe('[Credential Vault] api_key for github/org-1 expires within 14 day(s)');
      expect(text).toContain(`Credential ${cred.id} (api_key) of integration "github" connection "org-1"`);
      expect(text).toContain(`Expires ${expiresAt}`);
      expect(text).toContain('What to do: Rotate the credential');
      // Bus.
      expect(bus.filter((n) => n.eventId === eventId)).toEqual([expect.objectContaining({ event: 'credential.expiring', tenantId: ctx.tenantId, facts: expect.objectContaining({ credentialId: cred.id }) })]);

      // The outbox delivers the same event again (as after a crash before marking it delivered). Its first
      // delivery must be over: reset earlier, that delivery's own "delivered" write would land after the reset.
      await waitFor(() => outboxDelivered(eventId), 'the first delivery to finish');
      const before = counters.get('webhook', 'duplicate');
      await app.get(DataSource).query(`UPDATE cv_outbox SET delivered_at = NULL, available_at = 0 WHERE id = ${param}`, [eventId]);
      await waitFor(() => counters.get('webhook', 'duplicate') > before, 'the redelivery');
      await waitFor(() => outboxDelivered(eventId), 'delivered again');
      const direct = await app.get(NotificationDispatcher).handle({ id: eventId, name: 'credential.expiring', tenantId: ctx.tenantId, payload: { credentialId: cred.id }, createdAt: new Date(), attempts: 3 } as OutboxEvent);
      expect(direct.map((r) => [r.channel, r.status, r.now]).sort()).toEqual([['bus', 'delivered', false], ['email', 'delivered', false], ['webhook', 'delivered', false]]);
      expect(receiver.on('/acme')).toHaveLength(1);
      expect(mailsFor(eventId)).toHaveLength(1);
      expect(bus.filter((n) => n.eventId === eventId)).toHaveLength(1);
    } finally {
      offSlow();
    }
  });

  it('deliveries racing on one event (replicas, a redelivery during a slow send) send once per channel', async () => {
    const ctx = ctxOf('race');
    await setUp(ctx, '/race');
    const event = (id: string): OutboxEvent => ({
      id, name: 'credential.unrevoked', tenantId: ctx.tenantId, createdAt: new Date(), attempts: 0,
      payload: { credentialId: 'c-r', integrationId: 'jira', connectionId: 'site-1', type: 'api_key', reason: 'false alarm' },
    });
    // Another replica on the same database (PostgreSQL); on SQLite the same process races itself.
    const other = kind === 'postgres' ? await buildNotificationsApp(db, emu, logger, options(smtp.port)) : app;
    // Whichever replica wins the bus channel's claim emits on its own bus: listen on both.
    if (other !== app) other.get(EventEmitter2).on('rotation.notification', (n: Notification) => bus.push(n));
    try {
      const id = randomBytes(16).toString('hex').replace(/^(.{8})(.{4})(.{4})(.{4})(.{12})$/, '$1-$2-$3-$4-$5');
      const dispatchers = [app, other, app, other].map((m) => m.get(NotificationDispatcher));
      const results = await Promise.allSettled(dispatchers.map((d) => d.handle(event(id))));
      // A loser of some channel's claim asks the outbox to come back later; nothing else fails.
      for (const r of results) if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(NotificationDeliveryPendingError);
      await waitFor(async () => Object.values(await rowsOf(id)).every((r) => r.status === NotificationDeliveryStatus.DELIVERED), 'all delivered');
      await Promise.all(dispatchers.map((d) => d.handle(event(id))));
      expect(receiver.on('/race')).toHaveLength(1);
      expect(mailsFor(id)).toHaveLength(1);
      expect(bus.filter((n) => n.eventId === id)).toHaveLength(1);
      expect(Object.values(await rowsOf(id)).map((r) => r.attempts)).toEqual([1, 1, 1]);
    } finally {
      if (other !== app) await other.close();
    }
  });

  it("a tenant's hanging receiver does not hold up another tenant's notifications (the send finishes in the background)", async () => {
    const slow = ctxOf('hang');
    const fast = ctxOf('prompt');
    await setUp(slow, '/hang');
    await setUp(fast, '/prompt');
    receiver.respond = (r, n) => (r.path.startsWith('/hang') ? null : r.path.startsWith('/down') ? 503 : r.path.startsWith('/flaky') && n === 1 ? 500 : 204);
    // Queued first: two events whose webhooks hang for the whole timeout (3 s each), one after the other.
    const hanging: string[] = [];
    for (const id of ['c-h1', 'c-h2']) hanging.push(await emit(slow, 'credential.revoked', { credentialId: id, integrationId: 'stripe', connectionId: id, type: 'api_key', reason: 'leak', severity: 'critical' }));
    const queuedAt = Date.now();
    const eventId = await emit(fast, 'credential.revoked', { credentialId: 'c-p', integrationId: 'stripe', connectionId: 'acct', type: 'api_key', reason: 'leak', severity: 'critical' });
    await waitFor(() => receiver.on('/prompt').length === 1, "the other tenant's webhook", 15_000);
    // Each hanging send held the outbox for sendWaitMs (1 s), not for its 3 s timeout.
    expect(Date.now() - queuedAt).toBeLessThan(4500);
    await waitFor(() => outboxDelivered(eventId), 'the outbox event delivered');
    await waitFor(async () => receiver.on('/hang').length >= 2, 'the hanging sends made');
    // The receiver recovers: the timed-out sends are retried and delivered (and leave no event pending for the next tests).
    receiver.respond = (r, n) => (r.path.startsWith('/down') ? 503 : r.path.startsWith('/flaky') && n === 1 ? 500 : 204);
    for (const id of hanging) await waitFor(() => outboxDelivered(id), 'the slow tenant delivered once its receiver answers');
  });

  it('a send that ends in the background while the outbox reads its row is retried at once, not after the lease that row still showed', async () => {
    const ctx = ctxOf('lapse');
    await setUp(ctx, '/lapse');
    receiver.respond = (r, n) => (r.path.startsWith('/lapse') && n === 1 ? null : r.path.startsWith('/down') ? 503 : r.path.startsWith('/flaky') && n === 1 ? 500 : 204);
    // The outbox's read of the webhook row, made while the first send hangs in the background, answers only after that
    // send has timed out (3 s) and recorded its failure: the row it read still shows the attempt's lease (60 s).
    const find = deliveries.find.bind(deliveries);
    const recordFailure = deliveries.recordFailure.bind(deliveries);
    let recorded!: () => void;
    const failureRecorded = new Promise<void>((r) => (recorded = r));
    let held = false;
    const restore = () => Object.assign(deliveries, { find, recordFailure });
    Object.assign(deliveries, {
      recordFailure: async (...args: Parameters<typeof recordFailure>) => {
        await recordFailure(...args);
        if (args[0].channel === 'webhook') recorded();
      },
      find: async (key: Parameters<typeof find>[0]) => {
        const row = await find(key);
        if (held || key.channel !== 'webhook' || receiver.on('/lapse').length !== 1 || row?.attempts !== 1) return row;
        held = true;
        await failureRecorded;
        await new Promise((r) => setTimeout(r, 50)); // the background send's bookkeeping is over
        return row;
      },
    });
    try {
      const eventId = await emit(ctx, 'credential.revoked', { credentialId: 'c-l', integrationId: 'stripe', connectionId: 'lapse', type: 'api_key', reason: 'leak', severity: 'critical' });
      await waitFor(() => held, 'a read held across the background send');
      await failureRecorded;
      // Retried within the outbox's own backoff (10–50 ms here), not deferred to the lease's end.
      await waitFor(() => outboxDelivered(eventId), 'the retried webhook delivered', 10_000);
      expect(receiver.on('/lapse')).toHaveLength(2);
    } finally {
      restore();
    }
  });

  it('a failing receiver is retried with backoff, then given up and recorded; e-mail and bus are not held back', async () => {
    const ctx = ctxOf('down');
    await setUp(ctx, '/down');
    const givenUpBefore = counters.get('webhook', 'given_up');
    const duplicatesBefore = ['bus', 'email'].map((c) => counters.get(c, 'duplicate'));
    const eventId = await emit(ctx, 'credential.revoked', { credentialId: 'c-9', integrationId: 'stripe', connectionId: 'acct-1', type: 'api_key', reason: 'leaked in a ticket', severity: 'critical' });
    await waitFor(async () => (await rowsOf(eventId)).webhook?.status === NotificationDeliveryStatus.GIVEN_UP, 'the webhook to be given up');
    const rows = await rowsOf(eventId);
    expect(rows.webhook).toMatchObject({ attempts: 3, lastError: 'NotificationDeliveryFailedError(NOTIFICATION_DELIVERY_FAILED): http 503' });
    expect(rows.webhook.finishedAt).not.toBeNull();
    expect(rows.email.status).toBe(NotificationDeliveryStatus.DELIVERED);
    expect(rows.bus.status).toBe(NotificationDeliveryStatus.DELIVERED);
    expect(rows.email.finishedAt!.getTime()).toBeLessThanOrEqual(rows.webhook.finishedAt!.getTime());
    const attempts = receiver.on('/down');
    expect(attempts).toHaveLength(3);
    expect(new Set(attempts.map((a) => a.headers['webhook-id']))).toEqual(new Set([eventId]));
    expect(counters.get('webhook', 'given_up')).toBe(givenUpBefore + 1);
    expect(parseMail(mailsFor(eventId)[0].raw).headers.subject).toBe('[Credential Vault] api_key for stripe/acct-1 was revoked (critical)');
    // Given up is final: the outbox row is delivered and nothing is sent again.
    await waitFor(() => outboxDelivered(eventId), 'outbox delivered');
    await new Promise((r) => setTimeout(r, 200));
    expect(receiver.on('/down')).toHaveLength(3);
    // The outbox came back for the webhook's retries, not with a duplicate: the done channels sent nothing twice.
    expect(['bus', 'email'].map((c) => counters.get(c, 'duplicate'))).toEqual(duplicatesBefore);
    // It came back once per retry, when the channel was due (the channel's wait is the outbox's), and left the
    // warnings to the channel: one per failed attempt, none for the redeliveries (a wait is no failure).
    expect((await app.get(DataSource).query(`SELECT attempts FROM cv_outbox WHERE id = ${param}`, [eventId]))[0].attempts).toBe(2);
    const logged = logger.lines.filter((l) => l.includes(eventId) && /^(warn|error) /.test(l));
    expect(logged).toEqual([
      expect.stringMatching(/^warn Notification \S+ \(credential\.revoked\) on webhook failed: attempt 1\/3, .*http 503; retry in \d+ ms/),
      expect.stringMatching(/^warn Notification \S+ \(credential\.revoked\) on webhook failed: attempt 2\/3, .*http 503; retry in \d+ ms/),
      expect.stringMatching(/^error Notification \S+ \(credential\.revoked\) for tenant \S+ on webhook given up, retries exhausted/),
    ]);
    expect(logger.lines.some((l) => l.includes(`Notification ${eventId} (credential.revoked)`) && l.includes('given up') && l.includes('http 503'))).toBe(true);
  });

  it('an SMTP server refusing the recipient for good (550) gives the e-mail up at once, counted as refused and logged once; the webhook and the bus are delivered', async () => {
    const ctx = ctxOf('bounce');
    const r = await settings.update(ctx, { webhookUrl: `${receiver.url}/bounce`, emailRecipients: ['nobody@reject.example'] });
    secrets.add(r.generatedWebhookSecret!);
    const before = { refused: counters.get('email', 'refused'), givenUp: counters.get('email', 'given_up'), failed: counters.get('email', 'failed') };
    const eventId = await emit(ctx, 'credential.expired', { credentialId: 'c-b', integrationId: 'aws', connectionId: 'prod', type: 'api_key' });
    await waitFor(async () => (await rowsOf(eventId)).email?.status === NotificationDeliveryStatus.GIVEN_UP, 'the e-mail to be given up');
    await waitFor(() => outboxDelivered(eventId), 'outbox delivered');
    const rows = await rowsOf(eventId);
    // The same final state as after the attempts ran out, after one attempt.
    expect(rows.email).toMatchObject({ attempts: 1, lastError: 'NotificationDeliveryFailedError(NOTIFICATION_DELIVERY_FAILED): smtp 550' });
    expect([rows.webhook.status, rows.bus.status]).toEqual(['delivered', 'delivered']);
    expect(receiver.on('/bounce')).toHaveLength(1);
    expect(mailsFor(eventId)).toHaveLength(0);
    expect({ refused: counters.get('email', 'refused'), givenUp: counters.get('email', 'given_up'), failed: counters.get('email', 'failed') }).toEqual({ ...before, refused: before.refused + 1 });
    const logged = logger.lines.filter((l) => l.includes(`Notification ${eventId} `) && l.includes(' on email '));
    expect(logged).toEqual([expect.stringMatching(/^error .*given up, refused permanently, not retried: NotificationDeliveryFailedError\(NOTIFICATION_DELIVERY_FAILED\): smtp 550\b/)]);
  });

  it('a webhook refused for good (404, 410, 401, a redirect) is given up at once; 408 and 429 are retried, and so is an SMTP 4xx (greylisting)', async () => {
    const answer = receiver.respond;
    const refusals: Record<string, number | { status: number; headers: Record<string, string> }> = {
      '/refused-404': 404,
      '/refused-410': 410,
      '/refused-401': 401,
      '/refused-301': { status: 301, headers: { location: 'http://127.0.0.1:9/elsewhere' } },
    };
    receiver.respond = (req, n) => refusals[req.path] ?? (req.path === '/later-408' || req.path === '/later-429' ? (n === 1 ? Number(req.path.slice(-3)) : 204) : answer(req, n));
    const refusedBefore = counters.get('webhook', 'refused');
    const givenUpBefore = counters.get('webhook', 'given_up');
    try {
      const sent = async (path: string, emailRecipients: string[] = []) => {
        const ctx = ctxOf(path.slice(1));
        const r = await settings.update(ctx, { webhookUrl: `${receiver.url}${path}`, emailRecipients });
        secrets.add(r.generatedWebhookSecret!);
        return emit(ctx, 'credential.revoked', { credentialId: `c${path.replace(/\W/g, '-')}`, integrationId: 'stripe', connectionId: 'acct', type: 'api_key', reason: 'leak' });
      };
      const refused = await Promise.all(Object.keys(refusals).map(async (path) => [path, await sent(path)] as const));
      const later = await Promise.all(['/later-408', '/later-429'].map(async (path) => [path, await sent(path)] as const));
      const greylisted = await sent('/greylisted', [`ops-${run}@greylist.example`]);
      for (const [path, eventId] of refused) {
        await waitFor(() => outboxDelivered(eventId), `the event of ${path} delivered`);
        expect((await rowsOf(eventId)).webhook).toMatchObject({ status: 'given_up', attempts: 1, lastError: `NotificationDeliveryFailedError(NOTIFICATION_DELIVERY_FAILED): http ${path.slice(-3)}` });
        expect(receiver.on(path)).toHaveLength(1);
      }
      expect(counters.get('webhook', 'refused')).toBe(refusedBefore + 4);
      expect(counters.get('webhook', 'given_up')).toBe(givenUpBefore);
      for (const [path, eventId] of later) {
        await waitFor(() => outboxDelivered(eventId), `the event of ${path} delivered`);
        expect((await rowsOf(eventId)).webhook).toMatchObject({ status: 'delivered', attempts: 2, lastError: `NotificationDeliveryFailedError(NOTIFICATION_DELIVERY_FAILED): http ${path.slice(-3)}` });
        expect(receiver.on(path)).toHaveLength(2);
      }
      await waitFor(() => outboxDelivered(greylisted), 'the greylisted e-mail delivered');
      expect((await rowsOf(greylisted)).email).toMatchObject({ status: 'delivered', attempts: 2, lastError: 'NotificationDeliveryFailedError(NOTIFICATION_DELIVERY_FAILED): smtp 451' });
      expect(mailsFor(greylisted)).toHaveLength(1);
    } finally {
      receiver.respond = answer;
    }
  });

  it('a receiver that fails once gets the event on the next attempt', async () => {
    const ctx = ctxOf('flaky');
    await setUp(ctx, '/flaky');
    const eventId = await emit(ctx, 'credential.rotation_due', { credentialId: 'c-3', integrationId: 'slack', connectionId: 'ws-1', type: 'oauth_refresh_token' });
    await waitFor(async () => (await rowsOf(eventId)).webhook?.status === NotificationDeliveryStatus.DELIVERED, 'the webhook delivered');
    expect((await rowsOf(eventId)).webhook).toMatchObject({ attempts: 2, lastError: 'NotificationDeliveryFailedError(NOTIFICATION_DELIVERY_FAILED): http 500' });
    expect(receiver.on('/flaky')).toHaveLength(2);
    expect(mailsFor(eventId)).toHaveLength(1);
  });

  it('a receiver that answers 2xx and then never finishes its body has the notification: delivered once, at its status', async () => {
    const ctx = ctxOf('slowbody');
    await setUp(ctx, '/slowbody');
    const answer = receiver.respond;
    receiver.respond = (r, n) => (r.path === '/slowbody' ? { status: 200, drip: true } : answer(r, n));
    try {
      const eventId = await emit(ctx, 'credential.expired', { credentialId: 'c-s', integrationId: 'aws', connectionId: 'prod', type: 'api_key' });
      await waitFor(async () => [NotificationDeliveryStatus.DELIVERED, NotificationDeliveryStatus.GIVEN_UP].includes((await rowsOf(eventId)).webhook?.status as NotificationDeliveryStatus), 'the webhook channel to finish', 20_000);
      expect((await rowsOf(eventId)).webhook).toMatchObject({ status: NotificationDeliveryStatus.DELIVERED, attempts: 1 });
      expect(receiver.on('/slowbody')).toHaveLength(1);
    } finally {
      receiver.respond = answer;
    }
  });

  it('an SMTP server that drips its answers is cut off at email.timeoutMs, so the send neither outlives its lease nor holds shutdown', async () => {
    const drip = await DrippingSmtpServer.start();
    const opts = resolveNotificationOptions({
      retry: { leaseMs: 1500 },
      webhook: { timeoutMs: 1000 },
      email: { enabled: true, host: '127.0.0.1', port: drip.port, ignoreTLS: true, from: 'vault@example.test', timeoutMs: 1000 },
    });
    const mailer = new EmailNotifier(opts, app.get(NotificationSettingsRepository));
    try {
      const ctx = ctxOf('drip');
      await setUp(ctx, '/drip');
      const n = { eventId: randomUUIDv4(), event: 'credential.expired', tenantId: ctx.tenantId, occurredAt: new Date(), subject: 's', summary: 's', action: 'a', facts: {} } as Notification;
      const started = Date.now();
      // Past its lease, another attempt would claim the channel and send the same e-mail alongside.
      const outcome = await Promise.race([rejection(mailer.send(n)), new Promise<string>((r) => setTimeout(() => r('still sending after the lease'), opts.retry.leaseMs + 500))]);
      expect(outcome).toBeInstanceOf(NotificationDeliveryFailedError);
      expect(outcome).toMatchObject({ channel: 'email', reason: 'timeout' });
      expect(Date.now() - started).toBeLessThan(opts.retry.leaseMs);
      await waitFor(() => drip.open.size === 0, 'the connection closed by the sender', 3000);
      expect(drip.maxOpen).toBe(1);
    } finally {
      mailer.onModuleDestroy();
      await drip.close();
    }
  });

  it('a tenant without settings: webhook and e-mail are skipped, the bus still notifies; events not in the list or muted notify nobody', async () => {
    const ctx = ctxOf('bare');
    const eventId = await emit(ctx, 'credential.expired', { credentialId: 'c-5', integrationId: 'x', connectionId: 'y' });
    await waitFor(async () => Object.keys(await rowsOf(eventId)).length === 3 && Object.values(await rowsOf(eventId)).every((r) => r.status !== 'pending'), 'all channels');
    const rows = await rowsOf(eventId);
    expect([rows.bus.status, rows.webhook.status, rows.email.status]).toEqual(['delivered', 'skipped', 'skipped']);
    // Not a notifiable event; an OAuth token rotated by a refresh (muted by default).
    for (const other of [
      await emit(ctx, 'credential.stored', { credentialId: 'c-5' }),
      await emit(ctx, 'credential.rotated', { credentialId: 'c-6', integrationId: 'google', connectionId: 'u1', type: 'oauth_access_token', version: 9 }),
    ]) {
      await waitFor(() => outboxDelivered(other), 'outbox delivered');
      expect(await deliveries.listForEvent(other)).toEqual([]);
    }
  });

  it('an error that cannot succeed gives the channel up at once (a host-registered notifier)', async () => {
    const ctx = ctxOf('pager');
    let calls = 0;
    const off = app.get(NotifierRegistry).register({ channel: 'pager', send: async () => (calls++, Promise.reject(new NotificationTargetForbiddenError())) });
    try {
      const eventId = await emit(ctx, 'webhook_secret.rotation_failed', { credentialId: 'c-7', integrationId: 'github', connectionId: 'app', errorCode: 'UPDATER_FAILED' });
      await waitFor(async () => (await rowsOf(eventId)).pager?.status === NotificationDeliveryStatus.GIVEN_UP, 'pager given up');
      expect((await rowsOf(eventId)).pager).toMatchObject({ attempts: 1, lastError: 'NotificationTargetForbiddenError(NOTIFICATION_TARGET_FORBIDDEN)' });
      expect(calls).toBe(1);
    } finally {
      off();
    }
  });

  it("a receiver's Retry-After (429, 503) is honoured, up to retry.maxMs, before the next attempt", async () => {
    const clock = new ManualClock(new Date());
    const opts = resolveNotificationOptions({ retry: { maxAttempts: 5, baseMs: 1000, maxMs: 600_000 }, bus: { enabled: false }, email: { enabled: false }, webhook: { allowPrivateTargets: true, timeoutMs: 3000 } });
    const webhook = new WebhookNotifier(opts, clock, app.get(NotificationSettingsRepository), app.get(CredentialsService));
    const registry = new NotifierRegistry(opts, {} as never, webhook, {} as never);
    const dispatcher = new NotificationDispatcher(opts, clock, app.get(OutboxHandlerRegistry), registry, deliveries, new NotificationCounters());
    const ctx = ctxOf('ratelimited');
    await setUp(ctx, '/ratelimited');
    const answer = receiver.respond;
    const asked = ['120', new Date(clock.nowMs() + 7_200_000).toUTCString(), 'soon'];
    receiver.respond = (r, n) => (r.path === '/ratelimited' ? { status: n === 2 ? 503 : 429, headers: { 'retry-after': asked[n - 1] } } : answer(r, n));
    try {
      const ev: OutboxEvent = { id: randomUUIDv4(), name: 'credential.expired', tenantId: ctx.tenantId, payload: { credentialId: 'c-rl' }, createdAt: clock.now(), attempts: 0 };
      const waitAfter = async () => {
        const pending = await rejection(dispatcher.handle(ev));
        expect(pending).toBeInstanceOf(NotificationDeliveryPendingError);
        const wait = (await rowsOf(ev.id)).webhook.nextAttemptAt.getTime() - clock.nowMs();
        // The outbox is asked to come back exactly then: sooner it would find nothing to do.
        expect(pending).toMatchObject({ outboxDeferred: true, retryAfterMs: wait });
        // Asked again meanwhile (a redelivery, another replica): nothing sent, the same remaining wait.
        clock.advance(1000);
        expect(await rejection(dispatcher.handle(ev))).toMatchObject({ retryAfterMs: wait - 1000 });
        clock.advance(-1000);
        return wait;
      };
      expect(await waitAfter()).toBe(120_000); // seconds
      clock.advance(120_000);
      expect(await waitAfter()).toBe(600_000); // an HTTP date two hours away, capped at retry.maxMs
      clock.advance(600_000);
      expect(await waitAfter()).toBe(4000); // unreadable: the usual backoff
      expect(receiver.on('/ratelimited')).toHaveLength(3);
    } finally {
      receiver.respond = answer;
    }
  });

  it('a send still running in the background defers the event without a due time (its lease says nothing of when it ends); then it is due again', async () => {
    const clock = new ManualClock(new Date());
    const opts = resolveNotificationOptions({ sendWaitMs: 20, retry: { maxAttempts: 3, baseMs: 1000, maxMs: 1000 }, bus: { enabled: false }, webhook: { enabled: false } });
    const registry = new NotifierRegistry(opts, {} as never, {} as never, {} as never);
    let release!: (outcome: 'delivered') => void;
    const sends: string[] = [];
    registry.register({ channel: 'slowpoke', send: (n) => (sends.push(n.eventId), new Promise((r) => (release = r))) });
    const dispatcher = new NotificationDispatcher(opts, clock, app.get(OutboxHandlerRegistry), registry, deliveries, new NotificationCounters());
    const ev: OutboxEvent = { id: randomUUIDv4(), name: 'credential.expired', tenantId: ctxOf('slowpoke').tenantId, payload: { credentialId: 'c-sp' }, createdAt: clock.now(), attempts: 0 };
    try {
      expect(await rejection(dispatcher.handle(ev))).toMatchObject({ channels: ['slowpoke'], retryAfterMs: undefined });
      // Redelivered while it still sends: not parked until its lease (60 s) runs out.
      expect(await rejection(dispatcher.handle(ev))).toMatchObject({ channels: ['slowpoke'], retryAfterMs: undefined });
      release('delivered');
      await waitFor(async () => (await rowsOf(ev.id)).slowpoke?.status === NotificationDeliveryStatus.DELIVERED, 'the background send recorded');
      expect((await dispatcher.handle(ev)).map((r) => [r.channel, r.status, r.now])).toEqual([['slowpoke', 'delivered', false]]);
      expect(sends).toEqual([ev.id]);
    } finally {
      release?.('delivered');
      await dispatcher.onModuleDestroy();
    }
  });

  it('a crash after claiming an attempt: nothing is sent before its lease runs out, then it is retried; a spent bound is given up', async () => {
    const clock = new ManualClock(new Date());
    const opts = resolveNotificationOptions({ retry: { maxAttempts: 2, baseMs: 1000, maxMs: 1000, leaseMs: 60_000 }, bus: { enabled: false }, webhook: { enabled: false } });
    const registry = new NotifierRegistry(opts, {} as never, {} as never, {} as never);
    const sent: string[] = [];
    registry.register({ channel: 'probe', send: async (n) => (sent.push(n.eventId), 'delivered') });
    const dispatcher = new NotificationDispatcher(opts, clock, app.get(OutboxHandlerRegistry), registry, deliveries, new NotificationCounters());
    const ctx = ctxOf('crash');
    const ev = (id: string): OutboxEvent => ({ id, name: 'credential.expired', tenantId: ctx.tenantId, payload: { credentialId: 'c-1' }, createdAt: clock.now(), attempts: 1 });
    const key = (id: string) => ({ eventId: id, channel: 'probe' });

    // A process claimed attempt 1 and died before reporting.
    const a = randomUUIDv4();
    await deliveries.ensure({ ...key(a), tenantId: ctx.tenantId, eventName: 'credential.expired' }, clock.now());
    expect(await deliveries.claim(key(a), 0, clock.now(), new Date(clock.now().getTime() + 60_000))).toBe(true);
    expect(await rejection(dispatcher.handle(ev(a)))).toBeInstanceOf(NotificationDeliveryPendingError);
    expect(sent).toEqual([]);
    clock.advance(60_001);
    expect((await dispatcher.handle(ev(a))).map((r) => [r.channel, r.status])).toEqual([['probe', 'delivered']]);
    expect(sent).toEqual([a]);
    expect((await rowsOf(a)).probe.attempts).toBe(2);

    // The same, on the last allowed attempt: once the lease runs out, the bound is spent.
    const b = randomUUIDv4();
    await deliveries.ensure({ ...key(b), tenantId: ctx.tenantId, eventName: 'credential.expired' }, clock.now());
    expect(await deliveries.claim(key(b), 0, clock.now(), clock.now())).toBe(true);
    expect(await deliveries.claim(key(b), 1, clock.now(), new Date(clock.now().getTime() + 60_000))).toBe(true);
    expect(await rejection(dispatcher.handle(ev(b)))).toBeInstanceOf(NotificationDeliveryPendingError);
    clock.advance(60_001);
    expect((await dispatcher.handle(ev(b))).map((r) => [r.channel, r.status])).toEqual([['probe', 'given_up']]);
    expect((await rowsOf(b)).probe).toMatchObject({ status: 'given_up', lastError: 'interrupted', attempts: 2 });
    expect(sent).toEqual([a]);
  });

  it('pruning deletes finished rows past the retention, except those of an outbox event still undelivered', async () => {
    const ctx = ctxOf('prune');
    const ds = app.get(DataSource);
    const p = (n: number) => Array.from({ length: n }, (_, i) => (kind === 'postgres' ? `$${i + 1}` : '?')).join(', ');
    const delivered = await emit(ctx, 'credential.expired', { credentialId: 'c-p', integrationId: 'i', connectionId: 'k' });
    await waitFor(() => outboxDelivered(delivered), 'outbox delivered');
    // An event another handler keeps failing: still undelivered in the outbox (parked far in the future here).
    const parked = randomUUIDv4();
    await ds.query(`INSERT INTO cv_outbox (id, name, tenant_id, payload, created_at, available_at, attempts) VALUES (${p(7)})`, [parked, 'credential.expired', ctx.tenantId, '{}', Date.now(), Date.now() + 365 * 86_400_000, 3]);
    const now = new Date();
    await deliveries.ensure({ eventId: parked, channel: 'bus', tenantId: ctx.tenantId, eventName: 'credential.expired' }, now);
    await deliveries.finish({ eventId: parked, channel: 'bus' }, NotificationDeliveryStatus.DELIVERED, now);

    expect(await deliveries.pruneFinished(new Date(now.getTime() - 60_000))).toBe(0); // nothing old enough
    if (kind === 'postgres') {
      // The DataSource names its schema; the session's search_path need not (an embedding app's does not).
      const pruned = runner.run(async () => {
        await runner.manager.query('SET LOCAL search_path TO pg_catalog');
        return deliveries.pruneFinished(new Date(now.getTime() - 60_000));
      });
      await expect(pruned).resolves.toBe(0);
    }
    expect(await deliveries.pruneFinished(new Date(now.getTime() + 60_000))).toBeGreaterThanOrEqual(3);
    expect(await deliveries.listForEvent(delivered)).toEqual([]);
    expect((await deliveries.listForEvent(parked)).map((r) => r.channel)).toEqual(['bus']);
    await ds.query(`DELETE FROM cv_outbox WHERE id = ${p(1)}`, [parked]);
  });

  it('SSRF guard by default: settings refuse private targets, and the sender refuses them at connect time', async () => {
    const ctx = ctxOf('ssrf');
    const clock = new SystemClock();
    const strict = resolveNotificationOptions({});
    const guarded = new NotificationSettingsService(strict, clock, runner, app.get(NotificationSettingsRepository), app.get(CredentialsService), app.get(AuditService));
    for (const url of [`${receiver.url}/ssrf`, 'http://localhost:9/', 'http://[::1]/', 'http://169.254.169.254/latest/meta-data/', 'http://10.0.0.1/']) {
      expect(await rejection(guarded.update(ctx, { webhookUrl: url }))).toBeInstanceOf(NotificationTargetForbiddenError);
    }
    expect((await settings.get(ctx)).rowVersion).toBe(0);

    // A row that points at a private target anyway (saved while allowed, or DNS changed since).
    const secret = await setUp(ctx, '/ssrf');
    expect(secret).toBeDefined();
    const sender = new WebhookNotifier(strict, clock, app.get(NotificationSettingsRepository), app.get(CredentialsService));
    const n = { eventId: 'e1', event: 'credential.expired', tenantId: ctx.tenantId, occurredAt: new Date(), subject: 's', summary: 's', action: 'a', facts: {} } as Notification;
    expect(await rejection(sender.send(n))).toBeInstanceOf(NotificationTargetForbiddenError);
    await settings.update(ctx, { webhookUrl: `${receiver.url.replace('127.0.0.1', 'localhost')}/ssrf` });
    expect(await rejection(sender.send(n))).toBeInstanceOf(NotificationTargetForbiddenError);
    expect(receiver.on('/ssrf')).toHaveLength(0);
  });
  it('no secret (signing secrets, the credential value) in a message, a row, an audit entry or a log line; a webhook URL only in its settings row', async () => {
    const ds = app.get(DataSource);
    const elsewhere = JSON.stringify([
      smtp.messages, receiver.requests.map((r) => [r.headers, r.body]), bus, logger.lines,
      await ds.query('SELECT * FROM cv_notification_deliveries'), await ds.query('SELECT * FROM cv_outbox'),
      (await app.get(AuditService).query({ limit: 500 })).items,
    ]);
    const dump = elsewhere + JSON.stringify(await ds.query('SELECT * FROM cv_notification_settings'));
    expect(secrets.size).toBeGreaterThan(5);
    for (const s of secrets) expect(dump).not.toContain(s);
    expect(elsewhere).not.toContain('t0k3n-in-path'); // chat webhook URLs carry tokens in the path
  });
});
