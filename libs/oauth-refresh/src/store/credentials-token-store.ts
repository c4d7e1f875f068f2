import { Injectable, Logger } from '@nestjs/common';
import { OperationContext, systemContext } from '@app/common';
import {
  CredentialConflictError,
  CredentialExpiredError,
  CredentialExpiryScanner,
  CredentialMetadata,
  CredentialNotFoundError,
  CredentialRevokedError,
  CredentialsService,
  CredentialStatus,
  CredentialType,
  ValueStoreKind,
} from '@app/credentials';
import type { OAuthClientSecretRef } from '../providers/oauth-provider.config';
import { ConnectionTokens, DuePageCursor, DueAccessToken, OAuthTokenStore, PendingRefreshToken, StaleTokenError, StoredToken, TokenWrite } from './oauth-token-store';

/** The client secret is read in its owner's tenant: as the caller, or as the lib's system actor in another tenant. */
function clientSecretContext(ctx: OperationContext, ref: OAuthClientSecretRef): OperationContext {
  const owner = ref.tenantId ?? ctx.tenantId;
  return owner === ctx.tenantId ? ctx : systemContext(owner, 'oauth-refresh', ctx.correlationId);
}

const REAUTH_STATUSES = new Set<string>([CredentialStatus.NEEDS_REAUTH, CredentialStatus.REVOKED]);

/**
 * Tags of a pending refresh token: a `custom_secret` of the same connection (so `load` finds it in the
 * same query, and deleting the connection deletes it) naming the refresh-token credential and version it replaces.
 */
const PENDING_TAGS = { FOR: 'oauth.pending_refresh_for', BASED_ON: 'oauth.pending_based_on_version' } as const;

/**
 * `OAuthTokenStore` on @app/credentials: the access token is an `oauth_access_token` credential,
 * the refresh token an `oauth_refresh_token` credential of the same (tenant, integration,
 * connection). Every refresh is a new version of the same credentials (never a new identity), so
 * history, audit and rollback work as for any credential.
 */
@Injectable()
export class CredentialsTokenStore extends OAuthTokenStore {
  private readonly logger = new Logger(CredentialsTokenStore.name);

  constructor(
    private readonly credentials: CredentialsService,
    private readonly scanner: CredentialExpiryScanner,
  ) {
    super();
  }

  async load(ctx: OperationContext, integrationId: string, connectionId: string): Promise<ConnectionTokens> {
    // list() reads the database (never the value cache): version and status are current.
    const page = await this.credentials.list(ctx, { integrationId, connectionId, limit: 20 });
    const access = page.items.find((m) => m.type === CredentialType.OAUTH_ACCESS_TOKEN);
    const refresh = page.items.find((m) => m.type === CredentialType.OAUTH_REFRESH_TOKEN);
    const pending = refresh && page.items.find((m) => m.type === CredentialType.CUSTOM_SECRET && m.tags[PENDING_TAGS.FOR] === refresh.id);
    return {
      ...(access ? { access: toStored(access) } : {}),
      ...(refresh ? { refresh: toStored(refresh) } : {}),
      ...(pending ? { pendingRefresh: toPending(pending) } : {}),
    };
  }

  async readValue(ctx: OperationContext, token: StoredToken): Promise<string> {
    const read = await this.credentials.get(ctx, token.credentialId);
    if (read.metadata.version === token.version) return read.value;
    // This replica's cache holds another version (another replica refreshed): read the exact one.
    return (await this.credentials.getVersion(ctx, token.credentialId, token.version)).value;
  }

  async readClientSecret(ctx: OperationContext, ref: OAuthClientSecretRef): Promise<string> {
    return (await this.credentials.get(clientSecretContext(ctx, ref), ref.credentialId)).value;
  }

