/**
 * Integration: a tenant's signing secret credential deleted by hand (a credentials:write caller may) is no secret, for
 * the sender as for the settings: the webhook is "not configured" quietly — given up as refused, the credential known
 * to be gone never read (no denied audit row, no suspicious activity against `system:notifications`). Real stack:
 * CredentialsService against the local vault, AuditService, the outbox, a real HTTP receiver; SQLite and PostgreSQL.
 */
import { randomBytes } from 'node:crypto';
import { Logger } from '@nestjs/common';
import { EventEmitter2 } from '@nestjs/event-emitter';
import type { TestingModule } from '@nestjs/testing';
import { AUDIT_SUSPICIOUS_ACTIVITY_EVENT, AuditService, type SuspiciousActivityEvent } from '@app/audit';
import { Outbox, TransactionRunner, type OperationContext } from '@app/common';
import { CredentialsService } from '@app/credentials';
import { KeyVaultEmulator } from '@app/keyvault-emulator';
import { CapturingLogger, createTestDatabase, DATABASE_KINDS, rejection, type TestDatabase, type TestDatabaseKind } from '@app/testing';
import { Webhook } from 'standardwebhooks';
import { DataSource } from 'typeorm';
import { NotificationCounters, NotificationDeliveryRepository, NotificationSecretNotConfiguredError, NotificationSettingsService } from './index';
import { buildNotificationsApp } from './testing/notifications-app';
import { TestWebhookReceiver, waitFor } from './testing/receivers';

