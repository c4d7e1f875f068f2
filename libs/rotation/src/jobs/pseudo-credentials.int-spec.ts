/**
 * Integration (real SDK, local vault, SQLite): the lib's internal pseudo credentials — a handler's pending rotation
 * value (`rotation-pending.<credential id>`) and a staged webhook secret (`whsec-pending.<rotation id>`), both
 * `custom_secret`s of the integration — are not credentials of the tenant's. A tenant policy rotating every type
 * automatically must not make the rotation check mint a value for one (a live key at the provider nobody owns), nor
 * raise rotation_due / expiring notices about them, nor list them as due.
 */
import { randomBytes } from 'node:crypto';
import { ManualClock, type OperationContext } from '@app/common';
import { CredentialType, ValueStoreKind } from '@app/credentials';
import type { RotationRequest } from '../handlers/rotation-handler';
import { PENDING_ROTATION_CONNECTION_PREFIX } from '../pending/pending-rotation-values';
import { RotationQueries } from '../rotation.queries';
import { DAY, keepPendingValue, outboxEvents, useRotationStack, withEnvelopeDataKey } from '../rotation-stack.testing';
import { WEBHOOK_STAGING_CONNECTION_PREFIX } from '../webhooks/webhook-secrets.tokens';

const T0 = new Date('2026-03-01T00:00:00Z');

describe('pseudo credentials and the rotation jobs (sqlite)', () => {
  const clock = new ManualClock(T0);
  const minted: RotationRequest[] = [];
  const handler = {
    mint: async (request: RotationRequest) => {
      minted.push(request);
      return { value: `pk_${randomBytes(16).toString('hex')}` };
    },
  };
  const secret = () => `k-${randomBytes(12).toString('hex')}`;
  const tenant = (): OperationContext => ({ tenantId: `pseudo_${randomBytes(3).toString('hex')}`, actor: { id: 'user:alice' } });

  const s = useRotationStack('sqlite', { clock, module: { handlers: [{ integrationId: 'acme', handler }] } });

  it('an automatic rotation check never mints for a pending rotation value or a staged webhook secret', async () => {
    clock.set(T0);
    const ctx = tenant();
    await s.policies.set(ctx, { level: 'tenant', rotation: 'automatic', rotateAfterDays: 30 });
    await withEnvelopeDataKey(s, ctx);
    const cred = await s.credentials.store(ctx, { integrationId: 'acme', connectionId: 'c1', type: CredentialType.API_KEY, value: secret() });
    // The vault refuses the write: the minted value is kept as the pending rotation value (a pseudo credential).
    const pending = await keepPendingValue(s, ctx, cred.id);
    const staged = await s.credentials.store(ctx, { integrationId: 'acme', connectionId: `${WEBHOOK_STAGING_CONNECTION_PREFIX}${randomBytes(4).toString('hex')}`, type: CredentialType.CUSTOM_SECRET, value: secret(), valueStore: ValueStoreKind.ENVELOPE }, { internal: true });
    // The credential itself is rotated by a client later: it is not due when the pseudo credentials are.
    clock.set(new Date(T0.getTime() + 20 * DAY));
    await s.credentials.rotate(ctx, cred.id, secret());
    clock.set(new Date(T0.getTime() + 31 * DAY));
    const before = minted.length;

    const result = await s.check.runOnce();
    expect(minted.slice(before).map((r) => r.connectionId)).toEqual([]);
    expect(result).toMatchObject({ rotated: 0, failed: 0 });
    expect((await s.credentials.getMetadata(ctx, pending.pendingCredentialId)).version).toBe(1);
    expect((await s.credentials.getMetadata(ctx, staged.id)).version).toBe(1);
    const due = await s.moduleRef.get(RotationQueries).dueRotations(ctx);
    expect(due.map((d) => d.credential.connectionId).filter((c) => c.startsWith(PENDING_ROTATION_CONNECTION_PREFIX) || c.startsWith(WEBHOOK_STAGING_CONNECTION_PREFIX))).toEqual([]);
  });

  it('raises no rotation_due or expiring notice about a pseudo credential', async () => {
    clock.set(T0);
    const ctx = tenant();
    await s.policies.set(ctx, { level: 'tenant', rotation: 'manual', rotateAfterDays: 30, warnBeforeDays: 30 });
    // An expiry on them (set before such a change was refused, say) is still not the tenant's business to be warned about.
    const expiresAt = new Date(T0.getTime() + 40 * DAY);
    for (const prefix of [PENDING_ROTATION_CONNECTION_PREFIX, WEBHOOK_STAGING_CONNECTION_PREFIX]) {
      await s.credentials.store(ctx, { integrationId: 'acme', connectionId: `${prefix}${randomBytes(4).toString('hex')}`, type: CredentialType.CUSTOM_SECRET, value: secret(), valueStore: ValueStoreKind.ENVELOPE, expiresAt }, { internal: true });
    }
    clock.set(new Date(T0.getTime() + 31 * DAY));
    await s.check.runOnce();
    await s.expiry.runOnce();
    expect(await outboxEvents(s.dataSource, 'credential.rotation_due', ctx.tenantId)).toEqual([]);
    expect(await outboxEvents(s.dataSource, 'credential.expiring', ctx.tenantId)).toEqual([]);
    expect(await s.moduleRef.get(RotationQueries).dueRotations(ctx)).toEqual([]);
    expect(await s.moduleRef.get(RotationQueries).upcomingExpiries(ctx)).toEqual([]);
  });
});

describe('pseudo credentials and a rotation asked for by id (sqlite)', () => {
  let mints = 0;
  const handler = { mint: async () => ((mints += 1), { value: `pk_${randomBytes(16).toString('hex')}` }) };
  const s = useRotationStack('sqlite', { clock: new ManualClock(T0), module: { handlers: [{ integrationId: 'acme', handler }] } });

  it("refuses to rotate one (any integration's handler would mint a live key nobody owns) before anything is minted or written", async () => {
    const ctx: OperationContext = { tenantId: `pseudo_${randomBytes(3).toString('hex')}`, actor: { id: 'user:alice' } };
    await withEnvelopeDataKey(s, ctx);
    const cred = await s.credentials.store(ctx, { integrationId: 'acme', connectionId: 'c1', type: CredentialType.API_KEY, value: `k-${randomBytes(12).toString('hex')}` });
    const pending = await keepPendingValue(s, ctx, cred.id);
    const staged = await s.credentials.store(ctx, { integrationId: 'acme', connectionId: `${WEBHOOK_STAGING_CONNECTION_PREFIX}${randomBytes(4).toString('hex')}`, type: CredentialType.CUSTOM_SECRET, value: 'whsec_x', valueStore: ValueStoreKind.ENVELOPE }, { internal: true });
    const before = mints;
    for (const id of [pending.pendingCredentialId, staged.id]) {
      await expect(s.rotation.rotate(ctx, id)).rejects.toMatchObject({ code: 2001, field: 'connectionId' });
      expect((await s.credentials.getMetadata(ctx, id)).version).toBe(1);
    }
    expect(mints - before).toBe(0);
  });
});
