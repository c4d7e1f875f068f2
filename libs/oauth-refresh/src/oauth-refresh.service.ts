import { createHash, timingSafeEqual } from 'node:crypto';
import { Inject, Injectable, Logger, Optional } from '@nestjs/common';
import { EventEmitter2 } from '@nestjs/event-emitter';
import { AuditAction, AuditResult, AuditService } from '@app/audit';
import { Clock, CredentialVaultError, DistributedLock, LockTimeoutError, OperationContext, systemContext } from '@app/common';
import { OAuthTokenClient, OAuthTokenSet, TokenEndpointFailure } from './client/oauth-token-client';
import {
  OAuthAccessTokenExpiredError,
  OAuthConnectionNotFoundError,
  OAuthInvalidTokenResponseError,
  OAuthReauthRequiredError,
  OAuthRefreshFailedError,
  OAuthRefreshValidationError,
} from './errors/oauth-refresh.errors';
import { OAuthRefreshedEvent, OAuthRefreshEvents, OAuthRefreshFailedEvent, OAuthRefreshTrigger } from './events/oauth-refresh.events';
import { OAUTH_REFRESH_CLOCK, OAUTH_REFRESH_LOCK, OAUTH_REFRESH_RESOLVED_OPTIONS, PROACTIVE_REFRESH_LOCK } from './oauth-refresh.constants';
import type { ResolvedOAuthRefreshOptions } from './oauth-refresh.options';
import type { ResolvedOAuthProvider } from './providers/oauth-provider.config';
import { OAuthProviderRegistry } from './providers/oauth-provider.registry';
import { RefreshCooldowns, effectiveRefreshWindowMs, remainingMs, retryDelayMs } from './refresh-policy';
import { ConnectionTokens, DuePageCursor, OAuthTokenStore, StaleTokenError, StoredToken, TokenWrite } from './store/oauth-token-store';
import { assertIdentifier } from './validation';

/** Tags written on the access-token credential (metadata only, never a value). */
export const OAUTH_TAGS = { SCOPE: 'oauth.scope', TOKEN_TYPE: 'oauth.token_type' } as const;

/**
 * A token endpoint response as the provider sent it (RFC 6749 §5.1), e.g. oauth4webapi's
 * `TokenEndpointResponse`. `expires_in` may be a number or a numeric string (some providers).
 */
export interface OAuthTokenResponse {
  access_token: string;
  refresh_token?: string;
  expires_in?: number | string;
  /** Some providers (GitHub apps, Microsoft) say when the refresh token dies. */
  refresh_token_expires_in?: number | string;
  scope?: string;
  token_type?: string;
  [extra: string]: unknown;
}

export interface StoredOAuthCredentials {
  accessTokenCredentialId: string;
  /** Absent when neither the response nor an earlier store brought a refresh token. */
  refreshTokenCredentialId?: string;
  expiresAt: Date;
}

export interface GetAccessTokenOptions {
  /** Refresh first when the token is inside its window. Off: the current token, or an error if expired. @default true */
  autoRefresh?: boolean;
  /** The token must stay valid at least this long (overrides the provider's refresh-ahead window). */
  minValidityMs?: number;
}

/** A usable access token. Do not log it. */
export interface AccessTokenResult {
  accessToken: string;
  expiresAt: Date | null;
  credentialId: string;
  /** Value version of the access-token credential. */
  version: number;
  tokenType: string;
}

export interface ProactiveRefreshResult {
  /** False when another replica (or run) held the job lock: nothing was done here. */
  acquired: boolean;
  scanned: number;
  refreshed: number;
  /** Already fresh (refreshed elsewhere), unregistered integration, or cooling down. */
  skipped: number;
  failed: number;
}

type RefreshReason = { trigger: OAuthRefreshTrigger; forced: boolean };

/**
 * Keeps OAuth access tokens fresh.
 *
 * - `getAccessToken` serves the stored token while it is valid beyond its refresh-ahead window,
 *   else refreshes first. Concurrent callers of one connection share ONE refresh (single-flight);
 *   replicas serialise on a `DistributedLock` per connection and, once holding it, re-read the
 *   metadata from the database: if another replica refreshed meanwhile (version changed), its
 *   token is used without calling the provider.
 * - A new refresh token is persisted (compare-and-set) BEFORE the new access token is stored or
 *   served; a response without one keeps the stored one.
 * - `invalid_grant` marks the connection `needs_reauth` (event + audit) and every later call fails
 *   fast without contacting the provider until `storeOAuthCredentials` stores new tokens.
 * - Other failures start a per-connection cooldown; the old token is served while still valid.
 */
