/**
 * The expiry monitor and the rotation check on SQLite and PostgreSQL with a ManualClock: thresholds
 * fire once each, a missed run catches up, expired credentials are marked once; manual rotations due
 * are reported once, automatic ones are performed (generator, handler) and failures reported; two
 * replicas on one PostgreSQL raise each notice exactly once.
 */
import { randomBytes } from 'node:crypto';
import { AuditService } from '@app/audit';
import { DistributedLock, LOCK_KEYS, LockSessionsExhaustedError, ManualClock, prefixedLockKey, ScheduledJobs, type OperationContext } from '@app/common';
import { CredentialEntity, CredentialStatus, CredentialType, type CredentialMetadata } from '@app/credentials';
import { DATABASE_KINDS, endLockSessionOfKey, type TestDatabaseKind } from '@app/testing';
import { RotationHandlerRegistry } from '../handlers/rotation-handler.registry';
import type { RotationPolicyService } from '../policies/rotation-policy.service';
import { ROTATION_LOCK } from '../rotation.constants';
import { RotationNoticeRepository } from './rotation-notice.repository';
import { DAY, outboxEvents, useRotationStack } from '../rotation-stack.testing';

const T0 = new Date('2026-03-01T00:00:00Z');
const HOUR = 3_600_000;

/**
 * One run that did get its lock. Job locks are PostgreSQL advisory locks, server-wide: another test
 * file running the same job in its own schema can hold it for a moment, and the run is then skipped.
 */
