/**
 * Unit: a refresh that fails on the provider's configuration — its client secret names no credential, or a revoked
 * or expired one (OAUTH_REFRESH_CONFIGURATION, 4007) — is said like any failed refresh (log line, event, audit row),
 * once per failure rather than per caller, and the secret is not read again by every caller meanwhile.
 * In-memory token store, scripted token client, ManualClock.
 */
import { Logger } from '@nestjs/common';
import { EventEmitter2 } from '@nestjs/event-emitter';
import type { AuditEventInput } from '@app/audit';
import { ManualClock, type OperationContext } from '@app/common';
import { CredentialNotFoundError, CredentialRevokedError } from '@app/credentials';
import { CapturingLogger } from '@app/testing';
import { OAuthRefreshConfigurationError } from '../errors/oauth-refresh.errors';
import { OAuthRefreshEvents, type OAuthRefreshFailedEvent } from '../events/oauth-refresh.events';
import { FAKE_CLIENT_SECRET_ID, FakeTokenStore, ScriptedTokenClient, serviceOnFakes } from '../oauth-refresh-fakes.testing';
import { OAuthRefreshService } from '../oauth-refresh.service';
import { InProcessOAuthRefreshCooldowns, type OAuthRefreshCooldowns } from '../store/oauth-refresh-cooldowns';

const SEC = 1000;
const MIN = 60 * SEC;
const SECRET_ID = FAKE_CLIENT_SECRET_ID;

