/**
 * Integration: the proactive job's lock session ends mid-run (terminated, a failover) while a page of refreshes is in
 * flight. The lock went with it and another replica may take it at once: the run ends its refreshes in flight and
 * starts no other page, so the other replica's run refreshes the rest, each refresh token presented once. Two replicas
 * on one PostgreSQL with a real OAuth server and the local vault.
 */
import { DataSource } from 'typeorm';
import { type DistributedLock, LOCK_KEYS, ManualClock, type OperationContext } from '@app/common';
import { CapturingLogger, endLockSessionOfKey } from '@app/testing';
import type { OAuthRefreshModuleOptions } from '../index';
import { OAUTH_REFRESH_LOCK } from '../oauth-refresh.constants';
import { buildStack, registerTestProvider, useOAuthStack } from '../oauth-refresh-stack.testing';

const MIN = 60_000;

// Pages of two, refreshed `concurrency` at a time: the test ends the lock while the first refreshes are in flight.
describe.each([
  [2, 'page'],
  [1, 'connection'],
])('the proactive refresh job (concurrency %i) whose lock session ends mid-run (two replicas on one PostgreSQL)', (concurrency, next) => {
  const clock = new ManualClock(new Date());
  const logger = new CapturingLogger();
  const ctx: OperationContext = { tenantId: 'lock-lost', actor: { id: 'user:alice' } };
  const oauth: OAuthRefreshModuleOptions = { proactive: { enabled: false, batchSize: 2, concurrency } };
  const a = useOAuthStack('postgres', { clock, logger, oauth, server: { accessTokenTtlSeconds: 3600 }, provider: { integrationId: 'idp' } });

  it(`stops before its next ${next}, leaving its refreshes in flight done; the other replica takes the lock and refreshes the rest, each once`, async () => {
    const b = await buildStack(a.db, a.emu, clock, logger, oauth, 'forRootAsync');
    try {
      await registerTestProvider(b, a.server, 'idp', {}, a.clientSecretId);
      const server = a.server;
      const tokens: string[] = [];
      const conns: Array<{ accessTokenCredentialId: string; expiresAt: Date }> = [];
      for (let i = 0; i < 4; i++) {
        const t = await server.authorize();
        tokens.push(t.access_token, t.refresh_token as string);
        conns.push(await a.oauth.storeOAuthCredentials(ctx, 'idp', `c${i}`, t));
      }
      clock.set(new Date(conns[0].expiresAt.getTime() - 2 * MIN));
      server.resetCounters();
      server.setTokenEndpointDelay(400);

      const stopped = a.oauth.refreshExpiringTokens().catch((e: unknown) => e);
      for (let i = 0; i < 500 && server.refreshCalls < concurrency; i++) await new Promise((r) => setTimeout(r, 10));
      expect(server.refreshCalls).toBe(concurrency); // in flight at the provider
      await endLockSessionOfKey(a.moduleRef.get(DataSource), LOCK_KEYS.oauthProactiveRefresh);
      // The lock went with the session: the other replica can take it while the first page is still in flight.
      await expect(b.moduleRef.get<DistributedLock>(OAUTH_REFRESH_LOCK).tryRun(LOCK_KEYS.oauthProactiveRefresh, async () => 'b')).resolves.toEqual({ acquired: true, value: 'b' });

      expect(await stopped).toMatchObject({ codeName: 'LOCK_LOST' });
      // The refreshes in flight were finished and stored; no other connection was touched without the lock.
      expect(server.refreshCalls).toBe(concurrency);
      const versions = async () => Promise.all(conns.map(async (c) => (await b.credentials.getMetadata(ctx, c.accessTokenCredentialId)).version));
      expect((await versions()).sort()).toEqual([...Array<number>(4 - concurrency).fill(1), ...Array<number>(concurrency).fill(2)]);

      // The next run, on the replica that took the lock, refreshes the rest: each refresh token presented once.
      server.setTokenEndpointDelay(0);
      expect(await b.oauth.refreshExpiringTokens()).toMatchObject({ acquired: true, refreshed: 4 - concurrency, failed: 0 });
      expect(await versions()).toEqual([2, 2, 2, 2]);
      expect(server.tokenCalls.filter((t) => t.grantType === 'refresh_token').map((t) => t.status)).toEqual([200, 200, 200, 200]);
      // Told as a lost lock, with no token in it.
      expect(logger.lines.some((l) => l.startsWith('warn') && l.includes('"oauth-proactive-refresh" was lost'))).toBe(true);
      for (const t of tokens) expect(logger.lines.join('\n')).not.toContain(t);
    } finally {
      await b.moduleRef.close();
    }
  });
});
