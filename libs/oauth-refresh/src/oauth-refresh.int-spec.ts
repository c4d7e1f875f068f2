/**
 * Integration: OAuthRefreshModule on the real CredentialsService (real Key Vault SDK against the
 * emulator, real AuditService, real SQLite / PostgreSQL) and a REAL OAuth server (oidc-provider
 * on 127.0.0.1) that counts token-endpoint calls itself. Time that drives expiry decisions is a
 * ManualClock shared by CredentialsModule and OAuthRefreshModule; the OAuth server runs on real time.
 */
import { randomBytes } from 'node:crypto';
import { Logger } from '@nestjs/common';
import { Client } from 'pg';
import { SchedulerRegistry } from '@nestjs/schedule';
import { AuditResult } from '@app/audit';
import { LockLeases, ManualClock, type OperationContext } from '@app/common';
import { DataSource } from 'typeorm';
import {
  ConnectionStatus,
  CredentialExpiryScanner,
  CredentialStatus,
  CredentialType,
  CredentialValidationError,
  ValueStoreKind,
} from '@app/credentials';
import { KeyVaultEmulator } from '@app/keyvault-emulator';
import { CapturingLogger, createTestDatabase, DATABASE_KINDS, POSTGRES_URL, rejection, TestOAuthServer, type TestDatabase, type TestDatabaseKind } from '@app/testing';
import type { TokenEndpointResponse } from 'oauth4webapi';
import { buildStack, useOAuthStack, type Stack } from './oauth-refresh-stack.testing';
import {
  OAuthReauthRequiredError,
  OAuthRefreshEvents,
  OAuthRefreshFailedError,
  type OAuthRefreshFailedEvent,
  type OAuthRefreshModuleOptions,
} from './index';

const MIN = 60_000;
const SYSTEM_TENANT = 'system';

