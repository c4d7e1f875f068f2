/**
 * The "what needs attention" views on SQLite and PostgreSQL: the bounded variants say when the list was cut at its
 * limit (`truncated`), exactly at the limit they do not; the unbounded methods answer as before.
 */
import { randomBytes } from 'node:crypto';
import { ManualClock, type OperationContext } from '@app/common';
import { CredentialType } from '@app/credentials';
import { DATABASE_KINDS, type TestDatabaseKind } from '@app/testing';
import { RotationValidationError } from './errors/rotation.errors';
import { RotationQueries } from './rotation.queries';
import { DAY, useRotationStack } from './rotation-stack.testing';

describe.each(DATABASE_KINDS)('RotationQueries bounded lists on %s', (kind: TestDatabaseKind) => {
  const T0 = new Date('2026-03-01T00:00:00Z');
  const clock = new ManualClock(T0);
  const run = randomBytes(3).toString('hex');
  const s = useRotationStack(kind, { clock });
  const queries = () => s.moduleRef.get(RotationQueries);
  const ids = (items: { credential: { id: string } }[]) => items.map((i) => i.credential.id);

  /** An api_key (due 90 days after it was stored) stored `at` and expiring `expiresInDays` later. */
  const store = async (ctx: OperationContext, connectionId: string, at: number, expiresInDays: number) => {
    clock.set(new Date(T0.getTime() + at * DAY));
    return s.credentials.store(ctx, { integrationId: 'acme', connectionId, type: CredentialType.API_KEY, value: `k-${randomBytes(12).toString('hex')}`, expiresAt: new Date(T0.getTime() + (at + expiresInDays) * DAY) });
  };

  it('upcomingExpiriesBounded: the soonest `limit`, truncated only when one more expires within the window', async () => {
    const ctx: OperationContext = { tenantId: `exp_${run}`, actor: { id: 'user:alice' } };
    const c3 = await store(ctx, 'c3', 0, 3);
    const c1 = await store(ctx, 'c1', 0, 1);
    const c2 = await store(ctx, 'c2', 0, 2);
    await store(ctx, 'later', 0, 40);
    clock.set(T0);
    const exact = await queries().upcomingExpiriesBounded(ctx, 30, 3);
    expect({ items: ids(exact.items), truncated: exact.truncated }).toEqual({ items: [c1.id, c2.id, c3.id], truncated: false });
    expect(exact.items[0]).toMatchObject({ daysLeft: 1, warnBeforeDays: 14 });
    const c0 = await store(ctx, 'c0', 0, 0.5);
    clock.set(T0);
    const cut = await queries().upcomingExpiriesBounded(ctx, 30, 3);
    expect({ items: ids(cut.items), truncated: cut.truncated }).toEqual({ items: [c0.id, c1.id, c2.id], truncated: true });
    expect(await queries().upcomingExpiriesBounded(ctx, 30)).toMatchObject({ truncated: false, items: { length: 4 } });
    expect(ids(await queries().upcomingExpiries(ctx))).toEqual([c0.id, c1.id, c2.id, c3.id]);
    for (const bad of [0, 10_001, 1.5]) await expect(queries().upcomingExpiriesBounded(ctx, 30, bad)).rejects.toBeInstanceOf(RotationValidationError);
  });

  it('dueRotationsBounded: the soonest due `limit` of the full due set, truncated only when one more is due', async () => {
    const ctx: OperationContext = { tenantId: `due_${run}`, actor: { id: 'user:bob' } };
    // Stored on days 3, 1, 2: due 90 days later each, in that order; one rotated since is not due.
    const d3 = await store(ctx, 'd3', 3, 365);
    const d1 = await store(ctx, 'd1', 1, 365);
    const d2 = await store(ctx, 'd2', 2, 365);
    await store(ctx, 'fresh', 50, 365);
    clock.set(new Date(T0.getTime() + 100 * DAY));
    const exact = await queries().dueRotationsBounded(ctx, 0, 3);
    expect({ items: ids(exact.items), truncated: exact.truncated }).toEqual({ items: [d1.id, d2.id, d3.id], truncated: false });
    const d0 = await store(ctx, 'd0', 0, 365);
    clock.set(new Date(T0.getTime() + 100 * DAY));
    const cut = await queries().dueRotationsBounded(ctx, 0, 3);
    expect({ items: ids(cut.items), truncated: cut.truncated }).toEqual({ items: [d0.id, d1.id, d2.id], truncated: true });
    expect(cut.items[0]).toMatchObject({ dueAt: new Date(T0.getTime() + 90 * DAY), rotateAfterDays: 90, rotation: 'manual' });
    expect(await queries().dueRotationsBounded(ctx)).toMatchObject({ truncated: false, items: { length: 4 } });
    expect(ids(await queries().dueRotations(ctx))).toEqual([d0.id, d1.id, d2.id, d3.id]);
    for (const bad of [0, 10_001, 1.5]) await expect(queries().dueRotationsBounded(ctx, 0, bad)).rejects.toBeInstanceOf(RotationValidationError);
  });
});
