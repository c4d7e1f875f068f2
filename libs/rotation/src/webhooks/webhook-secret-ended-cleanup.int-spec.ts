/**
 * Integration (real SDK, local vault, SQLite and PostgreSQL): a webhook secret revoked WITHOUT RevocationService — its
 * status set through `CredentialsService.updateMetadata`, or `CredentialsService.revoke` — loses its staged successor
 * too, once the change's outbox event is dispatched: the pending row retired (`lastError: 'REVOKED'`), the staging
 * credential deleted, `webhook_secret.staged_discarded` audited by `system:rotation`, nothing left to activate after an
 * un-revoke. A redelivered event changes nothing; another metadata change of a live secret leaves its staged one.
 * A webhook secret deleted (`delete`, `deleteByConnection`) loses it the same way from its `credential.deleted` event
 * (`lastError: 'DELETED'`), or from the rotation job's next run when that comes first.
 */
import { randomBytes } from 'node:crypto';
import { Logger } from '@nestjs/common';
import { AuditLogEntry } from '@app/audit';
import { type DistributedLock, ManualClock, OutboxDispatcher, OutboxEventEntity, OutboxHandlerRegistry, prefixedLockKey, type OperationContext } from '@app/common';
import { CredentialStatus } from '@app/credentials';
import { KeyVaultEmulator } from '@app/keyvault-emulator';
import { CapturingLogger, createTestDatabase, DATABASE_KINDS, type TestDatabase, type TestDatabaseKind } from '@app/testing';
import { ROTATION_LOCK } from '../rotation.constants';
import { buildRotationStack, useRotationStack, type RotationStack } from '../rotation-stack.testing';
import { WebhookSecretErrorCode, WebhookSecretRotationJob, WebhookSecretsService, WebhookSecretState, WebhookSecretVersionEntity } from '.';

