import type { AccessTokenResult, StoredOAuthCredentials } from '@app/oauth-refresh';
import { instant, integer, nullable, object, optional, text } from '../http/json-schema';

/** Response schemas of the OAuth connection routes (components of the OpenAPI document). */
export const OAUTH_RESPONSE_SCHEMAS = {
  OAuthStoredTokens: object<StoredOAuthCredentials>({
    accessTokenCredentialId: text,
    refreshTokenCredentialId: optional({ ...text, description: 'absent when no refresh token was ever given' }),
    expiresAt: instant,
  }),
  OAuthAccessToken: object<AccessTokenResult>({
    accessToken: text,
    expiresAt: nullable(instant),
    credentialId: { ...text, description: 'the access-token credential' },
    version: { ...integer, description: 'value version of the access-token credential' },
    tokenType: { ...text, example: 'Bearer' },
  }),
};
