import { Inject, Injectable, Logger, Optional } from '@nestjs/common';
import { EventEmitter2 } from '@nestjs/event-emitter';
import { AuditService } from '@app/audit';
import { Clock, DistributedLock, LockLeases, LockTimeoutError, OperationContext } from '@app/common';
import { OAuthTokenClient } from './client/oauth-token-client';
import { OAuthAccessTokenExpiredError, OAuthClientRejectedError, OAuthReauthRequiredError, OAuthRefreshConfigurationError, OAuthRefreshFailedError, OAuthRefreshValidationError } from './errors/oauth-refresh.errors';
import { OAUTH_REFRESH_CLOCK, OAUTH_REFRESH_LEASES, OAUTH_REFRESH_LOCK, OAUTH_REFRESH_RESOLVED_OPTIONS } from './oauth-refresh.constants';
import type { ResolvedOAuthRefreshOptions } from './oauth-refresh.options';
import type { ResolvedOAuthProvider } from './providers/oauth-provider.config';
import { OAuthProviderRegistry } from './providers/oauth-provider.registry';
import { ProactiveRefreshResult, ProactiveRefreshRunner } from './refresh/proactive-refresh-runner';
import { clientRejectedError, isRetryableRefreshFailure, RefreshFailureHandler } from './refresh/refresh-failure-handler';
import { AccessTokenResult, answerHoldingLock, connectionKey, describeRefreshError, lockName, missingRefreshToken, RefreshDeps, RefreshReason, requireUsable, sameSecret, serveToken } from './refresh/refresh-support';
import { RefreshLeases } from './refresh/refresh-leases';
import { RotatedRefreshTokens } from './refresh/rotated-refresh-tokens';
import { TokenRefresher } from './refresh/token-refresher';
import { RefreshCooldownGate } from './refresh/refresh-cooldown-gate';
import { ServingWarnings } from './refresh/serving-warnings';
import { effectiveRefreshWindowMs, remainingMs, requestedValidityMs } from './refresh-policy';
import { OAuthRefreshCooldowns } from './store/oauth-refresh-cooldowns';
import { ConnectionTokens, OAuthTokenStore, StoredToken } from './store/oauth-token-store';
import { accessWrite, normaliseTokenResponse, OAuthTokenResponse, refreshWrite } from './token/token-response';
import { assertIdentifier, assertNewIdentifier } from './validation';

export interface StoredOAuthCredentials {
  accessTokenCredentialId: string;
  /** Absent when neither the response nor an earlier store brought a refresh token. */
  refreshTokenCredentialId?: string;
  expiresAt: Date;
}

export interface GetAccessTokenOptions {
  /** Refresh first when the token is inside its window. Off: the current token, or an error if expired. @default true */
  autoRefresh?: boolean;
  /**
   * The token must stay valid at least this long (overrides the provider's refresh-ahead window). One at or beyond
   * the lifetime of the connection's tokens, which no refresh can meet, leaves the window in force.
   */
  minValidityMs?: number;
}

/**
 * Keeps OAuth access tokens fresh. A facade: the refresh itself is `TokenRefresher`, the durability
 * of rotated refresh tokens `RotatedRefreshTokens`, failures `RefreshFailureHandler`, the cron job's
 * scan `ProactiveRefreshRunner`, token responses `token/token-response`.
 *
 * - `getAccessToken` serves the stored token while it is valid beyond its refresh-ahead window,
 *   else refreshes first. Concurrent callers of one connection share ONE refresh (single-flight);
 *   replicas serialise on a `DistributedLock` per connection and, once holding it, re-read the
 *   metadata from the database: if another replica refreshed meanwhile (version changed), its
 *   token is used without calling the provider. The lock is the fast path: the guard against
 *   presenting a refresh token twice is the connection's refresh-in-flight lease (`RefreshLeases`),
 *   which outlives a lock lost with its database session.
 * - A new refresh token is made durable (compare-and-set, else a pending refresh token) BEFORE the
 *   new access token is stored or served; a response without one keeps the stored one.
 * - `invalid_grant` marks the connection `needs_reauth` (event + audit) and every later call fails
 *   fast without contacting the provider until `storeOAuthCredentials` stores new tokens.
 * - Other failures start a per-connection cooldown (in this process, or on every replica when the host
 *   provides a shared `OAuthRefreshCooldowns`); the old token is served while still valid.
 */
