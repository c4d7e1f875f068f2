import type { ResolvedOAuthProvider } from '../providers/oauth-provider.config';

/** A successful token response, normalised. Holds secrets: never log it. */
export interface OAuthTokenSet {
  accessToken: string;
  /** Absent when the provider did not send one (the stored refresh token is kept). */
  refreshToken?: string;
  /** Seconds; absent when the provider did not say (the provider's `defaultExpiresInSeconds` applies). */
  expiresIn?: number;
  /** Seconds until the refresh token dies, when the provider says (`refresh_token_expires_in`). */
  refreshTokenExpiresIn?: number;
  scope?: string;
  tokenType: string;
}

/** How a token-endpoint call failed, as far as refresh logic cares. */
export type TokenEndpointFailureKind =
  /** `invalid_grant`: the refresh token is dead; only a new authorisation helps. */
  | 'invalid_grant'
  /** Network error, timeout, 5xx, 429: trying later may work. */
  | 'transient'
  /** Any other OAuth error (invalid_client, unauthorized_client, invalid_scope...): configuration. */
  | 'rejected'
  /** 200 with something that is not a valid token response. */
  | 'invalid_response';

/**
 * The rotated refresh tokens of failures, held beside them rather than on them: an inspection that shows an object's
 * hidden properties (util.inspect's `showHidden`, `%o` in console.log or util.format) finds none on the error — only
 * one told to call getters (`getters: true`) would.
 */
const ROTATED_REFRESH_TOKENS = new WeakMap<TokenEndpointFailure, string>();

/**
 * Thrown by an OAuthTokenClient. Its message never contains a token. `details.transport`: of a request that got no HTTP
 * answer, what failed — `timeout`, a system error code (`ECONNREFUSED`, `ENOTFOUND`, `UND_ERR_SOCKET`…) or
 * `network_error` — repeated in logs only when it is one of those words or an upper-case code (a host's client may put
 * anything there, a token too).
 */
export class TokenEndpointFailure extends Error {
  /**
   * Of an `invalid_response`: the refresh token the unusable 200 carried. The provider rotated, so it is the only live
   * one and the lib keeps it. Held beside the error, not on it (ROTATED_REFRESH_TOKENS): no serialisation of the error shows it.
   */
  get rotatedRefreshToken(): string | undefined {
    return ROTATED_REFRESH_TOKENS.get(this);
  }

  constructor(
    readonly kind: TokenEndpointFailureKind,
    message: string,
    readonly details: { status?: number; oauthError?: string; retryAfterMs?: number; transport?: string } = {},
    options?: { cause?: unknown; rotatedRefreshToken?: string },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'TokenEndpointFailure';
    if (options?.rotatedRefreshToken !== undefined) ROTATED_REFRESH_TOKENS.set(this, options.rotatedRefreshToken);
  }
}

/**
 * Talks to a provider's token endpoint. An abstract class so it is the DI token and tests can bind
 * a fake; the real one is `Oauth4webapiTokenClient`.
 */
export abstract class OAuthTokenClient {
  /**
   * One refresh-token grant request. Throws TokenEndpointFailure. With `signal`, the request lives until
   * it aborts (the caller bounds it, beyond `provider.requestTimeoutMs`: a late answer is still wanted);
   * without one, the client's own timeout is `provider.requestTimeoutMs`.
   */
  abstract refresh(provider: ResolvedOAuthProvider, refreshToken: string, clientSecret: string | undefined, options?: { signal?: AbortSignal }): Promise<OAuthTokenSet>;
}
