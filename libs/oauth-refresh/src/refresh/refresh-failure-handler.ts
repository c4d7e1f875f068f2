import { auditErrorCode, AuditResult } from '@app/audit';
import type { CredentialVaultError, OperationContext } from '@app/common';
import { TokenEndpointFailure } from '../client/oauth-token-client';
import { reportedOAuthError } from '../client/oauth-error-code';
import { OAuthClientRejectedError, OAuthInvalidTokenResponseError, OAuthReauthRequiredError, OAuthRefreshConfigurationError, OAuthRefreshFailedError } from '../errors/oauth-refresh.errors';
import { OAuthRefreshEvents, OAuthRefreshFailedEvent } from '../events/oauth-refresh.events';
import type { ResolvedOAuthProvider } from '../providers/oauth-provider.config';
import type { CooldownCause } from '../store/oauth-refresh-cooldowns';
import type { StoredToken } from '../store/oauth-token-store';
import type { ClientSecretCooldown } from './client-secret-reader';
import { isProviderLevelFailure } from './failure-cause';
import { auditRefresh, describeRefreshError, emitEvent, RefreshDeps, RefreshReason } from './refresh-support';

/** One failed token-endpoint exchange, as the failure handler needs to see it. */
export interface RefreshFailure {
  ctx: OperationContext;
  provider: ResolvedOAuthProvider;
  connectionId: string;
  key: string;
  access: StoredToken;
  refresh: StoredToken;
  reason: RefreshReason;
  error: unknown;
  started: number;
  /** Of a configuration failure (the client secret's reference): the cooldown it started. */
  cooldown?: ClientSecretCooldown;
}

/** Failures after which the old access token may still be served: the refresh may work later. */
export function isRetryableRefreshFailure(e: unknown): boolean {
  return e instanceof OAuthRefreshFailedError || e instanceof OAuthInvalidTokenResponseError;
}

/**
 * What a failed refresh leads to: `invalid_grant` → the connection is marked `needs_reauth`; the provider's
 * configuration (OAUTH_REFRESH_CONFIGURATION: its client secret unusable) → nothing on the connection; any
 * other failure → the per-connection cooldown grows. All are classified into the lib's typed error,
 * logged, emitted (`credential.oauth.refresh_failed`) and audited (`refresh`/`failure`).
 */
export class RefreshFailureHandler {
  constructor(private readonly deps: RefreshDeps) {}

  /** Records the failure and returns the error to throw. Never throws itself. */
  async handle(f: RefreshFailure): Promise<CredentialVaultError> {
    const { ctx, provider, connectionId, access, refresh, reason, error: e } = f;
    const failure = e instanceof TokenEndpointFailure ? e : undefined;
    const now = this.deps.clock.now();
    let error: CredentialVaultError;
    let consecutiveFailures = 0;
    let retryAfter: Date | undefined;
    if (failure?.kind === 'invalid_grant') {
      error = new OAuthReauthRequiredError(provider.integrationId, connectionId, 'the provider refused the refresh token (invalid_grant)', { cause: e });
      try {
        await this.deps.store.markReauthRequired(ctx, [refresh, access]);
      } catch (markError) {
        this.deps.logger.error(`could not mark connection ${connectionId} (tenant ${ctx.tenantId}) needs_reauth: ${describeRefreshError(markError)}`);
      }
      await this.deps.cooldowns.clear(f.key);
    } else if (e instanceof OAuthRefreshConfigurationError) {
      // The provider's configuration (its client secret), not this connection nor the provider: the reference cools down, not the connection.
      error = e;
      ({ until: retryAfter, failures: consecutiveFailures } = f.cooldown ?? { until: undefined, failures: 0 });
    } else {
      // A refused client's cooldown carries that cause in the (shared) store: every replica answers it with this code.
      const cause = failure && clientRejectionCause(failure);
      ({ until: retryAfter, failures: consecutiveFailures } = await this.deps.cooldowns.recordFailure(f.key, now, failure?.details.retryAfterMs, cause));
      error = classify(e, failure, provider, connectionId, retryAfter);
    }
    const reauth = error instanceof OAuthReauthRequiredError;
    // The proactive job says a failure of the provider's once per run and cause for all its connections (ProactiveRefreshFailures).
    const folded = reason.trigger === 'proactive' && isProviderLevelFailure(error);
    this.deps.logger[folded ? 'debug' : reauth ? 'warn' : 'error'](
      `refresh of connection ${connectionId} (tenant ${ctx.tenantId}, integration ${provider.integrationId}) failed: ${describeRefreshError(error)}${reauth ? ' → needs_reauth' : ''}`,
    );
    const oauthError = oauthErrorCode(failure);
    const provenance = {
      ...(oauthError ? { oauthError } : {}),
      ...(failure?.details.status !== undefined ? { httpStatus: failure.details.status } : {}),
    };
    emitEvent<OAuthRefreshFailedEvent>(this.deps, OAuthRefreshEvents.REFRESH_FAILED, {
      tenantId: ctx.tenantId,
      integrationId: provider.integrationId,
      connectionId,
      accessCredentialId: access.credentialId,
      refreshCredentialId: refresh.credentialId,
      reauthRequired: reauth,
      retryable: error.retryable,
      errorCode: auditErrorCode(error),
      ...provenance,
      consecutiveFailures,
      ...(retryAfter ? { retryAfter } : {}),
      trigger: reason.trigger,
      correlationId: ctx.correlationId,
      occurredAt: now,
    });
    await auditRefresh(this.deps, ctx, access.credentialId, AuditResult.FAILURE, f.started, auditErrorCode(error), {
      integrationId: provider.integrationId,
      connectionId,
      trigger: reason.trigger,
      reauthRequired: reauth,
      ...provenance,
      // The provider is not called when its configuration fails.
      attempts: e instanceof OAuthRefreshConfigurationError ? 0 : ((e as { attempts?: number })?.attempts ?? 1),
    });
    return error;
  }
}

