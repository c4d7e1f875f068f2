import { CredentialVaultError, ErrorSeverity, OperationContext } from '@app/common';
import type { ConnectionTokens, PendingRefreshToken, StoredToken, TokenWrite } from '../store/oauth-token-store';
import { OAuthReauthRequiredError } from '../errors/oauth-refresh.errors';
import { retryDelayMs } from '../refresh-policy';
import { describeRefreshError, persistToken, RefreshDeps, sleep } from './refresh-support';

/** Writes of a rotated refresh token tried under the connection lock before it is kept aside. */
export const ROTATED_TOKEN_WRITE_ATTEMPTS = 3;

/** The refresh token to present to the provider, and where it came from. */
export interface LiveRefreshToken {
  value: string;
  /** Not (yet) written over the stored refresh token: the stored one is spent at the provider. */
  unsaved: boolean;
}

/** Where a rotated refresh token ended up. */
export type KeptRefreshToken =
  /** Written over the refresh-token credential (new version). */
  | { outcome: 'stored'; refresh: StoredToken }
  /** Another writer stored a different refresh token meanwhile (a reconnect): ours was dropped. */
  | { outcome: 'superseded' }
  /** The write kept failing: kept as the connection's durable pending refresh token. */
  | { outcome: 'pending' }
  /** Nothing durable took it: held in this process's memory only. */
  | { outcome: 'memory'; error: unknown };

export type Connection = { ctx: OperationContext; integrationId: string; connectionId: string; key: string };

/**
 * Where the provider's newest refresh token lives when the refresh-token rotation could not be
 * written (issue 8b): once the provider rotated, the stored token is spent, so losing the new one
 * means the user must authorise again.
 *
 * 1. The write over the refresh-token credential is retried with backoff, under the connection lock.
 * 2. If it still fails, the token is saved as the connection's pending refresh token
 *    (`OAuthTokenStore.savePendingRefreshToken`: another credential, in the other value store), which
 *    any replica — or this one after a restart — finds with the connection's metadata and presents next.
 * 3. If that fails too (the database is down), it stays in this process's memory only.
 *
 * A pending or in-memory token is valid only while the stored refresh token is still at the version
 * it replaced; once a refresh token is written over it, both are dropped.
 */
export class RotatedRefreshTokens {
  /** Last resort (step 3), by connection key. */
  private readonly unsaved = new Map<string, { basedOnVersion: number; token: string }>();

  constructor(private readonly deps: RefreshDeps) {}

  /** The refresh token to present: an unsaved rotated one over `refresh` (memory first, it is newer), else the stored one. */
  async live(c: Connection, tokens: ConnectionTokens, refresh: StoredToken): Promise<LiveRefreshToken> {
    const held = this.unsaved.get(c.key);
    if (held && held.basedOnVersion === refresh.version) return { value: held.token, unsaved: true };
    const pending = tokens.pendingRefresh;
    if (pending && pending.basedOnVersion === refresh.version) {
      return { value: await this.deps.store.readValue(c.ctx, pending), unsaved: true };
    }
    if (pending) await this.drop(c, pending); // written over since, or left by a reconnect: not live
    return { value: await this.deps.store.readValue(c.ctx, refresh), unsaved: false };
  }

  /** Makes a rotated refresh token durable over `refresh` (see the class comment for the order). */
  async keep(c: Connection, tokens: ConnectionTokens, refresh: StoredToken, write: TokenWrite): Promise<KeptRefreshToken> {
    let written: StoredToken | undefined;
    try {
      written = await this.writeWithRetries(c, refresh, write);
    } catch (error) {
      // Revoked (or marked needs_reauth) meanwhile: the new token must not outlive that anywhere.
      if (error instanceof OAuthReauthRequiredError) {
        this.unsaved.delete(c.key);
        throw error;
      }
      return this.keepAside(c, refresh, write, error);
    }
    this.unsaved.delete(c.key);
    if (tokens.pendingRefresh) await this.drop(c, tokens.pendingRefresh);
    return written ? { outcome: 'stored', refresh: written } : { outcome: 'superseded' };
  }

  /** New tokens were stored for the connection: the token held in memory is not the live one any more. */
  forgetHeld(key: string): void {
    this.unsaved.delete(key);
  }

  /** The provider refused the unsaved token (invalid_grant): it is dead, wherever it was kept. */
  async discard(c: Connection, pending: PendingRefreshToken | undefined): Promise<void> {
    this.unsaved.delete(c.key);
    if (pending) await this.drop(c, pending);
  }

  private async writeWithRetries(c: Connection, refresh: StoredToken, write: TokenWrite): Promise<StoredToken | undefined> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await persistToken(this.deps, c.ctx, refresh, write, c.integrationId, c.connectionId);
      } catch (e) {
        // A refused value (validation) or a permission the host lacks fails the same way again; storage trouble may pass.
        const permanent = e instanceof CredentialVaultError && (e.severity === ErrorSeverity.CLIENT || e.severity === ErrorSeverity.CONFIGURATION);
        if (permanent || attempt >= ROTATED_TOKEN_WRITE_ATTEMPTS) throw e;
        this.deps.logger.warn(
          `could not store the rotated refresh token of connection ${c.connectionId} (tenant ${c.ctx.tenantId}), attempt ${attempt}/${ROTATED_TOKEN_WRITE_ATTEMPTS}: ${describeRefreshError(e)}`,
        );
        await sleep(retryDelayMs(attempt + 1, this.deps.options.retry));
      }
    }
  }

  private async keepAside(c: Connection, refresh: StoredToken, write: TokenWrite, error: unknown): Promise<KeptRefreshToken> {
    const why = describeRefreshError(error);
    try {
      const saved = await this.deps.store.savePendingRefreshToken(c.ctx, c.integrationId, c.connectionId, refresh, write);
      if (saved) {
        this.unsaved.delete(c.key);
        this.deps.logger.error(`could not store the rotated refresh token of connection ${c.connectionId} (tenant ${c.ctx.tenantId}); kept as its pending refresh token: ${why}`);
        return { outcome: 'pending' };
      }
    } catch (e) {
      this.deps.logger.error(`could not keep the rotated refresh token of connection ${c.connectionId} (tenant ${c.ctx.tenantId}) as a pending one either: ${describeRefreshError(e)}`);
    }
    this.unsaved.set(c.key, { basedOnVersion: refresh.version, token: write.value });
    this.deps.logger.error(`could not store the rotated refresh token of connection ${c.connectionId} (tenant ${c.ctx.tenantId}); kept in memory for the next attempt: ${why}`);
    return { outcome: 'memory', error };
  }

  /** Best effort: a stale pending token is never presented (its version check fails), only clutter. */
  private async drop(c: Connection, pending: PendingRefreshToken): Promise<void> {
    try {
      await this.deps.store.deletePendingRefreshToken(c.ctx, pending);
    } catch (e) {
      this.deps.logger.warn(`could not delete the pending refresh token ${pending.credentialId} of connection ${c.connectionId}: ${describeRefreshError(e)}`);
    }
  }
}
