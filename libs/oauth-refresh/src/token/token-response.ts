import { hasControlCharacter, isWellFormedUnicode } from '@app/common';
import { OAuthTokenSet } from '../client/oauth-token-client';
import { OAuthInvalidTokenResponseError, OAuthRefreshValidationError } from '../errors/oauth-refresh.errors';
import type { ResolvedOAuthProvider } from '../providers/oauth-provider.config';
import type { TokenWrite } from '../store/oauth-token-store';

/** Tags written on the access-token credential (metadata only, never a value). */
export const OAUTH_TAGS = { SCOPE: 'oauth.scope', TOKEN_TYPE: 'oauth.token_type' } as const;

/**
 * A token endpoint response as the provider sent it (RFC 6749 §5.1), e.g. oauth4webapi's
 * `TokenEndpointResponse`. `expires_in` may be a number or a numeric string (some providers).
 */
export interface OAuthTokenResponse {
  access_token: string;
  refresh_token?: string;
  expires_in?: number | string;
  /** Some providers (GitHub apps, Microsoft) say when the refresh token dies. */
  refresh_token_expires_in?: number | string;
  scope?: string;
  token_type?: string;
  [extra: string]: unknown;
}

/** A century: longer lifetimes are not lifetimes (and `1e308` seconds is not a date). */
export const MAX_LIFETIME_SECONDS = 100 * 365 * 86_400;

/** A lifetime in seconds from a token response: undefined when absent, else a positive decimal number up to a century. */
export function positiveSeconds(v: unknown, field: string): number | undefined {
  if (v === undefined || v === null) return undefined;
  // Numeric strings are decimal only: `0x10` or `1e3` from a provider is a malformed response.
  const n = typeof v === 'string' ? (/^\d{1,12}(\.\d{1,6})?$/.test(v) ? Number(v) : NaN) : v;
  if (typeof n !== 'number' || !Number.isFinite(n) || n <= 0 || n > MAX_LIFETIME_SECONDS) {
    throw new OAuthRefreshValidationError(`${field} must be a positive number of seconds (at most ${MAX_LIFETIME_SECONDS})`, field);
  }
  return n;
}

/** Validates a token response given to storeOAuthCredentials. Messages never include values. */
export function normaliseTokenResponse(r: OAuthTokenResponse): OAuthTokenSet {
  if (!r || typeof r !== 'object') throw new OAuthRefreshValidationError('tokenResponse must be a token endpoint response object', 'tokenResponse');
  if (typeof r.access_token !== 'string' || r.access_token.length === 0) {
    throw new OAuthRefreshValidationError('tokenResponse.access_token must be a non-empty string', 'access_token');
  }
  if (r.refresh_token !== undefined && r.refresh_token !== null && (typeof r.refresh_token !== 'string' || r.refresh_token.length === 0)) {
    throw new OAuthRefreshValidationError('tokenResponse.refresh_token must be a non-empty string when present', 'refresh_token');
  }
  // Kept as tags (one line of text): refused here, naming the field, rather than as a tag the caller never sent.
  if (r.scope !== undefined && !isTagText(r.scope)) throw new OAuthRefreshValidationError('tokenResponse.scope must be one line of well-formed text', 'scope');
  if (r.token_type !== undefined && !isTagText(r.token_type)) throw new OAuthRefreshValidationError('tokenResponse.token_type must be one line of well-formed text', 'token_type');
  const expiresIn = positiveSeconds(r.expires_in, 'expires_in');
  const refreshTokenExpiresIn = positiveSeconds(r.refresh_token_expires_in, 'refresh_token_expires_in');
  return {
    accessToken: r.access_token,
    ...(typeof r.refresh_token === 'string' ? { refreshToken: r.refresh_token } : {}),
    ...(expiresIn !== undefined ? { expiresIn } : {}),
    ...(refreshTokenExpiresIn !== undefined ? { refreshTokenExpiresIn } : {}),
    ...(r.scope !== undefined ? { scope: r.scope } : {}),
    tokenType: r.token_type ?? 'bearer',
  };
}

