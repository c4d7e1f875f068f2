import { HttpStatus } from '@nestjs/common';
import { CredentialVaultError, ErrorSeverity } from '@app/common';

/** Where a connection's tokens are stored, for callers over HTTP (the reference host) and in code alike. */
const WHERE_TOKENS_GO = 'over HTTP: POST /v1/oauth/connections/{integrationId}/{connectionId}/tokens; in code: storeOAuthCredentials';

/** Stable error codes of the OAuth refresh lib (4001..). Never renumber. */
export enum OAuthRefreshErrorCode {
  /** No provider is registered for the integration (module option `providers` or `OAuthProviderRegistry.register`). */
  PROVIDER_NOT_REGISTERED = 4001,
  /** The provider refused the refresh token (`invalid_grant`): the user must connect again. */
  REAUTH_REQUIRED = 4002,
  /** The refresh did not succeed (provider down, throttled, rejected the client...). See `retryable`. */
  REFRESH_FAILED = 4003,
  /** The token endpoint answered 200 with something that is not a usable token response. */
  INVALID_TOKEN_RESPONSE = 4004,
  /** The connection has no stored OAuth access token. */
  CONNECTION_NOT_FOUND = 4005,
  /** The access token has expired and `autoRefresh` was off. */
  ACCESS_TOKEN_EXPIRED = 4006,
  /** Invalid module options or provider configuration. */
  CONFIGURATION = 4007,
  /** Invalid arguments (identifiers, token response shape, options). */
  VALIDATION = 4008,
  /** The provider refused our OAuth client (`invalid_client`, `unauthorized_client`, a 401): its client id or secret is wrong or revoked. */
  CLIENT_REJECTED = 4009,
}

/** HTTP status of each code, composed by the host; a new code does not compile without one. */
export const OAUTH_REFRESH_ERROR_HTTP_STATUS: Record<OAuthRefreshErrorCode, HttpStatus> = {
  [OAuthRefreshErrorCode.PROVIDER_NOT_REGISTERED]: HttpStatus.NOT_FOUND, // no provider for the integration
  [OAuthRefreshErrorCode.REAUTH_REQUIRED]: HttpStatus.CONFLICT, // the connection's user must authorize again
  [OAuthRefreshErrorCode.REFRESH_FAILED]: HttpStatus.SERVICE_UNAVAILABLE, // retryable ones carry Retry-After
  [OAuthRefreshErrorCode.INVALID_TOKEN_RESPONSE]: HttpStatus.BAD_GATEWAY, // the provider answered nonsense; the caller asked nothing wrong
  [OAuthRefreshErrorCode.CONNECTION_NOT_FOUND]: HttpStatus.NOT_FOUND,
  [OAuthRefreshErrorCode.ACCESS_TOKEN_EXPIRED]: HttpStatus.CONFLICT, // expired and autoRefresh was off
  [OAuthRefreshErrorCode.CONFIGURATION]: HttpStatus.INTERNAL_SERVER_ERROR,
  [OAuthRefreshErrorCode.VALIDATION]: HttpStatus.BAD_REQUEST,
  // The upstream refused our configured identity, as the vault's 401 (1002 UNAUTHORIZED): not an outage, not the caller's request.
  [OAuthRefreshErrorCode.CLIENT_REJECTED]: HttpStatus.BAD_GATEWAY,
};

export abstract class OAuthRefreshError extends CredentialVaultError {
  abstract override readonly code: OAuthRefreshErrorCode;
}

export class OAuthProviderNotRegisteredError extends OAuthRefreshError {
  readonly code = OAuthRefreshErrorCode.PROVIDER_NOT_REGISTERED;
  readonly codeName = 'PROVIDER_NOT_REGISTERED';
  readonly severity = ErrorSeverity.CONFIGURATION;
  constructor(readonly integrationId: string) {
    // Messages name no ids: they reach HTTP clients, and ids come from the request (the fields keep them).
    super(
      'No OAuth provider is registered for this integration: register one (the reference host: OAUTH_PROVIDERS; an app: the module option "providers" or OAuthProviderRegistry.register())',
    );
  }
}

/**
 * The refresh token was refused (`invalid_grant`: revoked, expired, or reused after rotation). The
 * connection is marked `needs_reauth`; every call fails fast with this error, without contacting
 * the provider, until new tokens are stored with `storeOAuthCredentials`.
 */
export class OAuthReauthRequiredError extends OAuthRefreshError {
  readonly code = OAuthRefreshErrorCode.REAUTH_REQUIRED;
  readonly codeName = 'REAUTH_REQUIRED';
  readonly severity = ErrorSeverity.CLIENT;
  /** Whatever the reason, the remedy is the same: the message says where the tokens of a new authorization go. */
  constructor(
    readonly integrationId: string,
    readonly connectionId: string,
    reason: string,
    options?: { cause?: unknown },
  ) {
    super(`The connection must be re-authorised: ${reason}; store the tokens of a new authorization (${WHERE_TOKENS_GO})`, options);
  }
}

