import type { OperationContext } from '@app/common';
import type { OAuthClientSecretRef } from '../providers/oauth-provider.config';

/** Metadata of one stored token (never its value). */
export interface StoredToken {
  credentialId: string;
  /** Value version: changes with every new token. */
  version: number;
  /** Compare-and-set counter of the credential row. */
  rowVersion: number;
  /** The provider refused this connection (`needs_reauth`) or it was revoked. */
  reauthRequired: boolean;
  /** It was revoked (`reauthRequired` too): said so in the REAUTH_REQUIRED message. A store may leave it out. */
  revoked?: boolean;
  expiresAt: Date | null;
  /** When this version was written (rotation time, else creation time). */
  issuedAt: Date;
  tags: Record<string, string>;
}

export interface ConnectionTokens {
  access?: StoredToken;
  refresh?: StoredToken;
  /** A rotated refresh token kept aside because writing it over `refresh` failed (see `savePendingRefreshToken`). */
  pendingRefresh?: PendingRefreshToken;
}

/** Metadata of a pending refresh token: the provider's newest one, not yet written over the refresh token. */
export interface PendingRefreshToken extends StoredToken {
  /** The refresh-token version it replaces: it is the live token only while that version is current. */
  basedOnVersion: number;
}

/** One access token due for refresh, found by the proactive job (any tenant). */
export interface DueAccessToken {
  tenantId: string;
  integrationId: string;
  connectionId: string;
  credentialId: string;
  expiresAt: Date;
}

export interface DuePageCursor {
  expiresAt: Date;
  credentialId: string;
}

export interface TokenWrite {
  value: string;
  expiresAt: Date | null;
  tags?: Record<string, string>;
}

/**
 * Where the lib keeps tokens: the seam between refresh logic and @app/credentials
 * (`CredentialsTokenStore`). Unit tests bind an in-memory fake.
 *
 * Every method reads the database, never a cache, except `readValue`, which may use a cache but
 * must return the value of exactly `token.version`.
 */
export abstract class OAuthTokenStore {
  /** The connection's access and refresh token metadata, fresh from the database. */
  abstract load(ctx: OperationContext, integrationId: string, connectionId: string): Promise<ConnectionTokens>;
  /** The value of `token.version` (not a stale cached older one). */
  abstract readValue(ctx: OperationContext, token: StoredToken): Promise<string>;
  /** The client secret a provider configuration points at. */
  abstract readClientSecret(ctx: OperationContext, ref: OAuthClientSecretRef): Promise<string>;
  /** Creates the connection's access (and refresh) token credentials, or rotates existing ones. */
  abstract save(ctx: OperationContext, integrationId: string, connectionId: string, access: TokenWrite, refresh?: TokenWrite): Promise<ConnectionTokens>;
  /**
   * A new version of a token, only if the row is still at `expectedRowVersion`; resets its status to
   * active. Throws `StaleTokenError` when another writer got there first.
   */
  abstract rotate(ctx: OperationContext, token: StoredToken, write: TokenWrite & { expectedRowVersion: number }): Promise<StoredToken>;
  /** Marks the given credentials `needs_reauth`. */
  abstract markReauthRequired(ctx: OperationContext, tokens: StoredToken[]): Promise<void>;
  /** Active access tokens of every tenant expiring before `before`, soonest first, after `cursor`. */
  abstract listDue(before: Date, limit: number, cursor?: DuePageCursor): Promise<DueAccessToken[]>;

  /**
   * Keeps a rotated refresh token whose write over `refresh` failed (the old one is spent at the
   * provider) somewhere durable that does not depend on the write that failed, replacing the
   * connection's earlier pending one; `load` reports it as `pendingRefresh`. Resolves to undefined
   * when this store has no such place (the default): the caller then holds it in memory only.
   */
  savePendingRefreshToken(
    _ctx: OperationContext,
    _integrationId: string,
    _connectionId: string,
    _refresh: StoredToken,
    _write: TokenWrite,
  ): Promise<PendingRefreshToken | undefined> {
    return Promise.resolve(undefined);
  }

  /**
   * Whether the client secret `ref` names could be read now, found without reading its value (no audited read, no
   * vault call): throws what `readClientSecret` would for a credential missing, revoked or expired; `true` when it
   * would be served. `undefined` (the default): this store cannot tell — the lib then waits out the reference's
   * cooldown before reading it again.
   */
  checkClientSecret(_ctx: OperationContext, _ref: OAuthClientSecretRef): Promise<boolean | undefined> {
    return Promise.resolve(undefined);
  }

  /** Removes a pending refresh token (written over the refresh token since, superseded, or dead); gone already is fine. */
  deletePendingRefreshToken(_ctx: OperationContext, _pending: PendingRefreshToken): Promise<void> {
    return Promise.resolve();
  }
}

/** Thrown by `OAuthTokenStore.rotate` when the compare-and-set lost. */
export class StaleTokenError extends Error {
  constructor(readonly credentialId: string) {
    super(`credential ${credentialId} was changed by another writer`);
    this.name = 'StaleTokenError';
  }
}
