/**
 * Unit: the proactive job's log when a provider fails for many connections at once — its token endpoint down (5xx,
 * unreachable, timing out) or refusing the OAuth client (4009). One warning per provider registration and cause, with
 * the count and a few connection ids, not one per connection; a connection's own failure (invalid_grant) is still a
 * warning of its own. Nothing but the log changes: the run's counts, events, audit rows and cooldowns stay.
 * Many connections in memory (FakeConnectionsStore), a token client answering per refresh token, ManualClock.
 */
import { Logger } from '@nestjs/common';
import { EventEmitter2 } from '@nestjs/event-emitter';
import type { AuditEventInput } from '@app/audit';
import { InProcessLock, LockLostError, ManualClock, type TryRunResult } from '@app/common';
import { CapturingLogger } from '@app/testing';
import { type OAuthTokenSet, TokenEndpointFailure } from '../client/oauth-token-client';
import { OAuthRefreshEvents, type OAuthRefreshFailedEvent } from '../events/oauth-refresh.events';
import { FAKE_CLIENT_SECRET_ID, FakeConnectionsStore, ScriptedTokenClient, serviceOnFakes } from '../oauth-refresh-fakes.testing';
import type { OAuthRefreshService } from '../oauth-refresh.service';
import type { OAuthProviderRegistry } from '../providers/oauth-provider.registry';

const MIN = 60_000;
const N = 40;
const CLIENT_ID = 'client-id-of-the-integration';
const CLIENT_SECRET = 'S3cr3t-value-of-the-client';
/** What a provider wrote in its answer: never repeated. */
const PROVIDER_TEXT = 'upstream said: refresh_token rt-t1-conn-0 is busy';

const provider = (integrationId: string) => ({
  integrationId,
  tokenEndpoint: `https://${integrationId}.example/token`,
  clientId: CLIENT_ID,
  clientSecret: { tenantId: 'sys', credentialId: FAKE_CLIENT_SECRET_ID },
});

