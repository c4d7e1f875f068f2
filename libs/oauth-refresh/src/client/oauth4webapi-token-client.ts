import { Injectable, Logger } from '@nestjs/common';
import * as oauth from 'oauth4webapi';
import type { ResolvedOAuthProvider } from '../providers/oauth-provider.config';
import { OAuthTokenClient, OAuthTokenSet, TokenEndpointFailure } from './oauth-token-client';
import { reportedOAuthError } from './oauth-error-code';

/**
 * The real token client: oauth4webapi (`refreshTokenGrantRequest` + `processRefreshTokenResponse`),
 * with discovery (`discoveryRequest`) cached per issuer. Errors are classified, and their messages
 * carry the HTTP status and OAuth error code only — never a request or response body.
 */
@Injectable()
export class Oauth4webapiTokenClient extends OAuthTokenClient {
  private readonly logger = new Logger(Oauth4webapiTokenClient.name);
  private readonly servers = new Map<string, Promise<oauth.AuthorizationServer>>();

  async refresh(provider: ResolvedOAuthProvider, refreshToken: string, clientSecret: string | undefined, call: { signal?: AbortSignal } = {}): Promise<OAuthTokenSet> {
    const as = await this.authorizationServer(provider);
    const client: oauth.Client = { client_id: provider.clientId };
    const options: oauth.TokenEndpointRequestOptions = {
      signal: call.signal ?? AbortSignal.timeout(provider.requestTimeoutMs),
      ...(provider.scopes.length ? { additionalParameters: { scope: provider.scopes.join(' ') } } : {}),
      ...(provider.allowInsecureRequests ? { [oauth.allowInsecureRequests]: true } : {}),
    };
    let response: Response;
    try {
      response = await oauth.refreshTokenGrantRequest(as, client, this.clientAuth(provider, clientSecret), refreshToken, options);
    } catch (e) {
      throw classify(e, provider);
    }
    // A 200 is a grant the provider processed: its rotated refresh token is wanted even when the answer is refused below.
    const copy = response.status === 200 ? response.clone() : undefined;
    let result: oauth.TokenEndpointResponse;
    try {
      result = await oauth.processRefreshTokenResponse(as, client, response);
    } catch (e) {
      // A challenge is thrown before the body is read: its JSON `error` may still say what was refused (invalid_grant).
      const bodyError = e instanceof oauth.WWWAuthenticateChallengeError ? await oauthErrorIn(response) : undefined;
      const failure = classify(e, provider, response, bodyError);
      const rotated = failure.kind === 'invalid_response' && copy ? await refreshTokenIn(copy) : undefined;
      throw rotated === undefined ? failure : new TokenEndpointFailure(failure.kind, failure.message, failure.details, { rotatedRefreshToken: rotated });
    }
    return {
      accessToken: result.access_token,
      ...(typeof result.refresh_token === 'string' && result.refresh_token.length > 0 ? { refreshToken: result.refresh_token } : {}),
      ...(typeof result.expires_in === 'number' ? { expiresIn: result.expires_in } : {}),
      ...(typeof result.refresh_token_expires_in === 'number' && result.refresh_token_expires_in > 0
        ? { refreshTokenExpiresIn: result.refresh_token_expires_in }
        : {}),
      ...(typeof result.scope === 'string' ? { scope: result.scope } : {}),
      tokenType: result.token_type,
    };
  }

  /** Forgets a cached discovery document (e.g. after the provider changed its endpoints). */
  forget(provider: ResolvedOAuthProvider): void {
    this.servers.delete(serverKey(provider));
  }

  private clientAuth(provider: ResolvedOAuthProvider, secret: string | undefined): oauth.ClientAuth {
    if (provider.clientAuthMethod === 'none') return oauth.None();
    if (secret === undefined) throw new TokenEndpointFailure('rejected', `no client secret is configured for the integration`);
    return provider.clientAuthMethod === 'client_secret_post' ? oauth.ClientSecretPost(secret) : oauth.ClientSecretBasic(secret);
  }

  private authorizationServer(provider: ResolvedOAuthProvider): Promise<oauth.AuthorizationServer> {
    if (provider.tokenEndpoint) {
      const url = new URL(provider.tokenEndpoint);
      return Promise.resolve({ issuer: provider.issuer ?? url.origin, token_endpoint: provider.tokenEndpoint });
    }
    const key = serverKey(provider);
    let pending = this.servers.get(key);
    if (!pending) {
      pending = this.discover(provider);
      this.servers.set(key, pending);
      // A failed discovery is not cached: the next refresh tries again.
      pending.catch(() => this.servers.get(key) === pending && this.servers.delete(key));
    }
    return pending;
  }

  private async discover(provider: ResolvedOAuthProvider): Promise<oauth.AuthorizationServer> {
    const issuer = new URL(provider.issuer!);
    const options = {
      signal: AbortSignal.timeout(provider.requestTimeoutMs),
      ...(provider.allowInsecureRequests ? { [oauth.allowInsecureRequests]: true } : {}),
    };
    let as: oauth.AuthorizationServer;
    try {
      // RFC 8414 first, then OpenID Connect discovery.
      let response = await oauth.discoveryRequest(issuer, { ...options, algorithm: 'oauth2' });
      if (response.status === 404) response = await oauth.discoveryRequest(issuer, { ...options, algorithm: 'oidc' });
      as = await oauth.processDiscoveryResponse(issuer, response);
    } catch (e) {
      throw classify(e, provider);
    }
    if (!as.token_endpoint) {
      throw new TokenEndpointFailure('rejected', `the discovery document of ${issuer.origin} has no token_endpoint`);
    }
    this.logger.debug(`discovered token endpoint of integration "${provider.integrationId}"`);
    return as;
  }
}