@Injectable()
export class OAuthRefreshService {
  private readonly logger = new Logger(OAuthRefreshService.name);
  private readonly inflight = new Map<string, Promise<AccessTokenResult>>();
  /** Rotated refresh tokens the store refused to write, by connection (used by the next attempt). */
  private readonly unsavedRefreshTokens = new Map<string, { basedOnVersion: number; token: string }>();
  /** Metadata loads in flight per connection: a burst of callers shares one database read. */
  private readonly loads = new Map<string, Promise<ConnectionTokens>>();
  private readonly cooldowns: RefreshCooldowns;

  constructor(
    private readonly registry: OAuthProviderRegistry,
    private readonly store: OAuthTokenStore,
    private readonly client: OAuthTokenClient,
    private readonly audit: AuditService,
    @Inject(OAUTH_REFRESH_LOCK) private readonly lock: DistributedLock,
    @Inject(OAUTH_REFRESH_CLOCK) private readonly clock: Clock,
    @Inject(OAUTH_REFRESH_RESOLVED_OPTIONS) private readonly options: ResolvedOAuthRefreshOptions,
    @Optional() private readonly events?: EventEmitter2,
  ) {
    this.cooldowns = new RefreshCooldowns(options.failureCooldownMs, options.maxFailureCooldownMs);
  }

  // ───────────────────────────── public API ─────────────────────────────

  /**
   * Stores the tokens of a token response (authorization-code grant, or any grant the host ran):
   * the access token with its expiry (`expires_in`, else the provider's default lifetime) and the
   * refresh token. On an existing connection both become new versions (which also clears
   * `needs_reauth`); a response without `refresh_token` keeps the stored one. Scope and token type
   * go to metadata tags.
   */
  async storeOAuthCredentials(ctx: OperationContext, integrationId: string, connectionId: string, tokenResponse: OAuthTokenResponse): Promise<StoredOAuthCredentials> {
    this.assertArgs(ctx, integrationId, connectionId);
    const provider = this.registry.get(ctx.tenantId, integrationId);
    const tokens = normaliseTokenResponse(tokenResponse);
    const key = connectionKey(ctx.tenantId, integrationId, connectionId);
    const saved = await this.lock.run(
      lockName(key),
      () => {
        const now = this.clock.now();
        return this.store.save(ctx, integrationId, connectionId, this.accessWrite(provider, tokens, now), tokens.refreshToken ? this.refreshWrite(tokens, now) : undefined);
      },
      { timeoutMs: this.options.lockTimeoutMs },
    );
    this.cooldowns.clear(key);
    this.loads.delete(key); // callers from now on must see the new tokens
    this.unsavedRefreshTokens.delete(key);
    if (!saved.access?.expiresAt) throw new Error('token store returned no access token'); // contract violation
    this.logger.log(`stored OAuth tokens of connection ${connectionId} (tenant ${ctx.tenantId}, integration ${integrationId})`);
    return {
      accessTokenCredentialId: saved.access.credentialId,
      ...(saved.refresh ? { refreshTokenCredentialId: saved.refresh.credentialId } : {}),
      expiresAt: saved.access.expiresAt,
    };
  }

  /** An access token valid for at least the refresh-ahead window (or `minValidityMs`), refreshing first when needed. */
  async getAccessToken(ctx: OperationContext, integrationId: string, connectionId: string, options: GetAccessTokenOptions = {}): Promise<AccessTokenResult> {
    this.assertArgs(ctx, integrationId, connectionId);
    const { autoRefresh = true, minValidityMs } = options;
    if (minValidityMs !== undefined && !(Number.isFinite(minValidityMs) && minValidityMs >= 0)) {
      throw new OAuthRefreshValidationError('minValidityMs must be a number of milliseconds ≥ 0', 'minValidityMs');
    }
    const provider = this.registry.get(ctx.tenantId, integrationId);
    const tokens = await this.loadShared(ctx, integrationId, connectionId);
    const access = this.requireUsable(tokens, integrationId, connectionId);
    const now = this.clock.now();
    const needed = minValidityMs ?? effectiveRefreshWindowMs(access, provider.refreshAheadMs);
    const left = remainingMs(access, now);
    if (left > needed) return this.serve(ctx, access);
    if (!autoRefresh) {
      if (left > 0) return this.serve(ctx, access);
      throw new OAuthAccessTokenExpiredError(integrationId, connectionId, access.expiresAt!);
    }
    return this.refreshOrServe(ctx, provider, connectionId, tokens, access, { trigger: 'on_demand', forced: false }, needed);
  }