describe('the proactive refresh job when a provider fails for many connections', () => {
  let clock: ManualClock;
  let store: FakeConnectionsStore;
  let client: ScriptedTokenClient;
  let service: OAuthRefreshService;
  let logger: CapturingLogger;
  let audited: AuditEventInput[];
  let failedEvents: OAuthRefreshFailedEvent[];

  beforeEach(async () => {
    clock = new ManualClock(new Date('2026-01-01T00:00:00Z'));
    store = new FakeConnectionsStore(clock, CLIENT_SECRET);
    client = new ScriptedTokenClient();
    audited = [];
    failedEvents = [];
    const events = new EventEmitter2();
    events.on(OAuthRefreshEvents.REFRESH_FAILED, (e: OAuthRefreshFailedEvent) => failedEvents.push(e));
    service = await serviceOnFakes(
      { clock, store, client, audit: { record: async (e: AuditEventInput) => void audited.push(e) }, events },
      { providers: [provider('idp'), provider('crm')] },
    );
    logger = new CapturingLogger();
    Logger.overrideLogger(logger); // after compile: compiling a testing module replaces the logger
  });
  afterEach(() => Logger.overrideLogger(new Logger()));

  /** `n` connections of `integrationId` inside their refresh window, of tenants t1 and t2 in turn. */
  const connect = (n: number, integrationId = 'idp', tenants = ['t1', 't2'], prefix = 'conn') => {
    for (let i = 0; i < n; i++) store.add(tenants[i % tenants.length], integrationId, `${prefix}-${i}`, new Date(clock.now().getTime() + 2 * MIN));
  };
  const answer = (refresh: (refreshToken: string) => OAuthTokenSet) => {
    client.refresh = async (_p, refreshToken) => {
      client.calls++;
      return refresh(refreshToken);
    };
  };
  /** The lines logged, without the context Nest's Logger appends. */
  const lines = () => logger.lines.map((l) => l.replace(/ +OAuthRefreshService$/, ''));
  const warnings = () => lines().filter((l) => /^(warn|error) /.test(l));
  const summary = () => lines().filter((l) => l.startsWith('log proactive refresh:'));
  const debugOf = (connectionId: string) => lines().filter((l) => l.startsWith(`debug proactive refresh of connection ${connectionId} `));
  /** "conn-0 (tenant t1), conn-1 (tenant t2), conn-2 (tenant t1) and 37 more": three of the connections, whichever failed first. */
  const examples = (prefix: string, more: number) => `(${prefix}-\\d+ \\(tenant t\\d\\), ){2}${prefix}-\\d+ \\(tenant t\\d\\) and ${more} more`;
  const leaked = () => logger.lines.filter((l) => [PROVIDER_TEXT, CLIENT_ID, CLIENT_SECRET, 'rt-t', 'at-t'].some((s) => l.includes(s)));

  it('a token endpoint answering 503: one warning naming the integration, the cause and the count, with a few connections; each connection at debug', async () => {
    connect(N);
    answer(() => {
      throw new TokenEndpointFailure('transient', `HTTP 503 ${PROVIDER_TEXT}`, { status: 503, oauthError: 'temporarily_unavailable' });
    });

    expect(await service.refreshExpiringTokens()).toEqual({ acquired: true, scanned: N, refreshed: 0, skipped: 0, inFlight: 0, failed: N });

    const cause = '4003:REFRESH_FAILED \\(HTTP 503, OAuth error temporarily_unavailable\\)';
    expect(warnings()).toEqual([
      expect.stringMatching(new RegExp(`^warn proactive refresh of ${N} connections of integration "idp" failed on the provider's side: ${cause}; connections ${examples('conn', N - 3)} \\(one line per run and cause; each connection's at debug\\)$`)),
    ]);
    expect(summary()).toEqual([`log proactive refresh: 0 refreshed, 0 skipped, ${N} failed of ${N}; failures by cause: ${N} × 4003:REFRESH_FAILED (HTTP 503, OAuth error temporarily_unavailable)`]);
    for (let i = 0; i < N; i++) expect(debugOf(`conn-${i}`)).toHaveLength(1);
    expect(leaked()).toEqual([]);
  });

  it('the provider refusing the OAuth client (4009) for most connections and two refresh tokens (invalid_grant): one warning for the client, one for each refresh token', async () => {
    connect(N);
    const dead = new Set(['rt-t2-conn-3', 'rt-t2-conn-7']);
    answer((refreshToken) => {
      if (dead.has(refreshToken)) throw new TokenEndpointFailure('invalid_grant', `invalid_grant ${PROVIDER_TEXT}`, { status: 400, oauthError: 'invalid_grant' });
      throw new TokenEndpointFailure('rejected', `invalid_client ${PROVIDER_TEXT}`, { status: 401, oauthError: 'invalid_client' });
    });

    expect(await service.refreshExpiringTokens()).toMatchObject({ scanned: N, failed: N });

    const own = (c: string) => [
      `warn refresh of connection ${c} (tenant t2, integration idp) failed: OAuthReauthRequiredError(REAUTH_REQUIRED), HTTP 400, OAuth error invalid_grant → needs_reauth`,
      `warn proactive refresh of connection ${c} (tenant t2, integration idp) failed: OAuthReauthRequiredError(REAUTH_REQUIRED), HTTP 400, OAuth error invalid_grant`,
    ];
    expect(warnings()).toHaveLength(5);
    expect(warnings()).toEqual(
      expect.arrayContaining([
        ...own('conn-3'),
        ...own('conn-7'),
        expect.stringMatching(
          new RegExp(`^warn proactive refresh of ${N - 2} connections of integration "idp" failed on the provider's side: 4009:OAUTH_CLIENT_REJECTED \\(HTTP 401, OAuth error invalid_client\\); connections ${examples('conn', N - 5)} `),
        ),
      ]),
    );
    expect(summary()).toEqual([
      `log proactive refresh: 0 refreshed, 0 skipped, ${N} failed of ${N}; failures by cause: ${N - 2} × 4009:OAUTH_CLIENT_REJECTED (HTTP 401, OAuth error invalid_client); 2 × 4002:REAUTH_REQUIRED (HTTP 400, OAuth error invalid_grant)`,
    ]);
    expect(store.reauthMarked.sort()).toEqual(['access-t2-conn-3', 'access-t2-conn-7', 'refresh-t2-conn-3', 'refresh-t2-conn-7']);
    expect(leaked()).toEqual([]);
  });

  it('one warning per provider registration and cause: two integrations, and a tenant\'s own registration, apart', async () => {
    const registry = (service as unknown as { registry: OAuthProviderRegistry }).registry;
    registry.register({ ...provider('idp'), clientSecret: { credentialId: FAKE_CLIENT_SECRET_ID } }, { tenantId: 't3' });
    connect(10, 'idp');
    connect(10, 'crm', ['t1'], 'crm');
    connect(10, 'idp', ['t3'], 'own');
    answer(() => {
      throw new TokenEndpointFailure('transient', 'HTTP 502', { status: 502 });
    });

    expect(await service.refreshExpiringTokens()).toMatchObject({ scanned: 30, failed: 30 });

    const cause = "failed on the provider's side: 4003:REFRESH_FAILED \\(HTTP 502\\); connections";
    expect(warnings()).toHaveLength(3);
    expect(warnings()).toEqual(
      expect.arrayContaining([
        expect.stringMatching(new RegExp(`^warn proactive refresh of 10 connections of integration "idp" ${cause} ${examples('conn', 7)} `)),
        expect.stringMatching(new RegExp(`^warn proactive refresh of 10 connections of integration "crm" ${cause} ${examples('crm', 7)} `)),
        expect.stringMatching(new RegExp(`^warn proactive refresh of 10 connections of integration "idp" \\(tenant t3's own registration\\) ${cause} ${examples('own', 7)} `)),
      ]),
    );
    expect(summary()).toEqual(['log proactive refresh: 0 refreshed, 0 skipped, 30 failed of 30; failures by cause: 30 × 4003:REFRESH_FAILED (HTTP 502)']);
  });

  it('a provider that words its refusal its own way: the cause is the registered code or unregistered_error, never its text', async () => {
    connect(5);
    answer(() => {
      throw new TokenEndpointFailure('rejected', PROVIDER_TEXT, { status: 400, oauthError: PROVIDER_TEXT });
    });

    expect(await service.refreshExpiringTokens()).toMatchObject({ scanned: 5, failed: 5 });

    expect(warnings()).toEqual([
      expect.stringMatching(/^warn proactive refresh of 5 connections of integration "idp" failed on the provider's side: 4003:REFRESH_FAILED \(HTTP 400, OAuth error unregistered_error\); connections /),
    ]);
    expect(leaked()).toEqual([]);
  });

  it('a token endpoint not reached: one warning per transport failure (refused, timed out), a transport detail not shaped like a code left out', async () => {
    connect(12);
    answer((refreshToken) => {
      const i = Number(/-(\d+)$/.exec(refreshToken)![1]);
      const transport = i % 3 === 0 ? 'ECONNREFUSED' : i % 3 === 1 ? 'timeout' : `socket closed by ${PROVIDER_TEXT}`;
      throw new TokenEndpointFailure('transient', `unreachable ${PROVIDER_TEXT}`, { transport });
    });

    expect(await service.refreshExpiringTokens()).toMatchObject({ scanned: 12, failed: 12 });

    const folded = (cause: string) => expect.stringMatching(new RegExp(`^warn proactive refresh of 4 connections of integration "idp" failed on the provider's side: ${cause}; connections `));
    expect(warnings()).toHaveLength(3);
    expect(warnings()).toEqual(
      expect.arrayContaining([folded('4003:REFRESH_FAILED \\(transport ECONNREFUSED\\)'), folded('4003:REFRESH_FAILED \\(transport timeout\\)'), folded('4003:REFRESH_FAILED')]),
    );
    expect(summary()[0]).toMatch(/; failures by cause: 4 × 4003:REFRESH_FAILED( \(transport (ECONNREFUSED|timeout)\))?; 4 × 4003:REFRESH_FAILED/);
    expect(leaked()).toEqual([]);
  });

  it('a token endpoint that fails once per refresh but answers the retry: one warning naming the integration and what failed, not nothing', async () => {
    connect(N);
    connect(4, 'crm', ['t1'], 'crm');
    const failedOnce = new Set<string>();
    answer((refreshToken) => {
      if (!failedOnce.has(refreshToken)) {
        failedOnce.add(refreshToken);
        throw new TokenEndpointFailure('transient', `HTTP 503 ${PROVIDER_TEXT}`, { status: 503, oauthError: 'temporarily_unavailable' });
      }
      return { accessToken: `new-access-${refreshToken}`, refreshToken: `new-refresh-${refreshToken}`, expiresIn: 3600, tokenType: 'bearer' };
    });

    expect(await service.refreshExpiringTokens()).toEqual({ acquired: true, scanned: N + 4, refreshed: N + 4, skipped: 0, inFlight: 0, failed: 0 });

    // Each retry was a warning before the folding; a provider that fails every first request is still news at the default level.
    const retried = (n: number, where: string, prefix: string) =>
      expect.stringMatching(
        new RegExp(`^warn proactive refresh of ${n} connections of integration "${where}" succeeded only after a retry: the token endpoint failed first \\(HTTP 503, OAuth error temporarily_unavailable\\); connections ${examples(prefix, n - 3)} `),
      );
    expect(warnings()).toHaveLength(2);
    expect(warnings()).toEqual(expect.arrayContaining([retried(N, 'idp', 'conn'), retried(4, 'crm', 'crm')]));
    expect(leaked()).toEqual([]);
  });

  it("a transport detail shaped like a token (a host's client may put anything there) is not repeated", async () => {
    // GitHub's documented shape of an OAuth token: letters, digits and an underscore, like a code.
    const TOKEN_LIKE = 'gho_16C7e42F292c6912E7710c838347Ae178B4a';
    connect(3);
    answer(() => {
      throw new TokenEndpointFailure('transient', 'unreachable', { transport: TOKEN_LIKE });
    });

    expect(await service.refreshExpiringTokens()).toMatchObject({ scanned: 3, failed: 3 });

    expect(warnings()).toEqual([expect.stringMatching(/^warn proactive refresh of 3 connections of integration "idp" failed on the provider's side: 4003:REFRESH_FAILED; connections /)]);
    expect(logger.lines.filter((l) => l.includes(TOKEN_LIKE))).toEqual([]);
  });

  it('the lock lost mid-run: the provider-level failures met before it are still said, once', async () => {
    const session = new AbortController();
    /** The job's lock, whose session ends when the test says (PostgreSQL's when its connection dies). */
    class LosableLock extends InProcessLock {
      override async tryRun<T>(key: string, fn: (held: AbortSignal) => Promise<T>): Promise<TryRunResult<T>> {
        return { acquired: true, value: await fn(session.signal) };
      }
    }
    service = await serviceOnFakes(
      { clock, store, client, audit: { record: async () => undefined }, lock: new LosableLock() },
      { providers: [provider('idp')], proactive: { enabled: false, batchSize: 5, concurrency: 1 } },
    );
    Logger.overrideLogger(logger);
    connect(10);
    answer(() => {
      // The lock is lost while the third connection's refresh is in flight: it ends, no other starts.
      if (client.calls === 7) session.abort(new LockLostError('oauth-proactive-refresh'));
      throw new TokenEndpointFailure('transient', 'HTTP 503', { status: 503 });
    });

    await expect(service.refreshExpiringTokens()).rejects.toBeInstanceOf(LockLostError);

    expect(warnings()).toEqual([expect.stringMatching(/^warn proactive refresh of 3 connections of integration "idp" failed on the provider's side: 4003:REFRESH_FAILED \(HTTP 503\); connections conn-\d+ \(tenant t\d\), conn-\d+ \(tenant t\d\), conn-\d+ \(tenant t\d\) \(/)]);
    expect(summary()).toEqual([]); // as before: a run that lost its lock has no summary line
  });

  it('one connection failing on the provider: the same line, of one connection', async () => {
    connect(1);
    answer(() => {
      throw new TokenEndpointFailure('transient', 'HTTP 500', { status: 500, oauthError: 'server_error' });
    });

    expect(await service.refreshExpiringTokens()).toMatchObject({ scanned: 1, failed: 1 });

    expect(warnings()).toEqual([
      `warn proactive refresh of 1 connection of integration "idp" failed on the provider's side: 4003:REFRESH_FAILED (HTTP 500, OAuth error server_error); connections conn-0 (tenant t1) (one line per run and cause; each connection's at debug)`,
    ]);
  });

  it('nothing but the log changes: each connection is still counted, retried, emitted, audited and cooled down', async () => {
    connect(N);
    answer(() => {
      throw new TokenEndpointFailure('transient', 'HTTP 503', { status: 503 });
    });

    expect(await service.refreshExpiringTokens()).toMatchObject({ scanned: N, failed: N });

    expect(client.calls).toBe(3 * N); // maxAttempts 3 each
    expect(failedEvents).toHaveLength(N);
    expect(new Set(failedEvents.map((e) => e.connectionId)).size).toBe(N);
    expect(failedEvents.every((e) => e.errorCode === '4003:REFRESH_FAILED' && e.httpStatus === 503 && e.trigger === 'proactive' && e.consecutiveFailures === 1)).toBe(true);
    expect(audited.filter((e) => e.action === 'refresh' && e.result === 'failure')).toHaveLength(N);
    // Cooling down: the next run skips them all and says nothing more.
    const said = warnings().length;
    clock.advance(10_000);
    expect(await service.refreshExpiringTokens()).toMatchObject({ scanned: N, skipped: N, failed: 0 });
    expect(client.calls).toBe(3 * N);
    expect(warnings()).toHaveLength(said);
  });
});