describe('OAuthRefreshService when the client secret cannot be used (OAUTH_REFRESH_CONFIGURATION)', () => {
  const ctx: OperationContext = { tenantId: 't1', actor: { id: 'user:1' } };
  let clock: ManualClock;
  let store: FakeTokenStore;
  let client: ScriptedTokenClient;
  let service: OAuthRefreshService;
  let audited: AuditEventInput[];
  let failed: OAuthRefreshFailedEvent[];
  let logger: CapturingLogger;

  /** A service instance on the same fakes (another replica when `sharedCooldowns` is given: no in-memory state shared). */
  const replica = (sharedCooldowns?: OAuthRefreshCooldowns) =>
    serviceOnFakes({ clock, store, client, audit: { record: async (e: AuditEventInput) => void audited.push(e) }, events, sharedCooldowns });
  let events: EventEmitter2;

  beforeEach(async () => {
    clock = new ManualClock(new Date('2026-01-01T00:00:00Z'));
    store = new FakeTokenStore(clock);
    client = new ScriptedTokenClient();
    audited = [];
    failed = [];
    events = new EventEmitter2();
    events.on(OAuthRefreshEvents.REFRESH_FAILED, (e: OAuthRefreshFailedEvent) => failed.push(e));
    service = await replica();
    logger = new CapturingLogger();
    Logger.overrideLogger(logger); // after compile: compiling a testing module replaces the logger
  });
  afterEach(() => Logger.overrideLogger(new Logger()));

  const connect = (connectionId = 'c1') =>
    service.storeOAuthCredentials(ctx, 'idp', connectionId, { access_token: `at-${connectionId}`, refresh_token: `rt-${connectionId}`, expires_in: 3600, token_type: 'Bearer' });

  it('is logged, emitted as credential.oauth.refresh_failed and audited as refresh/failure like other failed refreshes, the provider never called', async () => {
    await connect();
    store.clientSecretError = () => new CredentialNotFoundError(SECRET_ID);
    clock.advance(58 * MIN); // inside the refresh-ahead window: the token is still served
    expect((await service.getAccessToken(ctx, 'idp', 'c1')).accessToken).toBe('at-c1');
    expect(client.calls).toBe(0);

    const errorCode = '4007:OAUTH_REFRESH_CONFIGURATION';
    expect(failed).toEqual([
      expect.objectContaining({ tenantId: 't1', integrationId: 'idp', connectionId: 'c1', accessCredentialId: 'access-id', errorCode, retryable: false, reauthRequired: false, trigger: 'on_demand' }),
    ]);
    expect(audited.filter((e) => e.action === 'refresh')).toEqual([
      expect.objectContaining({ result: 'failure', resource: 'access-id', errorCode, details: expect.objectContaining({ integrationId: 'idp', connectionId: 'c1', attempts: 0 }) }),
    ]);
    expect(logger.lines.filter((l) => l.startsWith('error refresh of connection c1 (tenant t1, integration idp) failed: OAuthRefreshConfigurationError'))).toHaveLength(1);
    // Nothing names the secret's credential (a system credential, not the caller's).
    expect(JSON.stringify({ failed, audited, lines: logger.lines })).not.toContain(SECRET_ID);

    clock.advance(3 * MIN); // expired: the caller gets the configuration error
    await expect(service.getAccessToken(ctx, 'idp', 'c1')).rejects.toBeInstanceOf(OAuthRefreshConfigurationError);
  });

  it('other refreshes during its cooldown (30 s, doubling) neither read the secret again nor say the failure again', async () => {
    await connect();
    store.clientSecretError = () => new CredentialNotFoundError(SECRET_ID);
    clock.advance(58 * MIN);
    await service.getAccessToken(ctx, 'idp', 'c1');
    // Another connection of the provider (the fake store answers it with the same tokens), and the same one again.
    await service.getAccessToken(ctx, 'idp', 'c2');
    clock.advance(29 * SEC);
    expect((await service.getAccessToken(ctx, 'idp', 'c1')).accessToken).toBe('at-c1');
    expect(store.clientSecretReads).toBe(1);
    expect(failed).toHaveLength(1);
    expect(failed[0]).toMatchObject({ consecutiveFailures: 1, retryAfter: new Date(clock.now().getTime() + 1 * SEC) });

    clock.advance(2 * SEC); // cooldown over: read again, still missing, said again, 60 s now
    await service.getAccessToken(ctx, 'idp', 'c2');
    expect(store.clientSecretReads).toBe(2);
    expect(failed).toHaveLength(2);
    expect(failed[1]).toMatchObject({ connectionId: 'c2', consecutiveFailures: 2, retryAfter: new Date(clock.now().getTime() + 60 * SEC) });
    expect(audited.filter((e) => e.action === 'refresh')).toHaveLength(2);

    clock.advance(90 * SEC); // expired, the cooldown over: read, failed, said (120 s now); the caller gets the error
    await expect(service.getAccessToken(ctx, 'idp', 'c1')).rejects.toBeInstanceOf(OAuthRefreshConfigurationError);
    expect({ reads: store.clientSecretReads, said: failed.length }).toEqual({ reads: 3, said: 3 });

    store.clientSecretError = undefined; // fixed in place, but this store cannot tell without reading the value
    clock.advance(MIN);
    await expect(service.getAccessToken(ctx, 'idp', 'c1')).rejects.toBeInstanceOf(OAuthRefreshConfigurationError);
    expect({ reads: store.clientSecretReads, said: failed.length, calls: client.calls }).toEqual({ reads: 3, said: 3, calls: 0 });
    clock.advance(MIN + SEC); // the cooldown ends: read, refreshed
    expect((await service.getAccessToken(ctx, 'idp', 'c1')).accessToken).toBe('at-1');
    expect({ reads: store.clientSecretReads, said: failed.length }).toEqual({ reads: 4, said: 3 });
  });

  it('a store that can check: refreshes meanwhile check without reading the value, and a secret fixed in place is read at once', async () => {
    store.clientSecretCheckable = true;
    await connect();
    store.clientSecretError = () => new CredentialRevokedError(SECRET_ID);
    clock.advance(58 * MIN);
    await service.getAccessToken(ctx, 'idp', 'c1');
    clock.advance(10 * SEC);
    await service.getAccessToken(ctx, 'idp', 'c1');
    expect({ reads: store.clientSecretReads, checks: store.clientSecretChecks, said: failed.length }).toEqual({ reads: 1, checks: 1, said: 1 });
    clock.advance(21 * SEC); // past the cooldown: the check fails, said again
    await service.getAccessToken(ctx, 'idp', 'c1');
    expect({ reads: store.clientSecretReads, checks: store.clientSecretChecks, said: failed.length }).toEqual({ reads: 1, checks: 2, said: 2 });

    store.clientSecretError = undefined; // unrevoked
    clock.advance(SEC); // within the 60 s cooldown
    expect((await service.getAccessToken(ctx, 'idp', 'c1')).accessToken).toBe('at-1');
    expect({ reads: store.clientSecretReads, checks: store.clientSecretChecks, calls: client.calls }).toEqual({ reads: 2, checks: 3, calls: 1 });

    // The next episode starts over: 30 s, failure 1; the reference is read first again (no longer suspect).
    store.clientSecretError = () => new CredentialRevokedError(SECRET_ID);
    clock.advance(58 * MIN);
    await service.getAccessToken(ctx, 'idp', 'c1');
    expect(store.clientSecretReads).toBe(3);
    expect(failed[2]).toMatchObject({ consecutiveFailures: 1, retryAfter: new Date(clock.now().getTime() + 30 * SEC) });
  });

  it('the proactive job says it once per cooldown, not once per connection and run: its summary line counts the rest', async () => {
    await connect();
    store.clientSecretError = () => new CredentialNotFoundError(SECRET_ID);
    clock.advance(58 * MIN);
    const expiresAt = new Date(clock.now().getTime() + 2 * MIN);
    store.listDue = () => Promise.resolve(['c1', 'c2', 'c3'].map((connectionId) => ({ tenantId: 't1', integrationId: 'idp', connectionId, credentialId: `access-${connectionId}`, expiresAt })));
    const runs = [await service.refreshExpiringTokens()];
    clock.advance(10 * SEC); // the next run, inside the reference's cooldown
    runs.push(await service.refreshExpiringTokens());

    expect(runs.map((r) => r.failed)).toEqual([3, 3]);
    expect({ reads: store.clientSecretReads, said: failed.length, calls: client.calls }).toEqual({ reads: 1, said: 1, calls: 0 });
    // One error line for the failure said, no warning per connection and run; each summary says what the failures were.
    expect(logger.lines.filter((l) => /^(warn|error) /.test(l))).toEqual([expect.stringMatching(/^error refresh of connection c1 .*OAuthRefreshConfigurationError/)]);
    const summary = "log proactive refresh: 0 refreshed, 0 skipped, 3 failed of 3; failures by cause: 3 × 4007:OAUTH_REFRESH_CONFIGURATION (a provider's unusable client secret, said once per cooldown)";
    expect(logger.lines.filter((l) => l.startsWith('log proactive refresh:'))).toEqual([expect.stringContaining(summary), expect.stringContaining(summary)]);
  });

  it('concurrent refreshes of the provider\'s connections share one read and one report', async () => {
    await connect();
    store.clientSecretError = () => new CredentialNotFoundError(SECRET_ID);
    clock.advance(61 * MIN);
    const results = await Promise.allSettled(['c1', 'c2', 'c3', 'c4'].map((c) => service.getAccessToken(ctx, 'idp', c)));
    expect(results.map((r) => r.status === 'rejected' && r.reason instanceof OAuthRefreshConfigurationError)).toEqual([true, true, true, true]);
    expect(store.clientSecretReads).toBe(1);
    expect(failed).toHaveLength(1);
  });

  it('a caller leaving does not abort the read of the secret the refreshes of other connections share', async () => {
    await connect();
    clock.advance(61 * MIN); // expired: each caller needs its refresh
    let release!: () => void;
    const vault = new Promise<void>((resolve) => (release = resolve));
    // As the real store: the read is aborted with the caller's signal (a vault read in flight is dropped).
    store.readClientSecret = async (c: OperationContext) => {
      store.clientSecretReads++;
      await Promise.race([vault, new Promise((_, reject) => c.signal?.addEventListener('abort', () => reject(c.signal!.reason as Error)))]);
      return 'client-secret';
    };
    const leaving = new AbortController();
    const first = service.getAccessToken({ ...ctx, signal: leaving.signal }, 'idp', 'c1').catch((e: unknown) => e);
    const other = service.getAccessToken(ctx, 'idp', 'c2');
    for (let i = 0; i < 100 && store.clientSecretReads === 0; i++) await new Promise((r) => setImmediate(r));
    leaving.abort(); // the first caller's HTTP request is gone
    release();
    expect((await other).accessToken).toMatch(/^at-/);
    expect(store.clientSecretReads).toBe(1);
    await first;
  });

  it('with cooldowns shared by the replicas, a failure another replica said is not said again', async () => {
    const shared = new InProcessOAuthRefreshCooldowns();
    const a = await replica(shared);
    const b = await replica(shared);
    await connect();
    store.clientSecretError = () => new CredentialNotFoundError(SECRET_ID);
    clock.advance(58 * MIN);
    await a.getAccessToken(ctx, 'idp', 'c1');
    await b.getAccessToken(ctx, 'idp', 'c2'); // b reads once itself (it knew nothing), says nothing
    await b.getAccessToken(ctx, 'idp', 'c2');
    expect(store.clientSecretReads).toBe(2);
    expect(failed).toHaveLength(1);
  });
});
