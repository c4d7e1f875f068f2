import { createHash, timingSafeEqual } from 'node:crypto';
import type { Logger } from '@nestjs/common';
import type { EventEmitter2 } from '@nestjs/event-emitter';
import { AuditAction, AuditResult, AuditService } from '@app/audit';
import { describeError, type Clock, type DistributedLock, type LockLeases, type OperationContext } from '@app/common';
import { type OAuthTokenClient, TokenEndpointFailure } from '../client/oauth-token-client';
import { reportedOAuthError } from '../client/oauth-error-code';
import { OAuthConnectionNotFoundError, OAuthReauthRequiredError, OAuthRefreshFailedError } from '../errors/oauth-refresh.errors';
import type { OAuthRefreshTrigger } from '../events/oauth-refresh.events';
import type { ResolvedOAuthRefreshOptions } from '../oauth-refresh.options';
import type { OAuthProviderRegistry } from '../providers/oauth-provider.registry';
import type { RefreshCooldownGate } from './refresh-cooldown-gate';
import { ConnectionTokens, OAuthTokenStore, StaleTokenError, StoredToken, TokenWrite } from '../store/oauth-token-store';
import { OAUTH_TAGS } from '../token/token-response';

/** A usable access token. Do not log it. */
export interface AccessTokenResult {
  accessToken: string;
  expiresAt: Date | null;
  credentialId: string;
  /** Value version of the access-token credential. */
  version: number;
  tokenType: string;
}

export type RefreshReason = {
  trigger: OAuthRefreshTrigger;
  forced: boolean;
  /** Told of each token-endpoint failure the refresh retried, by one that says them itself (the proactive job, once per run): its retry lines are at debug then. */
  retried?: (failure: TokenEndpointFailure) => void;
};

/** What the parts behind OAuthRefreshService share; the service builds it once. */
export interface RefreshDeps {
  readonly registry: OAuthProviderRegistry;
  readonly store: OAuthTokenStore;
  readonly client: OAuthTokenClient;
  readonly audit: AuditService;
  readonly lock: DistributedLock;
  /** Refresh-in-flight leases in the database (`RefreshLeases`); absent without a DataSource. */
  readonly leases?: LockLeases;
  readonly clock: Clock;
  readonly options: ResolvedOAuthRefreshOptions;
  readonly events?: EventEmitter2;
  /** One logger (context `OAuthRefreshService`) for every part, so log lines read as before the split. */
  readonly logger: Logger;
  /** Per-connection cooldowns after failures (shared by the replicas when the host provides a store). */
  readonly cooldowns: RefreshCooldownGate;
}

/**
 * Why the connection has no refresh token to present, or undefined when it has one: none stored, or the live one (the
 * stored one, else a rotated one pending over it) past its expiry (`refresh_token_expires_in`). The provider would
 * refuse an expired one, and the credentials lib refuses to read it (409 EXPIRED, naming an `allowExpired` that no
 * caller of this lib has): the connection needs a new authorization, as without one.
 */
export function missingRefreshToken(tokens: ConnectionTokens, now: Date): string | undefined {
  const refresh = tokens.refresh;
  if (!refresh) return 'no refresh token is stored';
  const pending = tokens.pendingRefresh;
  const live = pending && pending.basedOnVersion === refresh.version ? pending : refresh;
  return live.expiresAt && live.expiresAt.getTime() <= now.getTime() ? 'the refresh token expired' : undefined;
}

export function connectionKey(tenantId: string, integrationId: string, connectionId: string): string {
  return JSON.stringify([tenantId, integrationId, connectionId]);
}

export function lockName(key: string): string {
  return `oauth-refresh:${key}`;
}

export function requireUsable(tokens: ConnectionTokens, integrationId: string, connectionId: string): StoredToken {
  const access = tokens.access;
  if (!access) throw new OAuthConnectionNotFoundError(integrationId, connectionId);
  if (access.reauthRequired || tokens.refresh?.reauthRequired) {
    const state = access.revoked || tokens.refresh?.revoked ? 'is revoked' : 'is marked needs_reauth';
    throw new OAuthReauthRequiredError(integrationId, connectionId, `the connection ${state}`);
  }
  return access;
}

export async function serveToken(store: OAuthTokenStore, ctx: OperationContext, access: StoredToken): Promise<AccessTokenResult> {
  const value = await store.readValue(ctx, access);
  return {
    accessToken: value,
    expiresAt: access.expiresAt,
    credentialId: access.credentialId,
    version: access.version,
    tokenType: access.tags[OAUTH_TAGS.TOKEN_TYPE] ?? 'bearer',
  };
}

