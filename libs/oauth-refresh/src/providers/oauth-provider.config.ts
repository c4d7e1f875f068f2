/**
 * Where the OAuth client secret lives. Never the secret itself: a credential stored with
 * CredentialsService (type `custom_secret` or `api_key`), read on each refresh (cached by it).
 */
export interface OAuthClientSecretRef {
  /** Id of the credential that holds the client secret: the UUID `CredentialsService.store` gave it (checked at registration). */
  credentialId: string;
  /**
   * Tenant owning that credential. Set it for a system credential shared by every tenant (e.g. a
   * `system` tenant). Omit it only on a tenant-scoped registration (`register(config, { tenantId })`):
   * the credential is then read in the tenant of the operation.
   */
  tenantId?: string;
}

export type OAuthClientAuthMethod = 'client_secret_basic' | 'client_secret_post' | 'none';

/** One OAuth provider, used for the connections of one integration. */
export interface OAuthProviderConfig {
  /** The integration whose connections use this provider (e.g. `google`, `salesforce`). */
  integrationId: string;
  /**
   * Issuer identifier: the token endpoint is found by discovery
   * (`/.well-known/oauth-authorization-server` or `/.well-known/openid-configuration`). Give this or
   * `tokenEndpoint`. With an `openid` scope, an id_token in a refresh response is validated against it.
   */
  issuer?: string;
  /** Token endpoint URL, when the provider has no discovery document. Give this or `issuer`. */
  tokenEndpoint?: string;
  clientId: string;
  /** Reference to the stored client secret. Required unless `clientAuthMethod` is `none`. */
  clientSecret?: OAuthClientSecretRef;
  /** How the client authenticates at the token endpoint. @default 'client_secret_basic' */
  clientAuthMethod?: OAuthClientAuthMethod;
  /**
   * Scopes sent with each refresh request (must not exceed the granted ones). Empty: no `scope`
   * parameter (the provider keeps the granted scopes). @default []
   */
  scopes?: string[];
  /**
   * Refresh a token this long before it expires. For tokens that live less than twice this window,
   * half their lifetime is used instead, so short-lived tokens are not refreshed on every call.
   * @default module option `refreshAheadMs` (300000 = 5 minutes)
   */
  refreshAheadMs?: number;
  /**
   * Lifetime assumed when a token response has no `expires_in` (RFC 6749 makes it optional). Kept
   * short on purpose: an unknown lifetime is refreshed early rather than served after it died.
   * @default module option `defaultExpiresInSeconds` (3600 = 1 hour)
   */
  defaultExpiresInSeconds?: number;
  /** Allow an http:// issuer / token endpoint. For tests against a local server ONLY. @default false */
  allowInsecureRequests?: boolean;
  /** Timeout of one token-endpoint (or discovery) request. @default module option `requestTimeoutMs` (10000) */
  requestTimeoutMs?: number;
}

/** A provider configuration with every default applied (what the service uses). */
export interface ResolvedOAuthProvider {
  integrationId: string;
  /** Set for tenant-scoped registrations. */
  tenantId?: string;
  issuer?: string;
  tokenEndpoint?: string;
  clientId: string;
  clientSecret?: OAuthClientSecretRef;
  clientAuthMethod: OAuthClientAuthMethod;
  scopes: string[];
  refreshAheadMs: number;
  defaultExpiresInSeconds: number;
  allowInsecureRequests: boolean;
  requestTimeoutMs: number;
}