describe.each(DATABASE_KINDS)('a webhook secret revoked by a bare status change, or deleted (%s)', (kind: TestDatabaseKind) => {
  const clock = new ManualClock(new Date());
  const run = randomBytes(3).toString('hex');
  let seq = 0;
  const s = useRotationStack(kind, { clock });

  async function staged(): Promise<{ ctx: OperationContext; id: string; rotationId: string; stagingId: string; target: { tenantId: string; integrationId: string; connectionId: string; context: OperationContext } }> {
    const ctx: OperationContext = { tenantId: `whrev_${run}_${++seq}`, actor: { id: 'user:alice' } };
    const webhooks = s.moduleRef.get(WebhookSecretsService);
    const target = { tenantId: ctx.tenantId, integrationId: 'manual', connectionId: `acct-${seq}`, context: ctx };
    const { credential } = await webhooks.create(ctx, target);
    const { rotationId } = await webhooks.stageConnection(target);
    const row = await s.dataSource.getRepository(WebhookSecretVersionEntity).findOneByOrFail({ id: rotationId });
    return { ctx, id: credential.id, rotationId, stagingId: row.stagingCredentialId!, target };
  }

  const dispatch = () => s.moduleRef.get(OutboxDispatcher).drain();
  const discardedRows = (ctx: OperationContext) => s.dataSource.getRepository(AuditLogEntry).find({ where: { tenantId: ctx.tenantId, action: 'webhook_secret.staged_discarded' } });

  async function expectDiscarded(w: Awaited<ReturnType<typeof staged>>, reason = 'REVOKED', actor = 'system:rotation'): Promise<void> {
    await expect(s.credentials.getMetadata(w.ctx, w.stagingId)).rejects.toMatchObject({ code: 2002 });
    await expect(s.credentials.get(w.ctx, w.stagingId)).rejects.toMatchObject({ code: 2002 });
    const row = await s.dataSource.getRepository(WebhookSecretVersionEntity).findOneByOrFail({ id: w.rotationId });
    expect(row).toMatchObject({ state: WebhookSecretState.RETIRED, lastError: reason, stagingCredentialId: null });
    const audit = await discardedRows(w.ctx);
    expect(audit.map((r) => [r.resource, r.actorId, r.result, r.details?.rotationId, r.details?.reason])).toEqual([[w.id, actor, 'success', w.rotationId, reason]]);
  }

  /** Delivers the event again (at least once): a no-op once done. */
  async function redeliver(w: Awaited<ReturnType<typeof staged>>, name: string): Promise<void> {
    const event = { id: 'again', name, tenantId: w.ctx.tenantId, createdAt: new Date(), attempts: 1 };
    const payload = { credentialId: w.id, tenantId: w.ctx.tenantId, integrationId: 'manual', connectionId: w.target.connectionId, type: 'webhook_secret' };
    for (const handler of s.moduleRef.get(OutboxHandlerRegistry).handlersFor(event.name)) await handler({ ...event, payload });
  }

  /** Holds the credential's rotation lock as a step in flight would, until the returned function is called. */
  async function holdRotationLock(credentialId: string): Promise<() => Promise<void>> {
    let release = () => undefined as void;
    let reached = () => undefined as void;
    const holding = new Promise<void>((r) => (reached = r));
    const holder = s.moduleRef.get<DistributedLock>(ROTATION_LOCK).run(prefixedLockKey('credentialRotation', credentialId), () => (reached(), new Promise<void>((r) => (release = r))), { timeoutMs: 5_000 });
    await holding;
    return async () => {
      release();
      await holder;
    };
  }

  it('updateMetadata to revoked discards the staged successor; un-revoked, nothing is left to activate; a redelivery changes nothing', async () => {
    const w = await staged();
    await s.credentials.updateMetadata(w.ctx, w.id, { status: CredentialStatus.REVOKED });
    await dispatch();
    await expectDiscarded(w);

    // At least once: the same event again finds nothing pending, writes nothing.
    await redeliver(w, 'credential.metadata_updated');
    expect(await discardedRows(w.ctx)).toHaveLength(1);

    await s.revocation.unrevoke(w.ctx, w.id, { reason: 'false alarm' });
    await expect(s.moduleRef.get(WebhookSecretsService).activateConnection(w.target)).rejects.toMatchObject({ code: WebhookSecretErrorCode.WEBHOOK_NOTHING_STAGED });
  });

  it('revoked and un-revoked (RevocationService.unrevoke) before the event is dispatched: the un-revoke discards the successor staged before the revoke, at once', async () => {
    const w = await staged();
    await s.credentials.updateMetadata(w.ctx, w.id, { status: CredentialStatus.REVOKED });
    await s.revocation.unrevoke(w.ctx, w.id, { reason: 'false alarm' });
    // Presumed exposed at the revoke: neither readable nor ready to activate after the un-revoke, even before the event.
    await expectDiscarded(w, 'REVOKED', 'user:alice');
    await expect(s.moduleRef.get(WebhookSecretsService).activateConnection(w.target)).rejects.toMatchObject({ code: WebhookSecretErrorCode.WEBHOOK_NOTHING_STAGED });
    await dispatch(); // the revoke's event, late: nothing left to discard
    expect(await discardedRows(w.ctx)).toHaveLength(1);
  });

  it("revoked and un-revoked by bare calls (CredentialsService.revoke, unrevoke) before the event is dispatched: the revoke's event still discards the successor staged before it", async () => {
    const w = await staged();
    await s.credentials.revoke(w.ctx, w.id);
    await s.credentials.unrevoke(w.ctx, w.id);
    await dispatch();
    await expectDiscarded(w);
    await expect(s.moduleRef.get(WebhookSecretsService).activateConnection(w.target)).rejects.toMatchObject({ code: WebhookSecretErrorCode.WEBHOOK_NOTHING_STAGED });
  });

  it("a successor staged after the un-revoke is not the revoke's: the revoke's late event leaves it, ready to activate", async () => {
    const w = await staged();
    await s.credentials.updateMetadata(w.ctx, w.id, { status: CredentialStatus.REVOKED });
    await s.revocation.unrevoke(w.ctx, w.id, { reason: 'false alarm' });
    clock.advance(1_000);
    const { rotationId } = await s.moduleRef.get(WebhookSecretsService).stageConnection(w.target);
    await dispatch();
    await expect(s.moduleRef.get(WebhookSecretsService).activateConnection(w.target)).resolves.toMatchObject({ outcome: 'rotated', rotationId });
  });

  it('CredentialsService.revoke discards it as well', async () => {
    const w = await staged();
    await s.credentials.revoke(w.ctx, w.id);
    await dispatch();
    await expectDiscarded(w);
  });

  it('waits for a step of the secret holding its rotation lock, then discards what that step left pending', async () => {
    const w = await staged();
    await s.credentials.updateMetadata(w.ctx, w.id, { status: CredentialStatus.REVOKED });
    const release = await holdRotationLock(w.id);
    const dispatching = dispatch();
    await new Promise((r) => setTimeout(r, 100)); // well within the handler's wait (half a second)
    expect((await s.credentials.getMetadata(w.ctx, w.stagingId)).status).toBe(CredentialStatus.ACTIVE); // not yet: the lock is held
    await release();
    await dispatching;
    await expectDiscarded(w);
  });

  it("a lock held long (a slow provider's push) does not hold the outbox: the event is deferred, the events behind it delivered, the discard done on its redelivery", async () => {
    const w = await staged();
    await s.credentials.updateMetadata(w.ctx, w.id, { status: CredentialStatus.REVOKED });
    const release = await holdRotationLock(w.id);
    // Another tenant's change, committed after the revoke: its event waits behind the revoke's in the outbox.
    const other: OperationContext = { tenantId: `${w.ctx.tenantId}_other`, actor: { id: 'user:bob' } };
    await s.moduleRef.get(WebhookSecretsService).create(other, { integrationId: 'manual', connectionId: 'acct-other' });
    const events = () => s.dataSource.getRepository(OutboxEventEntity).find({ where: [{ tenantId: w.ctx.tenantId }, { tenantId: other.tenantId }] });
    const logger = new CapturingLogger();
    Logger.overrideLogger(logger);
    try {
      const started = Date.now();
      await dispatch();
      expect(Date.now() - started).toBeLessThan(4_000); // not the rotation lock's 10 s wait, which the outbox's handlerTimeoutMs (10 s) cut
      const after = await events();
      expect(after.filter((e) => e.tenantId === other.tenantId).every((e) => e.deliveredAt !== null)).toBe(true);
      const revoke = after.find((e) => e.name === 'credential.metadata_updated' && e.tenantId === w.ctx.tenantId)!;
      expect({ delivered: revoke.deliveredAt, lastError: revoke.lastError }).toEqual({ delivered: null, lastError: 'OutboxDeferredError(WEBHOOK_ROTATION_IN_PROGRESS)' });
      // Deferred, not failed: an expected wait, logged at debug, never warned about.
      expect(logger.lines.filter((l) => l.includes(revoke.id)).map((l) => l.split(' ')[0])).toEqual(['debug']);
      expect((await s.credentials.getMetadata(w.ctx, w.stagingId)).status).toBe(CredentialStatus.ACTIVE); // not yet: the lock is held
    } finally {
      Logger.overrideLogger(new Logger());
      await release();
    }
    // Redelivered after the outbox's backoff (about a second): the discard is done then.
    for (const deadline = Date.now() + 8_000; (await discardedRows(w.ctx)).length === 0 && Date.now() < deadline; ) {
      await new Promise((r) => setTimeout(r, 250));
      await dispatch();
    }
    await expectDiscarded(w);
  });

  it('a metadata change of a live secret leaves its staged successor, ready to activate', async () => {
    const w = await staged();
    await s.credentials.updateMetadata(w.ctx, w.id, { tags: { team: 'payments' } });
    await dispatch();
    expect((await s.credentials.getMetadata(w.ctx, w.stagingId)).status).toBe(CredentialStatus.ACTIVE);
    expect(await discardedRows(w.ctx)).toEqual([]);
    await expect(s.moduleRef.get(WebhookSecretsService).activateConnection(w.target)).resolves.toMatchObject({ outcome: 'rotated', rotationId: w.rotationId });
  });

  it('CredentialsService.delete discards the staged successor (DELETED); a redelivery changes nothing', async () => {
    const w = await staged();
    await s.credentials.delete(w.ctx, w.id);
    await dispatch();
    await expectDiscarded(w, 'DELETED');
    await redeliver(w, 'credential.deleted');
    expect(await discardedRows(w.ctx)).toHaveLength(1);
  });

  it("a delete of the secret's connection (deleteByConnection) discards it as well", async () => {
    const w = await staged();
    expect(await s.credentials.deleteByConnection(w.ctx, 'manual', w.target.connectionId)).toEqual({ deleted: [w.id], notFound: [] });
    await dispatch();
    await expectDiscarded(w, 'DELETED');
  });

  it("the job's pending loop discards (does not await) the staged successor of a secret deleted before the event was dispatched", async () => {
    const job = s.moduleRef.get(WebhookSecretRotationJob);
    const w = await staged();
    const before = await job.runOnce();
    await s.credentials.delete(w.ctx, w.id);
    const after = await job.runOnce();
    if (!before.acquired || !after.acquired) throw new Error('the job did not run');
    expect({ awaiting: after.awaitingActivation, orphaned: after.orphaned, failed: after.failed }).toEqual({ awaiting: before.awaitingActivation - 1, orphaned: 1, failed: 0 });
    await expectDiscarded(w, 'DELETED', 'system:webhook-secret-rotation');
    await dispatch(); // the delete's event, late: nothing left to discard
    expect(await discardedRows(w.ctx)).toHaveLength(1);
  });

  it("the job's pending loop discards the staged successor of a secret revoked before the event was dispatched (REVOKED)", async () => {
    const job = s.moduleRef.get(WebhookSecretRotationJob);
    const w = await staged();
    const before = await job.runOnce();
    await s.credentials.updateMetadata(w.ctx, w.id, { status: CredentialStatus.REVOKED });
    const after = await job.runOnce();
    if (!before.acquired || !after.acquired) throw new Error('the job did not run');
    expect({ awaiting: after.awaitingActivation, revoked: after.revoked, failed: after.failed }).toEqual({ awaiting: before.awaitingActivation - 1, revoked: 1, failed: 0 });
    await expectDiscarded(w, 'REVOKED', 'system:webhook-secret-rotation');
  });
});

