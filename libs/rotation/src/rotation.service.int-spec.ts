/**
 * Manual rotation on SQLite and PostgreSQL: a given value, a handler (its failure writes nothing),
 * no handler, one rotation per credential at a time, and webhook secrets handed to the webhooks
 * part's two-phase rotation — each with its history row.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { type DistributedLock, ManualClock, type OperationContext } from '@app/common';
import { AuditService } from '@app/audit';
import { CredentialType } from '@app/credentials';
import { DATABASE_KINDS, type TestDatabaseKind } from '@app/testing';
import { RotationHandlerRegistry } from './handlers/rotation-handler.registry';
import { ROTATION_LOCK } from './rotation.constants';
import { useRotationStack } from './rotation-stack.testing';
import { WebhookSecretUpdaterRegistry } from './webhooks/webhook-secret-updater';

describe.each(DATABASE_KINDS)('RotationService on %s', (kind: TestDatabaseKind) => {
  const clock = new ManualClock(new Date());
  const run = randomBytes(3).toString('hex');
  const ctx: OperationContext = { tenantId: `svc_${run}`, actor: { id: 'user:bob' } };
  let seq = 0;
  const store = (type: CredentialType, value: string, integrationId = 'acme') =>
    s.credentials.store(ctx, { integrationId, connectionId: `c${++seq}`, type, value });

  const s = useRotationStack(kind, { clock });

  it('a failing handler writes nothing; without handler or generator the caller must give the value', async () => {
    const cred = await store(CredentialType.CUSTOM_SECRET, 'v-' + randomBytes(16).toString('hex'), `h-${run}`);
    await expect(s.rotation.rotate(ctx, cred.id)).rejects.toMatchObject({ code: 3004 });
    const off = s.moduleRef.get(RotationHandlerRegistry).register({ integrationId: `h-${run}`, handler: { mint: () => Promise.reject(new Error('429')) } });
    try {
      await expect(s.rotation.rotate(ctx, cred.id)).rejects.toMatchObject({ code: 3005 });
    } finally {
      off();
    }
    expect((await s.credentials.getMetadata(ctx, cred.id)).version).toBe(1);
    expect(await s.rotation.historyOf(ctx, cred.id)).toEqual([]);
    const given = await s.rotation.rotate(ctx, cred.id, { value: 'v-' + randomBytes(16).toString('hex'), reason: 'ticket-9' });
    expect(given).toMatchObject({ method: 'given', fromVersion: 1, metadata: { version: 2 } });
    expect(await s.rotation.historyOf(ctx, cred.id)).toEqual([expect.objectContaining({ action: 'rotate', method: 'given', reason: 'ticket-9', actor: 'user:bob' })]);
  });

  it('audits each rotation refused before the Credentials lib writes (internal row, stale expectedVersion, no handler, a failing handler) as a rotate failure with its code', async () => {
    const ctxR: OperationContext = { tenantId: `refused_${run}`, actor: { id: 'user:carol' } };
    const value = () => 'v-' + randomBytes(16).toString('hex');
    const cred = await s.credentials.store(ctxR, { integrationId: `r-${run}`, connectionId: 'main', type: CredentialType.CUSTOM_SECRET, value: value() });
    const internal = await s.credentials.store(ctxR, { integrationId: `r-${run}`, connectionId: `rotation-pending.${cred.id}`, type: CredentialType.CUSTOM_SECRET, value: value() }, { internal: true });
    await expect(s.rotation.rotate(ctxR, internal.id, { value: value() })).rejects.toMatchObject({ code: 2001, field: 'connectionId' });
    await expect(s.rotation.rotate(ctxR, cred.id, { value: value(), expectedVersion: cred.rowVersion + 1 })).rejects.toMatchObject({ code: 2003 });
    await expect(s.rotation.rotate(ctxR, cred.id)).rejects.toMatchObject({ code: 3004 });
    const off = s.moduleRef.get(RotationHandlerRegistry).register({ integrationId: `r-${run}`, handler: { mint: () => Promise.reject(new Error('429')) } });
    try {
      await expect(s.rotation.rotate(ctxR, cred.id, { reason: 'ticket-7' })).rejects.toMatchObject({ code: 3005 });
    } finally {
      off();
    }
    // A refusal of the Credentials lib's own write (a rollback to the current version) is its row alone, not two.
    await expect(s.rotation.rollback(ctxR, cred.id, 1)).rejects.toMatchObject({ code: 2001 });
    const rows = (await s.moduleRef.get(AuditService).query({ tenantId: ctxR.tenantId, order: 'asc', limit: 100 })).items.filter((r) => !['store', 'suspicious_activity'].includes(r.action));
    expect(rows.map((r) => [r.action, r.result, r.errorCode ?? null, r.resource])).toEqual([
      ['rotate', 'failure', '2001:VALIDATION', internal.id],
      ['rotate', 'failure', '2003:CONFLICT', cred.id],
      ['rotate', 'failure', '3004:NO_ROTATION_HANDLER', cred.id],
      ['rotate', 'failure', '3005:ROTATION_FAILED', cred.id],
      ['rollback', 'failure', '2001:VALIDATION', cred.id],
    ]);
    expect(rows.every((r) => r.actorId === 'user:carol')).toBe(true);
    expect((await s.credentials.getMetadata(ctxR, cred.id)).version).toBe(1);
    expect((await s.credentials.getMetadata(ctxR, internal.id)).version).toBe(1);
  });

  it('runs one rotation of a credential at a time: a refused rotation or rollback is audited, for the caller\'s credential only', async () => {
    const ctxL: OperationContext = { tenantId: `locked_${run}`, actor: { id: 'user:dan' } };
    const ctxO: OperationContext = { tenantId: `other_${run}`, actor: { id: 'user:eve' } };
    const cred = await s.credentials.store(ctxL, { integrationId: `slow-${run}`, connectionId: 'c', type: CredentialType.API_KEY, value: 'k-' + randomBytes(16).toString('hex') });
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const off = s.moduleRef.get(RotationHandlerRegistry).register({ integrationId: `slow-${run}`, handler: { mint: async () => (await gate, { value: 'k-' + randomBytes(16).toString('hex') }) } });
    try {
      const first = s.rotation.rotate(ctxL, cred.id);
      await new Promise((r) => setTimeout(r, 50));
      await expect(s.rotation.rotate(ctxL, cred.id, { value: 'k-' + randomBytes(16).toString('hex') })).rejects.toMatchObject({ code: 3006 });
      await expect(s.rotation.rollback(ctxL, cred.id, 1)).rejects.toMatchObject({ code: 3006 });
      // Another tenant's rotation of that id is refused as any id it does not have: not found, not "in progress".
      await expect(s.rotation.rotate(ctxO, cred.id, { value: 'k-' + randomBytes(16).toString('hex') })).rejects.toMatchObject({ code: 2002 });
      release();
      await expect(first).resolves.toMatchObject({ method: 'handler', metadata: { version: 2 } });
    } finally {
      off();
    }
    const audit = s.moduleRef.get(AuditService);
    const trail = async (c: OperationContext) =>
      (await audit.query({ tenantId: c.tenantId, order: 'asc', limit: 100 })).items.filter((r) => r.resource === cred.id && r.result !== 'success').map((r) => [r.action, r.result, r.errorCode ?? null, r.details?.version ?? null, r.actorId]);
    expect(await trail(ctxL)).toEqual([
      ['rotate', 'failure', '3006:ROTATION_IN_PROGRESS', 1, 'user:dan'],
      ['rollback', 'failure', '3006:ROTATION_IN_PROGRESS', 1, 'user:dan'],
    ]);
    expect(await trail(ctxO)).toEqual([['rotate', 'denied', '2002:NOT_FOUND', null, 'user:eve']]);
  });

  it('audits a rotation or rollback of an id the tenant does not have as the Credentials lib audits other changes of one (denied, NOT_FOUND)', async () => {
    const ctxU: OperationContext = { tenantId: `unknown_${run}`, actor: { id: 'user:fay' } };
    const missing = randomUUID();
    const deleted = await s.credentials.store(ctxU, { integrationId: `u-${run}`, connectionId: 'gone', type: CredentialType.WEBHOOK_SECRET, value: `whsec_${randomBytes(32).toString('base64')}` });
    await s.credentials.delete(ctxU, deleted.id);
    const given = 'k-' + randomBytes(16).toString('hex');
    await expect(s.rotation.rotate(ctxU, missing, { value: given })).rejects.toMatchObject({ code: 2002 });
    await expect(s.rotation.rotate(ctxU, deleted.id)).rejects.toMatchObject({ code: 2002 }); // a webhook secret's way
    await expect(s.rotation.rollback(ctxU, missing, 1)).rejects.toMatchObject({ code: 2002 });
    const rows = (await s.moduleRef.get(AuditService).query({ tenantId: ctxU.tenantId, order: 'asc', limit: 100 })).items.filter((r) => !['store', 'delete', 'suspicious_activity'].includes(r.action));
    expect(rows.map((r) => [r.action, r.result, r.errorCode ?? null, r.resource])).toEqual([
      ['rotate', 'denied', '2002:NOT_FOUND', missing],
      ['rotate', 'denied', '2002:NOT_FOUND', deleted.id],
      ['rollback', 'denied', '2002:NOT_FOUND', missing],
    ]);
    expect(JSON.stringify(rows)).not.toContain(given);
  });

  it("another tenant's rotation or rollback of an id never takes that credential's rotation lock: NOT_FOUND, audited denied", async () => {
    const ctxO: OperationContext = { tenantId: `guess_${run}`, actor: { id: 'user:eve' } };
    const cred = await store(CredentialType.API_KEY, 'k-' + randomBytes(16).toString('hex'));
    const tryRun = jest.spyOn(s.moduleRef.get<DistributedLock>(ROTATION_LOCK), 'tryRun');
    try {
      await expect(s.rotation.rotate(ctxO, cred.id, { value: 'k-' + randomBytes(16).toString('hex') })).rejects.toMatchObject({ code: 2002 });
      await expect(s.rotation.rollback(ctxO, cred.id, 1)).rejects.toMatchObject({ code: 2002 });
      expect(tryRun.mock.calls.filter(([key]) => String(key).includes(cred.id))).toEqual([]);
    } finally {
      tryRun.mockRestore();
    }
    const rows = (await s.moduleRef.get(AuditService).query({ tenantId: ctxO.tenantId, order: 'asc', limit: 100 })).items;
    expect(rows.map((r) => [r.action, r.result, r.errorCode ?? null, r.resource])).toEqual([
      ['rotate', 'denied', '2002:NOT_FOUND', cred.id],
      ['rollback', 'denied', '2002:NOT_FOUND', cred.id],
    ]);
  });

  it('hands a webhook secret to the two-phase rotation of the webhooks part', async () => {
    const cred = await store(CredentialType.WEBHOOK_SECRET, `whsec_${randomBytes(32).toString('base64')}`, `wh-${run}`);
    const pushed: string[] = [];
    const off = s.moduleRef.get(WebhookSecretUpdaterRegistry).register(`wh-${run}`, { update: async (u) => void pushed.push(u.credentialId) });
    try {
      const out = await s.rotation.rotate(ctx, cred.id, { reason: 'yearly' });
      expect(out).toMatchObject({ method: 'webhook', fromVersion: 1, metadata: { version: 2 } });
      expect(pushed).toEqual([cred.id]);
      expect((await s.rotation.historyOf(ctx, cred.id))[0]).toMatchObject({ method: 'webhook', fromVersion: 1, toVersion: 2, reason: 'yearly' });
    } finally {
      off();
    }
  });

  it('holds no transaction across the vault write: a slow vault delays the rotation, not the other writes of the process', async () => {
    const a = await store(CredentialType.API_KEY, 'k-' + randomBytes(16).toString('hex'));
    const b = await store(CredentialType.API_KEY, 'k-' + randomBytes(16).toString('hex'));
    s.emu.injectFault({ kind: 'latency', latencyMs: 1500, operations: ['setSecret'], count: 1 });
    const rotating = s.rotation.rotate(ctx, a.id, { value: 'k-' + randomBytes(16).toString('hex'), reason: 'slow vault' });
    await new Promise((r) => setTimeout(r, 300));
    const started = Date.now();
    await s.credentials.updateMetadata(ctx, b.id, { tags: { team: 'payments' } });
    await s.rotation.rollback(ctx, b.id, 1).catch(() => undefined); // nothing to roll back to: refused, not held up either
    expect(Date.now() - started).toBeLessThan(800);
    await expect(rotating).resolves.toMatchObject({ method: 'given', metadata: { version: 2 } });
    expect(await s.rotation.historyOf(ctx, a.id)).toEqual([expect.objectContaining({ action: 'rotate', fromVersion: 1, toVersion: 2, reason: 'slow vault' })]);
  });
});