/** A failure other than invalid_grant as the lib's error: an invalid response, else REFRESH_FAILED (transient or not). */
function classify(e: unknown, failure: TokenEndpointFailure | undefined, provider: ResolvedOAuthProvider, connectionId: string, retryAfter: Date): CredentialVaultError {
  if (e instanceof OAuthInvalidTokenResponseError) return e;
  const message = failureMessage(e, failure);
  if (failure?.kind === 'invalid_response') return new OAuthInvalidTokenResponseError(message, { cause: e });
  const rejection = failure && clientRejectionCause(failure);
  if (rejection) return clientRejectedError(rejection, provider.integrationId, connectionId, retryAfter, { cause: e });
  const transient = !failure || failure.kind === 'transient';
  return new OAuthRefreshFailedError(
    message,
    { integrationId: provider.integrationId, connectionId, transient, status: failure?.details.status, oauthError: oauthErrorCode(failure), retryAfter },
    { cause: e },
  );
}

/** OAuth errors by which the provider refuses the client itself, whichever connection's refresh token it was sent with. */
const CLIENT_REFUSALS = new Set(['invalid_client', 'unauthorized_client']);

/**
 * The provider refused our OAuth client: `invalid_client` / `unauthorized_client`, or a 401 of its token endpoint
 * without another OAuth error (RFC 6749 §5.2: the token endpoint's 401 is a failed client authentication).
 */
function isClientRejection(failure: TokenEndpointFailure): boolean {
  if (failure.kind !== 'rejected') return false;
  const oauthError = failure.details.oauthError;
  return oauthError !== undefined ? CLIENT_REFUSALS.has(oauthError) : failure.details.status === 401;
}

/** The cooldown's cause when the failure is a refusal of the OAuth client: its registered OAuth error and HTTP status, nothing the provider wrote. */
function clientRejectionCause(failure: TokenEndpointFailure): CooldownCause | undefined {
  if (!isClientRejection(failure)) return undefined;
  const oauthError = oauthErrorCode(failure);
  const status = failure.details.status;
  return { code: 'OAUTH_CLIENT_REJECTED', ...(status !== undefined ? { status } : {}), ...(oauthError !== undefined ? { oauthError } : {}) };
}

/** OAUTH_CLIENT_REJECTED from a refusal's cause: where it is seen, and from the cooldown it started, on any replica. */
export function clientRejectedError(cause: CooldownCause, integrationId: string, connectionId: string, notBefore: Date | undefined, options?: { cause?: unknown }): OAuthClientRejectedError {
  const { status, oauthError } = cause;
  const facts = [oauthError, ...(typeof status === 'number' ? [`HTTP ${status}`] : [])].filter(Boolean);
  const answered = facts.length > 0 ? facts.join(', ') : 'its token endpoint refused the client';
  return new OAuthClientRejectedError(answered, { integrationId, connectionId, status, oauthError, notBefore }, options);
}

/** The failure's OAuth `error` as repeated: a registered code, else `unregistered_error` (a host's own client may put anything there). */
function oauthErrorCode(failure: TokenEndpointFailure | undefined): string | undefined {
  return reportedOAuthError(failure?.details.oauthError);
}

const FAILURE_TEXT: Record<TokenEndpointFailure['kind'], string> = {
  transient: 'the token endpoint failed or could not be reached',
  rejected: 'the token endpoint refused the refresh',
  invalid_response: 'the token endpoint sent an invalid token response',
  invalid_grant: 'the provider refused the refresh token',
};

/**
 * The message clients see: the failure's kind, HTTP status and OAuth error code — never the token
 * client's message (a host-bound client may quote the provider's `error_description` or body).
 */
function failureMessage(e: unknown, failure: TokenEndpointFailure | undefined): string {
  if (!failure) return `refresh failed: ${describeRefreshError(e)}`;
  const facts = [
    ...(typeof failure.details.status === 'number' ? [`HTTP ${failure.details.status}`] : []),
    ...(oauthErrorCode(failure) ? [`OAuth error ${oauthErrorCode(failure)}`] : []),
  ];
  const text = FAILURE_TEXT[failure.kind] ?? 'the token endpoint failed';
  return facts.length > 0 ? `${text} (${facts.join(', ')})` : text;
}