/**
 * A refresh failed. `retryable` (severity transient) for network errors, timeouts, 5xx and 429;
 * configuration severity when the provider rejected the client or the request (invalid_client...).
 * `retryAfter` is when this replica will try the provider again (the per-connection cooldown).
 * `details.inFlight`: this refresh did not run because another refresh of the connection is in progress (it holds
 * the connection's refresh-in-flight lease, or its lock past `lockTimeoutMs`) — retryable, and no failure of the
 * connection (no cooldown, event or audit row).
 */
export class OAuthRefreshFailedError extends OAuthRefreshError {
  readonly code = OAuthRefreshErrorCode.REFRESH_FAILED;
  readonly codeName = 'REFRESH_FAILED';
  readonly severity: ErrorSeverity;
  constructor(
    message: string,
    readonly details: { integrationId: string; connectionId: string; transient: boolean; status?: number; oauthError?: string; retryAfter?: Date; inFlight?: boolean },
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.severity = details.transient ? ErrorSeverity.TRANSIENT : ErrorSeverity.CONFIGURATION;
  }
  get retryAfter(): Date | undefined {
    return this.details.retryAfter;
  }
}

/**
 * The provider refused the OAuth client itself (`invalid_client`, `unauthorized_client`, or a 401 of its token
 * endpoint): the client id or secret configured for the integration is wrong, revoked, or not allowed the
 * refresh-token grant. No connection is at fault and no retry helps: an operator must fix the provider's
 * configuration. The connection's refresh cools down meanwhile (`notBefore`: when the provider may be asked again);
 * the current access token is still served while it is valid.
 */
export class OAuthClientRejectedError extends OAuthRefreshError {
  readonly code = OAuthRefreshErrorCode.CLIENT_REJECTED;
  readonly codeName = 'OAUTH_CLIENT_REJECTED';
  readonly severity = ErrorSeverity.CONFIGURATION;
  constructor(
    /** What the provider answered, e.g. `invalid_client, HTTP 401` (never its description: it may quote the request). */
    answered: string,
    readonly details: { integrationId: string; connectionId: string; status?: number; oauthError?: string; notBefore?: Date },
    options?: { cause?: unknown },
  ) {
    // Names no id and no secret: ids come from the request, and the fix is the same for every connection of the integration.
    super(
      `The OAuth provider refused this integration's OAuth client (${answered}): its client id or secret is wrong or revoked, or the client may not use the refresh-token grant. Fix the provider's configuration (the reference host: OAUTH_PROVIDERS and the client secret credential it names; an app: OAuthProviderRegistry.register); the current access token is served while it is valid${details.notBefore ? `, and the provider is not asked again before ${details.notBefore.toISOString()}` : ''}`,
      options,
    );
  }
}

export class OAuthInvalidTokenResponseError extends OAuthRefreshError {
  readonly code = OAuthRefreshErrorCode.INVALID_TOKEN_RESPONSE;
  readonly codeName = 'INVALID_TOKEN_RESPONSE';
  readonly severity = ErrorSeverity.FATAL;
}

export class OAuthConnectionNotFoundError extends OAuthRefreshError {
  readonly code = OAuthRefreshErrorCode.CONNECTION_NOT_FOUND;
  readonly codeName = 'CONNECTION_NOT_FOUND';
  readonly severity = ErrorSeverity.CLIENT;
  constructor(
    readonly integrationId: string,
    readonly connectionId: string,
  ) {
    super(
      `No OAuth access token is stored for this connection: store the tokens of its completed authorization first (${WHERE_TOKENS_GO})`,
    );
  }
}

export class OAuthAccessTokenExpiredError extends OAuthRefreshError {
  readonly code = OAuthRefreshErrorCode.ACCESS_TOKEN_EXPIRED;
  readonly codeName = 'ACCESS_TOKEN_EXPIRED';
  readonly severity = ErrorSeverity.CLIENT;
  constructor(
    readonly integrationId: string,
    readonly connectionId: string,
    readonly expiredAt: Date,
  ) {
    super(`The access token of the connection expired at ${expiredAt.toISOString()} and autoRefresh is off`);
  }
}

export class OAuthRefreshConfigurationError extends OAuthRefreshError {
  readonly code = OAuthRefreshErrorCode.CONFIGURATION;
  readonly codeName = 'OAUTH_REFRESH_CONFIGURATION';
  readonly severity = ErrorSeverity.CONFIGURATION;
}

export class OAuthRefreshValidationError extends OAuthRefreshError {
  readonly code = OAuthRefreshErrorCode.VALIDATION;
  readonly codeName = 'OAUTH_REFRESH_VALIDATION';
  readonly severity = ErrorSeverity.CLIENT;
  constructor(
    message: string,
    readonly field: string,
  ) {
    super(message);
  }
}