/** Checks what a token client returned for a refresh grant (a 200 without a usable token is the provider's fault). */
export function validateTokenSet(t: OAuthTokenSet): void {
  if (!t || typeof t.accessToken !== 'string' || t.accessToken.length === 0) {
    throw new OAuthInvalidTokenResponseError('the token endpoint returned no access_token');
  }
  // 0 is no lifetime, and beyond a century is no date (the access token could not be stored).
  if (t.expiresIn !== undefined && !(Number.isFinite(t.expiresIn) && t.expiresIn > 0 && t.expiresIn <= MAX_LIFETIME_SECONDS)) {
    throw new OAuthInvalidTokenResponseError('the token endpoint returned an invalid expires_in');
  }
}

function isTagText(v: unknown): v is string {
  return typeof v === 'string' && isWellFormedUnicode(v) && !hasControlCharacter(v);
}

/** `text` cut to `max` UTF-16 units without splitting a surrogate pair; undefined when it is no tag value (a provider's odd answer). */
function tagText(text: string, max: number): string | undefined {
  const cut = text.length > max && /[\uD800-\uDBFF]/.test(text[max - 1]) ? text.slice(0, max - 1) : text.slice(0, max);
  return isTagText(cut) ? cut : undefined;
}

/**
 * A provider's space-delimited list (RFC 6749 §3.3 scope; a token_type is one such word) as one line of tag text:
 * runs of whitespace and control characters become one space, a lone surrogate U+FFFD. Undefined when nothing is left.
 */
function oneLine(text: string): string | undefined {
  const words = text.replace(LONE_SURROGATE, '\uFFFD').split(/[\s\p{Cc}]+/u).filter(Boolean);
  return words.length > 0 ? words.join(' ') : undefined;
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/**
 * The access-token write of a token set: expiry from `expires_in` (else the provider's default), scope and
 * type as tags. A refresh's odd scope or type (a line break, a control character, a lone surrogate) is written as
 * one line of text (`oneLine`), never refused: the new tokens matter more than their metadata (a failed write would
 * lose a rotated refresh token), and leaving the tag out would keep the previous token's scope as this one's.
 */
export function accessWrite(provider: ResolvedOAuthProvider, tokens: OAuthTokenSet, now: Date): TokenWrite {
  const seconds = tokens.expiresIn ?? provider.defaultExpiresInSeconds;
  const tags: Record<string, string> = {};
  const type = oneLine(tokens.tokenType.toLowerCase());
  const tokenType = type === undefined ? undefined : tagText(type, 64);
  if (tokenType !== undefined) tags[OAUTH_TAGS.TOKEN_TYPE] = tokenType;
  // A scope of blanks only is taken as none: as when the provider leaves it out, the granted scope is unchanged (§5.1).
  const line = tokens.scope === undefined ? undefined : oneLine(tokens.scope);
  const scope = line === undefined ? undefined : tagText(line, 512);
  if (scope !== undefined) tags[OAUTH_TAGS.SCOPE] = scope;
  return { value: tokens.accessToken, expiresAt: new Date(now.getTime() + seconds * 1000), tags };
}

/**
 * The refresh-token write of a token set that carries one. A `refresh_token_expires_in` that is no
 * lifetime (≤ 0, over a century) is ignored: the token is kept without an expiry rather than refused.
 */
export function refreshWrite(tokens: Partial<OAuthTokenSet> & { refreshToken: string }, now: Date): TokenWrite {
  const seconds = tokens.refreshTokenExpiresIn;
  const dated = seconds !== undefined && Number.isFinite(seconds) && seconds > 0 && seconds <= MAX_LIFETIME_SECONDS;
  return { value: tokens.refreshToken, expiresAt: dated ? new Date(now.getTime() + seconds * 1000) : null };
}