  /**
   * The provider's API answered 401 to this connection's access token: force one refresh. When
   * `rejectedAccessToken` is given and is no longer the stored token (someone already replaced it),
   * nothing is refreshed and the current token is returned. Concurrent reports share one refresh.
   */
  async reportTokenRejected(ctx: OperationContext, integrationId: string, connectionId: string, rejectedAccessToken?: string): Promise<AccessTokenResult> {
    this.assertArgs(ctx, integrationId, connectionId);
    const provider = this.registry.get(ctx.tenantId, integrationId);
    const tokens = await this.loadShared(ctx, integrationId, connectionId);
    const access = this.requireUsable(tokens, integrationId, connectionId);
    if (rejectedAccessToken !== undefined) {
      const current = await this.serve(ctx, access);
      if (!sameSecret(current.accessToken, rejectedAccessToken)) return current;
    }
    this.logger.log(`access token of connection ${connectionId} (tenant ${ctx.tenantId}, integration ${integrationId}) was rejected; forcing a refresh`);
    if (!tokens.refresh) throw new OAuthReauthRequiredError(integrationId, connectionId, 'the access token was rejected and no refresh token is stored');
    return this.refresh(ctx, provider, connectionId, access, { trigger: 'token_rejected', forced: true }, 0);
  }

  /**
   * The proactive job's work: refreshes every active access token (all tenants) that is inside its
   * refresh-ahead window, in pages of `proactive.batchSize` with `proactive.concurrency` refreshes
   * at once, under the lock `oauth-proactive-refresh` (one replica at a time). Never throws for
   * one connection's failure.
   */
  async refreshExpiringTokens(): Promise<ProactiveRefreshResult> {
    const r = await this.lock.tryRun(PROACTIVE_REFRESH_LOCK, () => this.runProactive());
    if (!r.acquired) {
      this.logger.debug('proactive refresh is running elsewhere; skipped');
      return { acquired: false, scanned: 0, refreshed: 0, skipped: 0, failed: 0 };
    }
    return r.value;
  }

  // ───────────────────────────── refresh core ─────────────────────────────

  private async refreshOrServe(
    ctx: OperationContext,
    provider: ResolvedOAuthProvider,
    connectionId: string,
    tokens: ConnectionTokens,
    access: StoredToken,
    reason: RefreshReason,
    needed: number,
  ): Promise<AccessTokenResult> {
    const now = this.clock.now();
    const stillValid = remainingMs(access, now) > 0;
    if (!tokens.refresh) {
      if (stillValid) return this.serve(ctx, access);
      throw new OAuthReauthRequiredError(provider.integrationId, connectionId, 'the access token expired and no refresh token is stored');
    }
    try {
      return await this.refresh(ctx, provider, connectionId, access, reason, needed);
    } catch (e) {
      // Transient trouble (provider down, cooling down, lock busy): the old token is still good.
      if (stillValid && isRetryableRefreshFailure(e) && remainingMs(access, this.clock.now()) > 0) {
        this.logger.warn(`serving the current access token of connection ${connectionId} (tenant ${ctx.tenantId}) until it expires: ${(e as Error).message}`);
        return this.serve(ctx, access);
      }
      throw e;
    }
  }

