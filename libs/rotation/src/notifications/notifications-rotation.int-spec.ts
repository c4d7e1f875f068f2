/**
 * Integration: the notifications inside the real RotationModule. The rotation core raises the events
 * (emergency revoke, un-revoke, the expiry monitor) through the outbox; the notifications deliver them
 * to a tenant's signed webhook and to a real SMTP server. SQLite and PostgreSQL, the local vault.
 */
import { randomBytes } from 'node:crypto';
import { Logger } from '@nestjs/common';
import { ScheduleModule } from '@nestjs/schedule';
import { Test, type TestingModule } from '@nestjs/testing';
import { TypeOrmModule, type TypeOrmModuleOptions } from '@nestjs/typeorm';
import { AUDIT_ENTITIES, AUDIT_MIGRATIONS } from '@app/audit';
import { OUTBOX_ENTITIES, OUTBOX_MIGRATIONS, type OperationContext } from '@app/common';
import { CREDENTIALS_ENTITIES, CREDENTIALS_MIGRATIONS, CredentialsService, CredentialType } from '@app/credentials';
import { KeyVaultEmulator } from '@app/keyvault-emulator';
import { CapturingLogger, createTestDatabase, credentialsStackImports, DATABASE_KINDS, type TestDatabase, type TestDatabaseKind } from '@app/testing';
import { Webhook } from 'standardwebhooks';
import { ExpiryMonitorService, RevocationService, ROTATION_ENTITIES, ROTATION_MIGRATIONS, RotationModule } from '../index';
import { NotificationSettingsService, type NotificationOptions } from './index';
import { parseMail, TestSmtpServer, TestWebhookReceiver, waitFor } from './testing/receivers';

const DAY = 86_400_000;

