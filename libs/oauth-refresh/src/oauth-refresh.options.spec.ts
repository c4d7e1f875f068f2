import { ManualClock } from '@app/common';
import { OAuthRefreshConfigurationError } from './errors/oauth-refresh.errors';
import { resolveOAuthRefreshOptions } from './oauth-refresh.options';
import { resolveProviderConfig } from './providers/oauth-provider.registry';
import { RefreshCooldowns, effectiveRefreshWindowMs, retryDelayMs } from './refresh-policy';

const defaults = { refreshAheadMs: 300_000, defaultExpiresInSeconds: 3600, requestTimeoutMs: 10_000 };

function captureError(fn: () => unknown): Error {
  try {
    fn();
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected an error');
}

describe('resolveOAuthRefreshOptions', () => {
  it('applies the documented defaults', () => {
    expect(resolveOAuthRefreshOptions()).toMatchObject({
      refreshAheadMs: 300_000,
      defaultExpiresInSeconds: 3600,
      lateAnswerMs: 60_000,
      failureCooldownMs: 30_000,
      retry: { maxAttempts: 3 },
      proactive: { enabled: true, jobName: 'oauth-proactive-refresh', concurrency: 4, batchSize: 100 },
    });
  });

  it("says an object option given something else must be an object, and still names a misspelt key", () => {
    expect(() => resolveOAuthRefreshOptions({ retry: 5, proactive: 'x', retri: {} } as never)).toThrow(
      /retry: must be an object[\s\S]*proactive: must be an object[\s\S]*Unrecognized key: "retri"; did you mean "retry"/,
    );
    expect(() => resolveOAuthRefreshOptions('x' as never)).toThrow(/\(options\): must be an object$/);
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

  it('validates the providers in the same pass: every problem of every provider, with its index, never a value', () => {
    const err = captureError(() =>
      resolveOAuthRefreshOptions({
        refreshAheadMs: -1,
        providers: [
          { integrationId: 'x' } as never,
          { integrationId: 'ok', issuer: 'https://accounts.example', clientId: 'cid', clientSecret: { tenantId: 'system', credentialId: '11111111-2222-4333-8444-555555555555' } },
          {
            integrationId: 'y',
            tokenEndpoint: 'http://user:tokenEndpointPassw0rd@idp.example/token',
            clientId: 'cid',
            clientSecret: { credentialId: '11111111-2222-4333-8444-555555555555', tenantId: 'system', value: 'sup3r-client-secret' } as never,
          },
        ],
      }),
    );
    expect(err).toBeInstanceOf(OAuthRefreshConfigurationError);
    const m = err.message;
    expect(m).toContain('refreshAheadMs: must be a number ≥ 0');
    expect(m).toContain('providers.0: give exactly one of issuer (discovery) or tokenEndpoint');
    expect(m).toContain('providers.0.clientId: must be a non-empty string');
    expect(m).toContain('providers.0.clientSecret: must be a reference');
    expect(m).not.toContain('providers.1');
    expect(m).toContain('providers.2.tokenEndpoint: must use https://');
    expect(m).toContain('providers.2.tokenEndpoint: must not contain credentials');
    expect(m).toContain('providers.2.clientSecret: holds a reference only');
    expect(m).not.toContain('sup3r-client-secret');
    expect(m).not.toContain('tokenEndpointPassw0rd');
    expect(captureError(() => resolveOAuthRefreshOptions({ providers: ['nope' as never] })).message).toContain(
      'providers.0: must be a provider configuration object',
    );
  });

  it('refuses misspelt keys, at the root, in nested options and in a provider, and names them', () => {
    const m = captureError(() =>
      resolveOAuthRefreshOptions({
        refreshAheadMS: 1000,
        retry: { maxAttempt: 2 },
        proactive: { enable: false },
        providers: [
          {
            integrationId: 'google',
            issuer: 'https://accounts.example',
            clientId: 'cid',
            clientSecret: { tenantId: 'system', credentialID: 'id-1' },
            scope: ['a'],
          },
        ],
      } as never),
    ).message;
    expect(m).toMatch(/\(options\): Unrecognized key: "refreshAheadMS"/);
    expect(m).toMatch(/retry: Unrecognized key: "maxAttempt"/);
    expect(m).toMatch(/proactive: Unrecognized key: "enable"/);
    expect(m).toContain('providers.0: Unrecognized key: "scope"');
    expect(m).toContain('providers.0.clientSecret: must be a reference');
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
  const base = { integrationId: 'google', issuer: 'https://accounts.example', clientId: 'cid', clientSecret: { tenantId: 'system', credentialId: '11111111-2222-4333-8444-555555555555' } };

  it('applies defaults from the module', () => {
    expect(resolveProviderConfig(base, defaults)).toMatchObject({ clientAuthMethod: 'client_secret_basic', refreshAheadMs: 300_000, defaultExpiresInSeconds: 3600, allowInsecureRequests: false, scopes: [] });
  });

  it('refuses http:// without allowInsecureRequests, both or neither endpoint, and a missing secret reference', () => {
    expect(() => resolveProviderConfig({ ...base, issuer: 'http://127.0.0.1:1' }, defaults)).toThrow(/https/);
    expect(() => resolveProviderConfig({ ...base, issuer: 'http://127.0.0.1:1', allowInsecureRequests: true }, defaults)).not.toThrow();
    expect(() => resolveProviderConfig({ ...base, tokenEndpoint: 'https://x/token' }, defaults)).toThrow(/exactly one of issuer/);
    expect(() => resolveProviderConfig({ ...base, clientSecret: undefined }, defaults)).toThrow(/clientSecret/);
    // A secret value instead of a reference is refused.
    expect(() => resolveProviderConfig({ ...base, clientSecret: { credentialId: '11111111-2222-4333-8444-555555555555', tenantId: 's', value: 'shh' } as never }, defaults)).toThrow(/reference only/);
    // A tenant-less reference is only valid on a tenant-scoped registration.
    expect(() => resolveProviderConfig({ ...base, clientSecret: { credentialId: '11111111-2222-4333-8444-555555555555' } }, defaults)).toThrow(/tenantId/);
    expect(resolveProviderConfig({ ...base, clientSecret: { credentialId: '11111111-2222-4333-8444-555555555555' } }, defaults, 'acme').tenantId).toBe('acme');
  });

  it('refuses a clientSecret.credentialId that is no credential id at registration, not at the first refresh', () => {
    // e.g. the docs' placeholder: each refresh would fail with "Credential (not a credential id) not found" otherwise.
    const m = captureError(() => resolveProviderConfig({ ...base, clientSecret: { tenantId: 'system', credentialId: '<id of a stored credential>' } }, defaults)).message;
    expect(m).toContain('clientSecret.credentialId: must be the id (a UUID)');
    expect(m).not.toContain('<id of a stored credential>');
  });

  it('lists every problem of a provider, refuses unknown keys, and checks the module defaults it falls back on', () => {
    const m = captureError(() =>
      resolveProviderConfig({ ...base, issuer: 'http://127.0.0.1:1', clientId: '', refreshAheadMS: 1, requestTimeoutMs: 0 } as never, defaults),
    ).message;
    expect(m).toContain('Invalid OAuth provider "google"');
    expect(m).toContain('issuer: must use https://');
    expect(m).toContain('clientId: must be a non-empty string');
    expect(m).toContain('Unrecognized key: "refreshAheadMS"');
    expect(m).toContain('requestTimeoutMs: must be a positive number of milliseconds');
    expect(() => resolveProviderConfig(base, { ...defaults, refreshAheadMs: -1 })).toThrow(/refreshAheadMs: must be a number of milliseconds ≥ 0/);
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
