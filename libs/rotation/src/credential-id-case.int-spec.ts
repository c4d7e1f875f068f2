/**
 * Credential ids (and a staged webhook secret's rotation id) are UUIDs, compared case-insensitively (RFC 9562). An
 * embedding app or the CLI passing one in upper case got NOT_FOUND from RotationService, RevocationService and
 * WebhookSecretsService — an emergency revoke that revoked nothing — or, once the Credentials lib found the row, a
 * rotation lock keyed by the id as typed, which another spelling of the same id did not hold.
 */
import { randomBytes } from 'node:crypto';
import { AuditService } from '@app/audit';
import { ManualClock, type OperationContext } from '@app/common';
import { CredentialStatus, CredentialType } from '@app/credentials';
import { DATABASE_KINDS, type TestDatabaseKind } from '@app/testing';
import { RotationHandlerRegistry } from './handlers/rotation-handler.registry';
import { useRotationStack } from './rotation-stack.testing';
import { WebhookSecretUpdaterRegistry } from './webhooks/webhook-secret-updater';
import { WebhookSecretsService } from './webhooks/webhook-secrets.service';

describe.each(DATABASE_KINDS)('the rotation lib given a credential id in upper case (%s)', (kind: TestDatabaseKind) => {
  const clock = new ManualClock(new Date());
  const run = randomBytes(3).toString('hex');
  const ctx: OperationContext = { tenantId: `id_case_${run}`, actor: { id: 'user:ops' } };
  const key = () => 'k-' + randomBytes(16).toString('hex');
  let seq = 0;
  const store = (type: CredentialType, value: string, integrationId = `acme-${run}`) => s.credentials.store(ctx, { integrationId, connectionId: `c${++seq}`, type, value });

  const s = useRotationStack(kind, { clock });

  it('RotationService rotates, rolls back and reports the credential the id names', async () => {
    const { id } = await store(CredentialType.API_KEY, key());
    const ID = id.toUpperCase();
    const rotated = await s.rotation.rotate(ctx, ID, { value: key(), reason: 'ticket-7' });
    expect(rotated).toMatchObject({ method: 'given', fromVersion: 1, metadata: { id, version: 2 } });
    clock.advance(1000); // the history is newest first: the rollback's row after the rotate's
    expect(await s.rotation.rollback(ctx, ID, 1, { reason: 'bad key' })).toMatchObject({ id, version: 3 });
    expect(await s.rotation.pendingRotation(ctx, ID)).toBeNull();
    expect((await s.rotation.historyOf(ctx, ID)).map((h) => [h.credentialId, h.action, h.reason])).toEqual([
      [id, 'rollback', 'bad key'],
      [id, 'rotate', 'ticket-7'],
    ]);
  });

  it('takes one rotation lock per credential, whatever case each caller spells its id in', async () => {
    const { id } = await store(CredentialType.API_KEY, key(), `slow-${run}`);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const off = s.moduleRef.get(RotationHandlerRegistry).register({ integrationId: `slow-${run}`, handler: { mint: async () => (await gate, { value: key() }) } });
    try {
      const first = s.rotation.rotate(ctx, id);
      await new Promise((r) => setTimeout(r, 50));
      await expect(s.rotation.rotate(ctx, id.toUpperCase(), { value: key() })).rejects.toMatchObject({ code: 3006 });
      await expect(s.rotation.rollback(ctx, id.toUpperCase(), 1)).rejects.toMatchObject({ code: 3006 });
      release();
      await expect(first).resolves.toMatchObject({ metadata: { id, version: 2 } });
    } finally {
      release();
      off();
    }
    expect((await s.credentials.getMetadata(ctx, id)).version).toBe(2);
  });

  it('RevocationService revokes and un-revokes the credential the id names: audited under the id as stored', async () => {
    const { id } = await store(CredentialType.API_KEY, key());
    const ID = id.toUpperCase();
    expect(await s.revocation.revoke(ctx, { credentialId: ID }, { reason: 'leaked' })).toMatchObject({ revoked: [id], vaultFailures: [] });
    expect((await s.credentials.getMetadata(ctx, id)).status).toBe(CredentialStatus.REVOKED);
    expect(await s.revocation.unrevoke(ctx, ID, { reason: 'false alarm' })).toMatchObject({ id, status: CredentialStatus.ACTIVE });
    const rows = (await s.moduleRef.get(AuditService).query({ tenantId: ctx.tenantId, resource: id, order: 'asc', limit: 100 })).items;
    expect(rows.filter((r) => ['revoke', 'unrevoke'].includes(r.action)).map((r) => [r.action, r.result, r.details?.reason])).toEqual([
      ['revoke', 'success', 'leaked'],
      ['unrevoke', 'success', 'false alarm'],
    ]);
  });

  it("RotationPolicyService: a credential's override set under either spelling applies to its effective policy", async () => {
    const { id } = await store(CredentialType.API_KEY, key());
    await s.policies.set(ctx, { level: 'credential', target: id.toUpperCase(), warnBeforeDays: 3 });
    const effective = await s.policies.effectivePolicy(ctx, id.toUpperCase());
    expect(effective).toMatchObject({ credentialId: id, warnBeforeDays: 3, sources: { warnBeforeDays: { level: 'credential' } } });
  });

  it('WebhookSecretsService rotates, lists and activates or discards a staged secret named in upper case', async () => {
    const webhooks = s.moduleRef.get(WebhookSecretsService);
    const integrationId = `wh-${run}`;
    const { credential } = await webhooks.create(ctx, { integrationId, connectionId: 'main' });
    const id = credential.id;
    const off = s.moduleRef.get(WebhookSecretUpdaterRegistry).register(integrationId, { update: async () => undefined });
    try {
      expect(await webhooks.rotate(ctx, id.toUpperCase())).toMatchObject({ credentialId: id, outcome: 'rotated', version: 2 });
    } finally {
      off();
    }
    expect((await webhooks.versions(ctx, id.toUpperCase())).map((v) => v.version)).toEqual([2, 1]);

    const target = { tenantId: ctx.tenantId, integrationId, connectionId: 'main', context: ctx };
    const staged = await webhooks.stageConnection(target);
    expect(await webhooks.activateConnection(target, staged.rotationId.toUpperCase())).toMatchObject({ credentialId: id, rotationId: staged.rotationId, version: 3 });
    const again = await webhooks.stageConnection(target);
    expect(await webhooks.discardConnection(target, again.rotationId.toUpperCase())).toEqual({ credentialId: id, rotationId: again.rotationId, version: 3 });
  });
});
