/** Unit: token responses — what storeOAuthCredentials accepts, what a refresh answer must hold, and the writes built from them. */
import { OAuthInvalidTokenResponseError, OAuthRefreshValidationError } from '../errors/oauth-refresh.errors';
import type { ResolvedOAuthProvider } from '../providers/oauth-provider.config';
import { accessWrite, MAX_LIFETIME_SECONDS, normaliseTokenResponse, OAUTH_TAGS, OAuthTokenResponse, positiveSeconds, refreshWrite, validateTokenSet } from './token-response';

const now = new Date('2026-01-01T00:00:00Z');
const provider = { defaultExpiresInSeconds: 1800 } as ResolvedOAuthProvider;
const AT = 'access-token-value-1';

/** The validation error a call throws (fails the test when it does not throw one). */
function validationError(fn: () => unknown): OAuthRefreshValidationError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(OAuthRefreshValidationError);
    return e as OAuthRefreshValidationError;
  }
  throw new Error('expected an OAuthRefreshValidationError');
}

describe('positiveSeconds', () => {
  it.each([
    [3600, 3600],
    ['3600', 3600],
    ['1.5', 1.5],
    [0.5, 0.5],
    [MAX_LIFETIME_SECONDS, MAX_LIFETIME_SECONDS],
  ])('accepts %p as %p seconds', (input, seconds) => {
    expect(positiveSeconds(input, 'expires_in')).toBe(seconds);
  });

  it.each([undefined, null])('treats %p as absent', (input) => {
    expect(positiveSeconds(input, 'expires_in')).toBeUndefined();
  });

  it.each([
    ['1e308 (not a date once added to now)', 1e308],
    ['a century and a second', MAX_LIFETIME_SECONDS + 1],
    ['Infinity', Number.POSITIVE_INFINITY],
    ['NaN', Number.NaN],
    ['hexadecimal text', '0x10'],
    ['exponent text', '1e3'],
    ['negative', -1],
    ['negative text', '-1'],
    ['zero', 0],
    ['zero text', '0'],
    ['empty text', ''],
    ['blank text', ' 60'],
    ['true', true],
    ['an object', { seconds: 60 }],
  ])('refuses %s, naming the field and never the value', (_label, input) => {
    const e = validationError(() => positiveSeconds(input, 'expires_in'));
    expect(e).toMatchObject({ field: 'expires_in', code: 4008, codeName: 'OAUTH_REFRESH_VALIDATION' });
    expect(e.message).toContain(String(MAX_LIFETIME_SECONDS));
  });
});

describe('normaliseTokenResponse', () => {
  it('maps a full response, numeric strings included', () => {
    expect(
      normaliseTokenResponse({ access_token: 'at', refresh_token: 'rt', expires_in: '3600', refresh_token_expires_in: 86_400, scope: 'openid', token_type: 'Bearer', id_token: 'x' }),
    ).toEqual({ accessToken: 'at', refreshToken: 'rt', expiresIn: 3600, refreshTokenExpiresIn: 86_400, scope: 'openid', tokenType: 'Bearer' });
  });

  it('leaves out what the response does not carry; the token type defaults to bearer', () => {
    expect(normaliseTokenResponse({ access_token: 'at' })).toEqual({ accessToken: 'at', tokenType: 'bearer' });
    expect(normaliseTokenResponse({ access_token: 'at', refresh_token: null } as unknown as OAuthTokenResponse)).toEqual({ accessToken: 'at', tokenType: 'bearer' });
  });

  it.each([
    ['no response', undefined, 'tokenResponse'],
    ['a string', AT, 'tokenResponse'],
    ['a missing access_token', {}, 'access_token'],
    ['an empty access_token', { access_token: '' }, 'access_token'],
    ['a numeric access_token', { access_token: 42 }, 'access_token'],
    ['an empty refresh_token', { access_token: AT, refresh_token: '' }, 'refresh_token'],
    ['a non-string refresh_token', { access_token: AT, refresh_token: true }, 'refresh_token'],
    ['a non-string scope', { access_token: AT, scope: ['openid'] }, 'scope'],
    ['a non-string token_type', { access_token: AT, token_type: 1 }, 'token_type'],
    ['expires_in 1e308', { access_token: AT, expires_in: 1e308 }, 'expires_in'],
    ["expires_in '0x10'", { access_token: AT, expires_in: '0x10' }, 'expires_in'],
    ["expires_in '1e3'", { access_token: AT, expires_in: '1e3' }, 'expires_in'],
    ['expires_in -1', { access_token: AT, expires_in: -1 }, 'expires_in'],
    ['expires_in 0', { access_token: AT, expires_in: 0 }, 'expires_in'],
    ["expires_in ''", { access_token: AT, expires_in: '' }, 'expires_in'],
    ['expires_in true', { access_token: AT, expires_in: true }, 'expires_in'],
    ["refresh_token_expires_in '1e3'", { access_token: AT, refresh_token_expires_in: '1e3' }, 'refresh_token_expires_in'],
  ])('refuses %s (field %p), never echoing a token', (_label, input, field) => {
    const e = validationError(() => normaliseTokenResponse(input as unknown as OAuthTokenResponse));
    expect(e.field).toBe(field);
    expect(e.message).not.toContain(AT);
  });
});