describe.each(DATABASE_KINDS)('a deleted notification signing secret on %s', (kind: TestDatabaseKind) => {
  let emu: KeyVaultEmulator;
  let db: TestDatabase;
  let receiver: TestWebhookReceiver;
  let app: TestingModule;
  let settings: NotificationSettingsService;
  let credentials: CredentialsService;
  const logger = new CapturingLogger();
  const suspicious: SuspiciousActivityEvent[] = [];
  const run = randomBytes(3).toString('hex');
  const ctxOf = (t: string): OperationContext => ({ tenantId: `${t}_${run}`, actor: { id: 'user:alice' } });

  const emit = (ctx: OperationContext, credentialId: string): Promise<string> =>
    app.get(TransactionRunner).run(() =>
      app.get(Outbox).add({
        name: 'credential.revoked',
        tenantId: ctx.tenantId,
        payload: { tenantId: ctx.tenantId, credentialId, integrationId: 'stripe', connectionId: 'acct', type: 'api_key', reason: 'leak', severity: 'critical' },
      }),
    );
  const param = kind === 'postgres' ? '$1' : '?';
  const outboxDelivered = async (eventId: string) => (await app.get(DataSource).query(`SELECT delivered_at FROM cv_outbox WHERE id = ${param}`, [eventId]))[0].delivered_at !== null;
  const webhookRow = async (eventId: string) => (await app.get(NotificationDeliveryRepository).listForEvent(eventId)).find((r) => r.channel === 'webhook');
  /** What the tenant's audit log holds of an actor: its action and result. */
  const auditOf = async (ctx: OperationContext, actorId: string) => (await app.get(AuditService).query({ tenantId: ctx.tenantId, actorId, limit: 500 })).items.map((r) => `${r.action}:${r.result}`);
  /** A tenant whose webhook URL is set, and whose signing secret credential a credentials:write caller then deleted. */
  const withDeletedSecret = async (t: string) => {
    const ctx = ctxOf(t);
    const first = await settings.update(ctx, { webhookUrl: `${receiver.url}/${t}` });
    await credentials.delete(ctx, first.settings.webhookSecretCredentialId!);
    return { ctx, deletedId: first.settings.webhookSecretCredentialId!, rowVersion: first.settings.rowVersion };
  };

  beforeAll(async () => {
    Logger.overrideLogger(logger);
    emu = await KeyVaultEmulator.start({ quiet: true, throttle: false });
    db = await createTestDatabase(kind);
    receiver = await TestWebhookReceiver.start();
    receiver.respond = () => 204;
    app = await buildNotificationsApp(db, emu, logger, { retry: { maxAttempts: 3, baseMs: 1, maxMs: 5 }, webhook: { allowPrivateTargets: true, timeoutMs: 3000 } });
    settings = app.get(NotificationSettingsService);
    credentials = app.get(CredentialsService);
    app.get(EventEmitter2).on(AUDIT_SUSPICIOUS_ACTIVITY_EVENT, (e: SuspiciousActivityEvent) => suspicious.push(e));
  });

  afterAll(async () => {
    await app?.close();
    await receiver?.close();
    await emu?.stop();
    await db?.drop();
    Logger.overrideLogger(new Logger());
  });

  it('the sender gives the webhook up as refused without reading the credential: no denied audit row, no suspicious activity; a new secret signs again', async () => {
    const { ctx } = await withDeletedSecret('sender');
    const counters = app.get(NotificationCounters);
    const refusedBefore = counters.get('webhook', 'refused');
    // More than the suspicious-activity threshold (5 failures or denials of one actor in 10 min).
    const events = await Promise.all(Array.from({ length: 7 }, (_, i) => emit(ctx, `c-${i}`)));
    for (const eventId of events) {
      await waitFor(() => outboxDelivered(eventId), 'the event delivered');
      expect(await webhookRow(eventId)).toMatchObject({ status: 'given_up', attempts: 1, lastError: 'NotificationSecretNotConfiguredError(NOTIFICATION_SECRET_NOT_CONFIGURED)' });
    }
    expect(counters.get('webhook', 'refused')).toBe(refusedBefore + events.length);
    expect(receiver.on('/sender')).toHaveLength(0);
    expect(await auditOf(ctx, 'system:notifications')).toEqual([]);
    expect(suspicious.filter((s) => s.tenantId === ctx.tenantId)).toEqual([]);

    const set = await settings.update(ctx, { generateWebhookSecret: true });
    const eventId = await emit(ctx, 'c-again');
    await waitFor(() => outboxDelivered(eventId), 'the event delivered');
    expect(await webhookRow(eventId)).toMatchObject({ status: 'delivered' });
    const [hook] = receiver.on('/sender');
    expect(() => new Webhook(set.generatedWebhookSecret!).verify(hook.body, hook.headers as Record<string, string>)).not.toThrow();
    expect(await auditOf(ctx, 'system:notifications')).toEqual(['read:success']);
  });

  it('deleted while a save rotates a new secret into it: the save stores a new one, not 404 naming the deleted credential', async () => {
    const ctx = ctxOf('race');
    const first = await settings.update(ctx, { webhookUrl: `${receiver.url}/race` });
    const deletedId = first.settings.webhookSecretCredentialId!;
    // The delete lands between the save's look at the secret (still there) and its rotation of it.
    const rotate = credentials.rotate.bind(credentials);
    const spy = jest.spyOn(credentials, 'rotate').mockImplementationOnce(async (...args: Parameters<CredentialsService['rotate']>) => {
      await credentials.delete(ctx, deletedId);
      return rotate(...args);
    });
    try {
      const saved = await settings.update(ctx, { generateWebhookSecret: true });
      expect(saved.generatedWebhookSecret).toMatch(/^whsec_/);
      expect(saved.settings).toMatchObject({ webhookSecretConfigured: true, rowVersion: first.settings.rowVersion + 1 });
      expect(saved.settings.webhookSecretCredentialId).not.toBe(deletedId);
      expect(await settings.getWebhookSecret(ctx)).toBe(saved.generatedWebhookSecret);
    } finally {
      spy.mockRestore();
    }
  });

  it('revoked or expired, the sender does not read it either: refused quietly (no denied row, no suspicious activity); un-revoked, it signs again', async () => {
    const ctx = ctxOf('revoked');
    const first = await settings.update(ctx, { webhookUrl: `${receiver.url}/revoked` });
    const secretId = first.settings.webhookSecretCredentialId!;
    const refusedQuietly = async (n: number, tag: string) => {
      const events = await Promise.all(Array.from({ length: n }, (_, i) => emit(ctx, `${tag}-${i}`)));
      for (const eventId of events) {
        await waitFor(() => outboxDelivered(eventId), 'the event delivered');
        expect(await webhookRow(eventId)).toMatchObject({ status: 'given_up', attempts: 1, lastError: 'NotificationSecretNotConfiguredError(NOTIFICATION_SECRET_NOT_CONFIGURED)' });
      }
    };
    await credentials.revoke(ctx, secretId);
    await refusedQuietly(6, 'r');
    await credentials.unrevoke(ctx, secretId);
    await credentials.updateMetadata(ctx, secretId, { expiresAt: new Date(Date.now() + 300) });
    await new Promise((resolve) => setTimeout(resolve, 400));
    await refusedQuietly(1, 'e');
    expect(receiver.on('/revoked')).toHaveLength(0);
    expect(await auditOf(ctx, 'system:notifications')).toEqual([]);
    expect(suspicious.filter((s) => s.tenantId === ctx.tenantId)).toEqual([]);

    await credentials.updateMetadata(ctx, secretId, { expiresAt: null });
    const eventId = await emit(ctx, 'again');
    await waitFor(() => outboxDelivered(eventId), 'the event delivered');
    expect(await webhookRow(eventId)).toMatchObject({ status: 'delivered' });
    expect(await auditOf(ctx, 'system:notifications')).toEqual(['read:success']);
  });

  it('revoked (say it leaked), a new secret is generated or given without un-revoking the old value: the credential rotates to it and signs again', async () => {
    const ctx = ctxOf('replace');
    const first = await settings.update(ctx, { webhookUrl: `${receiver.url}/replace` });
    const leakedId = first.settings.webhookSecretCredentialId!;
    await credentials.revoke(ctx, leakedId);
    const generated = await settings.update(ctx, { generateWebhookSecret: true });
    expect(generated.generatedWebhookSecret).toMatch(/^whsec_/);
    expect(generated.settings).toMatchObject({ webhookSecretConfigured: true });
    // Rotated to the new value (rotating a revoked credential makes it active with that value, the leaked one not current).
    expect(generated.settings.webhookSecretCredentialId).toBe(leakedId);
    expect(await settings.getWebhookSecret(ctx)).toBe(generated.generatedWebhookSecret);
    const eventId = await emit(ctx, 'after-replace');
    await waitFor(() => outboxDelivered(eventId), 'the event delivered');
    expect(await webhookRow(eventId)).toMatchObject({ status: 'delivered' });
    const [delivery] = receiver.on('/replace');
    expect(() => new Webhook(generated.generatedWebhookSecret!).verify(delivery.body, delivery.headers as Record<string, string>)).not.toThrow();
    // A given secret replaces it the same way.
    const given = `whsec_${randomBytes(32).toString('base64')}`;
    await credentials.revoke(ctx, generated.settings.webhookSecretCredentialId!);
    const set = await settings.update(ctx, { webhookSecret: given });
    expect(set.settings.webhookSecretConfigured).toBe(true);
    expect(await settings.getWebhookSecret(ctx)).toBe(given);
  });

  it('getWebhookSecret: not configured, without reading the deleted credential', async () => {
    const { ctx } = await withDeletedSecret('get-secret');
    expect(await rejection(settings.getWebhookSecret(ctx))).toBeInstanceOf(NotificationSecretNotConfiguredError);
    expect(await auditOf(ctx, ctx.actor.id)).not.toContainEqual(expect.stringMatching(/^read:/));
  });

  it('a save that changes nothing still writes nothing (no secret generated): only setting the URL again or asking for one generates', async () => {
    const { ctx, rowVersion } = await withDeletedSecret('no-op');
    for (const input of [{}, { emailRecipients: [] }, { expectedRowVersion: rowVersion }]) {
      const again = await settings.update(ctx, input);
      expect({ input, generated: again.generatedWebhookSecret, settings: again.settings }).toMatchObject({
        input,
        generated: undefined,
        settings: { rowVersion, webhookSecretConfigured: false, webhookSecretCredentialId: null },
      });
    }
    expect((await app.get(AuditService).query({ tenantId: ctx.tenantId, action: 'notification_settings_change' })).items).toHaveLength(1);
    const url = await settings.update(ctx, { webhookUrl: `${receiver.url}/no-op` });
    expect(url.generatedWebhookSecret).toMatch(/^whsec_/);
    expect(url.settings).toMatchObject({ rowVersion: rowVersion + 1, webhookSecretConfigured: true });
  });
});
