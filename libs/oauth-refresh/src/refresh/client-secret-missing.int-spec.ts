/**
 * Integration: the provider's client-secret reference names no stored credential (deleted, or an id of another
 * database). Real oidc-provider, the local vault, real SQLite. The refresh fails as the provider's configuration
 * (OAUTH_REFRESH_CONFIGURATION, 500), naming the option to fix — not as "Credential not found" (2002, a 404 that
 * reads as the caller's own connection missing) — and the provider is not called; a token still valid is served
 * meanwhile, as after any failed refresh ahead of expiry. A revoked or expired secret likewise; the secret is then
 * checked, not read, by the refreshes during its cooldown (one refused read audited, no suspicious-activity alert), the
 * failure reported once per cooldown, and a secret fixed in place is read by the next refresh.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { ManualClock, type OperationContext } from '@app/common';
import { AuditAction, AuditResult } from '@app/audit';
import { CredentialType, ReadAuditCoalescer } from '@app/credentials';
import { CapturingLogger } from '@app/testing';
import { OAuthRefreshConfigurationError, OAUTH_REFRESH_ERROR_HTTP_STATUS } from '../errors/oauth-refresh.errors';
import { OAuthRefreshEvents, type OAuthRefreshFailedEvent } from '../events/oauth-refresh.events';
import { useOAuthStack } from '../oauth-refresh-stack.testing';
import { OAuthProviderRegistry } from '../providers/oauth-provider.registry';

const MIN = 60_000;

describe('OAuthRefreshModule when the client secret credential is missing (sqlite)', () => {
  const clock = new ManualClock(new Date());
  const logger = new CapturingLogger();
  const stack = useOAuthStack('sqlite', { clock, logger, oauth: { proactive: { enabled: false } }, provider: { integrationId: 'acme-idp' } });
  const ctx: OperationContext = { tenantId: `t_${randomBytes(3).toString('hex')}`, actor: { id: 'user:bob' } };
  const registerWithSecret = (credentialId: string) =>
    stack.moduleRef.get(OAuthProviderRegistry).register({
      integrationId: 'acme-idp',
      issuer: stack.server.issuer,
      clientId: stack.server.clientId,
      clientSecret: { tenantId: 'system', credentialId },
      allowInsecureRequests: true,
    });

  it('serves the token while it is valid, then fails as OAUTH_REFRESH_CONFIGURATION naming clientSecret.credentialId, never calling the provider', async () => {
    const initial = await stack.server.authorize();
    const stored = await stack.oauth.storeOAuthCredentials(ctx, 'acme-idp', 'conn-1', initial);
    // The reference names a well-formed id that no credential of the system tenant has.
    registerWithSecret(randomUUID());
    stack.server.resetCounters();
    // Inside the refresh-ahead window the token is still good: served, the refresh's failure said in a warning.
    clock.set(new Date(stored.expiresAt.getTime() - 2 * MIN));
    const served = await stack.oauth.getAccessToken(ctx, 'acme-idp', 'conn-1');
    expect(served.version).toBe(1);
    expect(logger.lines.some((l) => l.startsWith('warn serving the current access token of connection conn-1') && l.includes('OAUTH_REFRESH_CONFIGURATION'))).toBe(true);
    expect(stack.server.refreshCalls).toBe(0);

    // Expired: nothing left to serve.
    clock.set(new Date(stored.expiresAt.getTime() + 1000));
    const err = await stack.oauth.getAccessToken(ctx, 'acme-idp', 'conn-1').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OAuthRefreshConfigurationError);
    const e = err as OAuthRefreshConfigurationError;
    expect(OAUTH_REFRESH_ERROR_HTTP_STATUS[e.code]).toBe(500);
    expect(e.message).toContain('clientSecret.credentialId');
    expect(stack.server.refreshCalls).toBe(0);

    // Fixed configuration: the same connection refreshes (nothing was marked on it).
    registerWithSecret(stack.clientSecretId);
    expect((await stack.oauth.getAccessToken(ctx, 'acme-idp', 'conn-1')).version).toBe(2);
    expect(stack.server.refreshCalls).toBe(1);
  });

  it('reads a reference whose id is given in upper case (UUIDs are case-insensitive, as the HTTP routes take them)', async () => {
    const other: OperationContext = { ...ctx, tenantId: `t_${randomBytes(3).toString('hex')}` };
    const initial = await stack.server.authorize();
    const stored = await stack.oauth.storeOAuthCredentials(other, 'acme-idp', 'conn-2', initial);
    registerWithSecret(stack.clientSecretId.toUpperCase());
    stack.server.resetCounters();
    clock.set(new Date(stored.expiresAt.getTime() - 2 * MIN));
    expect((await stack.oauth.getAccessToken(other, 'acme-idp', 'conn-2')).version).toBe(2);
    expect(stack.server.refreshCalls).toBe(1);
  });

  it('fails the refresh as OAUTH_REFRESH_CONFIGURATION when the client secret is revoked, not as the caller\'s credential revoked (409 naming the secret)', async () => {
    const other: OperationContext = { ...ctx, tenantId: `t_${randomBytes(3).toString('hex')}` };
    const system: OperationContext = { tenantId: 'system', actor: { id: 'user:ops' } };
    const initial = await stack.server.authorize();
    const stored = await stack.oauth.storeOAuthCredentials(other, 'acme-idp', 'conn-3', initial);
    registerWithSecret(stack.clientSecretId);
    await stack.credentials.revoke(system, stack.clientSecretId);
    stack.server.resetCounters();
    clock.set(new Date(stored.expiresAt.getTime() + 1000));
    try {
      const err = await stack.oauth.getAccessToken(other, 'acme-idp', 'conn-3').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(OAuthRefreshConfigurationError);
      const m = (err as Error).message;
      expect(m).toContain('client secret is revoked');
      expect(m).not.toContain(stack.clientSecretId); // a system credential's id, not the caller's
      expect(stack.server.refreshCalls).toBe(0);
    } finally {
      await stack.credentials.unrevoke(system, stack.clientSecretId);
    }
    expect((await stack.oauth.getAccessToken(other, 'acme-idp', 'conn-3')).version).toBe(2);
  });

  it('a revoked client secret is read once however many refreshes meet it: one refused read, no suspicious-activity alert, each cooldown said once', async () => {
    // The case's own correlation id, which the client secret's read rows carry: the rows it caused are those. (Reads of
    // that secret by the cases before, folded by the read-audit coalescer, are written — and stamped — when its 1 s
    // window ends: during this case, but for the flush below.)
    const other: OperationContext = { ...ctx, tenantId: `t_${randomBytes(3).toString('hex')}`, correlationId: randomUUID() };
    const system: OperationContext = { tenantId: 'system', actor: { id: 'user:ops' } };
    const connections = ['conn-a', 'conn-b', 'conn-c', 'conn-d', 'conn-e', 'conn-f'];
    let expiresAt = new Date(0);
    for (const c of connections) expiresAt = (await stack.oauth.storeOAuthCredentials(other, 'acme-idp', c, await stack.server.authorize())).expiresAt;
    registerWithSecret(stack.clientSecretId);
    await stack.credentials.revoke(system, stack.clientSecretId);
    await stack.moduleRef.get(ReadAuditCoalescer).flush();
    await new Promise((r) => setTimeout(r, 5)); // what the flush wrote is stamped before `since`
    const since = new Date();
    stack.events.length = 0;
    stack.server.resetCounters();
    try {
      clock.set(new Date(expiresAt.getTime() - 2 * MIN)); // in the window: each refresh fails, each token is served
      for (const c of connections) expect((await stack.oauth.getAccessToken(other, 'acme-idp', c)).version).toBe(1);
      clock.set(new Date(clock.now().getTime() + 31_000)); // the 30 s cooldown is over: once more
      for (const c of connections) await stack.oauth.getAccessToken(other, 'acme-idp', c);

      const reads = (await stack.audit.query({ tenantId: 'system', action: AuditAction.READ, resource: stack.clientSecretId, correlationId: other.correlationId })).items;
      expect(reads.map((r) => r.result)).toEqual([AuditResult.DENIED]);
      // Nor was it read meanwhile in any other context.
      const meanwhile = (await stack.audit.query({ tenantId: 'system', action: AuditAction.READ, resource: stack.clientSecretId, from: since })).items;
      expect(meanwhile.map((r) => r.id)).toEqual(reads.map((r) => r.id));
      const alerts = (await stack.audit.query({ tenantId: 'system', action: AuditAction.SUSPICIOUS_ACTIVITY, from: since })).items;
      expect(alerts).toEqual([]);
      // Said once per cooldown, on the connection whose refresh met it: an event and a refresh/failure row each.
      const said = stack.events.filter((e) => e.name === OAuthRefreshEvents.REFRESH_FAILED).map((e) => e.payload as OAuthRefreshFailedEvent);
      expect(said.map((e) => [e.connectionId, e.errorCode, e.consecutiveFailures])).toEqual([
        ['conn-a', '4007:OAUTH_REFRESH_CONFIGURATION', 1],
        ['conn-a', '4007:OAUTH_REFRESH_CONFIGURATION', 2],
      ]);
      const rows = (await stack.audit.query({ tenantId: other.tenantId, action: AuditAction.REFRESH, result: AuditResult.FAILURE })).items;
      expect(rows.map((r) => r.errorCode)).toEqual(['4007:OAUTH_REFRESH_CONFIGURATION', '4007:OAUTH_REFRESH_CONFIGURATION']);
      expect(stack.server.refreshCalls).toBe(0);
    } finally {
      await stack.credentials.unrevoke(system, stack.clientSecretId);
    }
    // Unrevoked: the next refresh reads it at once (its cooldown has 60 s to run).
    expect((await stack.oauth.getAccessToken(other, 'acme-idp', 'conn-a')).version).toBe(2);
  });

  it('an expired client secret: refused once, checked (not read) meanwhile, and read at once once rotated with a new expiry', async () => {
    const other: OperationContext = { ...ctx, tenantId: `t_${randomBytes(3).toString('hex')}` };
    const system: OperationContext = { tenantId: 'system', actor: { id: 'user:ops' } };
    const stored = await stack.oauth.storeOAuthCredentials(other, 'acme-idp', 'conn-x', await stack.server.authorize());
    const secret = await stack.credentials.store(system, {
      integrationId: 'acme-idp',
      connectionId: 'oauth-client-expiring',
      type: CredentialType.CUSTOM_SECRET,
      value: stack.server.clientSecret,
      expiresAt: new Date(stored.expiresAt.getTime() - 3 * MIN),
    });
    registerWithSecret(secret.id);
    const since = new Date();
    stack.server.resetCounters();
    clock.set(new Date(stored.expiresAt.getTime() - 2 * MIN)); // the secret expired a minute ago; the token is in its window
    expect((await stack.oauth.getAccessToken(other, 'acme-idp', 'conn-x')).version).toBe(1);
    clock.set(new Date(clock.now().getTime() + 5_000));
    expect((await stack.oauth.getAccessToken(other, 'acme-idp', 'conn-x')).version).toBe(1);
    expect(logger.lines.some((l) => l.startsWith('warn serving the current access token of connection conn-x') && l.includes('OAUTH_REFRESH_CONFIGURATION'))).toBe(true);
    const reads = (await stack.audit.query({ tenantId: 'system', action: AuditAction.READ, resource: secret.id, from: since })).items;
    expect(reads.map((r) => r.result)).toEqual([AuditResult.DENIED]);

    await stack.credentials.rotate(system, secret.id, stack.server.clientSecret, { expiresAt: new Date(clock.now().getTime() + 24 * 60 * MIN) });
    expect((await stack.oauth.getAccessToken(other, 'acme-idp', 'conn-x')).version).toBe(2); // within the cooldown: checked, read
    expect(stack.server.refreshCalls).toBe(1);
  });
});
