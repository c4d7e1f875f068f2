/**
 * Integration (real SDK, local vault, SQLite): a RotationHandler mints the new value at the provider BEFORE the vault
 * write. When the vault then refuses that write (FORBIDDEN 1010), the minted value must not be lost: it is kept
 * envelope-encrypted as the credential's pending rotation value, and the next run writes THAT value instead of
 * minting again. It never appears in plaintext in the database, the logs, audit rows or events.
 */
import { randomBytes } from 'node:crypto';
import { ManualClock, type OperationContext } from '@app/common';
import { CredentialType } from '@app/credentials';
import { CapturingLogger } from '@app/testing';
import type { RotationRequest } from '../handlers/rotation-handler';
import { DAY, keepPendingValue, useRotationStack, withEnvelopeDataKey } from '../rotation-stack.testing';

const T0 = new Date('2026-03-01T00:00:00Z');

describe('a handler-minted value the vault refuses to write (sqlite)', () => {
  const clock = new ManualClock(T0);
  const logger = new CapturingLogger();
  const ctx: OperationContext = { tenantId: `mint_${randomBytes(3).toString('hex')}`, actor: { id: 'user:alice' } };
  // The provider: every mint makes a new live key there.
  const minted: Array<{ request: RotationRequest; value: string }> = [];
  const handler = {
    mint: async (request: RotationRequest) => {
      const value = `pk_${randomBytes(16).toString('hex')}`;
      minted.push({ request, value });
      return { value, expiresAt: new Date(T0.getTime() + 400 * DAY) };
    },
  };

  const s = useRotationStack('sqlite', { clock, logger, module: { handlers: [{ integrationId: 'acme', handler }] } });

  async function persistedText(): Promise<string> {
    const tables = (await s.dataSource.query(`SELECT name FROM sqlite_master WHERE type = 'table'`)) as Array<{ name: string }>;
    const rows = await Promise.all(tables.map(async (t) => s.dataSource.query(`SELECT * FROM "${t.name}"`)));
    return JSON.stringify(rows);
  }

  it('keeps the minted value as the pending rotation value; the next run writes it without minting again', async () => {
    clock.set(T0);
    await s.policies.set(ctx, { level: 'tenant', rotation: 'automatic' });
    await withEnvelopeDataKey(s, ctx);
    const cred = await s.credentials.store(ctx, { integrationId: 'acme', connectionId: 'c1', type: CredentialType.API_KEY, value: `k-${randomBytes(12).toString('hex')}` });
    const old = (await s.credentials.get(ctx, cred.id)).value;
    clock.set(new Date(T0.getTime() + 91 * DAY));
    s.emu.deny({ operations: ['setSecret'] });
    logger.lines.length = 0;

    expect(await s.check.runOnce()).toMatchObject({ due: 1, rotated: 0, failed: 1 });
    expect(minted).toHaveLength(1);
    const v = minted[0].value;
    // Refused: the previous value stays current, and the operator sees a pending rotation.
    expect((await s.credentials.getMetadata(ctx, cred.id)).version).toBe(1);
    expect((await s.credentials.get(ctx, cred.id)).value).toBe(old);
    expect(await s.rotation.pendingRotation(ctx, cred.id)).toMatchObject({ credentialId: cred.id, basedOnVersion: 1 });
    expect(logger.lines.some((l) => l.startsWith('error ') && l.includes(cred.id) && /pending/.test(l))).toBe(true);
    for (const l of logger.lines) expect(l).not.toContain(v);
    expect(await persistedText()).not.toContain(v);

    // Still refused: the kept value is tried again, nothing minted.
    expect(await s.check.runOnce()).toMatchObject({ rotated: 0, failed: 1 });
    expect(minted).toHaveLength(1);
    expect(await s.rotation.pendingRotation(ctx, cred.id)).toMatchObject({ basedOnVersion: 1 });

    // Granted: the next run writes the value the provider already holds; the provider is not asked again.
    s.emu.clearDenials();
    expect(await s.check.runOnce()).toMatchObject({ rotated: 1, failed: 0 });
    expect(minted).toHaveLength(1);
    const after = await s.credentials.get(ctx, cred.id);
    expect(after.metadata.version).toBe(2);
    expect(after.value).toBe(v);
    expect(after.metadata.expiresAt).toEqual(new Date(T0.getTime() + 400 * DAY));
    expect(await s.rotation.pendingRotation(ctx, cred.id)).toBeNull();
    expect(await persistedText()).not.toContain(v);

    // And the one after that mints afresh.
    await s.rotation.rotate(ctx, cred.id, { reason: 'manual' });
    expect(minted).toHaveLength(2);
    expect((await s.credentials.get(ctx, cred.id)).value).toBe(minted[1].value);
  });

  it('a pending value made stale by another rotation in between is dropped, never written over it', async () => {
    const cred = await s.credentials.store(ctx, { integrationId: 'acme', connectionId: 'c2', type: CredentialType.API_KEY, value: `k-${randomBytes(12).toString('hex')}` });
    expect(await keepPendingValue(s, ctx, cred.id)).toMatchObject({ basedOnVersion: 1 });
    // A client rotates with its own value meanwhile (the credentials route, outside RotationService).
    const given = `g-${randomBytes(12).toString('hex')}`;
    await s.credentials.rotate(ctx, cred.id, given);
    expect(await s.rotation.pendingRotation(ctx, cred.id)).toMatchObject({ basedOnVersion: 1 });
    const count = minted.length;
    await s.rotation.rotate(ctx, cred.id, { reason: 'manual' });
    expect(minted).toHaveLength(count + 1);
    const now = await s.credentials.get(ctx, cred.id);
    expect(now.metadata.version).toBe(3);
    expect(now.value).toBe(minted[count].value);
    expect(await s.rotation.pendingRotation(ctx, cred.id)).toBeNull();
  });
});