@Injectable()
export class OAuthRefreshService {
  private readonly logger = new Logger(OAuthRefreshService.name);
  private readonly inflight = new Map<string, Promise<AccessTokenResult>>();
  /** Metadata loads in flight per connection: a burst of callers shares one database read. */
  private readonly loads = new Map<string, Promise<ConnectionTokens>>();
  private readonly cooldowns: RefreshCooldownGate;
  private readonly rotated: RotatedRefreshTokens;
  private readonly refresher: TokenRefresher;
  private readonly leases: RefreshLeases;
  private readonly proactive: ProactiveRefreshRunner;
  private readonly servingWarnings = new ServingWarnings();

  constructor(
    private readonly registry: OAuthProviderRegistry,
    private readonly store: OAuthTokenStore,
    client: OAuthTokenClient,
    audit: AuditService,
    @Inject(OAUTH_REFRESH_LOCK) private readonly lock: DistributedLock,
    @Inject(OAUTH_REFRESH_CLOCK) private readonly clock: Clock,
    @Inject(OAUTH_REFRESH_RESOLVED_OPTIONS) private readonly options: ResolvedOAuthRefreshOptions,
    @Optional() events?: EventEmitter2,
    /** Shared cooldowns from the host (e.g. Redis); in process without one. */
    @Optional() sharedCooldowns?: OAuthRefreshCooldowns,
    /** Refresh-in-flight leases in the database (none without a DataSource). */
    @Optional() @Inject(OAUTH_REFRESH_LEASES) leases?: LockLeases | null,
  ) {
    this.cooldowns = new RefreshCooldownGate(sharedCooldowns, { baseMs: options.failureCooldownMs, maxMs: options.maxFailureCooldownMs }, this.logger);
    // The parts are plain classes built here, so the service's providers (and tests' modules) stay as they were.
    const deps: RefreshDeps = { registry, store, client, audit, lock, leases: leases ?? undefined, clock, options, events, logger: this.logger, cooldowns: this.cooldowns };
    this.rotated = new RotatedRefreshTokens(deps);
    this.leases = new RefreshLeases(deps);
    this.refresher = new TokenRefresher(deps, this.rotated, new RefreshFailureHandler(deps), this.leases);
    this.proactive = new ProactiveRefreshRunner(deps, (...args) => this.refresh(...args));
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
    // A connect names ids as a store does (a reconnect too); reads, refreshes and deletes still take an older such connection.
    assertNewIdentifier(integrationId, 'integrationId');
    assertNewIdentifier(connectionId, 'connectionId');
    const provider = this.registry.get(ctx.tenantId, integrationId);
    const tokens = normaliseTokenResponse(tokenResponse);
    const key = connectionKey(ctx.tenantId, integrationId, connectionId);
    const saved = await this.lock.run(
      lockName(key),
      async () => {
        const now = this.clock.now();
        const refresh = tokens.refreshToken !== undefined ? refreshWrite({ ...tokens, refreshToken: tokens.refreshToken }, now) : undefined;
        const written = await this.store.save(ctx, integrationId, connectionId, accessWrite(provider, tokens, now), refresh);
        // A refresh in flight (its holder's lock lost, or crashed) spends a refresh token no longer stored: its lease guards nothing now.
        if (refresh) await this.leases.clear(key);
        return written;
      },
      { timeoutMs: this.options.lockTimeoutMs },
    );
    await this.cooldowns.clear(key);
    this.loads.delete(key); // callers from now on must see the new tokens
    this.rotated.forgetHeld(key);
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
    const access = requireUsable(tokens, integrationId, connectionId);
    const now = this.clock.now();
    const window = effectiveRefreshWindowMs(access, provider.refreshAheadMs);
    const needed = minValidityMs === undefined ? window : requestedValidityMs(access, minValidityMs, window);
    const left = remainingMs(access, now);
    if (left > needed) return serveToken(this.store, ctx, access);
    if (!autoRefresh) {
      if (left > 0) return serveToken(this.store, ctx, access);
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
    // Checked before any work: null (a JSON body's `"accessToken": null`) reached the hash as a TypeError, a 500.
    if (rejectedAccessToken !== undefined && typeof rejectedAccessToken !== 'string') {
      throw new OAuthRefreshValidationError('rejectedAccessToken must be the access token as a string, or left out', 'rejectedAccessToken');
    }
    const provider = this.registry.get(ctx.tenantId, integrationId);
    const tokens = await this.loadShared(ctx, integrationId, connectionId);
    const access = requireUsable(tokens, integrationId, connectionId);
    if (rejectedAccessToken !== undefined) {
      const current = await serveToken(this.store, ctx, access);
      if (!sameSecret(current.accessToken, rejectedAccessToken)) return current;
    }
    this.logger.log(`access token of connection ${connectionId} (tenant ${ctx.tenantId}, integration ${integrationId}) was rejected; forcing a refresh`);
    const missing = missingRefreshToken(tokens, this.clock.now());
    if (missing) throw new OAuthReauthRequiredError(integrationId, connectionId, `the access token was rejected and ${missing}`);
    return this.refresh(ctx, provider, connectionId, access, { trigger: 'token_rejected', forced: true }, 0);
  }

  /**
   * The proactive job's work: refreshes every active access token (all tenants) that is inside its
   * refresh-ahead window, in pages of `proactive.batchSize` with `proactive.concurrency` refreshes
   * at once, under the lock `oauth-proactive-refresh` (one replica at a time). Never throws for
   * one connection's failure; rejects with `LockLostError` (9003) when the lock is lost mid-run, after
   * the refreshes in flight and before any other (the next run refreshes the rest).
   */
  refreshExpiringTokens(): Promise<ProactiveRefreshResult> {
    return this.proactive.run();
  }

  // ───────────────────────────── coordination ─────────────────────────────

  private async refreshOrServe(
    ctx: OperationContext,
    provider: ResolvedOAuthProvider,
    connectionId: string,
    tokens: ConnectionTokens,
    access: StoredToken,
    reason: RefreshReason,
    needed: number,
  ): Promise<AccessTokenResult> {
    const stillValid = remainingMs(access, this.clock.now()) > 0;
    const missing = missingRefreshToken(tokens, this.clock.now());
    if (missing) {
      if (stillValid) return serveToken(this.store, ctx, access);
      throw new OAuthReauthRequiredError(provider.integrationId, connectionId, `the access token expired and ${missing}`);
    }
    try {
      return await this.refresh(ctx, provider, connectionId, access, reason, needed);
    } catch (e) {
      // Transient trouble (provider down, cooling down, lock busy), or the provider's configuration (its client secret
      // missing or revoked, or refused by the provider: an operator's fix, no reason to fail the caller first): the old token is still good.
      const configuration = e instanceof OAuthRefreshConfigurationError || e instanceof OAuthClientRejectedError;
      if (stillValid && (isRetryableRefreshFailure(e) || configuration) && remainingMs(access, this.clock.now()) > 0) {
        const reason = describeRefreshError(e);
        const repeats = this.servingWarnings.next(connectionKey(ctx.tenantId, provider.integrationId, connectionId), reason, this.clock.now().getTime());
        if (repeats !== undefined) this.logger.warn(`serving the current access token of connection ${connectionId} (tenant ${ctx.tenantId}) until it expires: ${reason}${repeats}`);
        return serveToken(this.store, ctx, access);
      }
      throw e;
    }
  }

  /** Single-flight per connection in this process, then the connection's lock across replicas. */
  private refresh(ctx: OperationContext, provider: ResolvedOAuthProvider, connectionId: string, seen: StoredToken, reason: RefreshReason, needed: number): Promise<AccessTokenResult> {
    const key = connectionKey(ctx.tenantId, provider.integrationId, connectionId);
    const running = this.inflight.get(key);
    if (running) return running;
    // The cooldown is checked inside the flight: callers arriving meanwhile join it, whatever it answers.
    const flight = this.cooldowns
      .activeCooldown(key, this.clock.now())
      .then((active) => {
        // After a refusal of the OAuth client (its cause kept with the cooldown, on every replica): the same answer, not a passing outage.
        if (active?.cause) throw clientRejectedError(active.cause, provider.integrationId, connectionId, active.until);
        const cooling = active?.until;
        if (cooling) {
          throw new OAuthRefreshFailedError(`the refresh of this connection is cooling down after a failure until ${cooling.toISOString()}`, {
            integrationId: provider.integrationId,
            connectionId,
            transient: true,
            retryAfter: cooling,
          });
        }
        return answerHoldingLock(this.lock, lockName(key), this.options.lockTimeoutMs, (keepLock) =>
          this.refresher.refreshHoldingLock({ ctx, provider, connectionId, key, seen, reason, needed, keepLock }),
        );
      })
      .catch((e: unknown) => {
        if (e instanceof LockTimeoutError) {
          throw new OAuthRefreshFailedError(
            `another refresh of this connection (on this replica or another; it may be awaiting a late answer of the token endpoint) has held its lock for over ${this.options.lockTimeoutMs} ms`,
            { integrationId: provider.integrationId, connectionId, transient: true, inFlight: true },
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

  private assertArgs(ctx: OperationContext, integrationId: string, connectionId: string): void {
    if (!ctx || typeof ctx !== 'object') throw new OAuthRefreshValidationError('an OperationContext is required', 'ctx');
    assertIdentifier(ctx.tenantId, 'tenantId');
    assertIdentifier(integrationId, 'integrationId');
    assertIdentifier(connectionId, 'connectionId');
  }
}
