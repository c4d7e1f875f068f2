/**
 * Integration: the host's vault identity lacks a permission (403 FORBIDDEN from the local vault, through the real
 * SDK, on SQLite) while the rotation jobs run. A job must not fail credential after credential against a vault that
 * refuses them all: one refused write, recorded (audit row with the code, `rotation_failed`), one error line naming
 * FORBIDDEN, the rest left for the next run, every previous value current. The expiry monitor needs no vault at all.
 */
import { randomBytes } from 'node:crypto';
import { AuditResult, AuditService } from '@app/audit';
import { ManualClock, type OperationContext } from '@app/common';
import { CredentialStatus, CredentialType, type CredentialMetadata } from '@app/credentials';
import { KeyVaultEmulator } from '@app/keyvault-emulator';
import { CapturingLogger, createTestDatabase, type TestDatabase } from '@app/testing';
import { DAY, outboxEvents, useRotationStack } from '../rotation-stack.testing';
import { RecordingUpdater, startWebhookStack, type WebhookStack } from '../webhooks/testing/webhook-stack';

const T0 = new Date('2026-03-01T00:00:00Z');

describe('rotation jobs while the vault denies a permission (sqlite)', () => {
  const clock = new ManualClock(T0);
  const logger = new CapturingLogger();
  const ctx: OperationContext = { tenantId: `deny_${randomBytes(3).toString('hex')}`, actor: { id: 'user:alice' } };

  const s = useRotationStack('sqlite', { clock, logger });

  it('rotation check: three refused writes in a row stop the run, each recorded, logged once at error with FORBIDDEN; the rest wait for the next run', async () => {
    clock.set(T0);
    await s.policies.set(ctx, { level: 'tenant', rotation: 'automatic' });
    const due: CredentialMetadata[] = [];
    for (let i = 0; i < 5; i++) due.push(await s.credentials.store(ctx, { integrationId: 'acme', connectionId: `c${i}`, type: CredentialType.API_KEY, value: `k-${randomBytes(12).toString('hex')}` }));
    const values = await Promise.all(due.map(async (m) => (await s.credentials.get(ctx, m.id)).value));
    clock.set(new Date(T0.getTime() + 91 * DAY));
    s.emu.deny({ operations: ['setSecret'] });
    s.emu.resetStats();
    logger.lines.length = 0;

    const r = await s.check.runOnce();
    expect(r).toMatchObject({ acquired: true, due: 5, rotated: 0, failed: 3, deferred: 2 });
    expect(s.emu.stats().byOperationAndStatus['setSecret:403']).toBe(3);
    for (const [i, m] of due.entries()) {
      expect((await s.credentials.getMetadata(ctx, m.id)).version).toBe(1);
      expect((await s.credentials.get(ctx, m.id)).value).toBe(values[i]);
    }
    const rows = (await s.moduleRef.get(AuditService).query({ tenantId: ctx.tenantId, action: 'rotate', result: AuditResult.FAILURE })).items;
    // Three credentials tried: one row each, the refused write's (the job's actor), with the vault's code in the one
    // format of every audit writer — not a second one from the job (each counts toward the actor's thresholds).
    expect(rows.map((row) => [row.actorId, row.errorCode]).sort()).toEqual(Array(3).fill(['system:rotation-check', '1010:FORBIDDEN']));
    expect(new Set(rows.map((row) => row.resource)).size).toBe(3);
    const failed = await outboxEvents(s.dataSource, 'credential.rotation_failed', ctx.tenantId);
    expect(failed).toHaveLength(3);
    expect(String(failed[0].action)).toMatch(/permission/);
    const errors = logger.lines.filter((l) => l.startsWith('error '));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/FORBIDDEN/);
    expect(errors[0]).toMatch(/refused 3 .*; 2 more .*next run/);
    for (const v of values) for (const l of logger.lines) expect(l).not.toContain(v);

    // Granted: the next run rotates them all.
    s.emu.clearDenials();
    expect(await s.check.runOnce()).toMatchObject({ rotated: 5, failed: 0, deferred: 0 });
  });

  it('rotation check: one secret denied on its own scope holds back no other rotation', async () => {
    clock.set(T0);
    const tenant: OperationContext = { ...ctx, tenantId: `${ctx.tenantId}_s` };
    await s.policies.set(tenant, { level: 'tenant', rotation: 'automatic' });
    const due: CredentialMetadata[] = [];
    for (let i = 0; i < 5; i++) due.push(await s.credentials.store(tenant, { integrationId: 'acme', connectionId: `s${i}`, type: CredentialType.API_KEY, value: `k-${randomBytes(12).toString('hex')}` }));
    // A role assignment missing on one secret: the first one the run meets (it scans in id order).
    const [denied] = [...due].sort((a, b) => (a.id < b.id ? -1 : 1));
    const rows = (await s.dataSource.query(`SELECT vault_secret_name AS name FROM cv_credential_versions WHERE credential_id = '${denied.id}'`)) as Array<{ name: string }>;
    clock.set(new Date(T0.getTime() + 91 * DAY));
    s.emu.deny({ operations: ['setSecret'], names: rows.map((row) => row.name) });
    logger.lines.length = 0;

    expect(await s.check.runOnce()).toMatchObject({ due: 5, rotated: 4, failed: 1, deferred: 0 });
    expect((await s.credentials.getMetadata(tenant, denied.id)).version).toBe(1);
    const errors = logger.lines.filter((l) => l.startsWith('error '));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/refused 1 .*FORBIDDEN/);
    expect(errors[0]).not.toMatch(/next run/);
  });

  it('expiry monitor: needs no vault call, so a denied vault changes nothing of its work', async () => {
    clock.set(T0);
    const expiring = await s.credentials.store(ctx, { integrationId: 'acme', connectionId: 'exp', type: CredentialType.API_KEY, value: `k-${randomBytes(12).toString('hex')}`, expiresAt: new Date(T0.getTime() + 2 * DAY) });
    clock.set(new Date(T0.getTime() + 3 * DAY));
    s.emu.deny({ operations: ['getSecret', 'setSecret', 'listSecrets', 'listSecretVersions', 'updateSecret'] });
    s.emu.resetStats();
    const r = await s.expiry.runOnce();
    expect(r).toMatchObject({ acquired: true, failed: 0 });
    expect(r.expired).toBeGreaterThanOrEqual(1);
    expect((await s.credentials.getMetadata(ctx, expiring.id)).status).toBe(CredentialStatus.EXPIRED);
    expect(s.emu.stats().total).toBe(0);
  });
});