  /** Single-flight per connection in this process. */
  private refresh(
    ctx: OperationContext,
    provider: ResolvedOAuthProvider,
    connectionId: string,
    seen: StoredToken,
    reason: RefreshReason,
    needed: number,
  ): Promise<AccessTokenResult> {
    const key = connectionKey(ctx.tenantId, provider.integrationId, connectionId);
    const running = this.inflight.get(key);
    if (running) return running;
    const cooling = this.cooldowns.activeUntil(key, this.clock.now());
    if (cooling) {
      return Promise.reject(
        new OAuthRefreshFailedError(`refresh of connection "${connectionId}" is cooling down after a failure until ${cooling.toISOString()}`, {
          integrationId: provider.integrationId,
          connectionId,
          transient: true,
          retryAfter: cooling,
        }),
      );
    }
    const flight = this.lock
      .run(lockName(key), () => this.refreshHoldingLock(ctx, provider, connectionId, key, seen, reason, needed), { timeoutMs: this.options.lockTimeoutMs })
      .catch((e: unknown) => {
        if (e instanceof LockTimeoutError) {
          throw new OAuthRefreshFailedError(
            `another replica has been refreshing connection "${connectionId}" for over ${this.options.lockTimeoutMs} ms`,
            { integrationId: provider.integrationId, connectionId, transient: true },
            { cause: e },
          );
        }
        throw e;
      })
      .finally(() => {
        if (this.inflight.get(key) === flight) this.inflight.delete(key);
        this.loads.delete(key); // a load started before the refresh must not be joined after it
      });
    this.inflight.set(key, flight);
    return flight;
  }

  private async refreshHoldingLock(
    ctx: OperationContext,
    provider: ResolvedOAuthProvider,
    connectionId: string,
    key: string,
    seen: StoredToken,
    reason: RefreshReason,
    needed: number,
  ): Promise<AccessTokenResult> {
    // Fencing: the metadata may have moved while we waited for the lock.
    const fresh = await this.store.load(ctx, provider.integrationId, connectionId);
    const access = this.requireUsable(fresh, provider.integrationId, connectionId);
    if (access.version !== seen.version) return this.serve(ctx, access);
    if (!reason.forced && remainingMs(access, this.clock.now()) > needed) return this.serve(ctx, access);
    const refresh = fresh.refresh;
    if (!refresh) throw new OAuthReauthRequiredError(provider.integrationId, connectionId, 'no refresh token is stored');

    const started = Date.now();
    // A rotated refresh token we could not write last time is the live one (the stored one is spent).
    const unsaved = this.unsavedRefreshTokens.get(key);
    const pending = unsaved && unsaved.basedOnVersion === refresh.version ? unsaved.token : undefined;
    const refreshToken = pending ?? (await this.store.readValue(ctx, refresh));
    const secret = provider.clientSecret ? await this.store.readClientSecret(ctx, provider.clientSecret) : undefined;
    let tokens: OAuthTokenSet;
    let attempts = 0;
    try {
      ({ tokens, attempts } = await this.callWithRetries(provider, refreshToken, secret));
    } catch (e) {
      throw await this.onRefreshFailure(ctx, provider, connectionId, key, access, refresh, reason, e, started);
    }

    const now = this.clock.now();
    const nextRefreshToken = tokens.refreshToken ?? pending;
    const rotated = nextRefreshToken !== undefined && (pending !== undefined || !sameSecret(nextRefreshToken, refreshToken));
    let newRefresh: StoredToken | undefined = refresh;
    // 1) The rotated refresh token first: the old one is already spent at the provider.
    if (rotated) {
      try {
        newRefresh = await this.persist(ctx, refresh, this.refreshWrite({ ...tokens, refreshToken: nextRefreshToken }, now), provider, connectionId);
      } catch (e) {
        // Keep it in memory so the next attempt uses it rather than the spent stored one.
        this.unsavedRefreshTokens.set(key, { basedOnVersion: refresh.version, token: nextRefreshToken });
        this.logger.error(`could not store the rotated refresh token of connection ${connectionId} (tenant ${ctx.tenantId}); kept in memory for the next attempt: ${(e as Error).message}`);
        throw new OAuthRefreshFailedError(
          `the rotated refresh token of connection "${connectionId}" could not be stored; the next attempt uses it`,
          { integrationId: provider.integrationId, connectionId, transient: true },
          { cause: e },
        );
      }
      this.unsavedRefreshTokens.delete(key);
      if (!newRefresh) return this.serveCurrent(ctx, provider.integrationId, connectionId);
    }
    // 2) Then the access token.
    const newAccess = await this.persist(ctx, access, this.accessWrite(provider, tokens, now), provider, connectionId);
    if (!newAccess) return this.serveCurrent(ctx, provider.integrationId, connectionId);
    this.cooldowns.clear(key);

    const result: AccessTokenResult = {
      accessToken: tokens.accessToken,
      expiresAt: newAccess.expiresAt,
      credentialId: newAccess.credentialId,
      version: newAccess.version,
      tokenType: tokens.tokenType,
    };
    this.emit<OAuthRefreshedEvent>(OAuthRefreshEvents.REFRESHED, {
      tenantId: ctx.tenantId,
      integrationId: provider.integrationId,
      connectionId,
      accessCredentialId: newAccess.credentialId,
      refreshCredentialId: newRefresh.credentialId,
      version: newAccess.version,
      expiresAt: newAccess.expiresAt!,
      refreshTokenRotated: rotated,
      trigger: reason.trigger,
      attempts,
      correlationId: ctx.correlationId,
      occurredAt: now,
    });
    await this.auditRefresh(ctx, newAccess.credentialId, AuditResult.SUCCESS, started, undefined, {
      integrationId: provider.integrationId,
      connectionId,
      version: newAccess.version,
      refreshTokenRotated: rotated,
      trigger: reason.trigger,
      attempts,
    });
    this.logger.log(
      `refreshed access token of connection ${connectionId} (tenant ${ctx.tenantId}, integration ${provider.integrationId}) → v${newAccess.version}${rotated ? ', refresh token rotated' : ''}`,
    );
    return result;
  }

