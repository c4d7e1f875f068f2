import { ManualClock } from '@app/common';
import { OAuthRefreshConfigurationError } from './errors/oauth-refresh.errors';
import { resolveOAuthRefreshOptions } from './oauth-refresh.options';
import { resolveProviderConfig } from './providers/oauth-provider.registry';
import { RefreshCooldowns, effectiveRefreshWindowMs, retryDelayMs } from './refresh-policy';

const defaults = { refreshAheadMs: 300_000, defaultExpiresInSeconds: 3600, requestTimeoutMs: 10_000 };

describe('resolveOAuthRefreshOptions', () => {
  it('applies the documented defaults', () => {
    expect(resolveOAuthRefreshOptions()).toMatchObject({
      refreshAheadMs: 300_000,
      defaultExpiresInSeconds: 3600,
      failureCooldownMs: 30_000,
      retry: { maxAttempts: 3 },
      proactive: { enabled: true, jobName: 'oauth-proactive-refresh', concurrency: 4, batchSize: 100 },
    });
  });

  it('lists every problem in one error', () => {
    const err = (() => {
      try {
        resolveOAuthRefreshOptions({ refreshAheadMs: -1, proactive: { concurrency: 0, cronTime: 'soon' }, failureCooldownMs: 10, maxFailureCooldownMs: 5 });
      } catch (e) {
        return e as Error;
      }
    })();
    expect(err).toBeInstanceOf(OAuthRefreshConfigurationError);
    expect(err?.message).toMatch(/refreshAheadMs/);
    expect(err?.message).toMatch(/proactive\.concurrency/);
    expect(err?.message).toMatch(/proactive\.cronTime/);
    expect(err?.message).toMatch(/maxFailureCooldownMs/);
  });

  it('checks the cooldown bounds against each other even when another option has the wrong type', () => {
    expect(() => resolveOAuthRefreshOptions({ refreshAheadMs: 'soon' as never, failureCooldownMs: 10, maxFailureCooldownMs: 5 })).toThrow(
      /refreshAheadMs[\s\S]*maxFailureCooldownMs: must be ≥ failureCooldownMs/,
    );
  });

  it('checks the time zone of the proactive job and the clock option', () => {
    expect(resolveOAuthRefreshOptions({ proactive: { timeZone: 'Europe/Paris' } }).proactive.timeZone).toBe('Europe/Paris');
    expect(() => resolveOAuthRefreshOptions({ proactive: { timeZone: 'Mars/Olympus' } })).toThrow(/proactive\.timeZone: is not an IANA time zone/);
    expect(() => resolveOAuthRefreshOptions({ clock: {} as never })).toThrow(/clock: must be a Clock/);
    const clock = new ManualClock();
    expect(resolveOAuthRefreshOptions({ clock }).clock).toBe(clock);
  });
});

describe('resolveProviderConfig', () => {
  const base = { integrationId: 'google', issuer: 'https://accounts.example', clientId: 'cid', clientSecret: { tenantId: 'system', credentialId: 'id-1' } };

  it('applies defaults from the module', () => {
    expect(resolveProviderConfig(base, defaults)).toMatchObject({ clientAuthMethod: 'client_secret_basic', refreshAheadMs: 300_000, defaultExpiresInSeconds: 3600, allowInsecureRequests: false, scopes: [] });
  });

  it('refuses http:// without allowInsecureRequests, both or neither endpoint, and a missing secret reference', () => {
    expect(() => resolveProviderConfig({ ...base, issuer: 'http://127.0.0.1:1' }, defaults)).toThrow(/https/);
    expect(() => resolveProviderConfig({ ...base, issuer: 'http://127.0.0.1:1', allowInsecureRequests: true }, defaults)).not.toThrow();
    expect(() => resolveProviderConfig({ ...base, tokenEndpoint: 'https://x/token' }, defaults)).toThrow(/exactly one of issuer/);
    expect(() => resolveProviderConfig({ ...base, clientSecret: undefined }, defaults)).toThrow(/clientSecret/);
    // A secret value instead of a reference is refused.
    expect(() => resolveProviderConfig({ ...base, clientSecret: { credentialId: 'x', tenantId: 's', value: 'shh' } as never }, defaults)).toThrow(/reference only/);
    // A tenant-less reference is only valid on a tenant-scoped registration.
    expect(() => resolveProviderConfig({ ...base, clientSecret: { credentialId: 'x' } }, defaults)).toThrow(/tenantId/);
    expect(resolveProviderConfig({ ...base, clientSecret: { credentialId: 'x' } }, defaults, 'acme').tenantId).toBe('acme');
  });
});

describe('refresh policy', () => {
  it('caps the window at half the token lifetime', () => {
    const issuedAt = new Date(0);
    expect(effectiveRefreshWindowMs({ issuedAt, expiresAt: new Date(3_600_000) }, 300_000)).toBe(300_000);
    expect(effectiveRefreshWindowMs({ issuedAt, expiresAt: new Date(60_000) }, 300_000)).toBe(30_000);
    expect(effectiveRefreshWindowMs({ issuedAt, expiresAt: null }, 300_000)).toBe(300_000);
  });

  it('backs off exponentially with jitter, honours Retry-After, and caps both', () => {
    const opts = { initialDelayMs: 100, maxDelayMs: 1000 };
    expect(retryDelayMs(2, opts, undefined, () => 0.5)).toBe(100);
    expect(retryDelayMs(3, opts, undefined, () => 0.5)).toBe(200);
    expect(retryDelayMs(3, opts, undefined, () => 0)).toBe(160);
    expect(retryDelayMs(10, opts, undefined, () => 1)).toBe(1000);
    expect(retryDelayMs(2, opts, 700, () => 0.5)).toBe(700);
    expect(retryDelayMs(2, opts, 60_000, () => 0.5)).toBe(1000);
  });

  it('cools down 30 s after a failure, doubling per consecutive failure up to the cap, cleared by a success', () => {
    const clock = new ManualClock(new Date(0));
    const c = new RefreshCooldowns(30_000, 100_000);
    expect(c.activeUntil('k', clock.now())).toBeUndefined();
    expect(c.recordFailure('k', clock.now()).until).toEqual(new Date(30_000));
    clock.advance(29_999);
    expect(c.activeUntil('k', clock.now())).toEqual(new Date(30_000));
    clock.advance(1);
    expect(c.activeUntil('k', clock.now())).toBeUndefined();
    expect(c.recordFailure('k', clock.now()).until).toEqual(new Date(30_000 + 60_000));
    expect(c.recordFailure('k', clock.now())).toEqual({ until: new Date(30_000 + 100_000), failures: 3 });
    c.clear('k');
    expect(c.failures('k')).toBe(0);
    expect(c.activeUntil('k', clock.now())).toBeUndefined();
  });
});
