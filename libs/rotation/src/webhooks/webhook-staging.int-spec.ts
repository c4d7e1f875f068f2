/**
 * Integration: operator-confirmed webhook-secret rotation for integrations without a
 * WebhookSecretUpdater (stage → install by hand → activate, or discard; a stale staged secret is
 * discarded), and the job's once-per-version `webhook_secret.rotation_due` for them. SQLite and
 * PostgreSQL, the real CredentialsService against the local vault, a ManualClock.
 */
import { randomUUID } from 'node:crypto';
import { Logger } from '@nestjs/common';
import { AuditService } from '@app/audit';
import { ManualClock, OutboxEventEntity, type OperationContext } from '@app/common';
import { CredentialErrorCode } from '@app/credentials';
import { KeyVaultEmulator } from '@app/keyvault-emulator';
import { CapturingLogger, createTestDatabase, DATABASE_KINDS, rejection, type TestDatabase } from '@app/testing';
import { Webhook } from 'standardwebhooks';
import { WebhookSecretState } from './persistence/webhook-secret-version.entity';
import { WebhookRotationSteps } from './webhook-rotation-steps';
import { WebhookSecretErrorCode } from './webhook-secret.errors';
import { RecordingUpdater, startWebhookStack, type WebhookStack } from './testing/webhook-stack';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const body = JSON.stringify({ type: 'invoice.paid', id: 'evt_1' });

