/**
 * Integration: faults of a real OAuth server's token endpoint (oidc-provider, rotating refresh tokens)
 * as a user of OAuthRefreshService meets them, on SQLite with the local vault: what the caller gets,
 * and what state the connection is left in — above all, that the live refresh token is never lost.
 */
import { EventEmitter2 } from '@nestjs/event-emitter';
import { AuditAction, AuditResult } from '@app/audit';
import { LockLeases, ManualClock, type OperationContext } from '@app/common';
import { DataSource } from 'typeorm';
import { CredentialStatus } from '@app/credentials';
import { CapturingLogger } from '@app/testing';
import { OAuthRefreshEvents } from '../index';
import { useOAuthStack } from '../oauth-refresh-stack.testing';

const MIN = 60_000;
/** The provider's timeout here; the slow token endpoint answers well after it. */
const TIMEOUT_MS = 300;

describe('OAuthRefreshService against a faulty real token endpoint (SQLite)', () => {
  let events: EventEmitter2;
  const clock = new ManualClock(new Date());
  const logger = new CapturingLogger();
  const ctx: OperationContext = { tenantId: 'faults', actor: { id: 'user:alice' } };
  /** Every token the server issued here: none may show up in a log line. */
  const issued = new Set<string>();
  let seq = 0;

  const stack = useOAuthStack('sqlite', {
    clock,
    logger,
    oauth: { retry: { maxAttempts: 3, initialDelayMs: 5, maxDelayMs: 20 }, proactive: { enabled: false } },
    provider: { integrationId: 'idp', extra: { requestTimeoutMs: TIMEOUT_MS } },
  });
  beforeAll(() => {
    events = stack.moduleRef.get(EventEmitter2);
  });

  beforeEach(() => {
    stack.server.clearFault();
    stack.server.setTokenEndpointDelay(0);
    clock.set(new Date());
    stack.server.resetCounters();
  });

  const connect = async () => {
    const connectionId = `conn-${++seq}`;
    const initial = await stack.server.authorize();
    issued.add(initial.access_token).add(initial.refresh_token!);
    const stored = await stack.oauth.storeOAuthCredentials(ctx, 'idp', connectionId, initial);
    return { connectionId, initial, stored };
  };
  const enterWindow = (expiresAt: Date) => clock.set(new Date(expiresAt.getTime() - 2 * MIN));
  /** The next event `name` of this connection (that `where` accepts), or a rejection after `ms`. */
  const nextEvent = (name: string, connectionId: string, ms = 10_000, where: (payload: Record<string, unknown>) => boolean = () => true) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(() => {
        events.off(name, listener);
        reject(new Error(`no ${name} for ${connectionId} within ${ms} ms`));
      }, ms);
      const listener = (payload: Record<string, unknown>) => {
        if (payload.connectionId !== connectionId || !where(payload)) return;
        clearTimeout(timer);
        events.off(name, listener);
        resolve(payload);
      };
      events.on(name, listener);
    });

  it('a token endpoint answering after the timeout: the caller keeps the old token, the late answer (rotated refresh token) is stored, the spent token is never re-sent', async () => {
    const { connectionId, initial, stored } = await connect();
    stack.server.setTokenEndpointDelay(TIMEOUT_MS + 400);
    enterWindow(stored.expiresAt);
    const late = nextEvent(OAuthRefreshEvents.REFRESHED, connectionId);

    // The caller is answered at the timeout with the still-valid token.
    const got = await stack.oauth.getAccessToken(ctx, 'idp', connectionId);
    expect(got).toMatchObject({ accessToken: initial.access_token, version: 1 });
    // Meanwhile a 401 report does not send the refresh token the provider is spending right now.
    await expect(stack.oauth.reportTokenRejected(ctx, 'idp', connectionId)).rejects.toMatchObject({ code: 4003, retryable: true });

    expect(await late).toMatchObject({ refreshTokenRotated: true, version: 2 });
    expect(stack.server.refreshCalls).toBe(1);
    const refresh = await stack.credentials.get(ctx, stored.refreshTokenCredentialId!);
    issued.add(refresh.value);
    expect(refresh.metadata).toMatchObject({ version: 2, status: CredentialStatus.ACTIVE });
    expect(refresh.value).not.toBe(initial.refresh_token);

    // The stored token is the live one: the next refresh works at the provider.
    stack.server.setTokenEndpointDelay(0);
    const lateAccess = await stack.oauth.getAccessToken(ctx, 'idp', connectionId);
    issued.add(lateAccess.accessToken);
    enterWindow(lateAccess.expiresAt!);
    const next = await stack.oauth.reportTokenRejected(ctx, 'idp', connectionId);
    issued.add(next.accessToken);
    expect(next.version).toBe(3);
    expect(stack.server.tokenCalls.filter((c) => c.grantType === 'refresh_token').map((c) => c.status)).toEqual([200, 200]);
  });

  it('while a late answer may still come, callers are answered at once (the still-valid token, or a retryable error) rather than queue on the held lock', async () => {
    const { connectionId, initial, stored } = await connect();
    stack.server.setTokenEndpointDelay(TIMEOUT_MS + 1500);
    enterWindow(stored.expiresAt);
    const timedOutAt = clock.now().getTime();
    const late = nextEvent(OAuthRefreshEvents.REFRESHED, connectionId);
    expect(await stack.oauth.getAccessToken(ctx, 'idp', connectionId)).toMatchObject({ accessToken: initial.access_token, version: 1 });

    // Past the usual failure cooldown (30 s) but within lateAnswerMs (60 s): still nobody waits for the lock.
    clock.set(new Date(timedOutAt + 31_000));
    const t0 = Date.now();
    const forced = await stack.oauth.reportTokenRejected(ctx, 'idp', connectionId).catch((e: unknown) => e);
    expect(Date.now() - t0).toBeLessThan(TIMEOUT_MS);
    expect(forced).toMatchObject({ code: 4003, retryable: true });
    expect((forced as { details: { retryAfter: Date } }).details.retryAfter.getTime()).toBeGreaterThanOrEqual(timedOutAt + 60_000);
    expect(await stack.oauth.getAccessToken(ctx, 'idp', connectionId)).toMatchObject({ accessToken: initial.access_token, version: 1 });

    // The late answer is stored and ends the cooldown: the next forced refresh presents the rotated token at once.
    expect(await late).toMatchObject({ refreshTokenRotated: true, version: 2 });
    stack.server.setTokenEndpointDelay(0);
    const next = await stack.oauth.reportTokenRejected(ctx, 'idp', connectionId);
    issued.add(next.accessToken);
    expect(next.version).toBe(3);
    expect(stack.server.tokenCalls.filter((c) => c.grantType === 'refresh_token').map((c) => c.status)).toEqual([200, 200]);
  });

  it('a late invalid_grant (the refresh token died meanwhile): the connection needs re-authorisation, as after a timely one', async () => {
    const { connectionId, initial, stored } = await connect();
    await stack.server.revokeGrantOf(initial.refresh_token!);
    stack.server.setTokenEndpointDelay(TIMEOUT_MS + 400);
    enterWindow(stored.expiresAt);
    const reauth = nextEvent(OAuthRefreshEvents.REFRESH_FAILED, connectionId, 5000, (p) => p.reauthRequired === true);

    // Answered at the timeout with the still-valid token; the provider's invalid_grant comes later.
    expect(await stack.oauth.getAccessToken(ctx, 'idp', connectionId)).toMatchObject({ accessToken: initial.access_token, version: 1 });
    expect(await reauth).toMatchObject({ reauthRequired: true, errorCode: '4002:REAUTH_REQUIRED', oauthError: 'invalid_grant', retryable: false });
    for (const id of [stored.accessTokenCredentialId, stored.refreshTokenCredentialId!]) expect((await stack.credentials.getMetadata(ctx, id)).status).toBe(CredentialStatus.NEEDS_REAUTH);

    // Every later call says so, without asking the provider again.
    stack.server.setTokenEndpointDelay(0);
    await expect(stack.oauth.getAccessToken(ctx, 'idp', connectionId)).rejects.toMatchObject({ code: 4002, codeName: 'REAUTH_REQUIRED' });
    await expect(stack.oauth.reportTokenRejected(ctx, 'idp', connectionId)).rejects.toMatchObject({ code: 4002 });
    expect(stack.server.refreshCalls).toBe(1);
  });

  it.each([
    ['expires_in: 0', { expires_in: 0 }],
    ['expires_in: 1e20 (no date)', { expires_in: 1e20 }],
    // Refused by the token client's own parsing (oauth4webapi), before the lib sees the tokens.
    ['expires_in: -5', { expires_in: -5 }],
    ['expires_in: "soon"', { expires_in: 'soon' }],
    ['no access_token', { access_token: undefined }],
    ['no token_type', { token_type: undefined }],
    ['token_type: "mac" (not one the client can use)', { token_type: 'mac' }],
    ['scope: an array', { scope: ['openid'] }],
  ])('a refresh answer with %s: a typed provider error (502), and the rotated refresh token it carried is kept', async (_name, edit) => {
    const { connectionId, initial, stored } = await connect();
    stack.server.rewriteRefreshResponses((body) => {
      issued.add(String(body.access_token)).add(String(body.refresh_token));
      for (const [field, value] of Object.entries(edit)) {
        if (value === undefined) delete body[field];
        else body[field] = value;
      }
    });
    clock.set(new Date(stored.expiresAt.getTime() + MIN)); // expired: nothing old to serve instead
    await expect(stack.oauth.getAccessToken(ctx, 'idp', connectionId)).rejects.toMatchObject({ code: 4004, codeName: 'INVALID_TOKEN_RESPONSE' });
    expect(stack.server.refreshCalls).toBe(1);

    // The provider rotated: the next refresh (a sane answer) presents the new refresh token, not the spent one.
    stack.server.clearFault();
    clock.set(new Date(clock.now().getTime() + MIN)); // past the failure's cooldown
    const next = await stack.oauth.reportTokenRejected(ctx, 'idp', connectionId);
    issued.add(next.accessToken);
    expect(next.accessToken).not.toBe(initial.access_token);
    expect(stack.server.tokenCalls.filter((c) => c.grantType === 'refresh_token').map((c) => c.status)).toEqual([200, 200]);
    const refresh = await stack.credentials.getMetadata(ctx, stored.refreshTokenCredentialId!);
    expect(refresh.status).toBe(CredentialStatus.ACTIVE);
  });

  /**
   * The provider's answer carries a token no credential can hold: the caller gets a typed provider error (502), with a
   * cooldown, event and audit row; the next callers get 4003 (retryable, retryAfter) and do not spend a refresh token each.
   */
  const failsAsUnstorable = async (connectionId: string, stored: { expiresAt: Date; accessTokenCredentialId: string }, edit: (body: Record<string, unknown>) => void) => {
    stack.server.rewriteRefreshResponses((body) => {
      issued.add(String(body.access_token)).add(String(body.refresh_token));
      edit(body);
      issued.add(String(body.access_token)).add(String(body.refresh_token)); // the unstorable one too
    });
    clock.set(new Date(stored.expiresAt.getTime() + MIN)); // expired: nothing old to serve instead
    const failed = nextEvent(OAuthRefreshEvents.REFRESH_FAILED, connectionId);
    await expect(stack.oauth.getAccessToken(ctx, 'idp', connectionId)).rejects.toMatchObject({ code: 4004, codeName: 'INVALID_TOKEN_RESPONSE' });
    expect(await failed).toMatchObject({ errorCode: '4004:INVALID_TOKEN_RESPONSE', reauthRequired: false, consecutiveFailures: 1 });
    const rows = await stack.audit.query({ tenantId: ctx.tenantId, resource: stored.accessTokenCredentialId, action: AuditAction.REFRESH });
    expect(rows.items.map((r) => [r.result, r.errorCode])).toEqual([[AuditResult.FAILURE, '4004:INVALID_TOKEN_RESPONSE']]);
    for (let i = 0; i < 2; i++) await expect(stack.oauth.getAccessToken(ctx, 'idp', connectionId)).rejects.toMatchObject({ code: 4003, retryable: true, retryAfter: expect.any(Date) });
    expect(stack.server.refreshCalls).toBe(1);
  };

  it("an access token too large to store (100 KB): a typed provider error (502) with a cooldown, event and audit row, not a refresh per call; the rotated refresh token is kept", async () => {
    const { connectionId, initial, stored } = await connect();
    await failsAsUnstorable(connectionId, stored, (body) => (body.access_token = 'x'.repeat(100_000)));

    // The rotated refresh token was kept: past the cooldown, a sane answer refreshes.
    stack.server.clearFault();
    clock.set(new Date(clock.now().getTime() + MIN));
    const next = await stack.oauth.getAccessToken(ctx, 'idp', connectionId);
    issued.add(next.accessToken);
    expect(next.accessToken).not.toBe(initial.access_token);
    expect(stack.server.tokenCalls.filter((c) => c.grantType === 'refresh_token').map((c) => c.status)).toEqual([200, 200]);
  });

  it('a rotated refresh token too large to store (30 KB, held in memory only): the same, not a refresh per call presenting the one held', async () => {
    const { connectionId, stored } = await connect();
    await failsAsUnstorable(connectionId, stored, (body) => (body.refresh_token = 'r'.repeat(30_000)));
    expect((await stack.credentials.getMetadata(ctx, stored.refreshTokenCredentialId!)).status).toBe(CredentialStatus.ACTIVE);
  });

  it('a refresh_token_expires_in too large to be a date is no expiry: the refresh succeeds and the rotated refresh token is stored', async () => {
    const { connectionId, initial, stored } = await connect();
    stack.server.rewriteRefreshResponses((body) => Object.assign(body, { refresh_token_expires_in: 1e20 }));
    enterWindow(stored.expiresAt);
    const got = await stack.oauth.getAccessToken(ctx, 'idp', connectionId);
    issued.add(got.accessToken);
    expect(got.version).toBe(2);
    const refresh = await stack.credentials.get(ctx, stored.refreshTokenCredentialId!);
    issued.add(refresh.value);
    expect(refresh.metadata).toMatchObject({ version: 2, expiresAt: null, status: CredentialStatus.ACTIVE });
    expect(refresh.value).not.toBe(initial.refresh_token);
  });

  it("a refresh-in-flight lease left by a holder that crashed: nobody presents the refresh token until it lapses, then the refresh goes on; a refresh ends its own lease", async () => {
    const { connectionId, initial, stored } = await connect();
    const leases = LockLeases.for(stack.moduleRef.get(DataSource));
    const name = `oauth-refresh:${JSON.stringify([ctx.tenantId, 'idp', connectionId])}`;
    // A replica took the lease, presented the refresh token and died (its answer lost with it).
    const lapses = new Date(Date.now() + 1500);
    expect(await leases.claim(name, 'crashed-replica', lapses, new Date())).toMatchObject({ claimed: true });
    enterWindow(stored.expiresAt);

    expect(await stack.oauth.getAccessToken(ctx, 'idp', connectionId)).toMatchObject({ accessToken: initial.access_token, version: 1 });
    const refused = await stack.oauth.reportTokenRejected(ctx, 'idp', connectionId).catch((e: unknown) => e);
    expect(refused).toMatchObject({ code: 4003, retryable: true, retryAfter: lapses });
    expect(stack.server.refreshCalls).toBe(0);

    await new Promise((r) => setTimeout(r, lapses.getTime() - Date.now() + 50));
    const next = await stack.oauth.reportTokenRejected(ctx, 'idp', connectionId);
    issued.add(next.accessToken);
    expect(next.version).toBe(2);
    expect(stack.server.refreshCalls).toBe(1);
    // The refresh ended its lease: anyone may take it now.
    expect(await leases.claim(name, 'someone', new Date(Date.now() + 60_000), new Date())).toMatchObject({ claimed: true });
    await leases.release(name, 'someone');
  });

  it('new tokens stored (a reconnect) end a lease left on the connection: the next refresh presents the new refresh token at once', async () => {
    const { connectionId } = await connect();
    const leases = LockLeases.for(stack.moduleRef.get(DataSource));
    const name = `oauth-refresh:${JSON.stringify([ctx.tenantId, 'idp', connectionId])}`;
    expect(await leases.claim(name, 'crashed-replica', new Date(Date.now() + 60_000), new Date())).toMatchObject({ claimed: true });
    await expect(stack.oauth.reportTokenRejected(ctx, 'idp', connectionId)).rejects.toMatchObject({ code: 4003, retryable: true });

    const again = await stack.server.authorize();
    issued.add(again.access_token).add(again.refresh_token!);
    await stack.oauth.storeOAuthCredentials(ctx, 'idp', connectionId, again);
    const next = await stack.oauth.reportTokenRejected(ctx, 'idp', connectionId);
    issued.add(next.accessToken);
    expect(next.version).toBe(3);
    expect(stack.server.tokenCalls.filter((c) => c.grantType === 'refresh_token').map((c) => c.status)).toEqual([200]);
  });

  it('never puts a token in a log line', () => {
    expect(issued.size).toBeGreaterThanOrEqual(2);
    for (const t of issued) for (const line of logger.lines) expect(line.includes(t)).toBe(false);
  });
});
