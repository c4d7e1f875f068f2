/**
 * A read refused because a credential expired marks it expired and raises `credential.expired` once
 * per credential version — shared with the expiry monitor, so the event and its notification happen
 * once whichever comes first. SQLite and PostgreSQL (plus two replicas on one PostgreSQL), a
 * ManualClock, the real outbox dispatcher and the tenant's signed notification webhook.
 */
import { randomBytes } from 'node:crypto';
import { Logger } from '@nestjs/common';
import { ScheduleModule } from '@nestjs/schedule';
import { Test, type TestingModule } from '@nestjs/testing';
import { AuditLogEntry } from '@app/audit';
import { ManualClock, type OperationContext } from '@app/common';
import { CredentialEntity, CredentialsService, CredentialStatus, CredentialType, type CredentialMetadata } from '@app/credentials';
import { KeyVaultEmulator } from '@app/keyvault-emulator';
import { CapturingLogger, createTestDatabase, credentialsStackImports, DATABASE_KINDS, type TestDatabase, type TestDatabaseKind } from '@app/testing';
import { DataSource } from 'typeorm';
import { ExpiryMonitorService, RotationModule } from '../index';
import { NotificationSettingsService } from '../notifications';
import { TestWebhookReceiver, waitFor } from '../notifications/testing/receivers';
import { outboxEvents } from '../rotation-stack.testing';
import { RotationNoticeRepository } from './rotation-notice.repository';
import { noticeKey } from './expiry-monitor.service';

const DAY = 86_400_000;
const HOUR = 3_600_000;
// In the past of the real clock: the outbox and the notification webhook run on real time too.
const T0 = new Date(Math.floor((Date.now() - 3 * DAY) / 1000) * 1000);

interface Replica {
  app: TestingModule;
  credentials: CredentialsService;
  expiry: ExpiryMonitorService;
  ds: DataSource;
}

async function replica(db: TestDatabase, emu: KeyVaultEmulator, clock: ManualClock, dispatch: boolean): Promise<Replica> {
  const app = await Test.createTestingModule({
    imports: [
      ...credentialsStackImports({
        database: db.options,
        vault: emu,
        keyVault: { resilience: { maxAttempts: 1, pollIntervalMs: 20, breaker: { consecutiveFailures: 1000 } } },
        credentials: { clock, isGlobal: true },
        persistence: { outbox: dispatch ? { pollIntervalMs: 50, backoff: { baseMs: 10, maxMs: 50 } } : { dispatch: false } },
      }),
      ScheduleModule.forRoot(),
      RotationModule.forRoot({
        clock,
        expiryMonitor: { enabled: false },
        rotationCheck: { enabled: false },
        webhooks: { job: { enabled: false } },
        notifications: { retry: { maxAttempts: 3, baseMs: 1, maxMs: 5 }, webhook: { allowPrivateTargets: true, timeoutMs: 3000 } },
      }),
    ],
  }).compile();
  await app.init();
  return { app, credentials: app.get(CredentialsService), expiry: app.get(ExpiryMonitorService), ds: app.get(DataSource) };
}