  /** The credential's metadata, fresh from the database (not audited: no value is read), refused as a read would be. */
  override async checkClientSecret(ctx: OperationContext, ref: OAuthClientSecretRef): Promise<boolean> {
    const meta = await this.credentials.getMetadata(clientSecretContext(ctx, ref), ref.credentialId);
    if (meta.status === CredentialStatus.REVOKED) throw new CredentialRevokedError(meta.id);
    if (meta.status === CredentialStatus.EXPIRED) throw new CredentialExpiredError(meta.id, meta.expiresAt);
    return true;
  }

  async save(ctx: OperationContext, integrationId: string, connectionId: string, access: TokenWrite, refresh?: TokenWrite): Promise<ConnectionTokens> {
    // Both tokens are checked before the first write: bad input must leave nothing behind.
    this.credentials.validate({ type: CredentialType.OAUTH_ACCESS_TOKEN, ...access });
    if (refresh) this.credentials.validate({ type: CredentialType.OAUTH_REFRESH_TOKEN, ...refresh });
    const current = await this.load(ctx, integrationId, connectionId);
    // Refresh token first: it is the one that cannot be re-obtained without the user.
    let newRefresh = current.refresh;
    if (refresh) {
      newRefresh = await this.upsert(ctx, integrationId, connectionId, CredentialType.OAUTH_REFRESH_TOKEN, current.refresh, refresh);
    } else if (current.refresh?.reauthRequired) {
      // New tokens were stored without a refresh token: give the kept one another chance.
      newRefresh = toStored(await this.credentials.updateMetadata(ctx, current.refresh.credentialId, { status: CredentialStatus.ACTIVE }));
    }
    let newAccess: StoredToken;
    try {
      newAccess = await this.upsert(ctx, integrationId, connectionId, CredentialType.OAUTH_ACCESS_TOKEN, current.access, access);
    } catch (e) {
      if (refresh && newRefresh) await this.undoRefresh(ctx, current.refresh, newRefresh);
      throw e;
    }
    return { access: newAccess, ...(newRefresh ? { refresh: newRefresh } : {}) };
  }

  /**
   * The access token of a save could not be written after its refresh token was: take the refresh
   * token back (a new credential is deleted, a rotated one rolled back), so the request leaves nothing visible.
   */
  private async undoRefresh(ctx: OperationContext, before: StoredToken | undefined, written: StoredToken): Promise<void> {
    try {
      if (!before) await this.credentials.delete(ctx, written.credentialId, { expectedVersion: written.rowVersion });
      else await this.credentials.rollback(ctx, written.credentialId, before.version, { expectedVersion: written.rowVersion });
    } catch (e) {
      this.logger.warn(`could not take back the refresh token of a failed save (credential ${written.credentialId}): ${(e as Error).name}`);
    }
  }

  async rotate(ctx: OperationContext, token: StoredToken, write: TokenWrite & { expectedRowVersion: number }): Promise<StoredToken> {
    let meta: CredentialMetadata;
    try {
      meta = await this.credentials.rotate(ctx, token.credentialId, write.value, { expiresAt: write.expiresAt, expectedVersion: write.expectedRowVersion });
    } catch (e) {
      if (e instanceof CredentialConflictError) throw new StaleTokenError(token.credentialId);
      throw e;
    }
    return toStored(await this.updateTags(ctx, meta, write.tags));
  }

  /**
   * The pending refresh token goes to the value store the refresh token does NOT use (envelope for the
   * default vault policy: a vault outage does not stop it), as a new version when one exists.
   */
  override async savePendingRefreshToken(ctx: OperationContext, integrationId: string, connectionId: string, refresh: StoredToken, write: TokenWrite): Promise<PendingRefreshToken> {
    const tags = { [PENDING_TAGS.FOR]: refresh.credentialId, [PENDING_TAGS.BASED_ON]: String(refresh.version) };
    const existing = (await this.load(ctx, integrationId, connectionId)).pendingRefresh;
    if (existing) {
      const meta = await this.credentials.rotate(ctx, existing.credentialId, write.value, { expiresAt: write.expiresAt, expectedVersion: existing.rowVersion });
      return toPending(await this.updateTags(ctx, meta, tags));
    }
    const { valueStore } = await this.credentials.getMetadata(ctx, refresh.credentialId);
    const other = valueStore === ValueStoreKind.VAULT ? ValueStoreKind.ENVELOPE : ValueStoreKind.VAULT;
    const meta = await this.credentials.store(ctx, { integrationId, connectionId, type: CredentialType.CUSTOM_SECRET, value: write.value, expiresAt: write.expiresAt, tags, valueStore: other });
    return toPending(meta);
  }