describe.each(DATABASE_KINDS)('OAuthRefreshModule on %s with a real OAuth server', (kind: TestDatabaseKind) => {
  const clock = new ManualClock(new Date());
  const logger = new CapturingLogger();
  /** Every token the server issued to this suite: none may show up in logs, events, metadata or audit. */
  const tokens = new Set<string>();
  const run = randomBytes(3).toString('hex');
  const ctx: OperationContext = { tenantId: `acme_${run}`, actor: { id: 'user:alice' }, correlationId: 'corr-oauth' };
  let connectionSeq = 0;

  const remember = (t: TokenEndpointResponse) => {
    tokens.add(t.access_token);
    if (t.refresh_token) tokens.add(t.refresh_token);
    return t;
  };
  /** A new connection with tokens from a real authorization-code grant. */
  const connect = async (integrationId = 'acme-idp') => {
    const connectionId = `conn-${++connectionSeq}`;
    const t = remember(await stack.server.authorize());
    const stored = await stack.oauth.storeOAuthCredentials(ctx, integrationId, connectionId, t);
    return { connectionId, initial: t, stored };
  };
  /** Moves the shared clock so the access token of `stored` is inside its 5-minute window. */
  const enterWindow = (expiresAt: Date) => clock.set(new Date(expiresAt.getTime() - 2 * MIN));
  const refreshValue = async (id: string) => (await stack.credentials.get(ctx, id)).value;

  // The clock reads the time the suite starts, not the time describe.each collected it.
  beforeAll(() => clock.set(new Date()));
  const stack = useOAuthStack(kind, {
    clock,
    logger,
    server: { accessTokenTtlSeconds: 3600 },
    oauth: (server) => ({
      providers: [
        // discovery by issuer, secret as a system credential (registered below, before use)
        { integrationId: 'acme-idp', issuer: server.issuer, clientId: server.clientId, clientSecret: { tenantId: SYSTEM_TENANT, credentialId: '00000000-0000-4000-8000-000000000000' }, allowInsecureRequests: true },
      ],
      retry: { maxAttempts: 2, initialDelayMs: 5, maxDelayMs: 20 },
      proactive: { enabled: false },
    }),
    style: kind === 'sqlite' ? 'forRoot' : 'forRootAsync',
    // The client secret lives in the vault as a credential of the system tenant; the provider configuration only
    // references it.
    provider: { integrationId: 'acme-idp' },
  });

  beforeEach(() => {
    stack.server.clearFault();
    stack.server.setRefreshTokenMode('rotate');
    stack.server.setTokenEndpointDelay(0);
    clock.set(new Date());
    stack.server.resetCounters();
  });

  it('stores the tokens of a real code grant and serves the access token without contacting the provider', async () => {
    const { connectionId, initial, stored } = await connect();
    expect(stored.refreshTokenCredentialId).toBeDefined();
    expect(stored.expiresAt.getTime()).toBe(clock.now().getTime() + 3600_000);

    const got = await stack.oauth.getAccessToken(ctx, 'acme-idp', connectionId);
    expect(got).toMatchObject({ accessToken: initial.access_token, credentialId: stored.accessTokenCredentialId, version: 1, tokenType: 'bearer' });
    expect(stack.server.refreshCalls).toBe(0);

    const meta = await stack.credentials.getMetadata(ctx, stored.accessTokenCredentialId);
    expect(meta).toMatchObject({ type: CredentialType.OAUTH_ACCESS_TOKEN, tags: { 'oauth.scope': 'openid', 'oauth.token_type': 'bearer' } });
    const refresh = await stack.credentials.get(ctx, stored.refreshTokenCredentialId!);
    expect(refresh.value).toBe(initial.refresh_token);
    expect(refresh.metadata.type).toBe(CredentialType.OAUTH_REFRESH_TOKEN);
  });

  it('refreshes inside the window with rotation: the new refresh token is persisted and the old one is dead at the server', async () => {
    const { connectionId, initial, stored } = await connect();
    enterWindow(stored.expiresAt);

    const got = await stack.oauth.getAccessToken(ctx, 'acme-idp', connectionId);
    tokens.add(got.accessToken);
    expect(stack.server.refreshCalls).toBe(1);
    expect(got.accessToken).not.toBe(initial.access_token);
    expect(got.version).toBe(2);
    expect(got.expiresAt!.getTime()).toBe(clock.now().getTime() + 3600_000);
    expect(await stack.server.isAccessTokenActive(got.accessToken)).toBe(true);

    const newRefresh = await refreshValue(stored.refreshTokenCredentialId!);
    tokens.add(newRefresh);
    expect(newRefresh).not.toBe(initial.refresh_token);
    expect((await stack.credentials.getMetadata(ctx, stored.refreshTokenCredentialId!)).version).toBe(2);
    // Served again from storage: no second call.
    expect((await stack.oauth.getAccessToken(ctx, 'acme-idp', connectionId)).accessToken).toBe(got.accessToken);
    expect(stack.server.refreshCalls).toBe(1);
    // The server rejects the spent refresh token (reuse detection).
    await expect(stack.server.refreshDirect(initial.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
  });

  it('500 concurrent getAccessToken calls on an expiring token make exactly one token-endpoint call', async () => {
    const { connectionId, stored } = await connect();
    enterWindow(stored.expiresAt);
    stack.server.setTokenEndpointDelay(50);

    const results = await Promise.all(Array.from({ length: 500 }, () => stack.oauth.getAccessToken(ctx, 'acme-idp', connectionId)));
    expect(stack.server.refreshCalls).toBe(1);
    const distinct = new Set(results.map((r) => r.accessToken));
    expect(distinct.size).toBe(1);
    expect(results.every((r) => r.version === 2)).toBe(true);
    tokens.add(results[0].accessToken);
  });

  it('keeps serving the old token while the provider is down, then fails with a clear retryable error after expiry', async () => {
    const { connectionId, initial, stored } = await connect();
    enterWindow(stored.expiresAt);
    stack.server.failTokenEndpoint({ kind: 'status', status: 503 });

    const first = await stack.oauth.getAccessToken(ctx, 'acme-idp', connectionId);
    expect(first.accessToken).toBe(initial.access_token);
    expect(stack.server.refreshCalls).toBe(2); // maxAttempts, with backoff
    // Inside the 30 s cooldown: served from storage, the provider is left alone.
    const second = await stack.oauth.getAccessToken(ctx, 'acme-idp', connectionId);
    expect(second.accessToken).toBe(initial.access_token);
    expect(stack.server.refreshCalls).toBe(2);

    stack.server.failTokenEndpoint({ kind: 'drop' });
    clock.set(new Date(stored.expiresAt.getTime() + 1000));
    const err = await rejection(stack.oauth.getAccessToken(ctx, 'acme-idp', connectionId));
    expect(err).toBeInstanceOf(OAuthRefreshFailedError);
    expect(err).toMatchObject({ codeName: 'REFRESH_FAILED', code: 4003, retryable: true });
    expect(stack.server.refreshCalls).toBe(4);

    const failed = stack.events.filter((e) => e.name === OAuthRefreshEvents.REFRESH_FAILED).map((e) => e.payload as OAuthRefreshFailedEvent);
    expect(failed.filter((f) => f.connectionId === connectionId)).toEqual([
      expect.objectContaining({ reauthRequired: false, retryable: true, httpStatus: 503, consecutiveFailures: 1 }),
      expect.objectContaining({ reauthRequired: false, retryable: true, consecutiveFailures: 2 }),
    ]);

    // The provider is back: after the (doubled) cooldown the next call refreshes.
    stack.server.clearFault();
    clock.advance(61_000);
    const recovered = await stack.oauth.getAccessToken(ctx, 'acme-idp', connectionId);
    tokens.add(recovered.accessToken);
    expect(recovered.version).toBe(2);
    expect(stack.server.refreshCalls).toBe(5);
  });

  it('invalid_grant marks the connection needs_reauth with an event and an audit row, then fails fast until new tokens are stored', async () => {
    const { connectionId, initial, stored } = await connect();
    await stack.server.revokeGrantOf(initial.refresh_token!);
    enterWindow(stored.expiresAt);

    const err = await rejection(stack.oauth.getAccessToken(ctx, 'acme-idp', connectionId));
    expect(err).toBeInstanceOf(OAuthReauthRequiredError);
    expect(err).toMatchObject({ code: 4002, codeName: 'REAUTH_REQUIRED', retryable: false });
    expect(stack.server.refreshCalls).toBe(1); // invalid_grant is not retried

    expect((await stack.credentials.getMetadata(ctx, stored.refreshTokenCredentialId!)).status).toBe(CredentialStatus.NEEDS_REAUTH);
    const view = (await stack.credentials.listConnections(ctx)).find((c) => c.connectionId === connectionId);
    expect(view?.status).toBe(ConnectionStatus.NEEDS_REAUTH);
    expect(stack.events).toContainEqual({
      name: OAuthRefreshEvents.REFRESH_FAILED,
      payload: expect.objectContaining({ connectionId, reauthRequired: true, oauthError: 'invalid_grant', errorCode: '4002:REAUTH_REQUIRED' }),
    });
    const rows = await stack.audit.query({ tenantId: ctx.tenantId, action: 'refresh', result: AuditResult.FAILURE, resource: stored.accessTokenCredentialId });
    expect(rows.items).toHaveLength(1);
    expect(rows.items[0]).toMatchObject({ errorCode: '4002:REAUTH_REQUIRED', actorId: 'user:alice', details: expect.objectContaining({ oauthError: 'invalid_grant' }) });

    // No retry storm: every later call fails fast without reaching the server, even on 401 reports.
    for (let i = 0; i < 5; i++) await expect(stack.oauth.getAccessToken(ctx, 'acme-idp', connectionId)).rejects.toBeInstanceOf(OAuthReauthRequiredError);
    await expect(stack.oauth.reportTokenRejected(ctx, 'acme-idp', connectionId)).rejects.toBeInstanceOf(OAuthReauthRequiredError);
    expect(stack.server.refreshCalls).toBe(1);

    // The user reconnects: new tokens clear the state.
    const again = remember(await stack.server.authorize());
    const restored = await stack.oauth.storeOAuthCredentials(ctx, 'acme-idp', connectionId, again);
    expect(restored.accessTokenCredentialId).toBe(stored.accessTokenCredentialId);
    expect((await stack.oauth.getAccessToken(ctx, 'acme-idp', connectionId)).accessToken).toBe(again.access_token);
    expect((await stack.credentials.getMetadata(ctx, stored.refreshTokenCredentialId!)).status).toBe(CredentialStatus.ACTIVE);
  });

  it('a refresh response without refresh_token keeps the stored refresh token (never wiped)', async () => {
    const { connectionId, initial, stored } = await connect();
    stack.server.setRefreshTokenMode('omit');
    enterWindow(stored.expiresAt);

    const got = await stack.oauth.getAccessToken(ctx, 'acme-idp', connectionId);
    tokens.add(got.accessToken);
    expect(stack.server.refreshCalls).toBe(1);
    expect(got.version).toBe(2);
    const kept = await stack.credentials.get(ctx, stored.refreshTokenCredentialId!);
    expect(kept.value).toBe(initial.refresh_token);
    expect(kept.metadata.version).toBe(1);

    // ...and it keeps working for the next refresh.
    enterWindow(got.expiresAt!);
    const next = await stack.oauth.getAccessToken(ctx, 'acme-idp', connectionId);
    tokens.add(next.accessToken);
    expect(next.version).toBe(3);
    expect(stack.server.refreshCalls).toBe(2);
  });

  it('reportTokenRejected forces exactly one refresh, and does nothing once the rejected token is replaced', async () => {
    const { connectionId, initial } = await connect();

    const reports = await Promise.all(Array.from({ length: 20 }, () => stack.oauth.reportTokenRejected(ctx, 'acme-idp', connectionId, initial.access_token)));
    expect(stack.server.refreshCalls).toBe(1);
    const fresh = reports[0];
    tokens.add(fresh.accessToken);
    expect(fresh.accessToken).not.toBe(initial.access_token);
    expect(reports.every((r) => r.accessToken === fresh.accessToken)).toBe(true);

    // A late report of the old token: already replaced, nothing to do.
    const late = await stack.oauth.reportTokenRejected(ctx, 'acme-idp', connectionId, initial.access_token);
    expect(late.accessToken).toBe(fresh.accessToken);
    expect(stack.server.refreshCalls).toBe(1);
    // getAccessToken serves the new one (no stale cache).
    expect((await stack.oauth.getAccessToken(ctx, 'acme-idp', connectionId)).accessToken).toBe(fresh.accessToken);
  });

  it('reportTokenRejected with a rejected token that is not a string (null from a JSON body) is a validation error: no refresh, the token is still served', async () => {
    const { connectionId, initial } = await connect();
    for (const notAToken of [null, 42, { token: initial.access_token }]) {
      const e = await rejection(stack.oauth.reportTokenRejected(ctx, 'acme-idp', connectionId, notAToken as unknown as string));
      expect({ notAToken, e }).toEqual({ notAToken, e: expect.objectContaining({ codeName: 'OAUTH_REFRESH_VALIDATION', field: 'rejectedAccessToken' }) });
    }
    expect(stack.server.refreshCalls).toBe(0);
    expect((await stack.oauth.getAccessToken(ctx, 'acme-idp', connectionId)).accessToken).toBe(initial.access_token);
  });

  it('the proactive job refreshes every token entering its window in one run, and nothing else', async () => {
    // Fresh connections only: expire everything older first so they are not in the window.
    const conns = await Promise.all(Array.from({ length: 5 }, () => connect()));
    const fresh = await connect();
    clock.set(new Date(conns[0].stored.expiresAt.getTime() - 2 * MIN));
    // This one is not entering its window (expires in 30 minutes): the job must leave it alone.
    await stack.credentials.updateMetadata(ctx, fresh.stored.accessTokenCredentialId, { expiresAt: new Date(clock.now().getTime() + 30 * MIN) });
    stack.server.resetCounters();

    const result = await stack.oauth.refreshExpiringTokens();
    expect(result.acquired).toBe(true);
    for (const c of conns) {
      const meta = await stack.credentials.getMetadata(ctx, c.stored.accessTokenCredentialId);
      expect(meta.version).toBe(2);
      expect(meta.expiresAt!.getTime()).toBeGreaterThan(clock.now().getTime() + 50 * MIN);
    }
    expect((await stack.credentials.getMetadata(ctx, fresh.stored.accessTokenCredentialId)).version).toBe(1);
    // Connections of earlier tests that sit in the window are handled too (one whose grant the
    // server revoked on refresh-token reuse fails); each gets exactly one token-endpoint call.
    expect(result.refreshed).toBeGreaterThanOrEqual(5);
    expect(stack.server.refreshCalls).toBe(result.refreshed + result.failed);

    stack.server.resetCounters();
    const second = await stack.oauth.refreshExpiringTokens();
    expect(second.refreshed).toBe(0);
    expect(stack.server.refreshCalls).toBe(0);
    // proactive.enabled = false in this suite: no cron job was registered.
    expect(stack.moduleRef.get(SchedulerRegistry).doesExist('cron', 'oauth-proactive-refresh')).toBe(false);
  });

  it('the proactive job also refreshes an access token the expiry monitor marked expired (an outage longer than its lifetime)', async () => {
    const c = await connect();
    clock.set(new Date(c.stored.expiresAt.getTime() + 60 * MIN)); // every replica was down past the expiry
    const marked = await stack.moduleRef.get(CredentialExpiryScanner).markExpired({ tenantId: ctx.tenantId, id: c.stored.accessTokenCredentialId }, 'rotation-expiry-monitor');
    expect(marked.marked).toBe(true);
    expect((await stack.credentials.getMetadata(ctx, c.stored.accessTokenCredentialId)).status).toBe('expired');

    await stack.oauth.refreshExpiringTokens();
    const after = await stack.credentials.getMetadata(ctx, c.stored.accessTokenCredentialId);
    expect(after).toMatchObject({ status: 'active', version: 2 });
    expect(after.expiresAt!.getTime()).toBeGreaterThan(clock.now().getTime() + 50 * MIN);
  });

  it('storeOAuthCredentials refuses a token with a lone surrogate before any write (new and existing connections)', async () => {
    const connectionId = `conn-${++connectionSeq}`;
    const bad = { access_token: 'at-\uD800-lone', refresh_token: 'rt-ok', expires_in: 3600 };
    await expect(stack.oauth.storeOAuthCredentials(ctx, 'acme-idp', connectionId, bad)).rejects.toBeInstanceOf(CredentialValidationError);
    await expect(stack.oauth.storeOAuthCredentials(ctx, 'acme-idp', connectionId, { ...bad, access_token: 'at-ok', refresh_token: 'rt-\uDFFF' })).rejects.toBeInstanceOf(
      CredentialValidationError,
    );
    expect((await stack.credentials.list(ctx, { connectionId })).items).toEqual([]);

    const { connectionId: existing, stored } = await connect();
    await expect(stack.oauth.storeOAuthCredentials(ctx, 'acme-idp', existing, { ...bad, refresh_token: 'rt-\uD83D' })).rejects.toBeInstanceOf(CredentialValidationError);
    expect((await stack.credentials.getMetadata(ctx, stored.accessTokenCredentialId)).version).toBe(1);
    expect((await stack.credentials.getMetadata(ctx, stored.refreshTokenCredentialId!)).version).toBe(1);
  });

  it('a rotated refresh token the vault refuses survives a crash: a fresh app on the same database refreshes without re-authorisation', async () => {
    const appOptions: OAuthRefreshModuleOptions = {
      providers: [
        { integrationId: 'acme-idp', issuer: stack.server.issuer, clientId: stack.server.clientId, clientSecret: { tenantId: SYSTEM_TENANT, credentialId: stack.clientSecretId }, allowInsecureRequests: true },
      ],
      retry: { maxAttempts: 2, initialDelayMs: 5, maxDelayMs: 20 },
      proactive: { enabled: false },
    };
    const doomed = await buildStack(stack.db, stack.emu, clock, logger, appOptions);
    let fresh: Stack | undefined;
    try {
      const connectionId = `conn-${++connectionSeq}`;
      const initial = remember(await stack.server.authorize());
      const stored = await doomed.oauth.storeOAuthCredentials(ctx, 'acme-idp', connectionId, initial);
      const refreshId = stored.refreshTokenCredentialId!;
      const pendingOf = async (s: Stack) =>
        (await s.credentials.list(ctx, { connectionId, type: CredentialType.CUSTOM_SECRET })).items.filter((m) => m.tags['oauth.pending_refresh_for'] === refreshId);

      // The vault refuses every write: the refresh-token rotation fails (retried), the access token (envelope) does not.
      stack.emu.injectFault({ kind: 'status', status: 503, retryAfterSeconds: 0, operations: ['setSecret'] });
      enterWindow(stored.expiresAt);
      const got = await doomed.oauth.getAccessToken(ctx, 'acme-idp', connectionId);
      tokens.add(got.accessToken);
      expect(stack.server.refreshCalls).toBe(1);
      expect(got.version).toBe(2);
      // The stored refresh token is the spent one; the provider's new one is the pending credential, envelope-encrypted.
      expect((await stack.credentials.get(ctx, refreshId)).value).toBe(initial.refresh_token);
      const [pending] = await pendingOf(doomed);
      expect(pending).toMatchObject({ valueStore: ValueStoreKind.ENVELOPE, tags: { 'oauth.pending_based_on_version': '1' } });
      const rotated = (await stack.credentials.get(ctx, pending.id)).value;
      tokens.add(rotated);
      expect(rotated).not.toBe(initial.refresh_token);

      // "Crash": the doomed app is never used again; a new app (no memory of it) takes over while the vault still refuses writes.
      fresh = await buildStack(stack.db, stack.emu, clock, logger, appOptions);
      enterWindow(got.expiresAt!);
      const next = await fresh.oauth.getAccessToken(ctx, 'acme-idp', connectionId);
      tokens.add(next.accessToken);
      expect(next.version).toBe(3);
      expect(stack.server.refreshCalls).toBe(2); // the pending token worked: no invalid_grant
      const [pendingAgain] = await pendingOf(fresh);
      expect(pendingAgain.version).toBe(2); // the newer rotation replaced it, still based on version 1
      tokens.add((await stack.credentials.get(ctx, pendingAgain.id)).value);

      // The vault is back: the next refresh writes the rotated token over the refresh token and drops the pending one.
      stack.emu.clearFaults();
      enterWindow(next.expiresAt!);
      const last = await fresh.oauth.getAccessToken(ctx, 'acme-idp', connectionId);
      tokens.add(last.accessToken);
      expect(last.version).toBe(4);
      expect(stack.server.refreshCalls).toBe(3);
      const refreshed = await stack.credentials.get(ctx, refreshId);
      tokens.add(refreshed.value);
      expect(refreshed.metadata).toMatchObject({ version: 2, status: CredentialStatus.ACTIVE });
      expect(await pendingOf(fresh)).toEqual([]);
      expect((await stack.credentials.listConnections(ctx)).find((c) => c.connectionId === connectionId)?.status).toBe(ConnectionStatus.CONNECTED);
      expect([...doomed.events, ...fresh.events].filter((e) => e.name === OAuthRefreshEvents.REFRESH_FAILED)).toEqual([]);
    } finally {
      stack.emu.clearFaults();
      await fresh?.moduleRef.close();
      await doomed.moduleRef.close();
    }
  });

  it('never puts a token in a log line, an event, a metadata row or an audit row', async () => {
    expect(tokens.size).toBeGreaterThan(10);
    const haystacks = [
      ...logger.lines,
      ...stack.events.map((e) => JSON.stringify(e)),
      ...(await stack.audit.query({ tenantId: ctx.tenantId, limit: 500 })).items.map((r) => JSON.stringify(r)),
      ...(await stack.credentials.list(ctx, { limit: 500 })).items.map((m) => JSON.stringify(m)),
    ];
    for (const t of tokens) {
      for (const h of haystacks) expect(h.includes(t)).toBe(false);
    }
  });
});

describe('OAuthRefreshModule: two replicas on one PostgreSQL', () => {
  let emu: KeyVaultEmulator;
  let db: TestDatabase;
  let server: TestOAuthServer;
  let a: Stack;
  let b: Stack;
  let opts: OAuthRefreshModuleOptions;
  const clock = new ManualClock(new Date());
  const logger = new CapturingLogger();
  const ctx: OperationContext = { tenantId: `replicas_${randomBytes(3).toString('hex')}`, actor: { id: 'user:bob' } };
  let seq = 0;

  const options = (secretId: string): OAuthRefreshModuleOptions => ({
    providers: [
      {
        integrationId: 'acme-idp',
        tokenEndpoint: `${server.issuer}/token`,
        clientId: server.clientId,
        clientAuthMethod: 'client_secret_post',
        clientSecret: { tenantId: SYSTEM_TENANT, credentialId: secretId },
        allowInsecureRequests: true,
      },
      // The same provider with a short timeout: its answers can be made late.
      { integrationId: 'acme-slow', tokenEndpoint: `${server.issuer}/token`, clientId: server.clientId, clientAuthMethod: 'client_secret_post', clientSecret: { tenantId: SYSTEM_TENANT, credentialId: secretId }, allowInsecureRequests: true, requestTimeoutMs: 300 },
    ],
    proactive: { enabled: true, cronTime: '0 0 0 1 1 *', batchSize: 2, concurrency: 2 },
  });
  const connect = async () => {
    const connectionId = `r-${++seq}`;
    const t = await server.authorize();
    const stored = await a.oauth.storeOAuthCredentials(ctx, 'acme-idp', connectionId, t);
    return { connectionId, initial: t, stored };
  };

  beforeAll(async () => {
    Logger.overrideLogger(logger);
    emu = await KeyVaultEmulator.start({ quiet: true, throttle: false });
    db = await createTestDatabase('postgres');
    server = await TestOAuthServer.start({ accessTokenTtlSeconds: 3600, tokenEndpointAuthMethod: 'client_secret_post' });
    // Bootstrap once to create the schema and the client-secret credential, then build the replicas.
    const boot = await buildStack(db, emu, clock, logger, { proactive: { enabled: false } });
    const secret = await boot.credentials.store(
      { tenantId: SYSTEM_TENANT, actor: { id: 'system:setup' } },
      { integrationId: 'acme-idp', connectionId: 'oauth-client', type: CredentialType.CUSTOM_SECRET, value: server.clientSecret },
    );
    await boot.moduleRef.close();
    opts = options(secret.id);
    a = await buildStack(db, emu, clock, logger, opts);
    b = await buildStack(db, emu, clock, logger, opts, 'forRootAsync');
  });

  afterAll(async () => {
    await a?.moduleRef.close();
    await b?.moduleRef.close();
    await server?.close();
    await emu?.stop();
    await db?.drop();
    Logger.overrideLogger(new Logger());
  });

  beforeEach(() => {
    clock.set(new Date());
    server.setTokenEndpointDelay(0);
    server.resetCounters();
  });

  it('concurrent callers on two app instances (separate caches and locks) cause exactly one token-endpoint call', async () => {
    const { connectionId, initial, stored } = await connect();
    // Warm both replicas' caches with the old token, then enter the window.
    expect((await a.oauth.getAccessToken(ctx, 'acme-idp', connectionId)).accessToken).toBe(initial.access_token);
    expect((await b.oauth.getAccessToken(ctx, 'acme-idp', connectionId)).accessToken).toBe(initial.access_token);
    clock.set(new Date(stored.expiresAt.getTime() - 2 * MIN));
    server.setTokenEndpointDelay(100);

    const results = await Promise.all(
      Array.from({ length: 300 }, (_, i) => (i % 2 ? a : b).oauth.getAccessToken(ctx, 'acme-idp', connectionId)),
    );
    expect(server.refreshCalls).toBe(1);
    expect(new Set(results.map((r) => r.accessToken)).size).toBe(1);
    expect(results[0].accessToken).not.toBe(initial.access_token);
    // The replica that did not refresh serves the new token, not its cached old one.
    expect((await b.oauth.getAccessToken(ctx, 'acme-idp', connectionId)).accessToken).toBe(results[0].accessToken);
    expect((await a.oauth.getAccessToken(ctx, 'acme-idp', connectionId)).accessToken).toBe(results[0].accessToken);
    // The rotated refresh token was persisted once: a refresh from the other replica later works.
    clock.set(new Date(results[0].expiresAt!.getTime() - 2 * MIN));
    const next = await b.oauth.getAccessToken(ctx, 'acme-idp', connectionId);
    expect(next.version).toBe(3);
    expect(server.refreshCalls).toBe(2);
  });

  it('while one replica awaits a late answer, a refresh on another never presents the same refresh token: it gives up at lockTimeoutMs, retryable', async () => {
    // A third replica that waits 1 s for a connection's lock (and, as without a shared cooldown store, knows no cooldown of A's).
    const c = await buildStack(db, emu, clock, logger, { ...opts, proactive: { enabled: false }, lockTimeoutMs: 1000 });
    try {
      const connectionId = `r-${++seq}`;
      const initial = await server.authorize();
      const stored = await a.oauth.storeOAuthCredentials(ctx, 'acme-slow', connectionId, initial);
      clock.set(new Date(stored.expiresAt.getTime() - 2 * MIN));
      server.setTokenEndpointDelay(300 + 2500);
      expect((await a.oauth.getAccessToken(ctx, 'acme-slow', connectionId)).accessToken).toBe(initial.access_token);

      const t0 = Date.now();
      await expect(c.oauth.reportTokenRejected(ctx, 'acme-slow', connectionId)).rejects.toMatchObject({
        code: 4003,
        retryable: true,
        message: expect.stringContaining('may be awaiting a late answer'),
      });
      expect(Date.now() - t0).toBeGreaterThanOrEqual(900);
      expect(server.refreshCalls).toBe(1);

      // A stores the late answer; C then serves it (the rejected token is replaced) and refreshes with the rotated refresh token.
      const stored2 = () => a.events.some((e) => e.name === OAuthRefreshEvents.REFRESHED && (e.payload as { connectionId: string }).connectionId === connectionId);
      for (const until = Date.now() + 10_000; !stored2() && Date.now() < until; ) await new Promise((r) => setTimeout(r, 20));
      expect(stored2()).toBe(true);
      server.setTokenEndpointDelay(0);
      expect((await c.oauth.reportTokenRejected(ctx, 'acme-slow', connectionId, initial.access_token)).version).toBe(2);
      expect((await c.oauth.reportTokenRejected(ctx, 'acme-slow', connectionId)).version).toBe(3);
      expect(server.tokenCalls.filter((t) => t.grantType === 'refresh_token').map((t) => t.status)).toEqual([200, 200]);
    } finally {
      await c.moduleRef.close();
    }
  });

  /**
   * A replica whose lock sessions are named, so the test can end them as a lost connection or an operator would:
   * `endLockSession()` terminates the one holding an advisory lock (PostgreSQL frees the lock, the replica goes on).
   */
  const replicaLosingItsLock = async () => {
    const appName = `cv-lease-a-${randomBytes(3).toString('hex')}`;
    const extra = { ...(db.options as { extra?: object }).extra, application_name: appName };
    const dbA: TestDatabase = { ...db, options: { ...db.options, extra } as TestDatabase['options'] };
    const replica = await buildStack(dbA, emu, clock, logger, { ...opts, proactive: { enabled: false } });
    const admin = new Client({ connectionString: POSTGRES_URL });
    await admin.connect();
    return {
      replica,
      endLockSession: async () => {
        const ended = await admin.query(
          `SELECT pg_terminate_backend(a.pid) AS ended FROM pg_stat_activity a WHERE a.application_name = $1 AND EXISTS (SELECT 1 FROM pg_locks l WHERE l.pid = a.pid AND l.locktype = 'advisory' AND l.granted)`,
          [`${appName} (locks)`],
        );
        expect(ended.rows.length).toBe(1);
      },
      close: async () => {
        await admin.end();
        await replica.moduleRef.close();
      },
    };
  };
  /** Waits until `stack` emitted event `name` for the connection (10 s at most). */
  const emitted = async (stack: Stack, name: string, connectionId: string) => {
    const seen = () => stack.events.some((e) => e.name === name && (e.payload as { connectionId: string }).connectionId === connectionId);
    for (const until = Date.now() + 10_000; !seen() && Date.now() < until; ) await new Promise((r) => setTimeout(r, 20));
    return seen();
  };

  it("a replica whose lock session dies while it awaits the token endpoint: another replica never presents the same refresh token (the lease), and both serve the late answer", async () => {
    const { replica: replicaA, endLockSession, close } = await replicaLosingItsLock();
    try {
      const connectionId = `r-${++seq}`;
      const initial = await server.authorize();
      const stored = await replicaA.oauth.storeOAuthCredentials(ctx, 'acme-slow', connectionId, initial);
      clock.set(new Date(stored.expiresAt.getTime() - 2 * MIN));
      server.setTokenEndpointDelay(300 + 2000);
      // A presents the refresh token; the provider answers late, A awaits it holding the connection's lock.
      expect((await replicaA.oauth.getAccessToken(ctx, 'acme-slow', connectionId)).accessToken).toBe(initial.access_token);
      await endLockSession();
      // PostgreSQL freed A's advisory lock: B gets it at once. It must not present the refresh token A spent.
      expect((await b.oauth.getAccessToken(ctx, 'acme-slow', connectionId)).accessToken).toBe(initial.access_token);
      await expect(b.oauth.reportTokenRejected(ctx, 'acme-slow', connectionId)).rejects.toMatchObject({ code: 4003, retryable: true });

      const refreshed = await emitted(replicaA, OAuthRefreshEvents.REFRESHED, connectionId);
      await new Promise((r) => setTimeout(r, 300)); // anything B may have sent has been answered by now
      expect(server.tokenCalls.filter((t) => t.grantType === 'refresh_token').map((t) => t.status)).toEqual([200]);
      expect(refreshed).toBe(true);
      const viaA = await replicaA.oauth.getAccessToken(ctx, 'acme-slow', connectionId);
      const viaB = await b.oauth.getAccessToken(ctx, 'acme-slow', connectionId);
      expect(viaA.version).toBe(2);
      expect(viaB.accessToken).toBe(viaA.accessToken);
      expect(viaA.accessToken).not.toBe(initial.access_token);
      // The grant is alive: the next refresh (from B, with the rotated refresh token) works.
      server.setTokenEndpointDelay(0);
      expect((await b.oauth.reportTokenRejected(ctx, 'acme-slow', connectionId)).version).toBe(3);
    } finally {
      await close();
    }
  });

  it('a reconnect while a refresh whose lock session died still awaits its answer: the late answer does not overwrite the new tokens, and they refresh', async () => {
    const { replica: replicaA, endLockSession, close } = await replicaLosingItsLock();
    try {
      const connectionId = `r-${++seq}`;
      const initial = await server.authorize();
      const stored = await replicaA.oauth.storeOAuthCredentials(ctx, 'acme-slow', connectionId, initial);
      const again = await server.authorize(); // the user's next authorization (its code exchanged before the token endpoint slows down)
      clock.set(new Date(stored.expiresAt.getTime() - 2 * MIN));
      server.setTokenEndpointDelay(300 + 1500);
      expect((await replicaA.oauth.getAccessToken(ctx, 'acme-slow', connectionId)).accessToken).toBe(initial.access_token);
      await endLockSession();

      // The user connects again meanwhile (through B, which gets the freed lock at once and ends A's lease).
      const reconnected = await b.oauth.storeOAuthCredentials(ctx, 'acme-slow', connectionId, again);
      expect(reconnected.refreshTokenCredentialId).toBe(stored.refreshTokenCredentialId);

      // A's answer comes (the provider rotated the old grant's refresh token) and finds the tokens replaced.
      const answered = () => server.tokenCalls.some((t) => t.grantType === 'refresh_token' && t.status === 200);
      for (const until = Date.now() + 10_000; !answered() && Date.now() < until; ) await new Promise((r) => setTimeout(r, 20));
      expect(answered()).toBe(true);
      await new Promise((r) => setTimeout(r, 500)); // A stores (or not) what it got
      expect(replicaA.events.filter((e) => e.name === OAuthRefreshEvents.REFRESHED && (e.payload as { connectionId: string }).connectionId === connectionId)).toEqual([]);
      const refresh = await b.credentials.get(ctx, stored.refreshTokenCredentialId!);
      expect(refresh.value).toBe(again.refresh_token);
      expect(refresh.metadata.version).toBe(2);
      const access = await b.credentials.get(ctx, stored.accessTokenCredentialId);
      expect(access.value).toBe(again.access_token);
      for (const replica of [replicaA, b]) expect(await replica.oauth.getAccessToken(ctx, 'acme-slow', connectionId)).toMatchObject({ accessToken: again.access_token, version: 2 });

      // The reconnect's refresh token is the live one: a refresh presents it at once (no lease left) and works.
      server.setTokenEndpointDelay(0);
      expect((await b.oauth.reportTokenRejected(ctx, 'acme-slow', connectionId, again.access_token)).version).toBe(3);
      expect(server.tokenCalls.filter((t) => t.grantType === 'refresh_token').map((t) => t.status)).toEqual([200, 200]);
    } finally {
      await close();
    }
  });

  it("a replica that read the connection before the lost-lock holder stored its answer and ended its lease: it does not present the spent refresh token once the lease is free", async () => {
    const { replica: replicaA, endLockSession, close } = await replicaLosingItsLock();
    const leasesB = LockLeases.for(b.moduleRef.get(DataSource));
    const claim = jest.spyOn(leasesB, 'claim');
    try {
      const connectionId = `r-${++seq}`;
      const initial = await server.authorize();
      const stored = await replicaA.oauth.storeOAuthCredentials(ctx, 'acme-slow', connectionId, initial);
      clock.set(new Date(stored.expiresAt.getTime() - 2 * MIN));
      server.setTokenEndpointDelay(300 + 1000);
      expect((await replicaA.oauth.getAccessToken(ctx, 'acme-slow', connectionId)).accessToken).toBe(initial.access_token);
      await endLockSession();
      const refreshed = () => replicaA.events.some((e) => e.name === OAuthRefreshEvents.REFRESHED && (e.payload as { connectionId: string }).connectionId === connectionId);
      // B holds the freed lock and has read the connection (version 1); A's late answer is stored and its lease ended before B claims it.
      const real = claim.getMockImplementation() ?? LockLeases.prototype.claim;
      claim.mockImplementationOnce(async function (this: LockLeases, ...args) {
        for (const until = Date.now() + 10_000; !refreshed() && Date.now() < until; ) await new Promise((r) => setTimeout(r, 20));
        await new Promise((r) => setTimeout(r, 200)); // A's lease ended after its answer was stored
        return real.apply(leasesB, args);
      });
      const viaB = await b.oauth.reportTokenRejected(ctx, 'acme-slow', connectionId).catch((e: unknown) => e);
      expect(refreshed()).toBe(true);
      // The refresh token A spent was presented once, by A; B serves what A stored (or asks to retry), the grant stays alive.
      expect(server.tokenCalls.filter((t) => t.grantType === 'refresh_token').map((t) => t.status)).toEqual([200]);
      const viaA = await replicaA.oauth.getAccessToken(ctx, 'acme-slow', connectionId);
      expect(viaA.version).toBe(2);
      expect(viaB).toMatchObject({ accessToken: viaA.accessToken, version: 2 });
    } finally {
      claim.mockRestore();
      await close();
    }
  });

  it('the proactive job registers a named cron job and runs on one replica at a time', async () => {
    expect(a.moduleRef.get(SchedulerRegistry).getCronJob('oauth-proactive-refresh')).toBeDefined();
    const conns = await Promise.all(Array.from({ length: 4 }, () => connect()));
    clock.set(new Date(conns[0].stored.expiresAt.getTime() - 2 * MIN));
    server.setTokenEndpointDelay(30);

    const [ra, rb] = await Promise.all([a.oauth.refreshExpiringTokens(), b.oauth.refreshExpiringTokens()]);
    expect([ra.acquired, rb.acquired].sort()).toEqual([false, true]);
    const winner = ra.acquired ? ra : rb;
    expect(winner.refreshed).toBeGreaterThanOrEqual(4);
    expect(server.refreshCalls).toBe(winner.refreshed);
    for (const c of conns) expect((await b.credentials.getMetadata(ctx, c.stored.accessTokenCredentialId)).version).toBe(2);
  });
});