/** The connection's current access token, read fresh from the database. */
export async function serveCurrent(store: OAuthTokenStore, ctx: OperationContext, integrationId: string, connectionId: string): Promise<AccessTokenResult> {
  const tokens = await store.load(ctx, integrationId, connectionId);
  return serveToken(store, ctx, requireUsable(tokens, integrationId, connectionId));
}

/**
 * Rotates one token with compare-and-set. If the row changed but still holds the same value
 * version (only metadata moved), retries once on the new row version — unless the change was a
 * revoke or a needs_reauth mark: a rotation would make the credential active again, so the refresh
 * fails instead. If another writer stored a different value (new tokens from a reconnect), ours is
 * dropped: returns undefined.
 */
export async function persistToken(deps: RefreshDeps, ctx: OperationContext, token: StoredToken, write: TokenWrite, integrationId: string, connectionId: string): Promise<StoredToken | undefined> {
  try {
    return await deps.store.rotate(ctx, token, { ...write, expectedRowVersion: token.rowVersion });
  } catch (e) {
    if (!(e instanceof StaleTokenError)) throw e;
  }
  const again = await deps.store.load(ctx, integrationId, connectionId);
  const current = again.access?.credentialId === token.credentialId ? again.access : again.refresh?.credentialId === token.credentialId ? again.refresh : undefined;
  if (current?.reauthRequired) {
    const state = current.revoked ? 'revoked' : 'marked needs_reauth';
    throw new OAuthReauthRequiredError(integrationId, connectionId, `the connection was ${state} during the refresh; its new tokens were dropped`);
  }
  if (current && current.version === token.version) {
    return deps.store.rotate(ctx, current, { ...write, expectedRowVersion: current.rowVersion });
  }
  deps.logger.warn(`credential ${token.credentialId} got a new value from another writer during a refresh; keeping that one`);
  return undefined;
}

/**
 * Runs `work` under the lock and answers with its outcome as soon as it has one, while the lock stays
 * held until every promise `work` handed to `keepLock` settled (a late token-endpoint answer being stored).
 */
export function answerHoldingLock<T>(lock: DistributedLock, name: string, timeoutMs: number, work: (keepLock: (p: Promise<unknown>) => void) => Promise<T>): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    lock
      .run(
        name,
        async () => {
          const held: Promise<unknown>[] = [];
          await work((p) => held.push(p)).then(resolve, reject);
          await Promise.allSettled(held);
        },
        { timeoutMs },
      )
      .catch(reject); // the lock itself failed (LockTimeoutError): `work` never ran
  });
}

/** Audit of one refresh; an audit failure is logged, never thrown over a refresh that happened. */
export async function auditRefresh(
  deps: RefreshDeps,
  ctx: OperationContext,
  resource: string,
  result: AuditResult,
  started: number,
  errorCode: string | undefined,
  details: Record<string, unknown>,
): Promise<void> {
  try {
    await deps.audit.record({ action: AuditAction.REFRESH, context: ctx, resource, result, errorCode, durationMs: Date.now() - started, details });
  } catch (e) {
    deps.logger.error(`could not audit a refresh of ${resource}: ${describeRefreshError(e)}`);
  }
}

/** Emits when the host has an event bus; a failing listener never fails a refresh. */
export function emitEvent<T>(deps: RefreshDeps, name: string, payload: T): void {
  if (!deps.events) return;
  try {
    deps.events.emit(name, payload);
  } catch (e) {
    deps.logger.warn(`a listener of ${name} failed: ${describeRefreshError(e)}`);
  }
}

/**
 * An error for a log line: class and stable code (describeError), and of a token-endpoint failure in
 * its chain the HTTP status and OAuth `error` code — never a message: a store error's cause carries
 * Azure's text (vault secret names carry the tenant), and a token endpoint's `error_description` or
 * body may echo tokens or client ids (a host-bound OAuthTokenClient may put them in its messages).
 */
export function describeRefreshError(e: unknown): string {
  let text = e instanceof TokenEndpointFailure ? `TokenEndpointFailure(${e.kind})` : describeError(e);
  let cur: unknown = e;
  for (let depth = 0; cur instanceof Error && depth < 4; depth++, cur = cur.cause) {
    const details = cur instanceof OAuthRefreshFailedError || cur instanceof TokenEndpointFailure ? cur.details : undefined;
    if (!details) continue;
    if (details.status !== undefined) text += `, HTTP ${details.status}`;
    const oauthError = reportedOAuthError(details.oauthError);
    if (oauthError) text += `, OAuth error ${oauthError}`;
    break;
  }
  return text;
}


/** Compares two secrets in constant time (over their hashes, so lengths may differ). */
export function sameSecret(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a).digest();
  const hb = createHash('sha256').update(b).digest();
  return timingSafeEqual(ha, hb);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
