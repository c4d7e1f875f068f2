/**
 * Integration (real SDK, local vault, SQLite and PostgreSQL): a credential's pending rotation value — a minted value
 * kept after the vault refused its write — does not outlive the credential. Deleting the credential, or revoking it
 * (RevocationService, or PATCH status through CredentialsService), deletes the pending credential and its ciphertext
 * once the change's outbox event is dispatched, audited by `system:rotation` (the row names the credential). A delete or
 * revoke whose event is handled while a rotation mints (before it keeps the minted value) leaves no pending value
 * either, and the rotation writes nothing. One deleted before the rotation starts is refused before the mint; one
 * revoked before it is rotated to the minted value (a rotate to a new value is the remedy for a leak, README).
 */
import { randomBytes } from 'node:crypto';
import { AuditLogEntry } from '@app/audit';
import { ManualClock, OutboxDispatcher, type OperationContext } from '@app/common';
import { CredentialEntity, CredentialStatus, CredentialType, EnvelopeValueEntity, type CredentialMetadata } from '@app/credentials';
import { DATABASE_KINDS, type TestDatabaseKind } from '@app/testing';
import { keepPendingValue, useRotationStack, withEnvelopeDataKey } from '../rotation-stack.testing';

describe.each(DATABASE_KINDS)('a pending rotation value when its credential goes (%s)', (kind: TestDatabaseKind) => {
  const clock = new ManualClock(new Date());
  const run = randomBytes(3).toString('hex');
  let seq = 0;
  const minted: string[] = [];
  /** Runs inside the next mint: after the rotation loaded the credential, before it keeps the minted value. */
  let duringMint: (() => Promise<void>) | undefined;
  const handler = {
    mint: async () => {
      const value = `pk_${randomBytes(16).toString('hex')}`;
      minted.push(value);
      const hook = duringMint;
      duringMint = undefined;
      await hook?.();
      return { value };
    },
  };

  const s = useRotationStack(kind, { clock, module: { handlers: [{ integrationId: 'acme', handler }] } });

  /** A credential of a fresh tenant whose envelope data key exists (as in a live vault). */
  async function fresh(): Promise<{ ctx: OperationContext; cred: CredentialMetadata }> {
    const ctx: OperationContext = { tenantId: `pend_${run}_${++seq}`, actor: { id: 'user:alice' } };
    await withEnvelopeDataKey(s, ctx);
    const cred = await s.credentials.store(ctx, { integrationId: 'acme', connectionId: `c${seq}`, type: CredentialType.API_KEY, value: `k-${randomBytes(12).toString('hex')}` });
    return { ctx, cred };
  }

  /** A credential whose handler-minted value the vault refused to write: kept as its pending rotation value. */
  async function withPendingValue(): Promise<{ ctx: OperationContext; cred: CredentialMetadata; pendingId: string; value: string }> {
    const { ctx, cred } = await fresh();
    const pending = await keepPendingValue(s, ctx, cred.id);
    expect((await s.credentials.get(ctx, pending.pendingCredentialId)).value).toBe(minted[minted.length - 1]);
    return { ctx, cred, pendingId: pending.pendingCredentialId, value: minted[minted.length - 1] };
  }

  async function dispatch(): Promise<void> {
    await s.moduleRef.get(OutboxDispatcher).drain();
  }

  /** The pending credential is deleted (metadata), its ciphertext gone, the delete audited by the cleanup. */
  async function expectGone(ctx: OperationContext, cred: CredentialMetadata, pendingId: string, value: string): Promise<void> {
    await expect(s.credentials.getMetadata(ctx, pendingId)).rejects.toMatchObject({ code: 2002 });
    const row = await s.dataSource.getRepository(CredentialEntity).findOneByOrFail({ id: pendingId });
    expect(row.status).toBe(CredentialStatus.DELETED);
    expect(await s.dataSource.getRepository(EnvelopeValueEntity).countBy({ credentialId: pendingId })).toBe(0);
    const audit = await s.dataSource.getRepository(AuditLogEntry).find({ where: { tenantId: ctx.tenantId, resource: pendingId, action: 'delete' } });
    // The trail says whose pending value it was: its connection names the credential.
    expect(audit).toEqual([expect.objectContaining({ actorId: 'system:rotation', result: 'success', details: expect.objectContaining({ connectionId: `rotation-pending.${cred.id}` }) })]);
    expect(JSON.stringify(await s.dataSource.getRepository(AuditLogEntry).find({ where: { tenantId: ctx.tenantId } }))).not.toContain(value);
  }

  it('deleting the credential deletes its pending rotation value (and the count over every tenant drops)', async () => {
    const before = await s.rotation.pendingRotationCount();
    const { ctx, cred, pendingId, value } = await withPendingValue();
    expect(await s.rotation.pendingRotationCount()).toBe(before + 1);
    await s.credentials.delete(ctx, cred.id);
    await dispatch();
    await expectGone(ctx, cred, pendingId, value);
    expect(await s.rotation.pendingRotationCount()).toBe(before);
  });

  it('revoking the credential deletes its pending rotation value', async () => {
    const { ctx, cred, pendingId, value } = await withPendingValue();
    await s.revocation.revoke(ctx, { credentialId: cred.id }, { reason: 'leaked' });
    await dispatch();
    expect(await s.rotation.pendingRotation(ctx, cred.id)).toBeNull();
    await expectGone(ctx, cred, pendingId, value);
  });

  it("revoking the credential's integration (which revokes the pending credential too) deletes it", async () => {
    const { ctx, cred, pendingId, value } = await withPendingValue();
    expect((await s.revocation.revoke(ctx, { integrationId: 'acme' }, { reason: 'leaked' })).revoked).toEqual(expect.arrayContaining([cred.id, pendingId]));
    await dispatch();
    expect(await s.rotation.pendingRotation(ctx, cred.id)).toBeNull();
    await expectGone(ctx, cred, pendingId, value);
  });

  it('revoking it through a status change (PATCH) deletes it too; any other metadata change leaves it', async () => {
    const { ctx, cred, pendingId, value } = await withPendingValue();
    await s.credentials.updateMetadata(ctx, cred.id, { tags: { team: 'a' } });
    await dispatch();
    expect(await s.rotation.pendingRotation(ctx, cred.id)).toMatchObject({ pendingCredentialId: pendingId });
    await s.credentials.updateMetadata(ctx, cred.id, { status: CredentialStatus.REVOKED });
    await dispatch();
    await expectGone(ctx, cred, pendingId, value);
  });

  /** Pending rotation values of the credential that are not deleted, and their ciphertexts: none is the goal. */
  async function pendingLeft(credentialId: string): Promise<{ live: number; ciphertexts: number }> {
    const rows = await s.dataSource.getRepository(CredentialEntity).findBy({ connectionId: `rotation-pending.${credentialId}` });
    const ciphertexts = await Promise.all(rows.map((r) => s.dataSource.getRepository(EnvelopeValueEntity).countBy({ credentialId: r.id })));
    return { live: rows.filter((r) => r.status !== CredentialStatus.DELETED).length, ciphertexts: ciphertexts.reduce((a, b) => a + b, 0) };
  }

  it('a credential deleted while its rotation mints (its event handled before the value is kept) keeps no pending value', async () => {
    const { ctx, cred } = await fresh();
    duringMint = async () => {
      await s.credentials.delete(ctx, cred.id);
      await dispatch(); // the cleanup runs now, before the minted value is kept: it finds nothing to delete
    };
    await expect(s.rotation.rotate(ctx, cred.id, { reason: 'manual' })).rejects.toMatchObject({ code: 2002 });
    expect(duringMint).toBeUndefined();
    await dispatch();
    expect(await pendingLeft(cred.id)).toEqual({ live: 0, ciphertexts: 0 });
  });

  it('a credential revoked (PATCH status) while its rotation mints is neither rotated nor left a pending value', async () => {
    const { ctx, cred } = await fresh();
    duringMint = async () => {
      await s.credentials.updateMetadata(ctx, cred.id, { status: CredentialStatus.REVOKED });
      await dispatch();
    };
    await expect(s.rotation.rotate(ctx, cred.id, { reason: 'manual' })).rejects.toMatchObject({ code: 2009 });
    expect(duringMint).toBeUndefined();
    await dispatch();
    expect(await pendingLeft(cred.id)).toEqual({ live: 0, ciphertexts: 0 });
    // No rotation written: still revoked, still version 1, no history row.
    expect(await s.credentials.getMetadata(ctx, cred.id)).toMatchObject({ status: CredentialStatus.REVOKED, version: 1 });
    expect((await s.rotation.historyOf(ctx, cred.id)).filter((h) => h.action === 'rotate')).toEqual([]);
  });

  it('a credential deleted before its rotation starts: refused NOT_FOUND before any mint, nothing kept', async () => {
    const { ctx, cred } = await fresh();
    await s.credentials.delete(ctx, cred.id);
    const mints = minted.length;
    await expect(s.rotation.rotate(ctx, cred.id, { reason: 'manual' })).rejects.toMatchObject({ code: 2002 });
    expect(minted.length).toBe(mints);
    await dispatch();
    expect(await pendingLeft(cred.id)).toEqual({ live: 0, ciphertexts: 0 });
  });

  it('a credential revoked before its rotation starts is rotated to a minted value (the remedy for a leak): one mint, written, nothing kept', async () => {
    const { ctx, cred } = await fresh();
    await s.revocation.revoke(ctx, { credentialId: cred.id }, { reason: 'leaked' });
    await dispatch();
    const mints = minted.length;
    // Not refused before the mint: the minted value is the credential's current one (owned), not a stray key.
    await expect(s.rotation.rotate(ctx, cred.id, { reason: 'replace the leaked value' })).resolves.toMatchObject({ method: 'handler', metadata: { status: CredentialStatus.ACTIVE, version: 2 } });
    expect(minted.length).toBe(mints + 1);
    expect((await s.credentials.get(ctx, cred.id)).value).toBe(minted[minted.length - 1]);
    await dispatch();
    expect(await pendingLeft(cred.id)).toEqual({ live: 0, ciphertexts: 0 });
  });
});
