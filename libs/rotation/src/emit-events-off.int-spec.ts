/**
 * Integration (real SDK, local vault, SQLite and PostgreSQL): with CredentialsModule's `emitEvents: false` the rotation
 * lib's clean-ups that ride on the credentials lib's change events still run — a deleted or revoked credential's pending
 * rotation value is deleted, and a webhook secret revoked (and un-revoked) by bare calls loses the successor staged
 * before the revoke — while the app's bus hears no `credential.*` event of the credentials lib.
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter2 } from '@nestjs/event-emitter';
import { ManualClock, OutboxDispatcher, type OperationContext } from '@app/common';
import { CredentialStatus, CredentialType } from '@app/credentials';
import { DATABASE_KINDS, type TestDatabaseKind } from '@app/testing';
import { keepPendingValue, useRotationStack, withEnvelopeDataKey } from './rotation-stack.testing';
import { WebhookSecretErrorCode, WebhookSecretRotationJob, WebhookSecretsService, WebhookSecretVersionEntity } from './webhooks';

describe.each(DATABASE_KINDS)("the rotation lib's clean-ups with CredentialsModule emitEvents: false (%s)", (kind: TestDatabaseKind) => {
  const clock = new ManualClock(new Date());
  const run = randomBytes(3).toString('hex');
  let seq = 0;
  const handler = { mint: async () => ({ value: `pk_${randomBytes(16).toString('hex')}` }) };
  const s = useRotationStack(kind, { clock, module: { handlers: [{ integrationId: 'acme', handler }] }, credentials: { emitEvents: false } });
  const heard: string[] = [];
  beforeAll(() => s.moduleRef.get(EventEmitter2).onAny((name: string | string[]) => heard.push(String(name))));

  const dispatch = () => s.moduleRef.get(OutboxDispatcher).drain();
  const tenant = (): OperationContext => ({ tenantId: `noev_${run}_${++seq}`, actor: { id: 'user:alice' } });

  /** A credential whose handler-minted value the vault refused to write: kept as its pending rotation value. */
  async function withPendingValue(): Promise<{ ctx: OperationContext; id: string; pendingId: string }> {
    const ctx = tenant();
    await withEnvelopeDataKey(s, ctx);
    const { id } = await s.credentials.store(ctx, { integrationId: 'acme', connectionId: `c${seq}`, type: CredentialType.API_KEY, value: `k-${randomBytes(12).toString('hex')}` });
    const { pendingCredentialId } = await keepPendingValue(s, ctx, id);
    return { ctx, id, pendingId: pendingCredentialId };
  }

  it('deleting a credential deletes its pending rotation value', async () => {
    const { ctx, id, pendingId } = await withPendingValue();
    await s.credentials.delete(ctx, id);
    await dispatch();
    await expect(s.credentials.get(ctx, pendingId)).rejects.toMatchObject({ code: 2002 });
  });

  it('revoking a credential by a status change deletes its pending rotation value', async () => {
    const { ctx, id, pendingId } = await withPendingValue();
    await s.credentials.updateMetadata(ctx, id, { status: CredentialStatus.REVOKED });
    await dispatch();
    await expect(s.credentials.get(ctx, pendingId)).rejects.toMatchObject({ code: 2002 });
  });

  it('a webhook secret revoked and un-revoked by bare calls loses the successor staged before the revoke (the job does not see the revoke)', async () => {
    const ctx = tenant();
    const webhooks = s.moduleRef.get(WebhookSecretsService);
    const target = { tenantId: ctx.tenantId, integrationId: 'manual', connectionId: `acct-${seq}`, context: ctx };
    const { credential } = await webhooks.create(ctx, target);
    const { rotationId } = await webhooks.stageConnection(target);
    const { stagingCredentialId } = await s.dataSource.getRepository(WebhookSecretVersionEntity).findOneByOrFail({ id: rotationId });
    await s.credentials.revoke(ctx, credential.id);
    await s.credentials.unrevoke(ctx, credential.id);
    await dispatch();
    await s.moduleRef.get(WebhookSecretRotationJob).runOnce();
    await expect(s.credentials.get(ctx, stagingCredentialId!)).rejects.toMatchObject({ code: 2002 });
    await expect(webhooks.activateConnection(target)).rejects.toMatchObject({ code: WebhookSecretErrorCode.WEBHOOK_NOTHING_STAGED });
  });

  it("the app's bus heard none of the credentials lib's events", () => {
    const credentialsLibEvents = ['stored', 'rotated', 'rolled_back', 'metadata_updated', 'deleted'].map((e) => `credential.${e}`);
    expect(heard.filter((name) => credentialsLibEvents.includes(name))).toEqual([]);
  });
});