describe.each(DATABASE_KINDS)('operator-confirmed webhook secret rotation on %s', (kind) => {
  let emu: KeyVaultEmulator;
  let db: TestDatabase;
  let stack: WebhookStack;
  const logger = new CapturingLogger();
  const clock = new ManualClock(new Date());
  const tenantId = `t-${randomUUID().slice(0, 8)}`;
  const ctx: OperationContext = { tenantId, actor: { id: 'user:ops' } };
  let seq = 0;
  // `manual`: no updater (an operator rotates); `stripe`: an updater is registered.
  const newTarget = (integrationId = 'manual') => ({ tenantId, integrationId, connectionId: `acct-${++seq}`, context: ctx });
  const signed = (secret: string) => {
    const at = new Date(Math.floor(clock.now().getTime() / 1000) * 1000);
    const msgId = `msg_${randomUUID()}`;
    return { 'webhook-id': msgId, 'webhook-timestamp': String(at.getTime() / 1000), 'webhook-signature': new Webhook(secret).sign(msgId, at, body) };
  };
  const verifies = async (target: ReturnType<typeof newTarget>, secret: string) => {
    try {
      return (await stack.service.verifyWebhook(target, body, signed(secret))).version;
    } catch (e) {
      if ((e as { code?: number }).code === WebhookSecretErrorCode.WEBHOOK_SIGNATURE_MISMATCH) return 'refused';
      throw e;
    }
  };
  const codeOf = async (p: Promise<unknown>) => ((await rejection(p)) as { code?: number }).code;
  const dueEvents = async (credentialId: string) =>
    (await stack.ds.getRepository(OutboxEventEntity).find({ where: { name: 'webhook_secret.rotation_due', tenantId } })).filter((e) => JSON.stringify(e.payload).includes(credentialId));
  const jobRun = async () => {
    for (let i = 0; i < 200; i++) {
      const r = await stack.job.runOnce();
      if (r.acquired) return r;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    throw new Error('the webhook-secret-rotation lock stayed taken');
  };

  beforeAll(async () => {
    Logger.overrideLogger(logger);
    emu = await KeyVaultEmulator.start({ quiet: true, throttle: false });
    db = await createTestDatabase(kind);
    stack = await startWebhookStack(db, emu, clock, { overlapMs: HOUR, stagedTtlMs: 2 * HOUR, rotateAfterMs: 30 * DAY }, logger);
    stack.updaters.register('stripe', new RecordingUpdater());
  });

  afterAll(async () => {
    await stack?.moduleRef.close();
    await emu?.stop();
    await db?.drop();
  });

  beforeEach(() => clock.set(new Date()));

  it('stage → the new secret verifies next to the current one → activate: current, the previous one live for the overlap window', async () => {
    const target = newTarget();
    const { credential, secret: first } = await stack.service.create(ctx, target);
    const staged = await stack.service.stageConnection(target);
    expect(staged).toMatchObject({ credentialId: credential.id, replacesVersion: 1 });
    expect(staged.secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(staged.activateBefore.getTime()).toBe(staged.stagedAt.getTime() + 2 * HOUR);
    // The provider may switch any time now: both verify; the current one still signs.
    expect(await verifies(target, first)).toBe(1);
    expect(await verifies(target, staged.secret)).toBeNull();
    const headers = await stack.service.signWebhook(target, 'msg_1', clock.now(), body);
    expect(new Webhook(first).verify(body, { ...headers })).toEqual(JSON.parse(body));
    expect(() => new Webhook(staged.secret).verify(body, { ...headers })).toThrow();
    expect(await codeOf(stack.service.stageConnection(target))).toBe(WebhookSecretErrorCode.WEBHOOK_SECRET_ALREADY_STAGED);
    expect(await codeOf(stack.service.activateConnection(target, randomUUID()))).toBe(WebhookSecretErrorCode.WEBHOOK_STAGED_ROTATION_MISMATCH);

    clock.advance(30 * MINUTE);
    const activated = await stack.service.activateConnection(target, staged.rotationId);
    expect(activated).toMatchObject({ outcome: 'rotated', rotationId: staged.rotationId, version: 2, previousVersion: 1 });
    expect(activated.previousLiveUntil?.getTime()).toBe(clock.now().getTime() + HOUR);
    expect((await stack.credentials.get(ctx, credential.id)).value).toBe(staged.secret);
    expect(await verifies(target, staged.secret)).toBe(2);
    expect(await verifies(target, first)).toBe(1);
    clock.advance(HOUR + 1000);
    expect(await verifies(target, first)).toBe('refused');
    expect(await codeOf(stack.service.activateConnection(target))).toBe(WebhookSecretErrorCode.WEBHOOK_NOTHING_STAGED);
    // The same activation again (a rerun after a kill that came after its commit): it says it went through.
    await expect(stack.service.activateConnection(target, staged.rotationId)).rejects.toThrow(`rotation ${staged.rotationId} was already activated (version 2)`);

    const actions = (await stack.ds.query(`SELECT action, actor_id FROM cv_audit_log WHERE resource = '${credential.id}' ORDER BY sequence`)) as Array<{ action: string; actor_id: string }>;
    expect(actions.map((a) => a.action)).toEqual(expect.arrayContaining(['webhook_secret.staged', 'webhook_secret.pushed', 'webhook_secret.rotated']));
    expect(actions.filter((a) => a.action.startsWith('webhook_secret.')).every((a) => a.actor_id === 'user:ops')).toBe(true);
    expect(await stack.persistedText()).not.toContain(staged.secret);
    expect(await stack.persistedText()).not.toContain(first);
  });

  it('two stages of one webhook at once: one stages, the other answers ALREADY_STAGED naming it — as a second stage after it would', async () => {
    for (let round = 0; round < 3; round++) {
      const target = newTarget();
      const { credential } = await stack.service.create(ctx, target);
      const answers = await Promise.allSettled([stack.service.stageConnection(target), stack.service.stageConnection(target)]);
      const staged = answers.flatMap((a) => (a.status === 'fulfilled' ? [a.value] : []));
      const refused = answers.flatMap((a) => (a.status === 'rejected' ? [a.reason as { code?: number; rotationId?: string }] : []));
      expect(staged).toHaveLength(1);
      expect(refused.map((e) => [e.code, e.rotationId])).toEqual([[WebhookSecretErrorCode.WEBHOOK_SECRET_ALREADY_STAGED, staged[0].rotationId]]);
      expect((await stack.versionRows(credential.id)).filter((r) => r.state === WebhookSecretState.PENDING).map((r) => r.id)).toEqual([staged[0].rotationId]);
    }
  });

  it('discard: the staged secret stops verifying, its value is deleted, the current one stays', async () => {
    const target = newTarget();
    const { credential, secret: first } = await stack.service.create(ctx, target);
    expect(await codeOf(stack.service.discardConnection(target))).toBe(WebhookSecretErrorCode.WEBHOOK_NOTHING_STAGED);
    const staged = await stack.service.stageConnection(target);
    const stagingId = (await stack.versionRows(credential.id)).find((r) => r.state === WebhookSecretState.PENDING)!.stagingCredentialId!;
    expect(await stack.service.discardConnection(target, staged.rotationId)).toEqual({ credentialId: credential.id, rotationId: staged.rotationId, version: 1 });
    expect(await verifies(target, staged.secret)).toBe('refused');
    expect(await verifies(target, first)).toBe(1);
    expect(await codeOf(stack.credentials.getMetadata(ctx, stagingId))).toBe(CredentialErrorCode.NOT_FOUND);
    const rows = await stack.versionRows(credential.id);
    expect(rows.find((r) => r.id === staged.rotationId)).toMatchObject({ state: WebhookSecretState.RETIRED, lastError: 'DISCARDED', stagingCredentialId: null });
    // A new one can be staged now.
    expect((await stack.service.stageConnection(target)).rotationId).not.toBe(staged.rotationId);
  });

  it('an activation whose staged secret another process discarded meanwhile (its lock session lost) answers IN_PROGRESS, audited once (failure, 3122)', async () => {
    const target = newTarget();
    const { credential } = await stack.service.create(ctx, target);
    const staged = await stack.service.stageConnection(target);
    const pending = (await stack.versionRows(credential.id)).find((r) => r.state === WebhookSecretState.PENDING)!;
    const meta = await stack.credentials.getMetadata(ctx, credential.id);
    // Right before the activation reads the staged value, another process that took the lock after this one's session
    // ended discards it (its steps, as that process runs them under the lock).
    const get = stack.credentials.get.bind(stack.credentials);
    let discarded = false;
    const spy = jest.spyOn(stack.credentials, 'get').mockImplementation(async (c, id, options) => {
      if (id === pending.stagingCredentialId && !discarded) {
        discarded = true;
        await stack.moduleRef.get(WebhookRotationSteps).discard(ctx, meta, pending, 'DISCARDED');
      }
      return get(c, id, options);
    });
    try {
      expect(await codeOf(stack.service.activateConnection(target, staged.rotationId))).toBe(WebhookSecretErrorCode.WEBHOOK_ROTATION_IN_PROGRESS);
    } finally {
      spy.mockRestore();
    }
    expect(discarded).toBe(true);
    expect((await stack.credentials.getMetadata(ctx, credential.id)).version).toBe(1);
    const rows = (await stack.moduleRef.get(AuditService).query({ tenantId, order: 'asc', limit: 500 })).items.filter((r) => r.resource === credential.id && r.result !== 'success');
    expect(rows.map((r) => [r.action, r.result, r.errorCode ?? null, r.details?.version ?? null, r.actorId])).toEqual([['rotate', 'failure', '3122:WEBHOOK_ROTATION_IN_PROGRESS', 1, 'user:ops']]);
  });

  it('a staged secret left unactivated past stagedTtlMs: a late activate answers STAGED_EXPIRED, the job discards it', async () => {
    const lateTarget = newTarget();
    await stack.service.create(ctx, lateTarget);
    const late = await stack.service.stageConnection(lateTarget);
    const jobTarget = newTarget();
    const { credential, secret: first } = await stack.service.create(ctx, jobTarget);
    const forgotten = await stack.service.stageConnection(jobTarget);

    clock.advance(HOUR);
    const early = await jobRun();
    expect(early).toMatchObject({ discarded: 0, failed: 0 });
    expect(early.acquired && early.awaitingActivation).toBeGreaterThanOrEqual(2);
    clock.advance(HOUR + 1000);
    expect(await codeOf(stack.service.activateConnection(lateTarget, late.rotationId))).toBe(WebhookSecretErrorCode.WEBHOOK_STAGED_SECRET_EXPIRED);
    expect(await verifies(lateTarget, late.secret)).toBe('refused');

    const run = await jobRun();
    expect(run).toMatchObject({ failed: 0 });
    expect(run.acquired && run.discarded).toBeGreaterThanOrEqual(1);
    expect(await verifies(jobTarget, forgotten.secret)).toBe('refused');
    expect(await verifies(jobTarget, first)).toBe(1);
    expect((await stack.versionRows(credential.id)).find((r) => r.id === forgotten.rotationId)).toMatchObject({ state: WebhookSecretState.RETIRED, lastError: 'STAGED_EXPIRED' });
    expect(await codeOf(stack.service.activateConnection(jobTarget))).toBe(WebhookSecretErrorCode.WEBHOOK_NOTHING_STAGED);
  });

  it('the job: a due secret without an updater raises webhook_secret.rotation_due once per version, no failure, no warning', async () => {
    const target = newTarget();
    const { credential } = await stack.service.create(ctx, target);
    const withUpdater = newTarget('stripe');
    const automatic = await stack.service.create(ctx, withUpdater);
    const warnings = () => logger.lines.filter((l) => (l.startsWith('warn') || l.startsWith('error')) && l.includes('webhook-secret-rotation'));
    const warnedBefore = warnings().length;

    clock.advance(31 * DAY);
    const first = await jobRun();
    expect(first).toMatchObject({ failed: 0 });
    expect(first.acquired && first.dueNotified).toBeGreaterThanOrEqual(1);
    expect(first.acquired && first.rotated).toBeGreaterThanOrEqual(1);
    expect((await stack.credentials.getMetadata(ctx, automatic.credential.id)).version).toBe(2);
    const second = await jobRun();
    expect(second).toMatchObject({ failed: 0 });
    expect(second.acquired && second.noUpdater).toBeGreaterThanOrEqual(1);
    await jobRun();
    const events = await dueEvents(credential.id);
    expect(events).toHaveLength(1);
    expect(events[0].payload).toMatchObject({ credentialId: credential.id, integrationId: 'manual', connectionId: target.connectionId, type: 'webhook_secret', version: 1 });
    expect(warnings()).toHaveLength(warnedBefore);

    // The operator rotates: the new version is due again after its own "rotate after", notified once more.
    const staged = await stack.service.stageConnection(target);
    await stack.service.activateConnection(target, staged.rotationId);
    await jobRun();
    expect(await dueEvents(credential.id)).toHaveLength(1);
    clock.advance(31 * DAY);
    await jobRun();
    await jobRun();
    const after = await dueEvents(credential.id);
    expect(after.map((e) => (e.payload as { version: number }).version)).toEqual([1, 2]);
  });

  it('an integration with an updater keeps the automatic path; staging it by hand is allowed and its activation promotes it', async () => {
    const target = newTarget('stripe');
    const { credential } = await stack.service.create(ctx, target);
    const rotated = await stack.service.rotateConnection(target);
    expect(rotated).toMatchObject({ outcome: 'rotated', version: 2 });
    const staged = await stack.service.stageConnection(target);
    // Not stale for an updater's integration: the job completes it through the updater instead of discarding it.
    clock.advance(3 * HOUR);
    const run = await jobRun();
    expect(run).toMatchObject({ discarded: 0, resumed: 1, failed: 0 });
    expect((await stack.credentials.get(ctx, credential.id)).value).toBe(staged.secret);
  });

  it('is tenant-scoped: another tenant can neither stage, activate nor discard', async () => {
    const target = newTarget();
    await stack.service.create(ctx, target);
    const other = { ...target, tenantId: 'other-tenant', context: { tenantId: 'other-tenant', actor: { id: 'x' } } };
    expect(await codeOf(stack.service.stageConnection(other))).toBe(WebhookSecretErrorCode.WEBHOOK_SECRET_NOT_FOUND);
    const staged = await stack.service.stageConnection(target);
    expect(await codeOf(stack.service.activateConnection(other, staged.rotationId))).toBe(WebhookSecretErrorCode.WEBHOOK_SECRET_NOT_FOUND);
    expect(await codeOf(stack.service.discardConnection(other, staged.rotationId))).toBe(WebhookSecretErrorCode.WEBHOOK_SECRET_NOT_FOUND);
    expect(await verifies(target, staged.secret)).toBeNull();
  });

  it("an embedding app's registry that answers get() for an integration its has() does not know: the job and a late activate treat it as rotate() does", async () => {
    // As the CLI e2e stands one in: `get` answers for 'embedded', `has` does not know it.
    const embedded = new RecordingUpdater();
    const get = stack.updaters.get.bind(stack.updaters);
    const spy = jest.spyOn(stack.updaters, 'get').mockImplementation((id) => (id === 'embedded' ? embedded : get(id)));
    try {
      expect(stack.updaters.has('embedded')).toBe(false);
      const due = newTarget('embedded');
      const dueCredential = (await stack.service.create(ctx, due)).credential;
      const staged = newTarget('embedded');
      const stagedCredential = (await stack.service.create(ctx, staged)).credential;
      const stagedSecret = (await stack.service.stageConnection(staged)).secret;
      const late = newTarget('embedded');
      const lateCredential = (await stack.service.create(ctx, late)).credential;
      const lateStaged = await stack.service.stageConnection(late);

      clock.advance(31 * DAY);
      // Past stagedTtlMs, but the integration has an updater: not stale, so its activation promotes it.
      expect(await stack.service.activateConnection(late, lateStaged.rotationId)).toMatchObject({ outcome: 'rotated', version: 2 });
      expect((await stack.credentials.get(ctx, lateCredential.id)).value).toBe(lateStaged.secret);
      const run = await jobRun();
      expect(run).toMatchObject({ failed: 0 });
      expect(run.acquired && run.rotated).toBeGreaterThanOrEqual(1);
      expect(run.acquired && run.resumed).toBeGreaterThanOrEqual(1);
      // The due secret is rotated through the updater (not counted as one without an updater, no rotation_due event)…
      expect((await stack.credentials.getMetadata(ctx, dueCredential.id)).version).toBe(2);
      expect(await dueEvents(dueCredential.id)).toHaveLength(0);
      // …and the secret staged by hand is pushed and promoted, not discarded as a stale staged secret.
      expect((await stack.credentials.get(ctx, stagedCredential.id)).value).toBe(stagedSecret);
      expect(embedded.calls.map((c) => c.credentialId).sort()).toEqual([dueCredential.id, stagedCredential.id].sort());
    } finally {
      spy.mockRestore();
    }
  });
});