  override async deletePendingRefreshToken(ctx: OperationContext, pending: PendingRefreshToken): Promise<void> {
    try {
      await this.credentials.delete(ctx, pending.credentialId, { expectedVersion: pending.rowVersion });
    } catch (e) {
      if (!(e instanceof CredentialNotFoundError)) throw e;
    }
  }

  async markReauthRequired(ctx: OperationContext, tokens: StoredToken[]): Promise<void> {
    for (const t of tokens) {
      try {
        await this.credentials.updateMetadata(ctx, t.credentialId, { status: CredentialStatus.NEEDS_REAUTH });
      } catch (e) {
        if (!(e instanceof CredentialNotFoundError)) throw e;
      }
    }
  }

  /** Cross-tenant scan for the proactive job (metadata references only). */
  async listDue(before: Date, limit: number, cursor?: DuePageCursor): Promise<DueAccessToken[]> {
    const refs = await this.scanner.scanExpiringAcrossTenants({
      before,
      type: CredentialType.OAUTH_ACCESS_TOKEN,
      // Marked expired by the expiry monitor (every replica down past its expiry): still refreshable.
      statuses: [CredentialStatus.ACTIVE, CredentialStatus.EXPIRED],
      limit,
      after: cursor ? { expiresAt: cursor.expiresAt, id: cursor.credentialId } : undefined,
    });
    return refs.map((r) => ({ tenantId: r.tenantId, integrationId: r.integrationId, connectionId: r.connectionId, credentialId: r.id, expiresAt: r.expiresAt }));
  }

  private async upsert(
    ctx: OperationContext,
    integrationId: string,
    connectionId: string,
    type: CredentialType,
    existing: StoredToken | undefined,
    write: TokenWrite,
  ): Promise<StoredToken> {
    if (!existing) {
      const meta = await this.credentials.store(ctx, { integrationId, connectionId, type, value: write.value, expiresAt: write.expiresAt, tags: write.tags ?? {} });
      return toStored(meta);
    }
    // Callers hold the connection's lock; rotate() also resets a needs_reauth status to active.
    const meta = await this.credentials.rotate(ctx, existing.credentialId, write.value, { expiresAt: write.expiresAt });
    return toStored(await this.updateTags(ctx, meta, write.tags));
  }

  private async updateTags(ctx: OperationContext, meta: CredentialMetadata, tags: Record<string, string> | undefined): Promise<CredentialMetadata> {
    if (!tags) return meta;
    const merged = { ...meta.tags, ...tags };
    if (Object.entries(merged).every(([k, v]) => meta.tags[k] === v)) return meta;
    try {
      return await this.credentials.updateMetadata(ctx, meta.id, { tags: merged, expectedVersion: meta.rowVersion });
    } catch (e) {
      // Tags are informational: losing a race for them must not fail a stored token.
      if (e instanceof CredentialConflictError) return meta;
      throw e;
    }
  }
}

function toStored(m: CredentialMetadata): StoredToken {
  return {
    credentialId: m.id,
    version: m.version,
    rowVersion: m.rowVersion,
    reauthRequired: REAUTH_STATUSES.has(m.status),
    revoked: m.status === CredentialStatus.REVOKED,
    expiresAt: m.expiresAt,
    issuedAt: m.rotatedAt ?? m.createdAt,
    tags: { ...m.tags },
  };
}

function toPending(m: CredentialMetadata): PendingRefreshToken {
  return { ...toStored(m), basedOnVersion: Number(m.tags[PENDING_TAGS.BASED_ON]) };
}
