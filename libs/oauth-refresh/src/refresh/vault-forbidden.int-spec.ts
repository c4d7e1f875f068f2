/**
 * Integration: the provider rotated the refresh token and answered, then the vault refuses to store it
 * (the host's identity lacks `set`: 403 FORBIDDEN). Real oidc-provider, the real SDK against the local
 * vault, real SQLite. The spent token must not be presented again, the new one must survive (pending,
 * encrypted), the write must not be hammered, and operators must see it: an error line with the code,
 * a failure audit row — and never the token.
 */
import { randomBytes } from 'node:crypto';
import { AuditResult } from '@app/audit';
import { ManualClock, type OperationContext } from '@app/common';
import { CredentialType, ValueStoreKind } from '@app/credentials';
import { CapturingLogger } from '@app/testing';
import { useOAuthStack } from '../oauth-refresh-stack.testing';

const MIN = 60_000;

describe('OAuthRefreshModule when the vault denies storing a rotated refresh token (sqlite)', () => {
  const clock = new ManualClock(new Date());
  const logger = new CapturingLogger();
  const ctx: OperationContext = { tenantId: `acme_${randomBytes(3).toString('hex')}`, actor: { id: 'user:alice' } };

  const stack = useOAuthStack('sqlite', {
    clock,
    logger,
    server: { accessTokenTtlSeconds: 3600 },
    oauth: { providers: [], retry: { maxAttempts: 2, initialDelayMs: 5, maxDelayMs: 20 }, proactive: { enabled: false } },
    provider: { integrationId: 'acme-idp' },
  });

  it('keeps the new token pending (envelope), tries the denied write once, logs FORBIDDEN at error and audits it; never the token', async () => {
    stack.server.setRefreshTokenMode('rotate');
    const initial = await stack.server.authorize();
    const stored = await stack.oauth.storeOAuthCredentials(ctx, 'acme-idp', 'conn-denied', initial);
    const refreshId = stored.refreshTokenCredentialId!;
    stack.emu.deny({ operations: ['setSecret'] });
    stack.emu.resetStats();
    logger.lines.length = 0;
    stack.server.resetCounters();

    clock.set(new Date(stored.expiresAt.getTime() - 2 * MIN));
    const got = await stack.oauth.getAccessToken(ctx, 'acme-idp', 'conn-denied');
    expect(stack.server.refreshCalls).toBe(1);
    expect(got.version).toBe(2); // the access token (envelope) is stored and served

    // A missing permission does not pass by itself: the write is tried once, not retried with backoff.
    expect(stack.emu.stats().byOperationAndStatus['setSecret:403']).toBe(1);
    const pending = (await stack.credentials.list(ctx, { connectionId: 'conn-denied', type: CredentialType.CUSTOM_SECRET })).items.filter(
      (m) => m.tags['oauth.pending_refresh_for'] === refreshId,
    );
    expect(pending).toHaveLength(1);
    expect(pending[0].valueStore).toBe(ValueStoreKind.ENVELOPE);
    const rotated = (await stack.credentials.get(ctx, pending[0].id)).value;
    expect(rotated).not.toBe(initial.refresh_token);

    const errors = logger.lines.filter((l) => l.startsWith('error ') && l.includes('rotated refresh token'));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toContain('FORBIDDEN');
    expect(errors[0]).toContain('pending');
    const failures = await stack.audit.query({ tenantId: ctx.tenantId, result: AuditResult.FAILURE, resource: refreshId });
    expect(failures.items.map((r) => r.errorCode)).toContain('1010:FORBIDDEN');

    const haystacks = [...logger.lines, ...stack.events.map((e) => JSON.stringify(e)), ...(await stack.audit.query({ tenantId: ctx.tenantId, limit: 500 })).items.map((r) => JSON.stringify(r))];
    for (const t of [rotated, initial.refresh_token!, got.accessToken]) for (const h of haystacks) expect(h.includes(t)).toBe(false);

    // Granted again: the next refresh presents the pending token (no invalid_grant) and writes it over the refresh token.
    stack.emu.clearDenials();
    clock.set(new Date(got.expiresAt!.getTime() - 2 * MIN));
    await stack.oauth.getAccessToken(ctx, 'acme-idp', 'conn-denied');
    expect(stack.server.refreshCalls).toBe(2);
    expect((await stack.credentials.getMetadata(ctx, refreshId)).version).toBe(2);
  });
});