describe('webhook-secret rotation job while the vault denies a permission (sqlite)', () => {
  let emu: KeyVaultEmulator;
  let db: TestDatabase;
  let stack: WebhookStack;
  const clock = new ManualClock(new Date());
  const logger = new CapturingLogger();
  const updater = new RecordingUpdater();
  const tenantId = `wdeny-${randomBytes(3).toString('hex')}`;
  const ctx: OperationContext = { tenantId, actor: { id: 'user:ops' } };

  beforeAll(async () => {
    emu = await KeyVaultEmulator.start({ quiet: true, throttle: false, operationDelayMs: 0 });
    db = await createTestDatabase('sqlite');
    stack = await startWebhookStack(db, emu, clock, { rotateAfterMs: DAY }, logger);
    stack.updaters.register('stripe', updater);
  });
  afterEach(() => emu.clearDenials());
  afterAll(async () => {
    await stack?.moduleRef.close();
    await emu?.stop();
    await db?.drop();
  });

  it('three refused writes in a row, one error line with FORBIDDEN; the rest are neither pushed nor tried; all rotate once granted', async () => {
    const created = [];
    for (let i = 0; i < 4; i++) created.push(await stack.service.create(ctx, { integrationId: 'stripe', connectionId: `acct-${i}` }));
    // A rotation before the denial: the tenant's envelope data key (where staged values go) exists, as in a live vault.
    await stack.service.rotate(ctx, created[0].credential.id);
    clock.set(new Date(clock.now().getTime() + 2 * DAY));
    emu.deny({ operations: ['setSecret'] });
    emu.resetStats();
    logger.lines.length = 0;
    const pushesBefore = updater.calls.length;
    const versions = await Promise.all(created.map(async (c) => (await stack.credentials.getMetadata(ctx, c.credential.id)).version));

    const r = await stack.job.runOnce();
    expect(r).toMatchObject({ acquired: true, rotated: 0, failed: 3, deferred: 1 });
    expect(emu.stats().byOperationAndStatus['setSecret:403']).toBe(3);
    // Only the tried ones reached their provider (phase 2; each promote was refused: it stays pending, staged in the
    // envelope store, and verifies meanwhile); the last provider gets no secret the vault cannot make current.
    expect(updater.calls.length).toBe(pushesBefore + 3);
    for (const [i, c] of created.entries()) expect((await stack.credentials.getMetadata(ctx, c.credential.id)).version).toBe(versions[i]);
    // The job's own lines (three failures by its actor also trip the audit's suspicious-activity warning, as they should).
    const lines = logger.lines.filter((l) => /^(warn|error) /.test(l) && l.endsWith('WebhookSecretRotationJob'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^error .*refused 3 .*FORBIDDEN.*; 1 more .*next run/);
    // The failed promotes are audited with the vault's code in the one format of every audit writer.
    const failures = await stack.moduleRef.get(AuditService).query({ tenantId, action: 'webhook_secret.push_failed' });
    expect(failures.items.map((row) => row.errorCode)).toEqual(Array(3).fill('1010:FORBIDDEN'));
    const text = await stack.persistedText();
    for (const c of created) expect(text).not.toContain(c.secret);

    emu.clearDenials();
    expect(await stack.job.runOnce()).toMatchObject({ resumed: 3, rotated: 1, failed: 0, deferred: 0 });
  });
});