  private async callWithRetries(provider: ResolvedOAuthProvider, refreshToken: string, secret: string | undefined): Promise<{ tokens: OAuthTokenSet; attempts: number }> {
    const { maxAttempts } = this.options.retry;
    for (let attempt = 1; ; attempt++) {
      try {
        const tokens = await this.client.refresh(provider, refreshToken, secret);
        validateTokenSet(tokens);
        return { tokens, attempts: attempt };
      } catch (e) {
        const transient = e instanceof TokenEndpointFailure && e.kind === 'transient';
        if (!transient || attempt >= maxAttempts) throw Object.assign(e as object, { attempts: attempt });
        const delay = retryDelayMs(attempt + 1, this.options.retry, e.details.retryAfterMs);
        this.logger.warn(`token endpoint of "${provider.integrationId}" failed (attempt ${attempt}/${maxAttempts}): ${e.message}; retrying in ${Math.round(delay)} ms`);
        await sleep(delay);
      }
    }
  }

  /**
   * Rotates one token with compare-and-set. If the row changed but still holds the same value
   * version (only metadata moved), retries once on the new row version. If another writer stored a
   * different value (new tokens from a reconnect), ours is dropped: returns undefined.
   */
  private async persist(ctx: OperationContext, token: StoredToken, write: TokenWrite, provider: ResolvedOAuthProvider, connectionId: string): Promise<StoredToken | undefined> {
    try {
      return await this.store.rotate(ctx, token, { ...write, expectedRowVersion: token.rowVersion });
    } catch (e) {
      if (!(e instanceof StaleTokenError)) throw e;
    }
    const again = await this.store.load(ctx, provider.integrationId, connectionId);
    const current = again.access?.credentialId === token.credentialId ? again.access : again.refresh?.credentialId === token.credentialId ? again.refresh : undefined;
    if (current && current.version === token.version) {
      return this.store.rotate(ctx, current, { ...write, expectedRowVersion: current.rowVersion });
    }
    this.logger.warn(`credential ${token.credentialId} got a new value from another writer during a refresh; keeping that one`);
    return undefined;
  }

