/**
 * The "what needs attention" views on SQLite and PostgreSQL: the bounded variants say when the list was cut at its
 * limit (`truncated`), exactly at the limit they do not; the unbounded methods answer as before.
 */
import { randomBytes } from 'node:crypto';
import { ManualClock, type OperationContext } from '@app/common';
import { CredentialStatus, CredentialType, CredentialValidationError } from '@app/credentials';
import { DATABASE_KINDS, type TestDatabaseKind } from '@app/testing';
import { RotationValidationError } from './errors/rotation.errors';
import { RotationPolicyService } from './policies/rotation-policy.service';
import { RotationQueries, type DueRotation } from './rotation.queries';
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

  /** The due set as it was computed before: every active credential of the tenant listed, its policy resolved, kept when due. */
  const dueByWalkingTheList = async (ctx: OperationContext, days: number) => {
    const policies = s.moduleRef.get(RotationPolicyService);
    const overrides = await policies.tenantOverrides(ctx.tenantId);
    const out: Array<{ id: string; dueAt: number; rotateAfterDays: number; rotation: string }> = [];
    let cursor: string | undefined;
    do {
      const page = await s.credentials.list(ctx, { status: CredentialStatus.ACTIVE, limit: 200, cursor });
      for (const c of page.items) {
        if (c.type === CredentialType.OAUTH_ACCESS_TOKEN) continue;
        const p = await policies.resolve({ id: c.id, tenantId: c.tenantId, integrationId: c.integrationId, type: c.type }, overrides);
        const dueAt = (c.rotatedAt ?? c.createdAt).getTime() + p.rotateAfterDays * DAY;
        if (p.rotateAfterDays > 0 && dueAt <= clock.nowMs() + days * DAY) out.push({ id: c.id, dueAt, rotateAfterDays: p.rotateAfterDays, rotation: p.rotation });
      }
      cursor = page.nextCursor;
    } while (cursor);
    return out.sort((a, b) => a.dueAt - b.dueAt);
  };
  const view = (items: DueRotation[]) => items.map((d) => ({ id: d.credential.id, dueAt: d.dueAt.getTime(), rotateAfterDays: d.rotateAfterDays, rotation: d.rotation }));

  it("dueRotations selects the due credentials from the credentials lib's index — never walking the tenant's list — and answers what walking it did: every policy level, rotated, expired, internal and OAuth access tokens, ties", async () => {
    const ctx: OperationContext = { tenantId: `mix_${run}`, actor: { id: 'user:carol' } };
    const policies = s.moduleRef.get(RotationPolicyService);
    const at = (day: number) => clock.set(new Date(T0.getTime() + day * DAY));
    const value = (type: CredentialType) => (type === CredentialType.WEBHOOK_SECRET ? `whsec_${randomBytes(32).toString('base64')}` : `v-${randomBytes(12).toString('hex')}`);
    const put = (integrationId: string, connectionId: string, type: CredentialType, day: number, expiresInDays?: number) => {
      at(day);
      const expiresAt = expiresInDays === undefined ? undefined : new Date(T0.getTime() + (day + expiresInDays) * DAY);
      return s.credentials.store(ctx, { integrationId, connectionId, type, value: value(type), ...(expiresAt ? { expiresAt } : {}) });
    };
    at(0);
    await policies.set(ctx, { level: 'tenant', rotateAfterDays: 60 });
    await policies.set(ctx, { level: 'tenant', credentialType: CredentialType.CUSTOM_SECRET, rotateAfterDays: 45, rotation: 'automatic' });
    await policies.set(ctx, { level: 'integration', target: 'github', rotateAfterDays: 30 });
    await policies.set(ctx, { level: 'integration', target: 'github', credentialType: CredentialType.WEBHOOK_SECRET, rotateAfterDays: 7 });
    await policies.set(ctx, { level: 'integration', target: 'stripe', rotateAfterDays: 0 }); // never due
    const made = [];
    for (let i = 0; i < 6; i++) {
      for (const integrationId of ['github', 'stripe', 'slack', 'jira']) {
        made.push(await put(integrationId, `k${i}`, CredentialType.API_KEY, i * 9));
        made.push(await put(integrationId, `w${i}`, CredentialType.WEBHOOK_SECRET, i * 9));
        made.push(await put(integrationId, `s${i}`, CredentialType.CUSTOM_SECRET, i * 9 + 1));
      }
    }
    // Ties: stored at the same instant, due together (ordered by id then, as the list was).
    for (const c of ['t1', 't2', 't3']) made.push(await put('slack', c, CredentialType.API_KEY, 5));
    // Expired (not active: never due), an OAuth access token (refreshed, not rotated), an internal credential.
    await put('jira', 'gone', CredentialType.API_KEY, 0, 3);
    await put('slack', 'oat', CredentialType.OAUTH_ACCESS_TOKEN, 0);
    at(2);
    await s.credentials.store(ctx, { integrationId: 'slack', connectionId: 'rotation-pending.x1', type: CredentialType.CUSTOM_SECRET, value: 'pending-value' }, { internal: true });
    // Rotated since (a later last change), and credential-level overrides: one sooner, one never.
    at(40);
    for (const c of [made[0], made[13]]) await s.credentials.rotate(ctx, c.id, value(c.type));
    await policies.set(ctx, { level: 'credential', target: made[5].id, rotateAfterDays: 2 });
    await policies.set(ctx, { level: 'credential', target: made[4].id, rotateAfterDays: 0 });
    await policies.set(ctx, { level: 'credential', target: made[30].id, rotation: 'automatic' }); // rotateAfterDays inherited

    at(70);
    const list = jest.spyOn(s.credentials, 'list');
    try {
      for (const days of [0, 10, 30, 400]) {
        const expected = await dueByWalkingTheList(ctx, days);
        list.mockClear();
        expect({ days, due: view(await queries().dueRotations(ctx, days)) }).toEqual({ days, due: expected });
        expect(list).not.toHaveBeenCalled();
        for (const limit of [1, 5, expected.length, expected.length + 1]) {
          if (limit < 1) continue;
          const bounded = await queries().dueRotationsBounded(ctx, days, limit);
          expect({ days, limit, due: view(bounded.items), truncated: bounded.truncated }).toEqual({ days, limit, due: expected.slice(0, limit), truncated: expected.length > limit });
        }
        expect(list).not.toHaveBeenCalled();
      }
      expect((await dueByWalkingTheList(ctx, 0)).length).toBeGreaterThan(10);
    } finally {
      list.mockRestore();
    }

    // The credentials lib's query: keyset pages of 2 walk what one page answers; bad input is its typed error.
    const query = { types: [CredentialType.API_KEY, CredentialType.WEBHOOK_SECRET], excludeIntegrationIds: ['stripe'], changedAtOrBefore: new Date(T0.getTime() + 30 * DAY) };
    const whole = await s.credentials.listByLastChange(ctx, { ...query, limit: 1000 });
    const paged: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await s.credentials.listByLastChange(ctx, { ...query, limit: 2, cursor });
      paged.push(...page.items.map((c) => c.id));
      cursor = page.nextCursor;
    } while (cursor);
    expect(whole.items.length).toBeGreaterThan(4);
    expect(paged).toEqual(whole.items.map((c) => c.id));
    for (const bad of [{ types: [] }, { types: ['nope'] }, { types: [CredentialType.API_KEY], ids: ['not-a-uuid'] }, { types: [CredentialType.API_KEY], cursor: 'x' }, { types: [CredentialType.API_KEY], limit: 0 }]) {
      await expect(s.credentials.listByLastChange(ctx, { limit: 10, ...bad } as never)).rejects.toBeInstanceOf(CredentialValidationError);
    }
  });

  it('a tenant with more credential-level overrides than one list of the credentials lib takes (10,000) still gets its due list, the same', async () => {
    const ctx: OperationContext = { tenantId: `many_${run}`, actor: { id: 'user:dave' } };
    const policies = s.moduleRef.get(RotationPolicyService);
    const at = (day: number) => clock.set(new Date(T0.getTime() + day * DAY));
    const made = [];
    for (let i = 0; i < 8; i++) {
      at(i * 10);
      made.push(await s.credentials.store(ctx, { integrationId: i % 2 ? 'acme' : 'globex', connectionId: `c${i}`, type: CredentialType.API_KEY, value: `k-${randomBytes(12).toString('hex')}` }));
    }
    at(0);
    await policies.set(ctx, { level: 'tenant', rotateAfterDays: 60 });
    await policies.set(ctx, { level: 'credential', target: made[7].id, rotateAfterDays: 1 }); // due sooner than its group
    await policies.set(ctx, { level: 'credential', target: made[0].id, rotateAfterDays: 0 }); // never due
    const real = await policies.tenantOverrides(ctx.tenantId);
    // 10,001 more, of credentials of the tenant since deleted (overrides outlive them): one list past the lib's cap.
    const stale = Array.from({ length: 10_001 }, (_, i) => ({ ...real.find((r) => r.level === 'credential')!, id: `stale-${i}`, target: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`, rotateAfterDays: 5 }));
    const overrides = jest.spyOn(policies, 'tenantOverrides').mockResolvedValue([...real, ...stale]);
    try {
      at(100);
      const expected = await dueByWalkingTheList(ctx, 0);
      expect(expected.map((d) => d.id)).toContain(made[7].id);
      expect(expected.map((d) => d.id)).not.toContain(made[0].id);
      expect(view(await queries().dueRotations(ctx, 0))).toEqual(expected);
      for (const limit of [1, 3, expected.length]) {
        const bounded = await queries().dueRotationsBounded(ctx, 0, limit);
        expect({ limit, due: view(bounded.items), truncated: bounded.truncated }).toEqual({ limit, due: expected.slice(0, limit), truncated: expected.length > limit });
      }
    } finally {
      overrides.mockRestore();
    }
  });
});
