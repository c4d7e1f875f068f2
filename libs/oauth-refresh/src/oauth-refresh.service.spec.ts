/**
 * Unit: the refresh-ahead window, cooldown and backoff logic of OAuthRefreshService, with an
 * in-memory token store and a scripted token client bound to their DI tokens, and a ManualClock.
 */
import { Logger, type LoggerService } from '@nestjs/common';
import { EventEmitter2 } from '@nestjs/event-emitter';
import { CredentialVaultError, ErrorSeverity, ManualClock, type OperationContext } from '@app/common';
import { OAuthAccessTokenExpiredError, OAuthReauthRequiredError, OAuthRefreshFailedError } from './errors/oauth-refresh.errors';
import { resolveOAuthRefreshOptions } from './oauth-refresh.options';
import { OAuthRefreshService } from './oauth-refresh.service';
import { ROTATED_TOKEN_WRITE_ATTEMPTS } from './refresh/rotated-refresh-tokens';
import { OAuthRefreshCooldowns } from './store/oauth-refresh-cooldowns';
import { TokenEndpointFailure } from './client/oauth-token-client';
import { FakeTokenStore, ScriptedTokenClient, serviceOnFakes } from './oauth-refresh-fakes.testing';

const SEC = 1000;
const MIN = 60 * SEC;

/** A vault secret name as the credentials lib makes them (it carries the tenant), and a token-like string. */
const SECRET_NAME = 'cv-tenant-9e41ac07-idp-c1-refresh-g3';
const TOKEN_MARKER = 'rt-LEAK-MARKER-5c1d';

/** A store error as the credentials lib throws them: a typed code, its cause carrying Azure's text. */
class VaultDownError extends CredentialVaultError {
  readonly code = 9001;
  readonly codeName = 'VAULT_DOWN';
  readonly severity = ErrorSeverity.TRANSIENT;
}
const vaultDown = () =>
  new VaultDownError(`setSecret of ${SECRET_NAME} failed`, { cause: new Error(`(ServiceUnavailable) secret ${SECRET_NAME}; body {"value":"${TOKEN_MARKER}"}`) });

const transient = () => {
  throw new TokenEndpointFailure('transient', 'HTTP 503', { status: 503 });
};

