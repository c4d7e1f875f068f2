/**
 * Integration: the proactive job meets a connection another refresh is still working on — its lease held (a replica
 * that crashed mid-refresh, or whose lock session died while it awaits the token endpoint), or its lock held past
 * `lockTimeoutMs`. Nothing failed: the connection is left to that refresh, not counted, cooled down, logged, emitted
 * or audited as a failed refresh. On SQLite with the local vault and a real OAuth server.
 */
import { DataSource, InsertQueryBuilder } from 'typeorm';
import { AuditAction, AuditResult } from '@app/audit';
import { DistributedLock, LockLeaseEntity, LockLeases, ManualClock, type OperationContext } from '@app/common';
import { CapturingLogger } from '@app/testing';
import { OAuthRefreshErrorCode, OAuthRefreshEvents } from '../index';
import { OAUTH_REFRESH_LOCK } from '../oauth-refresh.constants';
import { useOAuthStack } from '../oauth-refresh-stack.testing';

const MIN = 60_000;

describe('the proactive refresh job and a refresh in flight elsewhere (SQLite)', () => {
  const clock = new ManualClock(new Date());
  const logger = new CapturingLogger();
  const ctx: OperationContext = { tenantId: 'inflight', actor: { id: 'user:alice' } };
  let seq = 0;

  const stack = useOAuthStack('sqlite', { clock, logger, oauth: { lockTimeoutMs: 300, proactive: { enabled: false } }, provider: { integrationId: 'idp' } });

  beforeEach(() => {
    clock.set(new Date());
    stack.server.resetCounters();
  });

  const connect = async () => {
    const connectionId = `conn-${++seq}`;
    const stored = await stack.oauth.storeOAuthCredentials(ctx, 'idp', connectionId, await stack.server.authorize());
    // Only this connection is inside its refresh window (the others were refreshed, or connected later).
    clock.set(new Date(stored.expiresAt.getTime() - 2 * MIN));
    return { connectionId, stored, lockName: `oauth-refresh:${JSON.stringify([ctx.tenantId, 'idp', connectionId])}` };
  };
  /** What would tell an operator or a subscriber this connection's refresh failed. */
  const failureSigns = async (connectionId: string, since: number) => ({
    events: stack.events.filter((e) => e.name === OAuthRefreshEvents.REFRESH_FAILED && (e.payload as { connectionId: string }).connectionId === connectionId),
    audit: (await stack.audit.query({ tenantId: ctx.tenantId, action: AuditAction.REFRESH, result: AuditResult.FAILURE })).items,
    lines: logger.lines.slice(since).filter((l) => (l.startsWith('warn') || l.startsWith('error')) && l.includes(connectionId)),
  });
  const noFailure = { events: [], audit: [], lines: [] };

  it('a lease left by a crashed replica: the connection is left to it (in flight, not failed: no cooldown, failure event, audit row or warning), and refreshed by the first run after it lapsed', async () => {
    const { connectionId, lockName } = await connect();
    const leases = LockLeases.for(stack.moduleRef.get(DataSource));
    const lapses = new Date(Date.now() + 1500);
    expect(await leases.claim(lockName, 'crashed-replica', lapses, new Date())).toMatchObject({ claimed: true });
    const since = logger.lines.length;

    expect(await stack.oauth.refreshExpiringTokens()).toMatchObject({ scanned: 1, refreshed: 0, inFlight: 1, failed: 0 });
    expect(stack.server.refreshCalls).toBe(0);
    expect(await failureSigns(connectionId, since)).toEqual(noFailure);
    expect(logger.lines.slice(since).some((l) => l.startsWith('log') && l.includes('1 in flight elsewhere'))).toBe(true);

    // No cooldown was started: the first run after the lease lapsed refreshes the connection.
    await new Promise((r) => setTimeout(r, lapses.getTime() - Date.now() + 50));
    expect(await stack.oauth.refreshExpiringTokens()).toMatchObject({ scanned: 1, refreshed: 1, inFlight: 0, failed: 0 });
    expect(stack.server.refreshCalls).toBe(1);
  });

  it("a connection whose lock another refresh holds past lockTimeoutMs: left to it the same way, and refreshed by the next run", async () => {
    const { connectionId, lockName } = await connect();
    const lock = stack.moduleRef.get<DistributedLock>(OAUTH_REFRESH_LOCK);
    let release!: () => void;
    let held!: () => void;
    const holding = new Promise<void>((r) => (held = r));
    const holder = lock.run(lockName, () => new Promise<void>((r) => ((release = r), held())), { timeoutMs: 1000 });
    await holding;
    const since = logger.lines.length;

    expect(await stack.oauth.refreshExpiringTokens()).toMatchObject({ scanned: 1, refreshed: 0, inFlight: 1, failed: 0 });
    expect(await failureSigns(connectionId, since)).toEqual(noFailure);

    release();
    await holder;
    expect(await stack.oauth.refreshExpiringTokens()).toMatchObject({ scanned: 1, refreshed: 1, failed: 0 });
    expect(stack.server.refreshCalls).toBe(1);
  });

  it("a lease ended as fast as it is claimed (the claim gives up with LOCK_TIMEOUT): the caller is told 4003 retryable, in flight, retry shortly; the job counts it in flight", async () => {
    const { connectionId, stored, lockName } = await connect();
    const ds = stack.moduleRef.get(DataSource);
    await LockLeases.for(ds).claim(lockName, 'churning-replica', new Date(Date.now() + 60_000), new Date());
    // Every INSERT of the lease is followed by an end of it (another replica's clear; on SQLite's one connection it
    // lands inside the claim every time): the claim gives up after its rounds, typed LOCK_TIMEOUT (lock-leases.int-spec).
    const insert = InsertQueryBuilder.prototype.execute;
    const spy = jest.spyOn(InsertQueryBuilder.prototype, 'execute').mockImplementation(async function (this: InsertQueryBuilder<object>) {
      const result = await insert.call(this);
      if (this.expressionMap.mainAlias?.target === LockLeaseEntity) await ds.getRepository(LockLeaseEntity).delete({ name: lockName });
      return result;
    });
    const since = logger.lines.length;
    try {
      // Expired: nothing to serve meanwhile, the caller gets the refresh's answer.
      clock.set(new Date(stored.expiresAt.getTime() + 1000));
      const before = Date.now();
      const error = await stack.oauth.getAccessToken(ctx, 'idp', connectionId).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toMatchObject({ code: OAuthRefreshErrorCode.REFRESH_FAILED, retryable: true, details: { inFlight: true } });
      // Told what happened (the lease), not that a lock was held for lockTimeoutMs.
      expect((error as Error).message).toMatch(/refresh lease/);
      const retryAfter = (error as { retryAfter?: Date }).retryAfter;
      expect(retryAfter).toBeInstanceOf(Date);
      expect(retryAfter!.getTime() - before).toBeGreaterThan(0);
      expect(retryAfter!.getTime() - before).toBeLessThanOrEqual(5000);

      clock.set(new Date(stored.expiresAt.getTime() - 2 * MIN));
      expect(await stack.oauth.refreshExpiringTokens()).toMatchObject({ scanned: 1, refreshed: 0, inFlight: 1, failed: 0 });
    } finally {
      spy.mockRestore();
    }
    expect(stack.server.refreshCalls).toBe(0);
    expect(await failureSigns(connectionId, since)).toEqual(noFailure);
  });
});