describe('validateTokenSet (a refresh grant answered 200)', () => {
  it('accepts a token set with an access token and a positive or absent expires_in', () => {
    expect(() => validateTokenSet({ accessToken: 'at', tokenType: 'bearer' })).not.toThrow();
    expect(() => validateTokenSet({ accessToken: 'at', expiresIn: 60, tokenType: 'bearer' })).not.toThrow();
  });

  it.each([
    ['no token set', undefined],
    ['no access token', { tokenType: 'bearer' }],
    ['an empty access token', { accessToken: '', tokenType: 'bearer' }],
    ['expires_in 0', { accessToken: 'at', expiresIn: 0, tokenType: 'bearer' }],
    ['expires_in -1', { accessToken: 'at', expiresIn: -1, tokenType: 'bearer' }],
    ['expires_in NaN', { accessToken: 'at', expiresIn: Number.NaN, tokenType: 'bearer' }],
  ])('is the provider’s fault (INVALID_TOKEN_RESPONSE) with %s', (_label, input) => {
    expect(() => validateTokenSet(input as never)).toThrow(OAuthInvalidTokenResponseError);
  });
});

describe('accessWrite / refreshWrite', () => {
  it('dates the access token from expires_in, else the provider default, with type and scope tags (bounded)', () => {
    expect(accessWrite(provider, { accessToken: 'at', expiresIn: 60, scope: 'a b', tokenType: 'Bearer' }, now)).toEqual({
      value: 'at',
      expiresAt: new Date(now.getTime() + 60_000),
      tags: { [OAUTH_TAGS.TOKEN_TYPE]: 'bearer', [OAUTH_TAGS.SCOPE]: 'a b' },
    });
    const w = accessWrite(provider, { accessToken: 'at', scope: 's'.repeat(600), tokenType: 'T'.repeat(80) }, now);
    expect(w.expiresAt).toEqual(new Date(now.getTime() + 1800_000));
    expect(w.tags![OAUTH_TAGS.SCOPE]).toHaveLength(512);
    expect(w.tags![OAUTH_TAGS.TOKEN_TYPE]).toBe('t'.repeat(64));
  });

  it('dates the refresh token only when the provider said when it dies', () => {
    expect(refreshWrite({ accessToken: 'at', refreshToken: 'rt', tokenType: 'bearer' }, now)).toEqual({ value: 'rt', expiresAt: null });
    expect(refreshWrite({ accessToken: 'at', refreshToken: 'rt', refreshTokenExpiresIn: 10, tokenType: 'bearer' }, now)).toEqual({
      value: 'rt',
      expiresAt: new Date(now.getTime() + 10_000),
    });
  });
});
