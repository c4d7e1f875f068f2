import { CredentialVaultError, describeError } from '@app/common';
import { TokenEndpointFailure } from '../client/oauth-token-client';
import { reportedOAuthError } from '../client/oauth-error-code';
import { OAuthClientRejectedError, OAuthInvalidTokenResponseError, OAuthRefreshFailedError } from '../errors/oauth-refresh.errors';

/**
 * Whether a failed refresh's cause is its provider's rather than its connection's, so the same for every connection
 * of that provider registration: the proactive job says it once per run and cause, not once per connection.
 *
 * The provider's: it refused the OAuth client (4009 OAUTH_CLIENT_REJECTED); its token endpoint failed or was not reached
 * (4003 REFRESH_FAILED from the token endpoint: 5xx, 429, a timeout, a network error) or refused the request with an
 * OAuth error other than invalid_grant (4003: invalid_request, invalid_scope, unsupported_grant_type, an unregistered
 * one); it answered a 200 the lib cannot use (4004 INVALID_TOKEN_RESPONSE). The lib's refresh requests differ between
 * connections only by the refresh token, and RFC 6749 §5.2 gives a refresh token the provider will not take one error,
 * invalid_grant: any other answer is about the client, the request or the endpoint itself.
 *
 * The connection's own: 4002 REAUTH_REQUIRED (invalid_grant on its refresh token; revoked, needs_reauth, no or an
 * expired refresh token), 4005 CONNECTION_NOT_FOUND, and anything that did not come from the token endpoint (the vault,
 * the database, a cooldown in a race): its user must act, or it is this connection's storage — one warning each.
 * 4007 OAUTH_REFRESH_CONFIGURATION (the provider's client secret unusable) is the provider's too, but is said once
 * per cooldown of the secret's reference already (RefreshFailureHandler), so is not counted here.
 */
export function isProviderLevelFailure(e: unknown): boolean {
  if (e instanceof OAuthClientRejectedError || e instanceof OAuthInvalidTokenResponseError) return true;
  if (!(e instanceof OAuthRefreshFailedError) || e.details.inFlight) return false;
  const failure = chain(e).find((c): c is TokenEndpointFailure => c instanceof TokenEndpointFailure);
  return failure !== undefined && failure.kind !== 'invalid_grant';
}

/**
 * A transport detail repeated as is: the lib's own words (`timeout`, `network_error`) or a Node/undici code's shape,
 * upper case (`ECONNREFUSED`, `UND_ERR_SOCKET`). A host's client may put anything there, and an identifier of mixed case
 * is the shape of many tokens (`gho_16C7e…`): left out.
 */
const TRANSPORT = /^(?:timeout|network_error|[A-Z][A-Z0-9_]{1,63})$/;

/**
 * A failure's cause as log lines say it: `<code>:<codeName>` as in audit rows and events (`UNEXPECTED` and the class for
 * an error of no code) and what is known of the token endpoint's answer — HTTP status, OAuth error (a registered code,
 * else unregistered_error) or, when there was none, the transport failure (`timeout`, `ECONNREFUSED`). Never a
 * message: no token, client id or secret, nor anything the provider wrote.
 */
export function refreshFailureCause(e: unknown): string {
  const facts = endpointFacts(e);
  const code = e instanceof CredentialVaultError ? `${e.code}:${e.codeName}` : 'UNEXPECTED';
  if (!(e instanceof CredentialVaultError)) facts.unshift(describeError(e));
  return facts.length > 0 ? `${code} (${facts.join(', ')})` : code;
}

/** What is known of the token endpoint's answer in an error's chain: HTTP status, OAuth error (registered, else unregistered_error), transport failure. */
export function endpointFacts(e: unknown): string[] {
  const facts: string[] = [];
  const links = chain(e);
  const answer = links.find((c): c is OAuthRefreshFailedError | OAuthClientRejectedError | TokenEndpointFailure => c instanceof OAuthRefreshFailedError || c instanceof OAuthClientRejectedError || c instanceof TokenEndpointFailure);
  const status = answer?.details.status;
  if (typeof status === 'number' && Number.isInteger(status)) facts.push(`HTTP ${status}`);
  const oauthError = reportedOAuthError(answer?.details.oauthError);
  if (oauthError) facts.push(`OAuth error ${oauthError}`);
  const transport = links.find((c): c is TokenEndpointFailure => c instanceof TokenEndpointFailure)?.details.transport;
  if (typeof transport === 'string' && TRANSPORT.test(transport)) facts.push(`transport ${transport}`);
  return facts;
}

/** The error and its causes, a few deep. */
function chain(e: unknown): Error[] {
  const links: Error[] = [];
  for (let cur = e; cur instanceof Error && links.length < 4; cur = cur.cause) links.push(cur);
  return links;
}