function serverKey(provider: ResolvedOAuthProvider): string {
  return `${provider.issuer}|${provider.allowInsecureRequests}`;
}

function classify(e: unknown, provider: ResolvedOAuthProvider, response?: Response, bodyError?: string): TokenEndpointFailure {
  if (e instanceof TokenEndpointFailure) return e;
  const where = `the token endpoint`;
  if (e instanceof oauth.ResponseBodyError) return answeredError(e.status, e.error, retryAfter(e.response), '');
  if (e instanceof oauth.WWWAuthenticateChallengeError) {
    // The challenge's `error` (oidc-provider: `Basic error="invalid_client"`), else the body's: a provider that adds a
    // challenge to its every error (or answers invalid_grant with a 401 and one) still has its refresh token refused.
    const said = e.cause.find((c) => typeof c.parameters.error === 'string')?.parameters.error ?? bodyError;
    if (said !== undefined) return answeredError(e.status, said, retryAfter(e.response), ', WWW-Authenticate');
    return new TokenEndpointFailure('rejected', `${where} refused the client (HTTP ${e.status}, WWW-Authenticate)`, { status: e.status });
  }
  if (e instanceof oauth.OperationProcessingError) {
    const res = e.cause instanceof Response ? e.cause : response;
    const status = res?.status;
    if (e.code === oauth.RESPONSE_IS_NOT_CONFORM && status !== undefined && status !== 200) {
      const transient = status >= 500 || status === 429 || status === 408;
      return new TokenEndpointFailure(transient ? 'transient' : 'rejected', `${where} answered HTTP ${status}`, { status, retryAfterMs: retryAfter(res) });
    }
    return new TokenEndpointFailure('invalid_response', `${where} sent an invalid token response (${e.code ?? 'unknown'})`, { status });
  }
  const err = e as { name?: string; message?: string; cause?: { code?: string } };
  if (err?.name === 'TimeoutError' || err?.name === 'AbortError') {
    return new TokenEndpointFailure('transient', `${where} did not answer in time`, { transport: 'timeout' });
  }
  if (err?.name === 'TypeError' && err.message === 'fetch failed') {
    // fetch's TypeError: its cause (undici's) has the system error code; its message is not ours. Told by name: it is
    // the TypeError of Node's own realm, not `instanceof` that of a VM context running this code (jest's). And by
    // undici's message, the same for every network failure: any other TypeError (oauth4webapi's argument checks, a bug
    // in a fetch wrapper) is no sign the provider could not be reached.
    const code = typeof err.cause?.code === 'string' && SYSTEM_ERROR_CODE.test(err.cause.code) ? err.cause.code : 'network error';
    return new TokenEndpointFailure('transient', `${where} is unreachable (${code})`, { transport: code === 'network error' ? 'network_error' : code });
  }
  if (e instanceof oauth.UnsupportedOperationError && response?.status === 200) {
    // A grant processed, answered with what this client cannot use (a token_type other than bearer or DPoP).
    return new TokenEndpointFailure('invalid_response', `${where} sent a token response this client cannot use (${e.code ?? 'unsupported'})`, { status: 200 });
  }
  if (e instanceof oauth.UnsupportedOperationError) {
    return new TokenEndpointFailure('rejected', `${where} needs an operation oauth4webapi does not support (${e.code})`);
  }
  return new TokenEndpointFailure('transient', `${where} failed: ${(e as Error)?.name ?? 'error'}`);
}

/** The provider's OAuth `error` as a failure: invalid_grant, transient (5xx, 429, the codes saying so), else rejected. */
function answeredError(status: number, error: string, retryAfterMs: number | undefined, how: string): TokenEndpointFailure {
  const where = `the token endpoint`;
  if (error === 'invalid_grant') return new TokenEndpointFailure('invalid_grant', `${where} answered invalid_grant (HTTP ${status}${how})`, { status, oauthError: error });
  const transient = status >= 500 || status === 429 || error === 'temporarily_unavailable' || error === 'server_error' || error === 'slow_down';
  // The provider chose this string: repeated only when it is a registered code.
  const oauthError = reportedOAuthError(error);
  return new TokenEndpointFailure(transient ? 'transient' : 'rejected', `${where} answered ${oauthError ?? 'an error'} (HTTP ${status}${how})`, { status, oauthError, retryAfterMs });
}

/** The OAuth `error` of a JSON error body, if it has one (never more of the body). */
async function oauthErrorIn(response: Response): Promise<string | undefined> {
  try {
    const body = (await response.json()) as { error?: unknown } | null;
    return typeof body?.error === 'string' && body.error.length > 0 ? body.error : undefined;
  } catch {
    return undefined; // not JSON (or already read): no error to read
  }
}

/** The `refresh_token` of a JSON token response, if it has a usable one. */
async function refreshTokenIn(response: Response): Promise<string | undefined> {
  try {
    const body = (await response.json()) as { refresh_token?: unknown } | null;
    const token = body?.refresh_token;
    return typeof token === 'string' && token.length > 0 ? token : undefined;
  } catch {
    return undefined; // not JSON: nothing to keep
  }
}

/** A Node/undici error code (`ECONNREFUSED`, `UND_ERR_CONNECT_TIMEOUT`). */
const SYSTEM_ERROR_CODE = /^[A-Z][A-Z0-9_]{1,63}$/;

function retryAfter(res: Response | undefined): number | undefined {
  const h = res?.headers.get('retry-after');
  if (!h) return undefined;
  const seconds = Number(h);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const at = Date.parse(h);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}