  private async onRefreshFailure(
    ctx: OperationContext,
    provider: ResolvedOAuthProvider,
    connectionId: string,
    key: string,
    access: StoredToken,
    refresh: StoredToken,
    reason: RefreshReason,
    e: unknown,
    started: number,
  ): Promise<CredentialVaultError> {
    const failure = e instanceof TokenEndpointFailure ? e : undefined;
    const now = this.clock.now();
    let error: CredentialVaultError;
    let consecutiveFailures = 0;
    let retryAfter: Date | undefined;
    if (failure?.kind === 'invalid_grant') {
      error = new OAuthReauthRequiredError(provider.integrationId, connectionId, 'the provider refused the refresh token (invalid_grant)', { cause: e });
      try {
        await this.store.markReauthRequired(ctx, [refresh, access]);
      } catch (markError) {
        this.logger.error(`could not mark connection ${connectionId} (tenant ${ctx.tenantId}) needs_reauth: ${(markError as Error).message}`);
      }
      this.cooldowns.clear(key);
    } else {
      ({ until: retryAfter, failures: consecutiveFailures } = this.cooldowns.recordFailure(key, now));
      const message = failure ? failure.message : `refresh failed: ${e instanceof Error ? e.name : 'error'}`;
      if (failure?.kind === 'invalid_response' || e instanceof OAuthInvalidTokenResponseError) {
        error = e instanceof OAuthInvalidTokenResponseError ? e : new OAuthInvalidTokenResponseError(message, { cause: e });
      } else {
        const transient = !failure || failure.kind === 'transient';
        error = new OAuthRefreshFailedError(
          message,
          { integrationId: provider.integrationId, connectionId, transient, status: failure?.details.status, oauthError: failure?.details.oauthError, retryAfter },
          { cause: e },
        );
      }
    }
    const reauth = error instanceof OAuthReauthRequiredError;
    this.logger[reauth ? 'warn' : 'error'](
      `refresh of connection ${connectionId} (tenant ${ctx.tenantId}, integration ${provider.integrationId}) failed: ${error.message}${reauth ? ' → needs_reauth' : ''}`,
    );
    this.emit<OAuthRefreshFailedEvent>(OAuthRefreshEvents.REFRESH_FAILED, {
      tenantId: ctx.tenantId,
      integrationId: provider.integrationId,
      connectionId,
      accessCredentialId: access.credentialId,
      refreshCredentialId: refresh.credentialId,
      reauthRequired: reauth,
      retryable: error.retryable,
      errorCode: `${error.code}:${error.codeName}`,
      ...(failure?.details.oauthError ? { oauthError: failure.details.oauthError } : {}),
      ...(failure?.details.status !== undefined ? { httpStatus: failure.details.status } : {}),
      consecutiveFailures,
      ...(retryAfter ? { retryAfter } : {}),
      trigger: reason.trigger,
      correlationId: ctx.correlationId,
      occurredAt: now,
    });
    await this.auditRefresh(ctx, access.credentialId, AuditResult.FAILURE, started, `${error.code}:${error.codeName}`, {
      integrationId: provider.integrationId,
      connectionId,
      trigger: reason.trigger,
      reauthRequired: reauth,
      ...(failure?.details.oauthError ? { oauthError: failure.details.oauthError } : {}),
      ...(failure?.details.status !== undefined ? { httpStatus: failure.details.status } : {}),
      attempts: (e as { attempts?: number })?.attempts ?? 1,
    });
    return error;
  }

  // ───────────────────────────── proactive ─────────────────────────────

  private async runProactive(): Promise<ProactiveRefreshResult> {
    const { batchSize, concurrency, maxPerRun } = this.options.proactive;
    const result: ProactiveRefreshResult = { acquired: true, scanned: 0, refreshed: 0, skipped: 0, failed: 0 };
    const horizon = new Date(this.clock.now().getTime() + this.registry.maxRefreshAheadMs());
    let cursor: DuePageCursor | undefined;
    while (result.scanned < maxPerRun) {
      const page = await this.store.listDue(horizon, Math.min(batchSize, maxPerRun - result.scanned), cursor);
      if (page.length === 0) break;
      result.scanned += page.length;
      await forEachLimited(page, concurrency, async (due) => {
        const outcome = await this.proactiveOne(due.tenantId, due.integrationId, due.connectionId);
        result[outcome]++;
      });
      const last = page[page.length - 1];
      cursor = { expiresAt: last.expiresAt, credentialId: last.credentialId };
      if (page.length < batchSize) break;
    }
    if (result.scanned > 0) {
      this.logger.log(`proactive refresh: ${result.refreshed} refreshed, ${result.skipped} skipped, ${result.failed} failed of ${result.scanned}`);
    }
    return result;
  }

