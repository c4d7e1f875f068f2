/**
 * Integration: webhook secrets on the real CredentialsService (Key Vault SDK against the local
 * vault, audit, outbox) on SQLite and PostgreSQL, checked against the reference implementation
 * (`standardwebhooks`). The reference verifies against the real clock, so what it must verify is
 * signed with a real-time timestamp; our verification runs on the ManualClock.
 */
import { randomUUID } from 'node:crypto';
import { AuditService } from '@app/audit';
import { type DistributedLock, LockErrorCode, ManualClock, prefixedLockKey, TransactionRunner, type OperationContext } from '@app/common';
import { CredentialType } from '@app/credentials';
import { KeyVaultEmulator } from '@app/keyvault-emulator';
import { createTestDatabase, DATABASE_KINDS, rejection, type TestDatabase } from '@app/testing';
import { Webhook } from 'standardwebhooks';
import { WebhookSecretState } from './persistence/webhook-secret-version.entity';
import { WebhookSecretErrorCode, WebhookSecretUpdateFailedError, WebhookSecretUpdaterNotRegisteredError } from './webhook-secret.errors';
import { RecordingUpdater, startWebhookStack, type WebhookStack } from './testing/webhook-stack';
import { WEBHOOK_SECRETS_LOCK } from './webhook-secrets.tokens';

const HOUR = 3_600_000;
/** A stage's wait for a held lock here (10 s by default, per database): still far above a lookup and its audit row. */
const STAGE_LOCK_WAIT_MS = 3_000;
const body = JSON.stringify({ type: 'invoice.paid', id: 'evt_1' });

