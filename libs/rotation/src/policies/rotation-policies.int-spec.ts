/**
 * Rotation policies on SQLite and PostgreSQL: resolution most specific first, each field on its own,
 * overrides per tenant, integration (and type) and credential, audited changes with outbox events.
 */
import { randomBytes } from 'node:crypto';
import { AuditLogEntry } from '@app/audit';
import { ManualClock, type OperationContext } from '@app/common';
import { CredentialType, type CredentialMetadata } from '@app/credentials';
import { DATABASE_KINDS, type TestDatabaseKind } from '@app/testing';
import { RotationHandlerRegistry } from '../index';
import { outboxEvents, useRotationStack } from '../rotation-stack.testing';

describe.each(DATABASE_KINDS)('RotationModule on %s', (kind: TestDatabaseKind) => {
  const clock = new ManualClock(new Date('2026-01-01T00:00:00Z'));
  const run = randomBytes(3).toString('hex');
  const ctx: OperationContext = { tenantId: `rot_${run}`, actor: { id: 'user:alice' } };
  let seq = 0;
  const store = (type: CredentialType, value: string, extra: { integrationId?: string; expiresAt?: Date; valueStore?: never } = {}): Promise<CredentialMetadata> =>
    s.credentials.store(ctx, { integrationId: extra.integrationId ?? 'acme', connectionId: `c${++seq}`, type, value, expiresAt: extra.expiresAt });

  const s = useRotationStack(kind, { clock, style: kind === 'sqlite' ? 'forRoot' : 'forRootAsync' });

  describe('policies', () => {
    it('resolves each field most specific first and says which level won; every change is audited with an event', async () => {
      const key = await store(CredentialType.API_KEY, 'key-' + randomBytes(16).toString('hex'), { integrationId: 'pol' });
      let p = await s.policies.effectivePolicy(ctx, key.id);
      expect(p).toMatchObject({ rotateAfterDays: 90, warnBeforeDays: 14, rotation: 'manual', sources: { rotateAfterDays: { level: 'default' } } });

      await s.policies.set(ctx, { level: 'tenant', rotateAfterDays: 60 });
      await s.policies.set(ctx, { level: 'tenant', credentialType: CredentialType.API_KEY, warnBeforeDays: 21 });
      await s.policies.set(ctx, { level: 'integration', target: 'pol', rotation: 'automatic' });
      p = await s.policies.effectivePolicy(ctx, key.id);
      expect(p).toMatchObject({ rotateAfterDays: 60, warnBeforeDays: 21, rotation: 'automatic' });
      expect(p.sources.rotateAfterDays.level).toBe('tenant');
      expect(p.sources.warnBeforeDays.level).toBe('tenant-type');
      expect(p.sources.rotation.level).toBe('integration');

      const own = await s.policies.set(ctx, { level: 'credential', target: key.id, rotateAfterDays: 7 });
      p = await s.policies.effectivePolicy(ctx, key.id);
      expect(p.rotateAfterDays).toBe(7);
      expect(p.sources.rotateAfterDays).toEqual({ level: 'credential', overrideId: own.id });

      // null clears one field: inherited again
      await s.policies.set(ctx, { level: 'credential', target: key.id, rotateAfterDays: null, warnBeforeDays: 3 });
      p = await s.policies.effectivePolicy(ctx, key.id);
      expect(p).toMatchObject({ rotateAfterDays: 60, warnBeforeDays: 3 });

      await s.policies.remove(ctx, { level: 'credential', target: key.id });
      await s.policies.remove(ctx, { level: 'integration', target: 'pol' });
      await s.policies.remove(ctx, { level: 'tenant', credentialType: CredentialType.API_KEY });
      await s.policies.remove(ctx, { level: 'tenant' });
      expect(await s.policies.list(ctx)).toEqual([]);
      await expect(s.policies.remove(ctx, { level: 'tenant' })).rejects.toMatchObject({ code: 3003 });

      const audits = await s.dataSource.getRepository(AuditLogEntry).find({ where: { tenantId: ctx.tenantId, action: 'policy_change' } });
      expect(audits).toHaveLength(9);
      expect(await outboxEvents(s.dataSource, 'rotation.policy_changed', ctx.tenantId)).toHaveLength(9);
    });

    it('saves without expectedVersion racing on one scope all succeed: identical ones write once, different ones each once', async () => {
      const ctxR: OperationContext = { tenantId: `rot_race_${run}`, actor: { id: 'user:carol' } };
      const audits = () => s.dataSource.getRepository(AuditLogEntry).count({ where: { tenantId: ctxR.tenantId, action: 'policy_change' } });
      const scope = { level: 'integration' as const, target: 'race' };
      const same = await Promise.allSettled(Array.from({ length: 6 }, () => s.policies.set(ctxR, { ...scope, rotateAfterDays: 45 })));
      expect(same.filter((r) => r.status === 'rejected').map((r) => (r as PromiseRejectedResult).reason)).toEqual([]);
      expect(await s.policies.get(ctxR, scope)).toMatchObject({ rotateAfterDays: 45, rowVersion: 1 });
      expect(await audits()).toBe(1);
      const different = await Promise.allSettled([10, 20, 30].map((days) => s.policies.set(ctxR, { ...scope, rotateAfterDays: days })));
      expect(different.filter((r) => r.status === 'rejected').map((r) => (r as PromiseRejectedResult).reason)).toEqual([]);
      const last = await s.policies.get(ctxR, scope);
      expect([10, 20, 30]).toContain(last?.rotateAfterDays);
      expect(last?.rowVersion).toBe(4);
      expect(await audits()).toBe(4);
      // With a compare-and-set of its own, the loser still learns it lost.
      const cas = await Promise.allSettled([1, 2].map((i) => s.policies.set(ctxR, { ...scope, warnBeforeDays: i }, { expectedVersion: 4 })));
      expect(cas.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
    });

    it('a save that changes nothing writes nothing (same rowVersion, no audit row, no event); one that changes a field names that field only', async () => {
      const ctxN: OperationContext = { tenantId: `rot_noop_${run}`, actor: { id: 'user:bob' } };
      const audits = () => s.dataSource.getRepository(AuditLogEntry).find({ where: { tenantId: ctxN.tenantId, action: 'policy_change' }, order: { sequence: 'ASC' } });
      const events = () => outboxEvents(s.dataSource, 'rotation.policy_changed', ctxN.tenantId);
      const scope = { level: 'integration' as const, target: 'noop', credentialType: CredentialType.API_KEY };
      const stored = await s.policies.set(ctxN, { ...scope, rotateAfterDays: 30, rotation: 'manual' });
      // The stored values again (all, some, a null that is null), with and without a compare-and-set.
      for (const input of [{ rotateAfterDays: 30, rotation: 'manual' as const }, { rotateAfterDays: 30 }, { warnBeforeDays: null }, { rotateAfterDays: 30, warnBeforeDays: null, rotation: 'manual' as const }]) {
        for (const options of [{}, { expectedVersion: 1 }]) {
          const again = await s.policies.set(ctxN, { ...scope, ...input }, options);
          expect({ input, options, again }).toEqual({ input, options, again: stored });
        }
      }
      expect(await s.policies.get(ctxN, scope)).toEqual(stored);
      expect(await audits()).toHaveLength(1);
      expect(await events()).toHaveLength(1);
      // A stale compare-and-set is still refused, changed or not.
      await expect(s.policies.set(ctxN, { ...scope, rotateAfterDays: 30 }, { expectedVersion: 0 })).rejects.toMatchObject({ code: 3009 });
      // Two fields given, one changed: the audit row and the event name that one.
      const changed = await s.policies.set(ctxN, { ...scope, rotateAfterDays: 30, warnBeforeDays: 5 }, { expectedVersion: 1 });
      expect(changed).toMatchObject({ rotateAfterDays: 30, warnBeforeDays: 5, rotation: 'manual', rowVersion: 2 });
      expect((await audits()).map((a) => a.details?.changed)).toEqual([['rotateAfterDays', 'rotation'], ['warnBeforeDays']]);
      expect((await events()).map((e) => e.changed)).toEqual([['rotateAfterDays', 'rotation'], ['warnBeforeDays']]);
    });

    it('refuses bad input without writing, and another tenant\'s credential reads as missing', async () => {
      await expect(s.policies.set(ctx, { level: 'tenant', rotateAfterDays: -1 })).rejects.toMatchObject({ code: 3002 });
      await expect(s.policies.set(ctx, { level: 'tenant', rotation: 'sometimes' as never })).rejects.toMatchObject({ code: 3002 });
      await expect(s.policies.set(ctx, { level: 'integration', rotateAfterDays: 3 })).rejects.toMatchObject({ code: 3002 });
      await expect(s.policies.set(ctx, { level: 'tenant' })).rejects.toMatchObject({ code: 3002 });
      const other = { tenantId: `other_${run}`, actor: { id: 'user:eve' } };
      const key = await store(CredentialType.API_KEY, 'key-' + randomBytes(16).toString('hex'));
      await expect(s.policies.set(other, { level: 'credential', target: key.id, rotateAfterDays: 1 })).rejects.toMatchObject({ code: 2002 });
      await expect(s.policies.effectivePolicy(other, key.id)).rejects.toMatchObject({ code: 2002 });
      expect(await s.policies.list(ctx)).toEqual([]);
    });

    // Type-level too (tsc): a plain 'api_key' compiles, an unknown string does not (and is refused at run time).
    it("takes a credential type as its string value ('api_key'), answers with the enum, refuses an unknown one", async () => {
      const set = await s.policies.set(ctx, { level: 'tenant', credentialType: 'api_key', warnBeforeDays: 5 });
      const type: CredentialType | undefined = set.credentialType;
      expect(type).toBe(CredentialType.API_KEY);
      expect(await s.policies.get(ctx, { level: 'tenant', credentialType: 'api_key' })).toMatchObject({ id: set.id, warnBeforeDays: 5 });
      await s.policies.remove(ctx, { level: 'tenant', credentialType: 'api_key' });
      // @ts-expect-error not a credential type
      await expect(s.policies.set(ctx, { level: 'tenant', credentialType: 'apikey', warnBeforeDays: 5 })).rejects.toMatchObject({ code: 3002, field: 'credentialType' });

      const registry = s.moduleRef.get(RotationHandlerRegistry);
      const handler = { mint: async () => ({ value: 'minted' }) };
      const unregister = registry.register({ type: 'api_key', handler });
      expect(registry.handlerFor('any', CredentialType.API_KEY)).toBe(handler);
      unregister();
      const refusal = (register: () => unknown) => {
        try {
          register();
        } catch (e) {
          return e;
        }
      };
      // @ts-expect-error not a credential type
      expect(refusal(() => registry.register({ type: 'apikey', handler }))).toMatchObject({ code: 3002, field: 'type' });
      // @ts-expect-error not a credential type
      expect(refusal(() => registry.setGenerator('apikey', undefined))).toMatchObject({ code: 3002, field: 'type' });
      // A null type is none (JSON or YAML configuration writes it so): an integration-wide handler, as before types were checked.
      let removeNullTyped: (() => void) | undefined;
      // @ts-expect-error null is not in the type
      expect(refusal(() => (removeNullTyped = registry.register({ integrationId: 'acme', type: null, handler })))).toBeUndefined();
      expect(registry.handlerFor('acme', CredentialType.API_KEY)).toBe(handler);
      removeNullTyped!();
      expect(registry.handlerFor('acme', CredentialType.API_KEY)).toBeUndefined();
    });
  });
});