  private async proactiveOne(tenantId: string, integrationId: string, connectionId: string): Promise<'refreshed' | 'skipped' | 'failed'> {
    const provider = this.registry.find(tenantId, integrationId);
    if (!provider) return 'skipped';
    const ctx = systemContext(tenantId, PROACTIVE_REFRESH_LOCK);
    const key = connectionKey(tenantId, integrationId, connectionId);
    if (this.cooldowns.activeUntil(key, this.clock.now())) return 'skipped';
    try {
      const tokens = await this.store.load(ctx, integrationId, connectionId);
      const access = tokens.access;
      if (!access || access.reauthRequired || tokens.refresh?.reauthRequired || !tokens.refresh) return 'skipped';
      const needed = effectiveRefreshWindowMs(access, provider.refreshAheadMs);
      if (remainingMs(access, this.clock.now()) > needed) return 'skipped';
      const before = access.version;
      const r = await this.refresh(ctx, provider, connectionId, access, { trigger: 'proactive', forced: false }, needed);
      return r.version !== before ? 'refreshed' : 'skipped';
    } catch (e) {
      this.logger.warn(`proactive refresh of connection ${connectionId} (tenant ${tenantId}, integration ${integrationId}) failed: ${(e as Error).message}`);
      return 'failed';
    }
  }

  // ───────────────────────────── helpers ─────────────────────────────

  /**
   * `store.load`, shared by callers that arrive while one is in flight: it answers with what the
   * database held a moment before they called at worst. Local writes (store, refresh) drop the
   * shared load so no later caller joins a read older than them. The fencing re-read under the lock
   * never goes through here: it always reads the database itself.
   */
  private loadShared(ctx: OperationContext, integrationId: string, connectionId: string): Promise<ConnectionTokens> {
    const key = connectionKey(ctx.tenantId, integrationId, connectionId);
    const running = this.loads.get(key);
    if (running) return running;
    const load = this.store.load(ctx, integrationId, connectionId).finally(() => {
      if (this.loads.get(key) === load) this.loads.delete(key);
    });
    this.loads.set(key, load);
    return load;
  }

  private requireUsable(tokens: ConnectionTokens, integrationId: string, connectionId: string): StoredToken {
    const access = tokens.access;
    if (!access) throw new OAuthConnectionNotFoundError(integrationId, connectionId);
    if (access.reauthRequired || tokens.refresh?.reauthRequired) {
      throw new OAuthReauthRequiredError(integrationId, connectionId, 'the connection is marked needs_reauth; store new tokens with storeOAuthCredentials');
    }
    return access;
  }

  private async serve(ctx: OperationContext, access: StoredToken): Promise<AccessTokenResult> {
    const value = await this.store.readValue(ctx, access);
    return {
      accessToken: value,
      expiresAt: access.expiresAt,
      credentialId: access.credentialId,
      version: access.version,
      tokenType: access.tags[OAUTH_TAGS.TOKEN_TYPE] ?? 'bearer',
    };
  }

  private async serveCurrent(ctx: OperationContext, integrationId: string, connectionId: string): Promise<AccessTokenResult> {
    const tokens = await this.store.load(ctx, integrationId, connectionId);
    return this.serve(ctx, this.requireUsable(tokens, integrationId, connectionId));
  }

  private accessWrite(provider: ResolvedOAuthProvider, tokens: OAuthTokenSet, now: Date): TokenWrite {
    const seconds = tokens.expiresIn ?? provider.defaultExpiresInSeconds;
    const tags: Record<string, string> = { [OAUTH_TAGS.TOKEN_TYPE]: tokens.tokenType.toLowerCase().slice(0, 64) };
    if (tokens.scope !== undefined) tags[OAUTH_TAGS.SCOPE] = tokens.scope.slice(0, 512);
    return { value: tokens.accessToken, expiresAt: new Date(now.getTime() + seconds * 1000), tags };
  }

  private refreshWrite(tokens: OAuthTokenSet, now: Date): TokenWrite {
    return {
      value: tokens.refreshToken!,
      expiresAt: tokens.refreshTokenExpiresIn !== undefined ? new Date(now.getTime() + tokens.refreshTokenExpiresIn * 1000) : null,
    };
  }

  private async auditRefresh(ctx: OperationContext, resource: string, result: AuditResult, started: number, errorCode: string | undefined, details: Record<string, unknown>): Promise<void> {
    try {
      await this.audit.record({ action: AuditAction.REFRESH, context: ctx, resource, result, errorCode, durationMs: Date.now() - started, details });
    } catch (e) {
      this.logger.error(`could not audit a refresh of ${resource}: ${(e as Error).message}`);
    }
  }