/** One monitor run that got its lock (another test file may hold the server-wide advisory lock for a moment). */
async function monitorRun(r: Replica): Promise<{ expired: number }> {
  for (let i = 0; i < 200; i++) {
    const out = await r.expiry.runOnce();
    if (out.acquired) return out;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error('the expiry-monitor lock stayed taken for 5 s');
}

describe.each(DATABASE_KINDS)('credential.expired on a refused read, on %s', (kind: TestDatabaseKind) => {
  let emu: KeyVaultEmulator;
  let db: TestDatabase;
  let receiver: TestWebhookReceiver;
  let r: Replica;
  const clock = new ManualClock(T0);
  const run = randomBytes(3).toString('hex');
  let seq = 0;

  const storedStatus = async (id: string) => (await r.ds.getRepository(CredentialEntity).findOneByOrFail({ id })).status;
  const expiredEvents = async (ctx: OperationContext, id: string) => (await outboxEvents(r.ds, 'credential.expired', ctx.tenantId)).filter((e) => e.credentialId === id);
  const hooks = (ctx: OperationContext, id: string) =>
    receiver.on(`/${ctx.tenantId}`).filter((h) => {
      const body = JSON.parse(h.body) as { type: string; data: { credentialId?: string } };
      return body.type === 'credential.expired' && body.data.credentialId === id;
    });
  const statusChanges = async (id: string) =>
    (await r.ds.getRepository(AuditLogEntry).find({ where: { resource: id, action: 'update_metadata' } })).filter((a) => JSON.stringify(a.details).includes('"expired"'));

  /** A tenant with a notification webhook and an API key that expires one day after T0. */
  async function expiring(): Promise<{ ctx: OperationContext; cred: CredentialMetadata; value: string }> {
    clock.set(T0);
    const ctx: OperationContext = { tenantId: `exp_${run}_${++seq}`, actor: { id: 'user:alice' } };
    await r.app.get(NotificationSettingsService).update(ctx, { webhookUrl: `${receiver.url}/${ctx.tenantId}` });
    const value = `k-${randomBytes(18).toString('hex')}`;
    const cred = await r.credentials.store(ctx, { integrationId: 'acme', connectionId: `c${seq}`, type: CredentialType.API_KEY, value, expiresAt: new Date(T0.getTime() + DAY) });
    expect((await r.credentials.get(ctx, cred.id)).value).toBe(value); // cached while valid
    clock.set(new Date(T0.getTime() + DAY + HOUR));
    return { ctx, cred, value };
  }

  const twentyReads = async (ctx: OperationContext, id: string) => {
    const settled = await Promise.allSettled(Array.from({ length: 20 }, () => r.credentials.get(ctx, id)));
    for (const s of settled) expect(s).toMatchObject({ status: 'rejected', reason: { code: 2010, codeName: 'EXPIRED' } });
  };

  beforeAll(async () => {
    Logger.overrideLogger(new CapturingLogger());
    emu = await KeyVaultEmulator.start({ quiet: true, throttle: false });
    db = await createTestDatabase(kind);
    receiver = await TestWebhookReceiver.start();
    r = await replica(db, emu, clock, true);
  });

  afterAll(async () => {
    await r?.app.close();
    await receiver?.close();
    await db?.drop();
    await emu?.stop();
  });

  it('20 concurrent refused reads: one status change, one event, one notification; the monitor then adds none', async () => {
    const { ctx, cred, value } = await expiring();
    expect(await storedStatus(cred.id)).toBe(CredentialStatus.ACTIVE);
    await twentyReads(ctx, cred.id);

    expect(await storedStatus(cred.id)).toBe(CredentialStatus.EXPIRED);
    const events = await expiredEvents(ctx, cred.id);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ credentialId: cred.id, integrationId: 'acme', version: 1, trigger: 'read', expiresAt: new Date(T0.getTime() + DAY).toISOString() });
    expect(await statusChanges(cred.id)).toHaveLength(1);
    await waitFor(() => hooks(ctx, cred.id).length === 1, 'the expired notification');

    // The monitor finds it done: it records its dedupe row, raises nothing.
    const out = await monitorRun(r);
    expect(out.expired).toBe(0);
    expect(await r.app.get(RotationNoticeRepository).raised(cred.id, 1)).toEqual(new Set([noticeKey('expired', cred.expiresAt)]));
    await twentyReads(ctx, cred.id);
    await monitorRun(r);
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(await expiredEvents(ctx, cred.id)).toHaveLength(1);
    expect(await statusChanges(cred.id)).toHaveLength(1);
    expect(hooks(ctx, cred.id)).toHaveLength(1);
    // allowExpired still serves it; nothing in an event or a notification carries the value.
    expect((await r.credentials.get(ctx, cred.id, { allowExpired: true })).value).toBe(value);
    expect(JSON.stringify([events, receiver.requests.map((h) => h.body)])).not.toContain(value);
  });

  it('the monitor first: it marks and notifies once; the refused reads that follow add nothing', async () => {
    const { ctx, cred } = await expiring();
    const out = await monitorRun(r);
    expect(out.expired).toBeGreaterThanOrEqual(1);
    expect(await storedStatus(cred.id)).toBe(CredentialStatus.EXPIRED);
    const events = await expiredEvents(ctx, cred.id);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ trigger: 'expiry-monitor', version: 1 });
    await waitFor(() => hooks(ctx, cred.id).length === 1, 'the expired notification');

    await twentyReads(ctx, cred.id);
    await monitorRun(r);
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(await expiredEvents(ctx, cred.id)).toHaveLength(1);
    expect(await statusChanges(cred.id)).toHaveLength(1);
    expect(hooks(ctx, cred.id)).toHaveLength(1);
  });

  it('allowExpired reads change nothing; a rotated credential expires again once for its new version; getVersion of the current version counts too', async () => {
    const { ctx, cred, value } = await expiring();
    expect((await r.credentials.get(ctx, cred.id, { allowExpired: true })).value).toBe(value);
    expect(await storedStatus(cred.id)).toBe(CredentialStatus.ACTIVE);
    expect(await expiredEvents(ctx, cred.id)).toHaveLength(0);

    await expect(r.credentials.getVersion(ctx, cred.id, 1)).rejects.toMatchObject({ code: 2010 });
    expect(await storedStatus(cred.id)).toBe(CredentialStatus.EXPIRED);

    await r.credentials.rotate(ctx, cred.id, `k-${randomBytes(18).toString('hex')}`, { expiresAt: new Date(clock.nowMs() + DAY) });
    expect(await storedStatus(cred.id)).toBe(CredentialStatus.ACTIVE);
    // version 1 is judged by its own expiry, but the credential's status speaks of version 2: no change
    await expect(r.credentials.getVersion(ctx, cred.id, 1)).rejects.toMatchObject({ code: 2010 });
    expect(await storedStatus(cred.id)).toBe(CredentialStatus.ACTIVE);
    clock.set(new Date(clock.nowMs() + DAY + HOUR));
    await twentyReads(ctx, cred.id);
    const events = await expiredEvents(ctx, cred.id);
    expect(events.map((e) => e.version)).toEqual([1, 2]);
    await waitFor(() => hooks(ctx, cred.id).length === 2, 'one notification per version');
  });
});