describe.each(DATABASE_KINDS)('webhook secrets on %s', (kind) => {
  let emu: KeyVaultEmulator;
  let db: TestDatabase;
  let stack: WebhookStack;
  const clock = new ManualClock(new Date());
  const updater = new RecordingUpdater();
  const tenantId = `t-${randomUUID().slice(0, 8)}`;
  const ctx: OperationContext = { tenantId, actor: { id: 'user:ops' } };
  let seq = 0;
  const newTarget = () => ({ tenantId, integrationId: 'stripe', connectionId: `acct-${++seq}`, context: ctx });

  /** Headers the reference signs with `secret`, at our clock's time (what we verify). */
  const referenceSigned = (secret: string, msgId = `msg_${randomUUID()}`) => {
    const at = new Date(Math.floor(clock.now().getTime() / 1000) * 1000);
    return { 'webhook-id': msgId, 'webhook-timestamp': String(at.getTime() / 1000), 'webhook-signature': new Webhook(secret).sign(msgId, at, body) };
  };
  const codeOf = async (p: Promise<unknown>) => ((await rejection(p)) as { code?: number }).code;

  beforeAll(async () => {
    emu = await KeyVaultEmulator.start({ quiet: true, throttle: false, operationDelayMs: 0 }); // credential deletes soft-delete secrets
    db = await createTestDatabase(kind);
    stack = await startWebhookStack(db, emu, clock, { stageLockWaitMs: STAGE_LOCK_WAIT_MS });
    stack.updaters.register('stripe', updater);
  });

  afterAll(async () => {
    await stack?.moduleRef.close();
    await emu?.stop();
    await db?.drop();
  });

  beforeEach(() => {
    clock.set(new Date());
    updater.failNext = 0;
  });

  it('create → sign/verify both ways with the reference; errors are typed', async () => {
    const target = newTarget();
    const { credential, secret } = await stack.service.create(ctx, target);
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    const headers = await stack.service.signWebhook(target, 'msg_1', new Date(), body);
    expect(new Webhook(secret).verify(body, { ...headers })).toEqual(JSON.parse(body));
    const verified = await stack.service.verifyWebhook(target, body, referenceSigned(secret));
    expect(verified).toMatchObject({ credentialId: credential.id, version: 1 });
    expect(await codeOf(stack.service.verifyWebhook(target, body.replace('1', '2'), referenceSigned(secret)))).toBe(WebhookSecretErrorCode.WEBHOOK_SIGNATURE_MISMATCH);
    expect(await codeOf(stack.service.verifyWebhook({ ...target, connectionId: 'nope' }, body, referenceSigned(secret)))).toBe(WebhookSecretErrorCode.WEBHOOK_SECRET_NOT_FOUND);
    // Another tenant never sees it.
    const other = { ...target, tenantId: 'other-tenant', context: { tenantId: 'other-tenant', actor: { id: 'x' } } };
    expect(await codeOf(stack.service.verifyWebhook(other, body, referenceSigned(secret)))).toBe(WebhookSecretErrorCode.WEBHOOK_SECRET_NOT_FOUND);
  });

  it('two-phase rotation: pushed, then current; the old secret verifies inside the overlap window only', async () => {
    const target = newTarget();
    const { credential, secret: oldSecret } = await stack.service.create(ctx, target);
    const before = updater.calls.length;
    const result = await stack.service.rotate(ctx, credential.id);
    expect(result).toMatchObject({ outcome: 'rotated', version: 2, previousVersion: 1, resumed: false });
    expect(result.previousLiveUntil?.getTime()).toBe(clock.now().getTime() + 24 * HOUR);
    const push = updater.calls[before];
    expect(updater.calls).toHaveLength(before + 1);
    expect(push).toMatchObject({ credentialId: credential.id, integrationId: 'stripe', connectionId: target.connectionId, replacesVersion: 1, rotationId: result.rotationId });
    const newSecret = push.newSecret;
    expect(newSecret).toMatch(/^whsec_/);
    expect((await stack.credentials.get(ctx, credential.id)).value).toBe(newSecret);

    // We sign with the new secret only; the reference agrees.
    const signed = await stack.service.signWebhook(target, 'msg_2', new Date(), body);
    expect(new Webhook(newSecret).verify(body, { ...signed })).toBeTruthy();
    expect(() => new Webhook(oldSecret).verify(body, { ...signed })).toThrow();
    // Both verify inside the window.
    expect((await stack.service.verifyWebhook(target, body, referenceSigned(oldSecret))).version).toBe(1);
    expect((await stack.service.verifyWebhook(target, body, referenceSigned(newSecret))).version).toBe(2);
    clock.advance(24 * HOUR - 1000);
    expect((await stack.service.verifyWebhook(target, body, referenceSigned(oldSecret))).version).toBe(1);
    // After the window only the new one.
    clock.advance(2000);
    expect(await codeOf(stack.service.verifyWebhook(target, body, referenceSigned(oldSecret)))).toBe(WebhookSecretErrorCode.WEBHOOK_SIGNATURE_MISMATCH);
    expect((await stack.service.verifyWebhook(target, body, referenceSigned(newSecret))).version).toBe(2);
    expect((await stack.job.runOnce()).acquired).toBe(true);
    expect((await stack.versionRows(credential.id)).map((r) => [r.credentialVersion, r.state])).toEqual([
      [1, WebhookSecretState.RETIRED],
      [2, WebhookSecretState.CURRENT],
    ]);
    // The history, metadata only, for this tenant only.
    const views = await stack.service.versions(ctx, credential.id);
    expect(views.map((v) => [v.version, v.state])).toEqual(expect.arrayContaining([[1, 'retired'], [2, 'current']]));
    expect(JSON.stringify(views)).not.toContain(newSecret.slice(6));
    expect(await codeOf(stack.service.versions({ tenantId: 'other-tenant', actor: { id: 'x' } }, credential.id))).toBe(2002);
    // The staging credential is gone; events and audit rows hold ids only, never a value.
    expect((await stack.credentials.list(ctx, { integrationId: 'stripe', includeInternal: true })).items.filter((c) => c.connectionId.startsWith('whsec-pending.'))).toEqual([]);
    const text = await stack.persistedText();
    expect(text).toContain('webhook_secret.rotated');
    for (const s of [oldSecret, newSecret]) {
      expect(text).not.toContain(s.slice(6));
      expect(text).not.toContain(s.slice(6, 30));
    }
  });

  it('revoked, then given a new value by hand: the revoked secrets verify nothing, even inside their overlap window', async () => {
    const target = newTarget();
    const { credential, secret: first } = await stack.service.create(ctx, target);
    await stack.service.rotate(ctx, credential.id);
    const second = (await stack.credentials.get(ctx, credential.id)).value;
    expect((await stack.service.verifyWebhook(target, body, referenceSigned(first))).version).toBe(1); // live for 24 h
    await stack.credentials.revoke(ctx, credential.id);
    const replacement = `whsec_${Buffer.alloc(32, 7).toString('base64')}`;
    await stack.credentials.rotate(ctx, credential.id, replacement);

    expect((await stack.service.verifyWebhook(target, body, referenceSigned(replacement))).version).toBe(3);
    for (const leaked of [first, second]) {
      expect(await codeOf(stack.service.verifyWebhook(target, body, referenceSigned(leaked)))).toBe(WebhookSecretErrorCode.WEBHOOK_SIGNATURE_MISMATCH);
    }
  });

  it('an expiring secret: refused from its expiry on, although nothing else changed; a rotation gives the new one a fresh lifetime', async () => {
    const target = newTarget();
    const old = `whsec_${Buffer.alloc(32, 5).toString('base64')}`;
    const meta = await stack.credentials.store(ctx, { integrationId: 'stripe', connectionId: target.connectionId, type: CredentialType.WEBHOOK_SECRET, value: old, expiresAt: new Date(clock.now().getTime() + HOUR) });
    expect((await stack.service.verifyWebhook(target, body, referenceSigned(old))).version).toBe(1); // held by this process's keyring now
    clock.advance(HOUR + 1000);
    expect(await codeOf(stack.service.verifyWebhook(target, body, referenceSigned(old)))).toBe(2010);
    expect(await codeOf(stack.service.signWebhook(target, 'msg_x', clock.now(), body))).toBe(2010);

    // Rotating the expired secret recovers the connection: the new one lives an hour again, from now.
    const rotated = await stack.service.rotate(ctx, meta.id);
    expect(rotated).toMatchObject({ outcome: 'rotated', version: 2 });
    const after = await stack.credentials.getMetadata(ctx, meta.id);
    expect(after).toMatchObject({ status: 'active', expiresAt: new Date(clock.now().getTime() + HOUR) });
    const fresh = updater.calls[updater.calls.length - 1].newSecret;
    expect((await stack.service.verifyWebhook(target, body, referenceSigned(fresh))).version).toBe(2);
    await expect(stack.service.signWebhook(target, 'msg_y', clock.now(), body)).resolves.toBeDefined();
  });

  it('at most maxLiveSecrets (5, the current one included) verify: the oldest falls out first', async () => {
    const target = newTarget();
    const { credential, secret: first } = await stack.service.create(ctx, target);
    for (let i = 0; i < 5; i++) await stack.service.rotate(ctx, credential.id);
    const rows = await stack.versionRows(credential.id);
    expect(rows.filter((r) => r.state === WebhookSecretState.LIVE).map((r) => r.credentialVersion)).toEqual([2, 3, 4, 5]);
    expect(rows.find((r) => r.state === WebhookSecretState.CURRENT)?.credentialVersion).toBe(6);
    expect(await codeOf(stack.service.verifyWebhook(target, body, referenceSigned(first)))).toBe(WebhookSecretErrorCode.WEBHOOK_SIGNATURE_MISMATCH);
    const v2 = (await stack.credentials.getVersion(ctx, credential.id, 2)).value;
    expect((await stack.service.verifyWebhook(target, body, referenceSigned(v2))).version).toBe(2);
  });

  it('updater failure: the old secret stays current, the failure is recorded, the job retries with the same value', async () => {
    const target = newTarget();
    const { credential, secret: oldSecret } = await stack.service.create(ctx, target);
    updater.failNext = 1;
    const before = updater.calls.length;
    const err = await rejection(stack.service.rotate(ctx, credential.id));
    expect(err).toBeInstanceOf(WebhookSecretUpdateFailedError);
    expect((await stack.credentials.get(ctx, credential.id)).value).toBe(oldSecret);
    const signed = await stack.service.signWebhook(target, 'msg_f', new Date(), body);
    expect(new Webhook(oldSecret).verify(body, { ...signed })).toBeTruthy();
    const pendingSecret = updater.calls[before].newSecret;
    const pending = (await stack.versionRows(credential.id)).find((r) => r.state === WebhookSecretState.PENDING);
    expect(pending).toMatchObject({ state: WebhookSecretState.PENDING, attempts: 1, lastError: 'Error' });
    // The provider may already sign with the pushed secret: it verifies, as version null (not current yet).
    expect((await stack.service.verifyWebhook(target, body, referenceSigned(pendingSecret))).version).toBeNull();
    const text = await stack.persistedText();
    expect(text).toContain('webhook_secret.rotation_failed');
    expect(text).not.toContain(pendingSecret.slice(6));

    const run = await stack.job.runOnce();
    expect(run).toMatchObject({ acquired: true, resumed: 1, failed: 0 });
    expect(updater.calls.slice(before).map((c) => [c.newSecret, c.rotationId])).toEqual([
      [pendingSecret, pending?.id],
      [pendingSecret, pending?.id],
    ]);
    expect((await stack.credentials.get(ctx, credential.id)).value).toBe(pendingSecret);
    expect((await stack.service.verifyWebhook(target, body, referenceSigned(oldSecret))).version).toBe(1);
  });

  it('a pending rotation whose staging credential was deleted by hand: verification goes on, the next rotation starts afresh', async () => {
    const target = newTarget();
    const { credential, secret: oldSecret } = await stack.service.create(ctx, target);
    updater.failNext = 1;
    const before = updater.calls.length;
    await rejection(stack.service.rotate(ctx, credential.id));
    const lost = (await stack.versionRows(credential.id)).find((r) => r.state === WebhookSecretState.PENDING);
    await stack.credentials.delete(ctx, lost?.stagingCredentialId as string);
    expect((await stack.service.verifyWebhook(target, body, referenceSigned(oldSecret))).version).toBe(1);
    const result = await stack.service.rotate(ctx, credential.id);
    expect(result).toMatchObject({ outcome: 'rotated', version: 2, resumed: false });
    expect(updater.calls[before + 1].newSecret).not.toBe(updater.calls[before].newSecret);
    expect((await stack.versionRows(credential.id)).find((r) => r.id === lost?.id)).toMatchObject({ state: WebhookSecretState.RETIRED, lastError: 'STAGING_CREDENTIAL_MISSING' });
  });

  it('a deleted credential with a pending rotation: the job retires its rows (all with the one reason, DELETED) and the staging credential', async () => {
    const target = newTarget();
    const { credential } = await stack.service.create(ctx, target);
    updater.failNext = 1;
    await rejection(stack.service.rotate(ctx, credential.id));
    const staging = (await stack.versionRows(credential.id)).find((r) => r.state === WebhookSecretState.PENDING)?.stagingCredentialId as string;
    await stack.credentials.delete(ctx, credential.id);
    expect(await stack.job.runOnce()).toMatchObject({ acquired: true, orphaned: 1 });
    const retired = { state: WebhookSecretState.RETIRED, lastError: 'DELETED' };
    expect((await stack.versionRows(credential.id)).map((r) => ({ state: r.state, lastError: r.lastError }))).toEqual([retired, retired]);
    expect(await codeOf(stack.credentials.getMetadata(ctx, staging))).toBe(2002);
  });

  it('a step refused because another holds the lock is audited once (failure, 3122); another tenant is answered and audited NOT_FOUND before the lock', async () => {
    const ctxL: OperationContext = { tenantId: `locked-${randomUUID().slice(0, 8)}`, actor: { id: 'user:dan' } };
    const ctxO: OperationContext = { tenantId: `other-${randomUUID().slice(0, 8)}`, actor: { id: 'user:eve' } };
    const target = { tenantId: ctxL.tenantId, integrationId: `slow-${++seq}`, connectionId: 'c', context: ctxL };
    const { credential } = await stack.service.create(ctxL, target);
    let release = () => undefined as void;
    const held = new Promise<void>((r) => (release = r));
    let reached = () => undefined as void;
    const onProvider = new Promise<void>((r) => (reached = r));
    const off = stack.updaters.register(target.integrationId, { update: async () => (reached(), held) });
    try {
      const first = stack.service.rotate(ctxL, credential.id);
      await onProvider; // holds the credential's lock
      const stagedFrom = Date.now();
      // Waits for the lock, then refused: after the configured wait, not the default 10 s.
      const staged = rejection(stack.service.stageConnection(target)).then((e) => ({ e, waitedMs: Date.now() - stagedFrom }));
      expect(await codeOf(stack.service.rotate(ctxL, credential.id))).toBe(WebhookSecretErrorCode.WEBHOOK_ROTATION_IN_PROGRESS);
      expect(await codeOf(stack.service.activateConnection(target))).toBe(WebhookSecretErrorCode.WEBHOOK_ROTATION_IN_PROGRESS);
      expect(await codeOf(stack.service.discardConnection(target))).toBe(WebhookSecretErrorCode.WEBHOOK_ROTATION_IN_PROGRESS);
      // Another tenant's step of that id: not found, as any id it does not have — not "in progress"; looked up before
      // the lock, so it neither takes nor waits on it (a stage: not after its wait).
      const lock = stack.moduleRef.get<DistributedLock>(WEBHOOK_SECRETS_LOCK);
      const tryRun = jest.spyOn(lock, 'tryRun');
      const run = jest.spyOn(lock, 'run');
      try {
        expect(await codeOf(stack.service.rotate(ctxO, credential.id))).toBe(2002);
        const began = Date.now();
        expect(await codeOf(stack.rotator.stage(ctxO, credential.id))).toBe(2002);
        expect(Date.now() - began).toBeLessThan(STAGE_LOCK_WAIT_MS);
        expect(await codeOf(stack.rotator.activate(ctxO, credential.id))).toBe(2002);
        expect(await codeOf(stack.rotator.discard(ctxO, credential.id))).toBe(2002);
        expect([...tryRun.mock.calls, ...run.mock.calls].filter(([key]) => String(key).includes(credential.id))).toEqual([]);
      } finally {
        tryRun.mockRestore();
        run.mockRestore();
      }
      const { e, waitedMs } = await staged;
      expect((e as { code?: number }).code).toBe(WebhookSecretErrorCode.WEBHOOK_ROTATION_IN_PROGRESS);
      expect(waitedMs).toBeGreaterThanOrEqual(STAGE_LOCK_WAIT_MS - 50);
      expect(waitedMs).toBeLessThan(10_000);
      release();
      await expect(first).resolves.toMatchObject({ outcome: 'rotated', version: 2 });
    } finally {
      release();
      off();
    }
    const audit = stack.moduleRef.get(AuditService);
    const trail = async (c: OperationContext) =>
      (await audit.query({ tenantId: c.tenantId, order: 'asc', limit: 100 })).items
        .filter((r) => r.resource === credential.id && r.result !== 'success')
        .map((r) => [r.action, r.result, r.errorCode ?? null, r.details?.version ?? null, r.actorId]);
    const inProgress = (action: string) => [action, 'failure', '3122:WEBHOOK_ROTATION_IN_PROGRESS', 1, 'user:dan'];
    expect(await trail(ctxL)).toEqual([inProgress('rotate'), inProgress('rotate'), inProgress('webhook_secret.staged_discarded'), inProgress('webhook_secret.staged')]);
    const guessed = (action: string) => [action, 'denied', '2002:NOT_FOUND', null, 'user:eve'];
    expect(await trail(ctxO)).toEqual([guessed('rotate'), guessed('webhook_secret.staged'), guessed('rotate'), guessed('webhook_secret.staged_discarded')]);
  }, 30_000);

  // SQLite only: the transaction gate (one connection) is what times out inside the step; PostgreSQL has none, so
  // the case does not exist there (not registered, rather than a skipped test).
  const onSqlite: typeof it = kind === 'sqlite' ? it : ((() => undefined) as unknown as typeof it);
  onSqlite('a stage whose own write times out inside its lock (the SQLite transaction gate) answers that, not IN_PROGRESS, and writes no 3122 row', async () => {
    const target = newTarget();
    const { credential } = await stack.service.create(ctx, target);
    let release = () => undefined as void;
    const held = new Promise<void>((r) => (release = r));
    // Another transaction holds the gate past its 5 s wait while the stage (holding the rotation lock) writes.
    const other = stack.moduleRef.get(TransactionRunner).run(() => held);
    // Free again just after the stage's write gave up (5 s): what follows it in the stage is not refused by the gate.
    const timer = setTimeout(release, 5_500);
    let code: number | undefined;
    try {
      code = await codeOf(stack.rotator.stage(ctx, credential.id));
    } finally {
      clearTimeout(timer);
      release();
      await other;
    }
    const rows = (await stack.moduleRef.get(AuditService).query({ tenantId, order: 'asc', limit: 500 })).items;
    const refusals = rows.filter((r) => r.resource === credential.id && r.errorCode === '3122:WEBHOOK_ROTATION_IN_PROGRESS');
    expect({ code, refusals: refusals.map((r) => r.action) }).toEqual({ code: LockErrorCode.LOCK_TIMEOUT, refusals: [] });
  }, 30_000);

  it("an id the caller's tenant does not have is audited denied (NOT_FOUND); the job's deleted credential is not", async () => {
    const ctxU: OperationContext = { tenantId: `unknown-${randomUUID().slice(0, 8)}`, actor: { id: 'user:fay' } };
    const missing = randomUUID();
    expect(await codeOf(stack.service.rotate(ctxU, missing))).toBe(2002);
    const target = { tenantId: ctxU.tenantId, integrationId: 'stripe', connectionId: 'gone', context: ctxU };
    const { credential } = await stack.service.create(ctxU, target);
    updater.failNext = 1;
    await rejection(stack.service.rotate(ctxU, credential.id)); // a pending row the job finds
    await stack.credentials.delete(ctxU, credential.id);
    expect(await stack.job.runOnce()).toMatchObject({ acquired: true, orphaned: 1 });
    const rows = (await stack.moduleRef.get(AuditService).query({ tenantId: ctxU.tenantId, order: 'asc', limit: 100 })).items.filter((r) => r.result === 'denied');
    expect(rows.map((r) => [r.action, r.errorCode ?? null, r.resource, r.actorId])).toEqual([['rotate', '2002:NOT_FOUND', missing, 'user:fay']]);
  });

  it("the job's own rotation refused because another holds the credential's lock is not audited: it counts toward no failure threshold", async () => {
    const target = newTarget();
    const { credential } = await stack.service.create(ctx, target);
    updater.failNext = 1;
    await rejection(stack.service.rotate(ctx, credential.id)); // a pending row the job resumes
    let release = () => undefined as void;
    const held = new Promise<void>((r) => (release = r));
    let reached = () => undefined as void;
    const holding = new Promise<void>((r) => (reached = r));
    // A caller's step of that credential (on any replica) holds its lock while the job runs.
    const holder = stack.moduleRef.get<DistributedLock>(WEBHOOK_SECRETS_LOCK).run(prefixedLockKey('credentialRotation', credential.id), () => (reached(), held), { timeoutMs: 5_000 });
    try {
      await holding;
      // The job did reach it (counted in its summary), and wrote no row for it.
      expect(await stack.job.runOnce()).toMatchObject({ acquired: true, resumed: 0, failed: 1 });
    } finally {
      release();
      await holder;
    }
    expect((await stack.versionRows(credential.id)).map((r) => r.state).sort()).toEqual([WebhookSecretState.CURRENT, WebhookSecretState.PENDING]);
    const rows = (await stack.moduleRef.get(AuditService).query({ tenantId, order: 'asc', limit: 500 })).items;
    expect(rows.filter((r) => r.resource === credential.id && r.actorId !== ctx.actor.id).map((r) => [r.action, r.result, r.errorCode ?? null])).toEqual([]);
    // The next run, the lock free, resumes it.
    expect(await stack.job.runOnce()).toMatchObject({ acquired: true });
    expect((await stack.credentials.getMetadata(ctx, credential.id)).version).toBe(2);
  });

  it('an integration without an updater: refused before anything is written', async () => {
    const target = { ...newTarget(), integrationId: 'no-updater' };
    const { credential } = await stack.service.create(ctx, target);
    const refused = await rejection(stack.service.rotate(ctx, credential.id));
    expect(refused).toBeInstanceOf(WebhookSecretUpdaterNotRegisteredError);
    // An embedding app has this lib's service, not the reference host's routes or CLI: the message names its methods.
    expect((refused as Error).message).toMatch(/WebhookSecretsService\.stageConnection\(\).*activateConnection\(\)/);
    expect((await stack.versionRows(credential.id)).map((r) => r.state)).toEqual([WebhookSecretState.CURRENT]);
  });

  it('a step refused before any write — a revoked credential, not a webhook secret, no updater — is audited once, as RotationService audits its refusals', async () => {
    const ctxR: OperationContext = { tenantId: `refused-${randomUUID().slice(0, 8)}`, actor: { id: 'user:gus' } };
    const at = (integrationId: string, connectionId: string) => ({ tenantId: ctxR.tenantId, integrationId, connectionId, context: ctxR });
    const { credential: revoked } = await stack.service.create(ctxR, at('stripe', 'revoked'));
    updater.failNext = 1;
    await rejection(stack.service.rotate(ctxR, revoked.id)); // a pending row the job tries again
    await stack.credentials.revoke(ctxR, revoked.id);
    const given = `k-${randomUUID()}`;
    const apiKey = await stack.credentials.store(ctxR, { integrationId: 'stripe', connectionId: 'api-key', type: CredentialType.API_KEY, value: given });
    const { credential: manual } = await stack.service.create(ctxR, at('no-updater', 'manual'));
    const REVOKED = 2009;
    const NOT_A_WEBHOOK_SECRET = WebhookSecretErrorCode.WEBHOOK_WRONG_CREDENTIAL_TYPE;
    expect(await codeOf(stack.service.rotate(ctxR, revoked.id))).toBe(REVOKED);
    expect(await codeOf(stack.rotator.stage(ctxR, revoked.id))).toBe(REVOKED);
    expect(await codeOf(stack.rotator.activate(ctxR, revoked.id))).toBe(REVOKED);
    expect(await codeOf(stack.service.rotate(ctxR, apiKey.id))).toBe(NOT_A_WEBHOOK_SECRET);
    expect(await codeOf(stack.rotator.stage(ctxR, apiKey.id))).toBe(NOT_A_WEBHOOK_SECRET);
    expect(await codeOf(stack.rotator.discard(ctxR, apiKey.id))).toBe(NOT_A_WEBHOOK_SECRET);
    expect(await codeOf(stack.service.rotate(ctxR, manual.id))).toBe(WebhookSecretErrorCode.WEBHOOK_UPDATER_NOT_REGISTERED);
    // The job meets the revoked credential's pending row every run: counted, not audited.
    expect(await stack.job.runOnce()).toMatchObject({ acquired: true, revoked: 1 });
    const rows = (await stack.moduleRef.get(AuditService).query({ tenantId: ctxR.tenantId, order: 'asc', limit: 100 })).items.filter((r) => r.result !== 'success' && r.action !== 'webhook_secret.push_failed');
    expect(rows.map((r) => [r.action, r.result, r.errorCode ?? null, r.resource, r.details?.version ?? null, r.actorId])).toEqual([
      ['rotate', 'denied', '2009:REVOKED', revoked.id, 1, 'user:gus'],
      ['webhook_secret.staged', 'denied', '2009:REVOKED', revoked.id, 1, 'user:gus'],
      ['rotate', 'denied', '2009:REVOKED', revoked.id, 1, 'user:gus'],
      ['rotate', 'failure', '3123:NOT_A_WEBHOOK_SECRET', apiKey.id, 1, 'user:gus'],
      ['webhook_secret.staged', 'failure', '3123:NOT_A_WEBHOOK_SECRET', apiKey.id, 1, 'user:gus'],
      ['webhook_secret.staged_discarded', 'failure', '3123:NOT_A_WEBHOOK_SECRET', apiKey.id, 1, 'user:gus'],
      ['rotate', 'failure', '3120:WEBHOOK_UPDATER_NOT_REGISTERED', manual.id, 1, 'user:gus'],
    ]);
    expect(JSON.stringify(rows)).not.toContain(given);
  });
});
