export { OAuthRefreshModule } from './oauth-refresh.module';
export { OAUTH_REFRESH_MODULE_OPTIONS, OAUTH_REFRESH_OPTIONS_TYPE, OAUTH_REFRESH_ASYNC_OPTIONS_TYPE } from './oauth-refresh.module-definition';
export type { OAuthRefreshModuleOptions, OAuthProactiveRefreshOptions, OAuthRetryOptions, ResolvedOAuthRefreshOptions } from './oauth-refresh.options';
export { resolveOAuthRefreshOptions } from './oauth-refresh.options';
export { PROACTIVE_REFRESH_LOCK } from './oauth-refresh.constants';
export {
  OAuthRefreshService,
  OAUTH_TAGS,
  type OAuthTokenResponse,
  type StoredOAuthCredentials,
  type GetAccessTokenOptions,
  type AccessTokenResult,
  type ProactiveRefreshResult,
} from './oauth-refresh.service';
export { OAuthRefreshScheduler } from './oauth-refresh.scheduler';
export { OAuthProviderRegistry, resolveProviderConfig } from './providers/oauth-provider.registry';
export type { OAuthProviderConfig, OAuthClientSecretRef, OAuthClientAuthMethod, ResolvedOAuthProvider } from './providers/oauth-provider.config';
export { OAuthTokenClient, TokenEndpointFailure, type OAuthTokenSet, type TokenEndpointFailureKind } from './client/oauth-token-client';
export { Oauth4webapiTokenClient } from './client/oauth4webapi-token-client';
export { OAuthTokenStore, StaleTokenError, type StoredToken, type ConnectionTokens, type DueAccessToken, type DuePageCursor, type TokenWrite } from './store/oauth-token-store';
export { CredentialsTokenStore } from './store/credentials-token-store';
export { OAuthRefreshEvents, type OAuthRefreshedEvent, type OAuthRefreshFailedEvent, type OAuthRefreshTrigger } from './events/oauth-refresh.events';
export * from './errors/oauth-refresh.errors';