describe('OAuthRefreshService (window, cooldown, backoff)', () => {
  const ctx: OperationContext = { tenantId: 't1', actor: { id: 'user:1' } };
  let clock: ManualClock;
  let store: FakeTokenStore;
  let client: ScriptedTokenClient;
  let service: OAuthRefreshService;
  let audited: Array<{ action: string; result: string }>;
  /** Set by a test: what AuditService.record throws. */
  let auditError: Error | undefined;
  let events: EventEmitter2 | undefined;
  let sharedCooldowns: OAuthRefreshCooldowns | undefined;

  /** A new service (a fresh Nest module: no in-memory state), on the same store, client and clock unless `fresh`. */
  async function setup(overrides: Parameters<typeof resolveOAuthRefreshOptions>[0] = {}, fresh = true) {
    if (fresh) {
      clock = new ManualClock(new Date('2026-01-01T00:00:00Z'));
      store = new FakeTokenStore(clock);
      client = new ScriptedTokenClient();
      audited = [];
      auditError = undefined;
      events = undefined;
      sharedCooldowns = undefined;
    }
    const audit = {
      record: async (e: { action: string; result: string }) => {
        if (auditError) throw auditError;
        audited.push(e);
      },
    };
    service = await serviceOnFakes({ clock, store, client, audit, events, sharedCooldowns }, overrides);
  }

  /** Stores an initial token pair that lives `lifetimeSec`. */
  const connect = (lifetimeSec = 3600) =>
    service.storeOAuthCredentials(ctx, 'idp', 'c1', { access_token: 'at-0', refresh_token: 'rt-0', expires_in: lifetimeSec, token_type: 'Bearer' });

  beforeAll(() => Logger.overrideLogger(false));
  afterAll(() => Logger.overrideLogger(new Logger()));
  beforeEach(() => setup());

  it('serves the stored token outside the 5-minute window and refreshes once inside it', async () => {
    await connect(3600);
    clock.advance(54 * MIN); // 6 minutes left
    expect((await service.getAccessToken(ctx, 'idp', 'c1')).accessToken).toBe('at-0');
    expect(client.calls).toBe(0);
    clock.advance(2 * MIN); // 4 minutes left: inside the window
    const got = await service.getAccessToken(ctx, 'idp', 'c1');
    expect(got).toMatchObject({ accessToken: 'at-1', version: 2, expiresAt: new Date(clock.now().getTime() + 3600 * SEC) });
    expect(client.calls).toBe(1);
    expect(store.refresh?.value).toBe('rt-1');
    expect(audited).toEqual([expect.objectContaining({ action: 'refresh', result: 'success' })]);
  });

  it('uses half the lifetime as the window for tokens shorter than twice the window (no refresh on every call)', async () => {
    await connect(60); // a 60 s token with a 5-minute window
    clock.advance(29 * SEC);
    await service.getAccessToken(ctx, 'idp', 'c1');
    expect(client.calls).toBe(0);
    clock.advance(2 * SEC); // 29 s left < 30 s
    expect((await service.getAccessToken(ctx, 'idp', 'c1')).accessToken).toBe('at-1');
    expect(client.calls).toBe(1);
  });

  it('honours minValidityMs and autoRefresh=false', async () => {
    await connect(3600);
    clock.advance(40 * MIN); // 20 minutes left
    expect((await service.getAccessToken(ctx, 'idp', 'c1', { autoRefresh: false, minValidityMs: 30 * MIN })).accessToken).toBe('at-0');
    expect(client.calls).toBe(0);
    expect((await service.getAccessToken(ctx, 'idp', 'c1', { minValidityMs: 30 * MIN })).accessToken).toBe('at-1');
    expect(client.calls).toBe(1);

    clock.advance(61 * MIN); // expired
    await expect(service.getAccessToken(ctx, 'idp', 'c1', { autoRefresh: false })).rejects.toBeInstanceOf(OAuthAccessTokenExpiredError);
    expect(client.calls).toBe(1);
  });

  it('a minValidityMs no token of the connection can meet (at least its lifetime) refreshes by the window, not on every call', async () => {
    await connect(3600);
    // One hour tokens, two hours asked: a refresh gives an hour again, so each call would spend a refresh token.
    for (let i = 0; i < 3; i++) expect((await service.getAccessToken(ctx, 'idp', 'c1', { minValidityMs: 120 * MIN })).accessToken).toBe('at-0');
    expect(client.calls).toBe(0);
    clock.advance(56 * MIN); // 4 minutes left: inside the 5-minute window
    expect((await service.getAccessToken(ctx, 'idp', 'c1', { minValidityMs: 120 * MIN })).accessToken).toBe('at-1');
    expect((await service.getAccessToken(ctx, 'idp', 'c1', { minValidityMs: 60 * MIN })).accessToken).toBe('at-1');
    expect(client.calls).toBe(1);
    // One it can meet is still met: 50 minutes asked of a token with less left is refreshed.
    clock.advance(15 * MIN);
    expect((await service.getAccessToken(ctx, 'idp', 'c1', { minValidityMs: 50 * MIN })).accessToken).toBe('at-2');
    expect(client.calls).toBe(2);
  });

  it('retries transient failures with backoff within one refresh', async () => {
    await connect(3600);
    client.script = [transient, transient];
    clock.advance(58 * MIN);
    expect((await service.getAccessToken(ctx, 'idp', 'c1')).accessToken).toBe('at-3');
    expect(client.calls).toBe(3);
  });

  it('after a failed refresh, cools down 30 s (doubling per failure) and serves the old token while it is valid', async () => {
    await connect(3600);
    client.script = Array.from({ length: 6 }, () => transient);
    clock.advance(56 * MIN); // 4 minutes left
    expect((await service.getAccessToken(ctx, 'idp', 'c1')).accessToken).toBe('at-0');
    expect(client.calls).toBe(3);

    clock.advance(29 * SEC); // still cooling down: the provider is not contacted
    expect((await service.getAccessToken(ctx, 'idp', 'c1')).accessToken).toBe('at-0');
    expect(client.calls).toBe(3);

    clock.advance(2 * SEC); // 31 s: cooldown over, fails again → 60 s cooldown
    expect((await service.getAccessToken(ctx, 'idp', 'c1')).accessToken).toBe('at-0');
    expect(client.calls).toBe(6);
    clock.advance(59 * SEC);
    await service.getAccessToken(ctx, 'idp', 'c1');
    expect(client.calls).toBe(6);

    clock.advance(2 * SEC); // provider back
    expect((await service.getAccessToken(ctx, 'idp', 'c1')).accessToken).toBe('at-7');
    expect(client.calls).toBe(7);
  });

  it('fails with a retryable REFRESH_FAILED once the old token expired during an outage', async () => {
    await connect(3600);
    client.script = Array.from({ length: 3 }, () => transient);
    clock.advance(61 * MIN);
    const err = await service.getAccessToken(ctx, 'idp', 'c1').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OAuthRefreshFailedError);
    expect(err).toMatchObject({ retryable: true, retryAfter: new Date(clock.now().getTime() + 30 * SEC) });
    // Cooling down: fails fast without a call.
    await expect(service.getAccessToken(ctx, 'idp', 'c1')).rejects.toBeInstanceOf(OAuthRefreshFailedError);
    expect(client.calls).toBe(3);
  });

  it('invalid_grant is not retried, marks needs_reauth and fails fast afterwards', async () => {
    await connect(3600);
    client.script = [
      () => {
        throw new TokenEndpointFailure('invalid_grant', 'invalid_grant', { status: 400, oauthError: 'invalid_grant' });
      },
    ];
    clock.advance(58 * MIN);
    // Each answer names where the tokens of a new authorization go, the first (the refusal itself) as the later ones.
    const whereTokensGo = expect.stringContaining('POST /v1/oauth/connections/{integrationId}/{connectionId}/tokens');
    await expect(service.getAccessToken(ctx, 'idp', 'c1')).rejects.toMatchObject({ constructor: OAuthReauthRequiredError, message: whereTokensGo });
    expect(client.calls).toBe(1);
    expect(store.reauthMarks).toBe(1);
    await expect(service.getAccessToken(ctx, 'idp', 'c1')).rejects.toMatchObject({ constructor: OAuthReauthRequiredError, message: whereTokensGo });
    expect(client.calls).toBe(1);
    expect(audited).toEqual([expect.objectContaining({ action: 'refresh', result: 'failure', errorCode: '4002:REAUTH_REQUIRED' })]);
  });

  it('keeps the stored refresh token when the response has none, and falls back to the default lifetime without expires_in', async () => {
    await setup({ defaultExpiresInSeconds: 1800 });
    await connect(3600);
    client.script = [() => ({ accessToken: 'at-x', tokenType: 'bearer' })];
    clock.advance(58 * MIN);
    const got = await service.getAccessToken(ctx, 'idp', 'c1');
    expect(got.expiresAt).toEqual(new Date(clock.now().getTime() + 1800 * SEC));
    expect(store.refresh).toMatchObject({ value: 'rt-0', version: 1 });
  });

  it('a rotated refresh token that could not be stored is used by the next attempt (the stored one is spent)', async () => {
    await connect(3600);
    store.failRefreshWrites = ROTATED_TOKEN_WRITE_ATTEMPTS; // every retry under the lock fails
    clock.advance(58 * MIN);
    // The write failed: the still-valid old access token is served.
    expect((await service.getAccessToken(ctx, 'idp', 'c1')).accessToken).toBe('at-0');
    expect(store.refresh).toMatchObject({ value: 'rt-0', version: 1 });
    // Next attempt presents rt-1 (held in memory), not the spent rt-0, and stores the result.
    expect((await service.getAccessToken(ctx, 'idp', 'c1')).accessToken).toBe('at-2');
    expect(client.presented).toEqual(['rt-0', 'rt-1']);
    expect(store.refresh).toMatchObject({ value: 'rt-2', version: 2 });
  });

  it('a refresh-token write that fails once is retried under the lock: one provider call, the new tokens stored', async () => {
    await connect(3600);
    store.failRefreshWrites = 1;
    clock.advance(58 * MIN);
    expect((await service.getAccessToken(ctx, 'idp', 'c1')).accessToken).toBe('at-1');
    expect(client.calls).toBe(1);
    expect(store.refresh).toMatchObject({ value: 'rt-1', version: 2 });
  });

  it('a rotated refresh token the store keeps refusing becomes the pending one: the refresh succeeds, and a new service instance presents it', async () => {
    await connect(3600);
    store.pendingSupported = true;
    store.failRefreshWrites = ROTATED_TOKEN_WRITE_ATTEMPTS;
    clock.advance(58 * MIN);
    // The provider's answer is used (the rotated token is durable elsewhere), not thrown away.
    expect((await service.getAccessToken(ctx, 'idp', 'c1')).accessToken).toBe('at-1');
    expect(store.refresh).toMatchObject({ value: 'rt-0', version: 1 });
    expect(store.pending).toMatchObject({ value: 'rt-1', basedOnVersion: 1 });

    await setup({}, false); // "crash": a new service, nothing in memory
    clock.advance(58 * MIN);
    expect((await service.getAccessToken(ctx, 'idp', 'c1')).accessToken).toBe('at-2');
    expect(client.presented).toEqual(['rt-0', 'rt-1']);
    expect(store.refresh).toMatchObject({ value: 'rt-2', version: 2 });
    expect(store.pending).toBeUndefined();
  });

  it('a pending refresh token the provider refuses is discarded with needs_reauth; one left over a newer refresh token is ignored', async () => {
    await connect(3600);
    store.pendingSupported = true;
    store.failRefreshWrites = ROTATED_TOKEN_WRITE_ATTEMPTS;
    clock.advance(58 * MIN);
    await service.getAccessToken(ctx, 'idp', 'c1');
    client.script = [
      () => {
        throw new TokenEndpointFailure('invalid_grant', 'invalid_grant', { status: 400, oauthError: 'invalid_grant' });
      },
    ];
    clock.advance(58 * MIN);
    await expect(service.getAccessToken(ctx, 'idp', 'c1')).rejects.toBeInstanceOf(OAuthReauthRequiredError);
    expect(client.presented).toEqual(['rt-0', 'rt-1']);
    expect(store.pending).toBeUndefined();

    // Reconnected with a new refresh token: a pending one based on the old version is stale.
    await connect(3600);
    store.pending = { ...store.refresh!, credentialId: 'pending-id', value: 'rt-stale', basedOnVersion: 1 };
    clock.advance(58 * MIN);
    expect((await service.getAccessToken(ctx, 'idp', 'c1')).accessToken).toBe('at-3');
    expect(client.presented).toEqual(['rt-0', 'rt-1', 'rt-0']);
    expect(store.pending).toBeUndefined();
  });

  it('connecting under an id made only of dots is OAUTH_REFRESH_VALIDATION naming the field, storing nothing (clients resolve "." and ".." away)', async () => {
    const tokens = { access_token: 'at-0', refresh_token: 'rt-0', expires_in: 3600, token_type: 'Bearer' };
    for (const [integrationId, connectionId, field] of [['idp', '.', 'connectionId'], ['..', 'c1', 'integrationId']]) {
      await expect(service.storeOAuthCredentials(ctx, integrationId, connectionId, tokens)).rejects.toMatchObject({ name: 'OAuthRefreshValidationError', codeName: 'OAUTH_REFRESH_VALIDATION', field });
    }
    expect(store.access).toBeUndefined();
  });

  it('the proactive run refreshes a token in its window and leaves it alone afterwards', async () => {
    await connect(3600);
    clock.advance(57 * MIN);
    expect(await service.refreshExpiringTokens()).toMatchObject({ acquired: true, scanned: 1, refreshed: 1, failed: 0 });
    expect(await service.refreshExpiringTokens()).toMatchObject({ acquired: true, scanned: 0, refreshed: 0 });
    expect(client.calls).toBe(1);
  });
  it('a refresh token past its refresh_token_expires_in is not presented: the proactive run skips the connection, a read serves the valid token, then REAUTH_REQUIRED', async () => {
    await service.storeOAuthCredentials(ctx, 'idp', 'c1', { access_token: 'at-0', refresh_token: 'rt-0', expires_in: 3600, refresh_token_expires_in: 600, token_type: 'Bearer' });
    clock.advance(57 * MIN); // the access token in its window, the refresh token expired 47 minutes ago
    expect(await service.refreshExpiringTokens()).toMatchObject({ acquired: true, refreshed: 0, failed: 0 });
    expect((await service.getAccessToken(ctx, 'idp', 'c1')).accessToken).toBe('at-0');
    clock.advance(4 * MIN);
    await expect(service.getAccessToken(ctx, 'idp', 'c1')).rejects.toBeInstanceOf(OAuthReauthRequiredError);
    expect(client.calls).toBe(0);
    expect(audited).toEqual([]);
  });

  describe('log lines name error classes and codes, never messages', () => {
    let lines: string[];
    /** Captures the lines of Nest's Logger (call again after setup(): compiling a testing module replaces the logger). */
    function captureLogs(): void {
      const capture = (level: string) => (message: unknown) => void lines.push(`${level} ${String(message)}`);
      const logger: LoggerService = { log: capture('log'), warn: capture('warn'), error: capture('error'), debug: capture('debug'), verbose: capture('verbose') };
      Logger.overrideLogger(logger);
    }
    beforeEach(() => {
      lines = [];
      captureLogs();
    });
    afterEach(() => Logger.overrideLogger(false));

    const leaked = () => lines.filter((l) => l.includes(TOKEN_MARKER) || l.includes(SECRET_NAME));

    it('a token endpoint failure: the OAuth error code and HTTP status, not its text (retry, failure and serve-old-token lines)', async () => {
      await connect(3600);
      const failing = () => {
        throw new TokenEndpointFailure('transient', `HTTP 503 {"error_description":"refresh_token ${TOKEN_MARKER} is busy"}`, { status: 503, oauthError: 'temporarily_unavailable' });
      };
      client.script = [failing, failing, failing];
      clock.advance(57 * MIN);
      expect((await service.getAccessToken(ctx, 'idp', 'c1')).accessToken).toBe('at-0');

      expect(lines.filter((l) => l.includes('TokenEndpointFailure(transient), HTTP 503, OAuth error temporarily_unavailable'))).toHaveLength(2); // two retries
      expect(lines).toContainEqual(expect.stringMatching(/^error refresh of connection c1 .* failed: OAuthRefreshFailedError\(REFRESH_FAILED\), HTTP 503, OAuth error temporarily_unavailable$/));
      expect(lines).toContainEqual(expect.stringMatching(/^warn serving the current access token .*: OAuthRefreshFailedError\(REFRESH_FAILED\), HTTP 503/));
      expect(leaked()).toEqual([]);
    });

    it('serving the current token through a failure episode: one warning per connection and reason a minute, the calls between counted', async () => {
      await connect(3600);
      const failing = () => {
        throw new TokenEndpointFailure('transient', 'HTTP 503', { status: 503, oauthError: 'temporarily_unavailable' });
      };
      client.script = [failing, failing, failing];
      clock.advance(57 * MIN);
      const serving = () => lines.filter((l) => l.startsWith('warn serving the current access token of connection c1'));
      // The attempt's failure, then calls during its cooldown: the token is served every time.
      for (let i = 0; i < 6; i++) expect((await service.getAccessToken(ctx, 'idp', 'c1')).accessToken).toBe('at-0');
      expect(serving()).toEqual([
        expect.stringMatching(/: OAuthRefreshFailedError\(REFRESH_FAILED\), HTTP 503, OAuth error temporarily_unavailable$/),
        expect.stringMatching(/: OAuthRefreshFailedError\(REFRESH_FAILED\)$/), // cooling down: another reason, said once
      ]);
      clock.advance(30 * SEC); // the cooldown over: a new attempt fails the same way (its reason said within the minute: counted)
      client.script = [failing, failing, failing];
      expect((await service.getAccessToken(ctx, 'idp', 'c1')).accessToken).toBe('at-0');
      expect(serving()).toHaveLength(2);
      clock.advance(31 * SEC);
      expect((await service.getAccessToken(ctx, 'idp', 'c1')).accessToken).toBe('at-0');
      expect(serving()).toHaveLength(3);
      expect(serving()[2]).toMatch(/: OAuthRefreshFailedError\(REFRESH_FAILED\) \(served so 5 more times since its last such warning\)$/);
    });

    it('a rotated refresh token the vault keeps refusing: the typed code of every write, pending and memory line', async () => {
      await connect(3600);
      store.writeError = vaultDown;
      store.failRefreshWrites = ROTATED_TOKEN_WRITE_ATTEMPTS;
      store.pendingError = vaultDown();
      clock.advance(58 * MIN);
      await service.getAccessToken(ctx, 'idp', 'c1');

      expect(lines.filter((l) => l.includes('could not store the rotated refresh token') && l.includes('VaultDownError(VAULT_DOWN)'))).toHaveLength(ROTATED_TOKEN_WRITE_ATTEMPTS);
      expect(lines).toContainEqual(expect.stringMatching(/as a pending one either: VaultDownError\(VAULT_DOWN\)$/));
      expect(leaked()).toEqual([]);
    });

    it('invalid_grant whose needs_reauth mark fails; a failing audit and listener', async () => {
      events = new EventEmitter2();
      events.on('credential.oauth.refresh_failed', () => {
        throw new Error(`listener saw ${TOKEN_MARKER}`);
      });
      await setup({}, false);
      captureLogs();
      await connect(3600);
      client.script = [
        () => {
          throw new TokenEndpointFailure('invalid_grant', `invalid_grant: token ${TOKEN_MARKER} revoked`, { status: 400, oauthError: 'invalid_grant' });
        },
      ];
      store.markError = vaultDown();
      auditError = vaultDown();
      clock.advance(58 * MIN);
      await expect(service.getAccessToken(ctx, 'idp', 'c1')).rejects.toBeInstanceOf(OAuthReauthRequiredError);

      expect(lines).toContainEqual(expect.stringMatching(/^error could not mark connection c1 .* needs_reauth: VaultDownError\(VAULT_DOWN\)$/));
      expect(lines).toContainEqual(expect.stringMatching(/^warn refresh of connection c1 .* failed: OAuthReauthRequiredError\(REAUTH_REQUIRED\), HTTP 400, OAuth error invalid_grant → needs_reauth$/));
      expect(lines).toContainEqual(expect.stringMatching(/^warn a listener of credential\.oauth\.refresh_failed failed: Error$/));
      expect(lines).toContainEqual(expect.stringMatching(/^error could not audit a refresh of access-id: VaultDownError\(VAULT_DOWN\)$/));
      expect(leaked()).toEqual([]);
    });

    it('a failing proactive refresh and a failing shared cooldown store', async () => {
      const down = async (): Promise<never> => {
        throw vaultDown();
      };
      sharedCooldowns = { activeUntil: down, recordFailure: down, clear: down } as unknown as OAuthRefreshCooldowns;
      await setup({}, false);
      captureLogs();
      await connect(3600);
      client.script = Array.from({ length: 3 }, () => () => {
        throw new TokenEndpointFailure('rejected', `invalid_client for client ${TOKEN_MARKER}`, { status: 401, oauthError: 'invalid_client' });
      });
      clock.advance(57 * MIN);
      expect(await service.refreshExpiringTokens()).toMatchObject({ failed: 1 });

      expect(lines).toContainEqual(expect.stringMatching(/^debug proactive refresh of connection c1 .* failed: OAuthClientRejectedError\(OAUTH_CLIENT_REJECTED\), HTTP 401, OAuth error invalid_client$/));
      // A refused client is the provider's news: said once per run for all its connections (proactive-refresh-failures.spec).
      expect(lines).toContainEqual(expect.stringMatching(/^warn proactive refresh of 1 connection of integration "idp" failed on the provider's side: 4009:OAUTH_CLIENT_REJECTED \(HTTP 401, OAuth error invalid_client\); connections c1 \(tenant t1\) /));
      expect(lines).toContainEqual(expect.stringMatching(/^warn could not read a refresh cooldown in the shared store .*: VaultDownError\(VAULT_DOWN\)$/));
      expect(leaked()).toEqual([]);
    });
  });
});
