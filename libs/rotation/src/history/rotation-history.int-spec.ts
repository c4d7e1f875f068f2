/**
 * The rotation history on SQLite and PostgreSQL with two replicas: one row per rotation or rollback however many
 * recordings of it there are (a replica answering another's webhook promotion records it too), every revoke and
 * un-revoke its own row.
 */
import { randomBytes } from 'node:crypto';
import { ManualClock, type OperationContext } from '@app/common';
import { CredentialType } from '@app/credentials';
import { DATABASE_KINDS, type TestDatabaseKind } from '@app/testing';
import { endRotationLockSession, useRotationStack } from '../rotation-stack.testing';
import { WebhookSecretUpdaterRegistry } from '../webhooks/webhook-secret-updater';

describe.each(DATABASE_KINDS)('rotation history on %s', (kind: TestDatabaseKind) => {
  const clock = new ManualClock(new Date());
  const run = randomBytes(3).toString('hex');
  const ctx: OperationContext = { tenantId: `hist_${run}`, actor: { id: 'user:ann' } };
  const value = () => 'k-' + randomBytes(16).toString('hex');
  const s = useRotationStack(kind, { clock, replicas: 2 });
  const entries = async (id: string) => (await s.rotation.historyOf(ctx, id)).map((h) => [h.action, h.method, h.toVersion, h.reason]);

  it('keeps one row of a rotation or rollback recorded again by either replica; each revoke and un-revoke of one version its own', async () => {
    const cred = await s.credentials.store(ctx, { integrationId: `h-${run}`, connectionId: 'c1', type: CredentialType.API_KEY, value: value() });
    await s.rotation.rotate(ctx, cred.id, { value: value(), reason: 'ticket-1' });
    // What a replica answering another's promotion of the same rotation records (and a retry would); at once on
    // PostgreSQL, one after the other on SQLite (one writer per file).
    const again = async (action: 'rotate' | 'rollback', toVersion: number) => {
      clock.advance(1000);
      const record = (i: number) => s.replica(i).rotation.record(ctx, { credentialId: cred.id, action, method: 'webhook', fromVersion: toVersion - 1, toVersion, reason: 'again' });
      if (kind === 'postgres') await Promise.all([record(0), record(1)]);
      else for (const i of [0, 1]) await record(i);
      clock.advance(1000);
    };
    await again('rotate', 2);
    await s.rotation.rollback(ctx, cred.id, 1, { reason: 'ticket-2' });
    await again('rollback', 3);
    await s.revocation.revoke(ctx, { credentialId: cred.id }, { reason: 'leak' });
    clock.advance(1000);
    await s.revocation.unrevoke(ctx, cred.id, { reason: 'false alarm' });
    clock.advance(1000);
    await s.revocation.revoke(ctx, { credentialId: cred.id }, { reason: 'leak after all' });
    expect(await entries(cred.id)).toEqual([
      ['revoke', 'revoke', 3, 'leak after all'],
      ['unrevoke', 'unrevoke', 3, 'false alarm'],
      ['revoke', 'revoke', 3, 'leak'],
      ['rollback', 'rollback', 3, 'ticket-2'],
      ['rotate', 'given', 2, 'ticket-1'],
    ]);
  });

  if (kind === 'postgres') {
    // A push that outlives its lost lock session: replica 1 resumes and promotes the same rotation, replica 0 then
    // answers that promotion. Both went through RotationService: before, each wrote the rotation's row.
    it('records a webhook rotation answered with the other replica\'s promotion once', async () => {
      const integrationId = `slow-${run}`;
      const cred = await s.credentials.store(ctx, { integrationId, connectionId: 'wh', type: CredentialType.WEBHOOK_SECRET, value: `whsec_${randomBytes(32).toString('base64')}` });
      let release = () => undefined as void;
      const held = new Promise<void>((r) => (release = r));
      let reached = () => undefined as void;
      const onProvider = new Promise<void>((r) => (reached = r));
      const offA = s.replica(0).moduleRef.get(WebhookSecretUpdaterRegistry).register(integrationId, { update: async () => (reached(), held) });
      const offB = s.replica(1).moduleRef.get(WebhookSecretUpdaterRegistry).register(integrationId, { update: async () => undefined });
      try {
        const onA = s.replica(0).rotation.rotate(ctx, cred.id, { reason: 'yearly' });
        await onProvider;
        await endRotationLockSession(s.dataSource, cred.id);
        const fromB = await s.replica(1).rotation.rotate(ctx, cred.id, { reason: 'yearly' });
        release();
        const fromA = await onA;
        expect([fromA.metadata.version, fromB.metadata.version]).toEqual([2, 2]);
        expect(await entries(cred.id)).toEqual([['rotate', 'webhook', 2, 'yearly']]);
      } finally {
        release();
        offA();
        offB();
      }
    });
  }
});
