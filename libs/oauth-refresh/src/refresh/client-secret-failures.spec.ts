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
import { CredentialNotFoundError } from '@app/credentials';
import { CapturingLogger } from '@app/testing';
import { OAuthRefreshConfigurationError } from '../errors/oauth-refresh.errors';
import { OAuthRefreshEvents, type OAuthRefreshFailedEvent } from '../events/oauth-refresh.events';
import { FAKE_CLIENT_SECRET_ID, FakeTokenStore, ScriptedTokenClient, serviceOnFakes } from '../oauth-refresh-fakes.testing';
import { OAuthRefreshService } from '../oauth-refresh.service';

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

  beforeEach(async () => {
    clock = new ManualClock(new Date('2026-01-01T00:00:00Z'));
    store = new FakeTokenStore(clock);
    client = new ScriptedTokenClient();
    audited = [];
    failed = [];
    const events = new EventEmitter2();
    events.on(OAuthRefreshEvents.REFRESH_FAILED, (e: OAuthRefreshFailedEvent) => failed.push(e));
    service = await serviceOnFakes({ clock, store, client, audit: { record: async (e: AuditEventInput) => void audited.push(e) }, events });
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
});