describe('credential.expired on refused reads at two replicas of one PostgreSQL', () => {
  let emu: KeyVaultEmulator;
  let db: TestDatabase;
  let a: Replica;
  let b: Replica;
  const clock = new ManualClock(T0);
  const ctx: OperationContext = { tenantId: `exp2_${randomBytes(3).toString('hex')}`, actor: { id: 'user:alice' } };

  beforeAll(async () => {
    Logger.overrideLogger(new CapturingLogger());
    emu = await KeyVaultEmulator.start({ quiet: true, throttle: false });
    db = await createTestDatabase('postgres');
    a = await replica(db, emu, clock, false);
    b = await replica(db, emu, clock, false);
  });

  afterAll(async () => {
    await a?.app.close();
    await b?.app.close();
    await db?.drop();
    await emu?.stop();
  });

  it('10 reads on each replica (both caches warm) raise one event and one status change, and the monitor none', async () => {
    clock.set(T0);
    const creds = await Promise.all(
      [1, 2, 3].map((i) =>
        a.credentials.store(ctx, { integrationId: 'acme', connectionId: `r${i}`, type: CredentialType.API_KEY, value: `k-${randomBytes(18).toString('hex')}`, expiresAt: new Date(T0.getTime() + DAY) }),
      ),
    );
    for (const c of creds) for (const r of [a, b]) await r.credentials.get(ctx, c.id);
    clock.set(new Date(T0.getTime() + DAY + HOUR));
    const reads = creds.flatMap((c) => [a, b].flatMap((r) => Array.from({ length: 10 }, () => r.credentials.get(ctx, c.id))));
    const settled = await Promise.allSettled(reads);
    expect(settled.every((s) => s.status === 'rejected' && (s.reason as { code?: number }).code === 2010)).toBe(true);
    await Promise.all([monitorRun(a), monitorRun(b)]);

    const events = await outboxEvents(a.ds, 'credential.expired', ctx.tenantId);
    expect(events.map((e) => e.credentialId).sort()).toEqual(creds.map((c) => c.id).sort());
    for (const c of creds) expect((await a.ds.getRepository(CredentialEntity).findOneByOrFail({ id: c.id })).status).toBe(CredentialStatus.EXPIRED);
    const changes = await a.ds.getRepository(AuditLogEntry).find({ where: { tenantId: ctx.tenantId, action: 'update_metadata' } });
    expect(changes).toHaveLength(3);
  });
});
