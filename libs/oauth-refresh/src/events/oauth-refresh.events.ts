/** Event names emitted through EventEmitter2 (when the host registers EventEmitterModule). */
export const OAuthRefreshEvents = {
  REFRESHED: 'credential.oauth.refreshed',
  REFRESH_FAILED: 'credential.oauth.refresh_failed',
} as const;

/** What made a refresh happen. */
export type OAuthRefreshTrigger = 'on_demand' | 'proactive' | 'token_rejected';

/** Payload of `credential.oauth.refreshed`. Never a token. */
export interface OAuthRefreshedEvent {
  tenantId: string;
  integrationId: string;
  connectionId: string;
  accessCredentialId: string;
  refreshCredentialId?: string;
  /** New value version of the access token. */
  version: number;
  expiresAt: Date;
  /** The provider sent a new refresh token (stored before the access token). */
  refreshTokenRotated: boolean;
  trigger: OAuthRefreshTrigger;
  attempts: number;
  correlationId?: string;
  occurredAt: Date;
}

/** Payload of `credential.oauth.refresh_failed`. Never a token. */
export interface OAuthRefreshFailedEvent {
  tenantId: string;
  integrationId: string;
  connectionId: string;
  accessCredentialId: string;
  refreshCredentialId?: string;
  /** `invalid_grant`: the connection is now `needs_reauth`. */
  reauthRequired: boolean;
  /** Trying later may work (network, 5xx, 429). */
  retryable: boolean;
  /** `<code>:<codeName>` of the typed error the caller gets. */
  errorCode: string;
  oauthError?: string;
  httpStatus?: number;
  consecutiveFailures: number;
  /**
   * When this replica will contact the provider again for this connection; of a configuration failure
   * (OAUTH_REFRESH_CONFIGURATION), when the provider's client secret is read again (`consecutiveFailures` counting its failures).
   */
  retryAfter?: Date;
  trigger: OAuthRefreshTrigger;
  correlationId?: string;
  occurredAt: Date;
}