  private emit<T>(name: string, payload: T): void {
    if (!this.events) return;
    try {
      this.events.emit(name, payload);
    } catch (e) {
      this.logger.warn(`a listener of ${name} failed: ${(e as Error).message}`);
    }
  }

  private assertArgs(ctx: OperationContext, integrationId: string, connectionId: string): void {
    if (!ctx || typeof ctx !== 'object') throw new OAuthRefreshValidationError('an OperationContext is required', 'ctx');
    assertIdentifier(ctx.tenantId, 'tenantId');
    assertIdentifier(integrationId, 'integrationId');
    assertIdentifier(connectionId, 'connectionId');
  }
}

function connectionKey(tenantId: string, integrationId: string, connectionId: string): string {
  return JSON.stringify([tenantId, integrationId, connectionId]);
}

function lockName(key: string): string {
  return `oauth-refresh:${key}`;
}

function isRetryableRefreshFailure(e: unknown): boolean {
  return e instanceof OAuthRefreshFailedError || e instanceof OAuthInvalidTokenResponseError;
}

function sameSecret(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a).digest();
  const hb = createHash('sha256').update(b).digest();
  return timingSafeEqual(ha, hb);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function forEachLimited<T>(items: T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const runners = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const item = items[next++];
      await work(item);
    }
  });
  await Promise.all(runners);
}

/** A century: longer lifetimes are not lifetimes (and `1e308` seconds is not a date). */
const MAX_LIFETIME_SECONDS = 100 * 365 * 86_400;

function positiveSeconds(v: unknown, field: string): number | undefined {
  if (v === undefined || v === null) return undefined;
  // Numeric strings are decimal only: `0x10` or `1e3` from a provider is a malformed response.
  const n = typeof v === 'string' ? (/^\d{1,12}(\.\d{1,6})?$/.test(v) ? Number(v) : NaN) : v;
  if (typeof n !== 'number' || !Number.isFinite(n) || n <= 0 || n > MAX_LIFETIME_SECONDS) {
    throw new OAuthRefreshValidationError(`${field} must be a positive number of seconds (at most ${MAX_LIFETIME_SECONDS})`, field);
  }
  return n;
}

/** Validates a token response given to storeOAuthCredentials. Messages never include values. */
function normaliseTokenResponse(r: OAuthTokenResponse): OAuthTokenSet {
  if (!r || typeof r !== 'object') throw new OAuthRefreshValidationError('tokenResponse must be a token endpoint response object', 'tokenResponse');
  if (typeof r.access_token !== 'string' || r.access_token.length === 0) {
    throw new OAuthRefreshValidationError('tokenResponse.access_token must be a non-empty string', 'access_token');
  }
  if (r.refresh_token !== undefined && r.refresh_token !== null && (typeof r.refresh_token !== 'string' || r.refresh_token.length === 0)) {
    throw new OAuthRefreshValidationError('tokenResponse.refresh_token must be a non-empty string when present', 'refresh_token');
  }
  if (r.scope !== undefined && typeof r.scope !== 'string') throw new OAuthRefreshValidationError('tokenResponse.scope must be a string', 'scope');
  if (r.token_type !== undefined && typeof r.token_type !== 'string') throw new OAuthRefreshValidationError('tokenResponse.token_type must be a string', 'token_type');
  const expiresIn = positiveSeconds(r.expires_in, 'expires_in');
  const refreshTokenExpiresIn = positiveSeconds(r.refresh_token_expires_in, 'refresh_token_expires_in');
  return {
    accessToken: r.access_token,
    ...(typeof r.refresh_token === 'string' ? { refreshToken: r.refresh_token } : {}),
    ...(expiresIn !== undefined ? { expiresIn } : {}),
    ...(refreshTokenExpiresIn !== undefined ? { refreshTokenExpiresIn } : {}),
    ...(r.scope !== undefined ? { scope: r.scope } : {}),
    tokenType: r.token_type ?? 'bearer',
  };
}

function validateTokenSet(t: OAuthTokenSet): void {
  if (!t || typeof t.accessToken !== 'string' || t.accessToken.length === 0) {
    throw new OAuthInvalidTokenResponseError('the token endpoint returned no access_token');
  }
  if (t.expiresIn !== undefined && !(Number.isFinite(t.expiresIn) && t.expiresIn > 0)) {
    throw new OAuthInvalidTokenResponseError('the token endpoint returned an invalid expires_in');
  }
}
