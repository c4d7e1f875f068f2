import type { OperationContext } from '@app/common';
import { CredentialExpiredError, CredentialNotFoundError, CredentialRevokedError } from '@app/credentials';
import { OAuthRefreshConfigurationError } from '../errors/oauth-refresh.errors';
import type { OAuthClientSecretRef } from '../providers/oauth-provider.config';
import type { RefreshDeps } from './refresh-support';

/** Client-secret references remembered as failing in this process, at most (the least recently failed are forgotten). */
const MAX_SUSPECTS = 1000;

/** The start of a failure episode's next cooldown: the failure is news, to be said (event, audit row, error line). */
export interface ClientSecretCooldown {
  until: Date;
  failures: number;
}

export type ClientSecretRead = { secret: string } | { error: OAuthRefreshConfigurationError; cooldown?: ClientSecretCooldown };

/**
 * Reads a provider's client secret for a refresh, and keeps a configuration that makes it unusable (no such
 * credential, revoked, expired: OAUTH_REFRESH_CONFIGURATION) from being read again by every refresh:
 *
 * - A failed read starts a cooldown of the reference (the connections' policy: 30 s doubling up to 10 min, in the
 *   `RefreshCooldownGate`, so on every replica when the host shares cooldowns). Only the failure that starts one is
 *   news (`cooldown` set: the caller says it); the others answer the same error silently.
 * - A reference that failed in this process is then *checked* before its value is read
 *   (`OAuthTokenStore.checkClientSecret`: no value read, no audited read refused, no vault call): still unusable, the
 *   refresh fails without reading; usable again (rotated, unrevoked), it is read and the cooldown ends at once. A store
 *   that cannot check leaves the reference unread until the cooldown ends.
 * - Concurrent refreshes in this process share one read per reference (connections of one provider, the proactive job),
 *   made without the caller's `signal`: one caller leaving does not fail the others' refreshes.
 *
 * So a broken configuration costs one refused (and audited) read per replica and episode, not one per refresh, and
 * never enough to trip the audit lib's suspicious-activity thresholds on its own.
 */
export class ClientSecretReader {
  /** Reference key → the message of its last failure seen here. */
  private readonly suspects = new Map<string, string>();
  private readonly inflight = new Map<string, Promise<ClientSecretRead>>();

  constructor(private readonly deps: RefreshDeps) {}

  read(ctx: OperationContext, ref: OAuthClientSecretRef): Promise<ClientSecretRead> {
    const key = clientSecretKey(ctx, ref);
    const running = this.inflight.get(key);
    // A joiner's failure is not news: the refresh that read says it.
    if (running) return running.then((r) => ('error' in r ? { error: r.error } : r));
    // Shared by other callers (other connections, other requests): not aborted when the one that started it leaves.
    const { signal: _callers, ...shared } = ctx;
    const read = this.readOnce(shared, ref, key).finally(() => this.inflight.delete(key));
    this.inflight.set(key, read);
    return read;
  }

  private async readOnce(ctx: OperationContext, ref: OAuthClientSecretRef, key: string): Promise<ClientSecretRead> {
    const now = this.deps.clock.now();
    if (this.suspects.has(key)) {
      const cooling = await this.deps.cooldowns.activeUntil(key, now);
      let usable: boolean | undefined;
      try {
        usable = await this.deps.store.checkClientSecret(ctx, ref);
      } catch (e) {
        return this.failed(key, configurationError(e), cooling, now);
      }
      if (usable === undefined && cooling) {
        return { error: new OAuthRefreshConfigurationError(this.suspects.get(key)!) };
      }
    }
    let secret: string;
    try {
      secret = await this.deps.store.readClientSecret(ctx, ref);
    } catch (e) {
      return this.failed(key, configurationError(e), await this.deps.cooldowns.activeUntil(key, now), now);
    }
    if (this.suspects.delete(key)) await this.deps.cooldowns.clear(key);
    return { secret };
  }

  /** `cooling`: a cooldown already running (started here or on another replica): this failure is not news. */
  private async failed(key: string, error: OAuthRefreshConfigurationError, cooling: Date | undefined, now: Date): Promise<ClientSecretRead> {
    this.suspects.delete(key); // re-inserted: the most recent last
    this.suspects.set(key, error.message);
    if (this.suspects.size > MAX_SUSPECTS) this.suspects.delete(this.suspects.keys().next().value!);
    if (cooling) return { error };
    return { error, cooldown: await this.deps.cooldowns.recordFailure(key, now) };
  }
}

/** The cooldown key of a client-secret reference: never a connection's (those are JSON arrays), ids case-insensitive. */
export function clientSecretKey(ctx: OperationContext, ref: OAuthClientSecretRef): string {
  return `client-secret:${JSON.stringify([ref.tenantId ?? ctx.tenantId, ref.credentialId.toLowerCase()])}`;
}

/**
 * A reference that names no credential, or a revoked or expired one, is the provider's configuration, not the
 * caller's request: reported as such (500, the option to fix) rather than as the credential lib's NOT_FOUND (404) or
 * REVOKED/EXPIRED (409), which read as the caller's own connection and name another tenant's credential. Other
 * errors (the database, the vault) are thrown as they are.
 */
function configurationError(err: unknown): OAuthRefreshConfigurationError {
  if (err instanceof CredentialNotFoundError) {
    return new OAuthRefreshConfigurationError(
      "The OAuth provider's client secret is not a stored credential (its clientSecret.credentialId, in its clientSecret.tenantId): store the secret with CredentialsService and register the provider again with the id store gave",
      { cause: err },
    );
  }
  if (!(err instanceof CredentialRevokedError || err instanceof CredentialExpiredError)) throw err;
  const state = err instanceof CredentialRevokedError ? 'is revoked' : 'has expired';
  return new OAuthRefreshConfigurationError(
    `The OAuth provider's client secret ${state} (the credential its clientSecret.credentialId names): rotate it with the provider's new secret, or unrevoke it`,
    { cause: err },
  );
}
