/**
 * The OAuth `error` codes of the IANA "OAuth Extensions Error" registry and the RFCs that define them
 * (RFC 6749 §4.1.2.1 and §5.2, RFC 6750 §3.1, RFC 7009, RFC 7591, RFC 8628 §3.5, RFC 8707, RFC 9396,
 * RFC 9449; OpenID Connect Core §3.1.2.6).
 */
const REGISTERED_OAUTH_ERRORS = new Set([
  'invalid_request',
  'invalid_client',
  'invalid_grant',
  'unauthorized_client',
  'unsupported_grant_type',
  'invalid_scope',
  'access_denied',
  'unsupported_response_type',
  'server_error',
  'temporarily_unavailable',
  'invalid_token',
  'insufficient_scope',
  'unsupported_token_type',
  'invalid_redirect_uri',
  'invalid_client_metadata',
  'invalid_software_statement',
  'unapproved_software_statement',
  'authorization_pending',
  'slow_down',
  'expired_token',
  'invalid_target',
  'invalid_authorization_details',
  'invalid_dpop_proof',
  'use_dpop_nonce',
  'interaction_required',
  'login_required',
  'account_selection_required',
  'consent_required',
  'invalid_request_uri',
  'invalid_request_object',
  'request_not_supported',
  'request_uri_not_supported',
  'registration_not_supported',
]);

/** What an `error` outside the registry is reported as. */
export const UNREGISTERED_OAUTH_ERROR = 'unregistered_error';

/**
 * The provider's `error` as the lib repeats it (error messages, logs, audit rows, events): a registered
 * code as sent, any other string UNREGISTERED_OAUTH_ERROR. The provider, a proxy in front of it or a
 * host's own token client chooses that string, and one was seen echoing the refresh token it was sent
 * there; a shape check (identifier characters) lets most tokens through.
 */
export function reportedOAuthError(error: unknown): string | undefined {
  if (typeof error !== 'string' || error === '') return undefined;
  return REGISTERED_OAUTH_ERRORS.has(error) ? error : UNREGISTERED_OAUTH_ERROR;
}