// Replicas' clocks drift apart: which staged successor a revoke's late event discards must not depend on them.
describe.each(DATABASE_KINDS)("a revoke's late event on replicas whose clocks are 2 s apart (%s)", (kind: TestDatabaseKind) => {
  const start = Date.now();
  /** Replica 0's clock runs 2 s ahead of replica 1's. */
  const clocks = [new ManualClock(new Date(start + 2_000)), new ManualClock(new Date(start))];
  const run = randomBytes(3).toString('hex');
  let seq = 0;
  let emu: KeyVaultEmulator | undefined;
  let db: TestDatabase | undefined;
  const replicas: RotationStack[] = [];
  beforeAll(async () => {
    Logger.overrideLogger(new CapturingLogger());
    emu = await KeyVaultEmulator.start({ quiet: true, throttle: false });
    db = await createTestDatabase(kind);
    for (const clock of clocks) replicas.push(await buildRotationStack(db, emu, clock));
  });
  afterAll(async () => {
    for (const r of replicas.splice(0)) await r.moduleRef.close();
    await db?.drop();
    await emu?.stop();
    Logger.overrideLogger(new Logger());
  });

  const webhooks = (i: number) => replicas[i].moduleRef.get(WebhookSecretsService);
  const advance = (ms: number) => clocks.forEach((c) => c.advance(ms));

  /** A webhook secret on replica `i`, with the target its service calls take. */
  async function secret(i: number): Promise<{ ctx: OperationContext; id: string; target: { tenantId: string; integrationId: string; connectionId: string; context: OperationContext } }> {
    const ctx: OperationContext = { tenantId: `whskew_${run}_${++seq}`, actor: { id: 'user:alice' } };
    const target = { tenantId: ctx.tenantId, integrationId: 'manual', connectionId: `acct-${seq}`, context: ctx };
    const { credential } = await webhooks(i).create(ctx, target);
    return { ctx, id: credential.id, target };
  }

  it('a successor staged on the replica ahead just before a bare revoke on the one behind, un-revoked before the event: the event discards it', async () => {
    const w = await secret(0);
    const { rotationId } = await webhooks(0).stageConnection(w.target);
    const { stagingCredentialId } = await replicas[0].dataSource.getRepository(WebhookSecretVersionEntity).findOneByOrFail({ id: rotationId });
    advance(100); // the revoke comes 100 ms after the stage, stamped 1.9 s before it
    await replicas[1].credentials.revoke(w.ctx, w.id);
    await replicas[1].credentials.unrevoke(w.ctx, w.id);
    await replicas[1].moduleRef.get(OutboxDispatcher).drain();
    await expect(replicas[1].credentials.get(w.ctx, stagingCredentialId!)).rejects.toMatchObject({ code: 2002 });
    await expect(webhooks(0).activateConnection(w.target)).rejects.toMatchObject({ code: WebhookSecretErrorCode.WEBHOOK_NOTHING_STAGED });
  });

  it('a successor staged after the un-revoke on the replica behind, the revoke made on the one ahead: the event leaves it, ready to activate', async () => {
    const w = await secret(0);
    await replicas[0].credentials.revoke(w.ctx, w.id);
    await replicas[0].credentials.unrevoke(w.ctx, w.id);
    advance(100); // staged 100 ms after the un-revoke, stamped 1.9 s before the revoke
    const { rotationId } = await webhooks(1).stageConnection(w.target);
    await replicas[0].moduleRef.get(OutboxDispatcher).drain();
    await expect(webhooks(1).activateConnection(w.target)).resolves.toMatchObject({ outcome: 'rotated', rotationId });
  });
});