async function acquired<T extends { acquired: boolean }>(run: () => Promise<T>): Promise<T> {
  for (let i = 0; i < 200; i++) {
    const r = await run();
    if (r.acquired) return r;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error('the job lock stayed taken for 5 s');
}

describe.each(DATABASE_KINDS)('rotation jobs on %s', (kind: TestDatabaseKind) => {
  const clock = new ManualClock(T0);
  const run = randomBytes(3).toString('hex');
  let seq = 0;
  const tenant = (): OperationContext => ({ tenantId: `jobs_${run}_${++seq}`, actor: { id: 'user:alice' } });
  const store = (ctx: OperationContext, type: CredentialType, value: string, extra: { integrationId?: string; expiresAt?: Date } = {}): Promise<CredentialMetadata> =>
    s.credentials.store(ctx, { integrationId: extra.integrationId ?? 'acme', connectionId: `c${++seq}`, type, value, expiresAt: extra.expiresAt });
  const secret = () => 'k-' + randomBytes(18).toString('hex');
  const thresholds = async (ctx: OperationContext) => (await outboxEvents(s.dataSource, 'credential.expiring', ctx.tenantId)).map((p) => p.thresholdDays);

  const s = useRotationStack(kind, { clock });

  describe('expiry monitor', () => {
    it('raises each threshold once per credential, limited by the policy, then marks it expired once', async () => {
      clock.set(T0);
      const ctx = tenant();
      await s.policies.set(ctx, { level: 'tenant', credentialType: CredentialType.API_KEY, warnBeforeDays: 30 });
      const expiresAt = new Date(T0.getTime() + 31 * DAY);
      const key = await store(ctx, CredentialType.API_KEY, secret(), { expiresAt });
      const pwd = await store(ctx, CredentialType.BASIC_AUTH_PASSWORD, secret(), { expiresAt }); // default warn-before: 14 days

      await acquired(() => s.expiry.runOnce());
      expect(await thresholds(ctx)).toEqual([]);
      const steps = [29.9, 29, 13.9, 13, 6.9, 0.9, 0.5];
      for (const daysLeft of steps) {
        clock.set(new Date(expiresAt.getTime() - daysLeft * DAY));
        await acquired(() => s.expiry.runOnce());
        await acquired(() => s.expiry.runOnce()); // a second run in the same window raises nothing more
      }
      const events = await outboxEvents(s.dataSource, 'credential.expiring', ctx.tenantId);
      expect(events.filter((e) => e.credentialId === key.id).map((e) => e.thresholdDays)).toEqual([30, 14, 7, 1]);
      expect(events.filter((e) => e.credentialId === pwd.id).map((e) => e.thresholdDays)).toEqual([14, 7, 1]);
      expect(events[0]).toMatchObject({ tenantId: ctx.tenantId, integrationId: 'acme', version: 1, expiresAt: expiresAt.toISOString() });
      expect(JSON.stringify(events)).not.toMatch(/k-[0-9a-f]{36}/);

      clock.set(new Date(expiresAt.getTime() + HOUR));
      const first = await acquired(() => s.expiry.runOnce());
      expect(first.expired).toBeGreaterThanOrEqual(2);
      await acquired(() => s.expiry.runOnce());
      const expired = await outboxEvents(s.dataSource, 'credential.expired', ctx.tenantId);
      expect(expired.map((e) => e.credentialId).sort()).toEqual([key.id, pwd.id].sort());
      expect((await s.credentials.getMetadata(ctx, key.id)).status).toBe(CredentialStatus.EXPIRED);
      await expect(s.credentials.get(ctx, key.id)).rejects.toMatchObject({ code: 2010 });
    });

    it('catches up after missed runs: the tightest threshold passed is raised, the wider ones are never sent late', async () => {
      clock.set(T0);
      const ctx = tenant();
      const expiresAt = new Date(T0.getTime() + 40 * DAY);
      const key = await store(ctx, CredentialType.API_KEY, secret(), { expiresAt });
      clock.set(new Date(expiresAt.getTime() - 5 * DAY)); // the runs at 14 days were missed
      await acquired(() => s.expiry.runOnce());
      expect(await thresholds(ctx)).toEqual([7]);
      clock.set(new Date(expiresAt.getTime() - 0.5 * DAY));
      await acquired(() => s.expiry.runOnce());
      await acquired(() => s.expiry.runOnce());
      expect(await thresholds(ctx)).toEqual([7, 1]);
      // a rotation makes a new version: its thresholds are new notices
      await s.credentials.rotate(ctx, key.id, secret(), { expiresAt: new Date(clock.nowMs() + 10 * DAY) });
      await acquired(() => s.expiry.runOnce());
      expect(await thresholds(ctx)).toEqual([7, 1, 14]);
    });
    it('warns again for a new expiry set without a new version, and marks a credential expired again after it was made active with a later one', async () => {
      clock.set(T0);
      const ctx = tenant();
      const expiresAt = new Date(T0.getTime() + 12 * HOUR);
      const key = await store(ctx, CredentialType.API_KEY, secret(), { expiresAt });
      await acquired(() => s.expiry.runOnce());
      expect(await thresholds(ctx)).toEqual([1]); // 7 and 14 passed: recorded, not sent
      // The owner moves the expiry out by 10 days (PATCH expiresAt: same version): its warnings are new ones.
      await s.credentials.updateMetadata(ctx, key.id, { expiresAt: new Date(T0.getTime() + 10 * DAY) });
      await acquired(() => s.expiry.runOnce());
      expect(await thresholds(ctx)).toEqual([1, 14]);

      // It expires; made active again with a later expiry, then past that one too: expired (and announced) again.
      clock.set(new Date(T0.getTime() + 10 * DAY + HOUR));
      await acquired(() => s.expiry.runOnce());
      expect((await s.credentials.getMetadata(ctx, key.id)).status).toBe(CredentialStatus.EXPIRED);
      await s.credentials.updateMetadata(ctx, key.id, { status: CredentialStatus.ACTIVE, expiresAt: new Date(clock.nowMs() + 2 * DAY) });
      clock.set(new Date(clock.nowMs() + 3 * DAY));
      await acquired(() => s.expiry.runOnce());
      expect((await s.credentials.getMetadata(ctx, key.id)).status).toBe(CredentialStatus.EXPIRED);
      expect((await outboxEvents(s.dataSource, 'credential.expired', ctx.tenantId)).filter((e) => e.credentialId === key.id)).toHaveLength(2);
    });

    it('leaves nothing half done when a credential fails mid-transaction; the next run finishes it', async () => {
      clock.set(T0);
      const ctx = tenant();
      const expiresAt = new Date(T0.getTime() + 10 * DAY);
      const key = await store(ctx, CredentialType.API_KEY, secret(), { expiresAt });
      const notices = s.moduleRef.get(RotationNoticeRepository);
      clock.set(new Date(expiresAt.getTime() - 6 * DAY));
      // The outbox row is written first; the dedupe row then fails: both roll back.
      const spy = jest.spyOn(notices, 'record').mockRejectedValueOnce(new Error('disk full'));
      try {
        const failed = await acquired(() => s.expiry.runOnce());
        expect(failed.failed).toBeGreaterThanOrEqual(1);
      } finally {
        spy.mockRestore();
      }
      expect(await thresholds(ctx)).toEqual([]);
      expect(await notices.raised(key.id, 1)).toEqual(new Set());

      clock.set(new Date(expiresAt.getTime() + HOUR));
      // The status change and its event commit first in the transaction; the dedupe row then fails: all roll back.
      const record = jest.spyOn(notices, 'record').mockRejectedValueOnce(new Error('lost connection'));
      try {
        await acquired(() => s.expiry.runOnce());
      } finally {
        record.mockRestore();
      }
      expect(await outboxEvents(s.dataSource, 'credential.expired', ctx.tenantId)).toEqual([]);
      expect((await s.dataSource.getRepository(CredentialEntity).findOneByOrFail({ id: key.id })).status).toBe(CredentialStatus.ACTIVE);
      await acquired(() => s.expiry.runOnce());
      expect((await outboxEvents(s.dataSource, 'credential.expired', ctx.tenantId)).map((e) => e.credentialId)).toEqual([key.id]);
      expect((await s.dataSource.getRepository(CredentialEntity).findOneByOrFail({ id: key.id })).status).toBe(CredentialStatus.EXPIRED);
    });
  });

  describe('rotation check', () => {
    it('reports a manual rotation that fell due once per version', async () => {
      clock.set(T0);
      const ctx = tenant();
      const key = await store(ctx, CredentialType.API_KEY, secret());
      clock.set(new Date(T0.getTime() + 89 * DAY));
      await acquired(() => s.check.runOnce());
      expect(await outboxEvents(s.dataSource, 'credential.rotation_due', ctx.tenantId)).toEqual([]);
      clock.set(new Date(T0.getTime() + 91 * DAY));
      await acquired(() => s.check.runOnce());
      await acquired(() => s.check.runOnce());
      const due = await outboxEvents(s.dataSource, 'credential.rotation_due', ctx.tenantId);
      expect(due).toHaveLength(1);
      expect(due[0]).toMatchObject({ credentialId: key.id, version: 1, dueAt: new Date(T0.getTime() + 90 * DAY).toISOString() });
      expect((await s.credentials.getMetadata(ctx, key.id)).version).toBe(1);
    });

    it('performs automatic rotations with a generator or the integration\'s handler, with history; a failing handler leaves the value current', async () => {
      clock.set(T0);
      const ctx = tenant();
      await s.policies.set(ctx, { level: 'tenant', rotation: 'automatic' });
      await s.policies.set(ctx, { level: 'tenant', credentialType: CredentialType.CUSTOM_SECRET, rotateAfterDays: 30 });
      const key = await store(ctx, CredentialType.API_KEY, secret());
      const minted = await store(ctx, CredentialType.CUSTOM_SECRET, secret(), { integrationId: `minted-${run}` });
      const broken = await store(ctx, CredentialType.CUSTOM_SECRET, secret(), { integrationId: `broken-${run}` });
      const brokenValue = (await s.credentials.get(ctx, broken.id)).value;
      const calls: string[] = [];
      const registry = s.moduleRef.get(RotationHandlerRegistry);
      const off = [
        registry.register({ integrationId: `minted-${run}`, handler: { mint: async (r) => (calls.push(`${r.credentialId}:${r.fromVersion}`), { value: `new-${randomBytes(12).toString('hex')}` }) } }),
        registry.register({ integrationId: `broken-${run}`, handler: { mint: async () => Promise.reject(new Error('provider down')) } }),
      ];
      try {
        clock.set(new Date(T0.getTime() + 91 * DAY));
        await acquired(() => s.check.runOnce());
        const rotatedKey = await s.credentials.getMetadata(ctx, key.id);
        expect(rotatedKey.version).toBe(2);
        expect(calls).toEqual([`${minted.id}:1`]);
        expect((await s.credentials.get(ctx, minted.id)).value).toMatch(/^new-/);
        expect((await s.credentials.get(ctx, broken.id)).value).toBe(brokenValue);
        const history = await s.rotation.historyOf(ctx, key.id);
        expect(history).toEqual([expect.objectContaining({ action: 'rotate', method: 'generator', fromVersion: 1, toVersion: 2, actor: 'system:rotation-check' })]);
        expect((await s.rotation.historyOf(ctx, minted.id))[0]).toMatchObject({ method: 'handler', fromVersion: 1, toVersion: 2 });
        const failed = await outboxEvents(s.dataSource, 'credential.rotation_failed', ctx.tenantId);
        expect(failed.map((e) => e.credentialId)).toEqual([broken.id]);
        // One failed rotation, one failure row (each counts toward the job actor's and the credential's thresholds).
        const failures = (await s.moduleRef.get(AuditService).query({ tenantId: ctx.tenantId, action: 'rotate', order: 'asc', limit: 100 })).items.filter((r) => r.result !== 'success');
        expect(failures.map((r) => [r.resource, r.actorId, r.errorCode])).toEqual([[broken.id, 'system:rotation-check', expect.stringMatching(/^3\d{3}:/)]]);
        // the next run finds nothing due among the rotated ones
        await acquired(() => s.check.runOnce());
        expect((await s.credentials.getMetadata(ctx, key.id)).version).toBe(2);
        expect(calls).toHaveLength(1);
      } finally {
        off.forEach((f) => f());
      }
    });

    it('a credential changed between the scan and its rotation (its tags) is rotated as it is now, with no failure in the audit trail', async () => {
      clock.set(T0);
      const ctx = tenant();
      await s.policies.set(ctx, { level: 'tenant', rotation: 'automatic' });
      const key = await store(ctx, CredentialType.API_KEY, secret());
      // The change lands right after the scan read the credential: the job's compare-and-set on the scanned rowVersion loses.
      const rotate = s.rotation.rotate.bind(s.rotation);
      jest.spyOn(s.rotation, 'rotate').mockImplementationOnce(async (...args) => {
        await s.credentials.updateMetadata(ctx, key.id, { tags: { team: 'core' } });
        return rotate(...args);
      });
      try {
        clock.set(new Date(T0.getTime() + 91 * DAY));
        expect(await acquired(() => s.check.runOnce())).toMatchObject({ rotated: 1, failed: 0 });
      } finally {
        jest.restoreAllMocks();
      }
      expect(await s.credentials.getMetadata(ctx, key.id)).toMatchObject({ version: 2, tags: { team: 'core' } });
      // The lost compare-and-set is the job's own retry, not a refused rotation: only the rotation is in the trail.
      const rows = (await s.moduleRef.get(AuditService).query({ tenantId: ctx.tenantId, action: 'rotate', order: 'asc', limit: 100 })).items;
      expect(rows.map((r) => [r.result, r.errorCode ?? null, r.actorId])).toEqual([['success', null, 'system:rotation-check']]);
    });

    it('a rotation that fails where no step audits it (the credential lock cannot be had) still leaves one failure row', async () => {
      clock.set(T0);
      const ctx = tenant();
      await s.policies.set(ctx, { level: 'tenant', rotation: 'automatic' });
      const key = await store(ctx, CredentialType.API_KEY, secret());
      clock.set(new Date(T0.getTime() + 91 * DAY));
      const lock = s.moduleRef.get<DistributedLock>(ROTATION_LOCK);
      const tryRun = lock.tryRun.bind(lock);
      jest.spyOn(lock, 'tryRun').mockImplementation((k, fn) => (k.includes(key.id) ? Promise.reject(new LockSessionsExhaustedError(8, 1000)) : tryRun(k, fn)));
      try {
        expect((await acquired(() => s.check.runOnce())).failed).toBeGreaterThanOrEqual(1);
      } finally {
        jest.restoreAllMocks();
      }
      expect((await outboxEvents(s.dataSource, 'credential.rotation_failed', ctx.tenantId)).map((e) => e.credentialId)).toEqual([key.id]);
      const rows = (await s.moduleRef.get(AuditService).query({ tenantId: ctx.tenantId, action: 'rotate', limit: 100 })).items;
      expect(rows.map((r) => [r.result, r.resource, r.actorId, r.errorCode])).toEqual([['failure', key.id, 'system:rotation-check', '9002:LOCK_SESSIONS_EXHAUSTED']]);
    });

    it('a credential a caller is rotating when the job reaches it is left to the next run: no failure row, no rotation_failed', async () => {
      clock.set(T0);
      const ctx = tenant();
      await s.policies.set(ctx, { level: 'tenant', rotation: 'automatic' });
      const key = await store(ctx, CredentialType.API_KEY, secret());
      // The caller's rotation holds the credential's lock (across replicas) while the job tries it.
      const lock = s.moduleRef.get<DistributedLock>(ROTATION_LOCK);
      clock.set(new Date(T0.getTime() + 91 * DAY));
      const held = await lock.tryRun(prefixedLockKey('credentialRotation', key.id), () => acquired(() => s.check.runOnce()));
      // Counts are the run's over every tenant (earlier tests leave due credentials): this one is the only one held.
      expect(held).toMatchObject({ acquired: true, value: { inProgress: 1 } });
      expect((await s.credentials.getMetadata(ctx, key.id)).version).toBe(1);
      const rows = (await s.moduleRef.get(AuditService).query({ tenantId: ctx.tenantId, action: 'rotate', order: 'asc', limit: 100 })).items;
      expect(rows).toEqual([]);
      expect(await outboxEvents(s.dataSource, 'credential.rotation_failed', ctx.tenantId)).toEqual([]);
      // The next run rotates it.
      await acquired(() => s.check.runOnce());
      expect((await s.credentials.getMetadata(ctx, key.id)).version).toBe(2);
    });
  });
});

describe('rotation jobs: two replicas on one PostgreSQL', () => {
  const clock = new ManualClock(T0);
  const ctx: OperationContext = { tenantId: `two_${randomBytes(3).toString('hex')}`, actor: { id: 'user:alice' } };
  const replicas = useRotationStack('postgres', { clock, replicas: 2 });
  const [a, b] = [replicas.replica(0), replicas.replica(1)];

  it('raises every notice exactly once when both run the jobs at the same time', async () => {
    const expiresAt = new Date(T0.getTime() + 20 * DAY);
    for (let i = 0; i < 12; i++) {
      await a.credentials.store(ctx, { integrationId: 'acme', connectionId: `c${i}`, type: CredentialType.API_KEY, value: 'k-' + randomBytes(18).toString('hex'), expiresAt });
      await b.credentials.store(ctx, { integrationId: 'acme', connectionId: `n${i}`, type: CredentialType.API_KEY, value: 'k-' + randomBytes(18).toString('hex') });
    }
    for (const daysLeft of [13, 6, 0.5, -0.1]) {
      clock.set(new Date(expiresAt.getTime() - daysLeft * DAY));
      await Promise.all([a.expiry.runOnce(), b.expiry.runOnce(), a.expiry.runOnce(), b.expiry.runOnce()]);
    }
    clock.set(new Date(T0.getTime() + 91 * DAY));
    await Promise.all([a.check.runOnce(), b.check.runOnce()]);
    await Promise.all([a.check.runOnce(), b.check.runOnce()]);
    const expiring = await outboxEvents(a.dataSource, 'credential.expiring', ctx.tenantId);
    expect(expiring).toHaveLength(36);
    expect(new Set(expiring.map((e) => `${e.credentialId}:${e.thresholdDays}`)).size).toBe(36);
    expect(await outboxEvents(a.dataSource, 'credential.expired', ctx.tenantId)).toHaveLength(12);
    const due = await outboxEvents(a.dataSource, 'credential.rotation_due', ctx.tenantId);
    expect(due).toHaveLength(12);
    expect(new Set(due.map((e) => e.credentialId)).size).toBe(12);
  });
});

describe('rotation jobs whose lock session ends mid-run (two replicas on one PostgreSQL)', () => {
  const clock = new ManualClock(T0);
  const replicas = useRotationStack('postgres', { clock, replicas: 2 });
  const [a, b] = [replicas.replica(0), replicas.replica(1)];
  const storeThree = async (ctx: OperationContext, expiresAt?: Date) => {
    for (let i = 0; i < 3; i++) await a.credentials.store(ctx, { integrationId: 'acme', connectionId: `c${i}`, type: CredentialType.API_KEY, value: 'k-' + randomBytes(18).toString('hex'), expiresAt });
  };

  /** Holds the replica's job in its first credential (policy resolved, nothing written yet) until `resume()`. */
  const pausedInFirstCredential = (policies: RotationPolicyService) => {
    let reached!: () => void;
    let resume!: () => void;
    const inFirst = new Promise<void>((r) => (reached = r));
    const resumed = new Promise<void>((r) => (resume = r));
    const resolve = policies.resolve.bind(policies);
    const spy = jest.spyOn(policies, 'resolve').mockImplementation(async (...args) => {
      if (spy.mock.calls.length === 1) {
        reached();
        await resumed;
      }
      return resolve(...args);
    });
    return { spy, inFirst, resume };
  };

  /**
   * Replica A's run loses its lock in its first credential; B takes the lock at once and runs the job. A ends that
   * credential and starts no other (it is rejected LOCK_LOST): each notice is raised once, by whichever got there first.
   */
  const loseLockMidRun = async <R extends { acquired: boolean }>(run: (s: typeof a) => Promise<R>, lockKey: string): Promise<R> => {
    const paused = pausedInFirstCredential(a.policies);
    try {
      const stopped = run(a).catch((e: unknown) => e);
      await paused.inFirst;
      await endLockSessionOfKey(a.dataSource, lockKey);
      const other = await run(b);
      expect(other.acquired).toBe(true);
      paused.resume();
      expect(await stopped).toMatchObject({ codeName: 'LOCK_LOST' });
      expect(paused.spy).toHaveBeenCalledTimes(1);
      return other;
    } finally {
      paused.resume();
      paused.spy.mockRestore();
    }
  };

  it('the expiry monitor stops before its next credential; the replica that took the lock warns of each once', async () => {
    const ctx: OperationContext = { tenantId: `lost_e_${randomBytes(3).toString('hex')}`, actor: { id: 'user:alice' } };
    clock.set(T0);
    await storeThree(ctx, new Date(T0.getTime() + 10 * DAY));
    clock.set(new Date(T0.getTime() + 5 * DAY));
    expect(await loseLockMidRun((s) => s.expiry.runOnce(), LOCK_KEYS.rotationExpiryMonitor)).toMatchObject({ warned: 3, failed: 0 });
    await b.expiry.runOnce();
    const expiring = await outboxEvents(a.dataSource, 'credential.expiring', ctx.tenantId);
    expect(expiring.map((e) => e.thresholdDays)).toEqual([7, 7, 7]);
    expect(new Set(expiring.map((e) => e.credentialId)).size).toBe(3);
  });

  it('the rotation check stops before its next credential; the replica that took the lock reports each due once', async () => {
    const ctx: OperationContext = { tenantId: `lost_r_${randomBytes(3).toString('hex')}`, actor: { id: 'user:alice' } };
    clock.set(T0);
    await storeThree(ctx);
    clock.set(new Date(T0.getTime() + 91 * DAY));
    expect(await loseLockMidRun((s) => s.check.runOnce(), LOCK_KEYS.rotationCheck)).toMatchObject({ notified: 3, failed: 0 });
    await b.check.runOnce();
    const due = await outboxEvents(a.dataSource, 'credential.rotation_due', ctx.tenantId);
    expect(due).toHaveLength(3);
    expect(new Set(due.map((e) => e.credentialId)).size).toBe(3);
  });
});

describe('rotation jobs scheduled on two replicas of one PostgreSQL', () => {
  const clock = new ManualClock(T0);
  const ctx: OperationContext = { tenantId: `cron_${randomBytes(3).toString('hex')}`, actor: { id: 'user:alice' } };
  // Both replicas schedule both jobs every second: the locks, not the schedule, keep them apart.
  const jobs = { expiryMonitor: { enabled: true, cronTime: '* * * * * *' }, rotationCheck: { enabled: true, cronTime: '* * * * * *' } };
  const { stacks } = useRotationStack('postgres', { clock, replicas: 2, module: jobs });

  it('raises every notice exactly once while both replicas run the jobs on their cron', async () => {
    const expiresAt = new Date(T0.getTime() + 80 * DAY);
    for (let i = 0; i < 8; i++) {
      await stacks[0].credentials.store(ctx, { integrationId: 'acme', connectionId: `e${i}`, type: CredentialType.API_KEY, value: 'k-' + randomBytes(18).toString('hex'), expiresAt });
      await stacks[1].credentials.store(ctx, { integrationId: 'acme', connectionId: `d${i}`, type: CredentialType.API_KEY, value: 'k-' + randomBytes(18).toString('hex') });
    }
    clock.set(new Date(T0.getTime() + 91 * DAY)); // the first 8 expired, the other 8 are due
    await new Promise((r) => setTimeout(r, 3500));
    const runs = stacks.map((s) => s.moduleRef.get(ScheduledJobs).status().find((j) => j.name === 'rotation-expiry-monitor')!.runs);
    expect(runs.reduce((n, r) => n + r.success + r.skipped, 0)).toBeGreaterThanOrEqual(4);
    expect(await outboxEvents(stacks[0].dataSource, 'credential.expired', ctx.tenantId)).toHaveLength(8);
    const due = await outboxEvents(stacks[0].dataSource, 'credential.rotation_due', ctx.tenantId);
    expect(due).toHaveLength(8);
    expect(new Set(due.map((e) => e.credentialId)).size).toBe(8);
  });
});