describe.each(DATABASE_KINDS)('notifications inside RotationModule on %s', (kind: TestDatabaseKind) => {
  let emu: KeyVaultEmulator;
  let db: TestDatabase;
  let smtp: TestSmtpServer;
  let receiver: TestWebhookReceiver;
  let app: TestingModule;
  let secret: string;
  const logger = new CapturingLogger();
  const run = randomBytes(3).toString('hex');
  const ctx: OperationContext = { tenantId: `rot_${run}`, actor: { id: 'user:bob' } };
  const value = `sk_live_${randomBytes(16).toString('hex')}`;

  const hooks = (type: string) =>
    receiver.requests.filter((r) => {
      new Webhook(secret).verify(r.body, r.headers as Record<string, string>); // throws unless signed with the tenant's secret
      return (JSON.parse(r.body) as { type: string }).type === type;
    });
  const mails = (subjectPart: string) => smtp.messages.map((m) => parseMail(m.raw)).filter((m) => m.headers.subject.includes(subjectPart));

  beforeAll(async () => {
    Logger.overrideLogger(logger);
    emu = await KeyVaultEmulator.start({ quiet: true, throttle: false });
    db = await createTestDatabase(kind);
    smtp = await TestSmtpServer.start();
    receiver = await TestWebhookReceiver.start();
    const notifications: NotificationOptions = {
      retry: { maxAttempts: 3, baseMs: 1, maxMs: 5 },
      webhook: { allowPrivateTargets: true, timeoutMs: 3000 },
      email: { enabled: true, host: '127.0.0.1', port: smtp.port, ignoreTLS: true, from: 'vault@example.test' },
    };
    const [typeorm, ...stack] = credentialsStackImports({
      database: db.options,
      vault: emu,
      credentials: { isGlobal: true },
      persistence: { outbox: { pollIntervalMs: 50, backoff: { baseMs: 10, maxMs: 50 } } },
    });
    if (typeorm.module !== TypeOrmModule) throw new Error('credentialsStackImports no longer starts with TypeOrmModule');
    app = await Test.createTestingModule({
      imports: [
        TypeOrmModule.forRoot({
          ...db.options,
          entities: [...CREDENTIALS_ENTITIES, ...AUDIT_ENTITIES, ...OUTBOX_ENTITIES, ...ROTATION_ENTITIES],
          migrations: [...CREDENTIALS_MIGRATIONS, ...AUDIT_MIGRATIONS, ...OUTBOX_MIGRATIONS, ...ROTATION_MIGRATIONS],
          migrationsRun: true,
          synchronize: false,
          logging: false,
        } as TypeOrmModuleOptions),
        ...stack,
        ScheduleModule.forRoot(),
        RotationModule.forRoot({ expiryMonitor: { enabled: false }, rotationCheck: { enabled: false }, webhooks: { job: { enabled: false } }, notifications }),
      ],
    })
      .setLogger(logger)
      .compile();
    await app.init();
    const r = await app.get(NotificationSettingsService).update(ctx, { webhookUrl: `${receiver.url}/tenant-hook`, emailRecipients: ['secops@example.test'] });
    secret = r.generatedWebhookSecret!;
  });

  afterAll(async () => {
    await app?.close();
    await receiver?.close();
    await smtp?.close();
    await emu?.stop();
    await db?.drop();
    Logger.overrideLogger(new Logger());
  });

  it('an emergency revoke and the un-revoke reach the signed webhook and the SMTP server once each', async () => {
    const cred = await app.get(CredentialsService).store(ctx, { integrationId: 'stripe', connectionId: 'acct-9', type: CredentialType.API_KEY, value });
    await app.get(RevocationService).revoke(ctx, { credentialId: cred.id }, { reason: 'posted in a public channel', severity: 'critical' });
    await waitFor(() => hooks('credential.revoked').length === 1 && mails('was revoked').length === 1, 'the revoke notifications');
    const revoked = JSON.parse(hooks('credential.revoked')[0].body) as { data: Record<string, unknown> };
    expect(revoked.data).toMatchObject({ credentialId: cred.id, integrationId: 'stripe', connectionId: 'acct-9', type: 'api_key', reason: 'posted in a public channel', severity: 'critical' });
    const [mail] = mails('was revoked');
    expect(mail.headers.subject).toBe('[Credential Vault] api_key for stripe/acct-9 was revoked (critical)');
    expect(mail.text).toContain(`Credential ${cred.id} (api_key) of integration "stripe" connection "acct-9"`);
    expect(mail.text).toContain('What to do: Reads of it are refused.');

    await app.get(RevocationService).unrevoke(ctx, cred.id, { reason: 'false alarm' });
    await waitFor(() => hooks('credential.unrevoked').length === 1 && mails('was un-revoked').length === 1, 'the un-revoke notifications');
    await new Promise((r) => setTimeout(r, 300));
    expect(hooks('credential.revoked')).toHaveLength(1);
    expect(mails('was revoked')).toHaveLength(1);
  });

  it('the expiry monitor’s warning is delivered; no value or secret anywhere', async () => {
    const cred = await app.get(CredentialsService).store(ctx, { integrationId: 'github', connectionId: 'org-7', type: CredentialType.API_KEY, value: `${value}-2`, expiresAt: new Date(Date.now() + 10 * DAY) });
    await app.get(ExpiryMonitorService).runOnce();
    await waitFor(() => hooks('credential.expiring').some((h) => h.body.includes(cred.id)), 'the expiring notification');
    const expiring = JSON.parse(hooks('credential.expiring').find((h) => h.body.includes(cred.id))!.body) as { data: Record<string, unknown> };
    expect(expiring.data).toMatchObject({ credentialId: cred.id, integrationId: 'github', connectionId: 'org-7', thresholdDays: 14 });
    await waitFor(() => mails('github/org-7 expires within 14 day(s)').length === 1, 'the expiring e-mail');

    const everything = JSON.stringify([smtp.messages, receiver.requests.map((r) => [r.headers, r.body]), logger.lines]);
    for (const s of [value, secret]) expect(everything).not.toContain(s);
  });
});
