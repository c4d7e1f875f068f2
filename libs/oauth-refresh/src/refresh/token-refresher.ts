import { AuditResult } from '@app/audit';
import type { CredentialVaultError, OperationContext } from '@app/common';
import { CredentialValidationError } from '@app/credentials';
import { OAuthTokenSet, TokenEndpointFailure } from '../client/oauth-token-client';
import { OAuthInvalidTokenResponseError, OAuthReauthRequiredError, OAuthRefreshFailedError } from '../errors/oauth-refresh.errors';
import { OAuthRefreshedEvent, OAuthRefreshEvents } from '../events/oauth-refresh.events';
import type { ResolvedOAuthProvider } from '../providers/oauth-provider.config';
import { remainingMs, retryDelayMs } from '../refresh-policy';
import type { ConnectionTokens, StoredToken } from '../store/oauth-token-store';
import { accessWrite, refreshWrite, validateTokenSet } from '../token/token-response';
import { ClientSecretReader } from './client-secret-reader';
import { RefreshFailureHandler } from './refresh-failure-handler';
import type { RefreshLeases } from './refresh-leases';
import {
  AccessTokenResult,
  auditRefresh,
  describeRefreshError,
  emitEvent,
  missingRefreshToken,
  persistToken,
  RefreshDeps,
  RefreshReason,
  requireUsable,
  sameSecret,
  serveCurrent,
  serveToken,
  sleep,
} from './refresh-support';
import { Connection, LiveRefreshToken, RotatedRefreshTokens } from './rotated-refresh-tokens';

/** One refresh of one connection. */
export interface RefreshRequest {
  ctx: OperationContext;
  provider: ResolvedOAuthProvider;
  connectionId: string;
  key: string;
  /** The access token the caller decided to refresh. */
  seen: StoredToken;
  reason: RefreshReason;
  /** Validity (ms) the caller needs; a token with more is served without a refresh. */
  needed: number;
  /** Keeps the connection's lock held until `work` settles, after the caller was answered. */
  keepLock: (work: Promise<unknown>) => void;
}

/** What a refresh knows between its token-endpoint call and storing the answer. */
interface Exchange {
  r: RefreshRequest;
  connection: Connection;
  fresh: ConnectionTokens;
  access: StoredToken;
  refresh: StoredToken;
  live: LiveRefreshToken;
  started: number;
}

/** A token-endpoint request past its timeout, still running: `failure` is what the caller is told now. */
class LateAnswer extends Error {
  constructor(
    readonly answer: Promise<OAuthTokenSet>,
    readonly failure: TokenEndpointFailure,
    readonly attempts: number,
  ) {
    super('the token endpoint did not answer in time');
    this.name = 'LateAnswer';
    Object.assign(failure, { attempts });
  }
}

/**
 * The refresh itself, run while holding the connection's lock: re-read (fencing), the connection's
 * refresh-in-flight lease (`RefreshLeases`), the token-endpoint call with retries, the rotated refresh token made durable BEFORE the new access token is written
 * or served, then the success event and audit row. Failures go to the RefreshFailureHandler.
 */
export class TokenRefresher {
  private readonly secrets: ClientSecretReader;

  constructor(
    private readonly deps: RefreshDeps,
    private readonly rotated: RotatedRefreshTokens,
    private readonly failures: RefreshFailureHandler,
    private readonly leases: RefreshLeases,
  ) {
    this.secrets = new ClientSecretReader(deps);
  }

  /**
   * The client secret. A configuration that keeps it from being used (OAUTH_REFRESH_CONFIGURATION) is a failed refresh
   * like another (logged, emitted, audited) when it starts a cooldown of the reference; meanwhile it is thrown unreported.
   */
  private async clientSecret(r: RefreshRequest, current: { access: StoredToken; refresh: StoredToken }): Promise<string> {
    const started = Date.now();
    const read = await this.secrets.read(r.ctx, r.provider.clientSecret!);
    if ('secret' in read) return read.secret;
    if (!read.cooldown) throw read.error;
    const { ctx, provider, connectionId, key, reason } = r;
    throw await this.failures.handle({ ctx, provider, connectionId, key, access: current.access, refresh: current.refresh, reason, error: read.error, started, cooldown: read.cooldown });
  }

  async refreshHoldingLock(r: RefreshRequest): Promise<AccessTokenResult> {
    const { ctx, provider, connectionId, key, reason } = r;
    // Fencing: the metadata may have moved while we waited for the lock.
    const first = await this.fence(r);
    if ('served' in first) return first.served;
    // Read before the lease is taken: a slow vault read does not eat into it.
    const secret = provider.clientSecret ? await this.clientSecret(r, first) : undefined;
    // The real guard, the lock being only the fast path (it is lost with its session): no other request in flight.
    const lease = await this.leases.claim(provider, connectionId, key);
    let releasedLater = false;
    try {
      // Read again holding the lease: a holder whose lock was lost may have stored its answer (the refresh token read
      // above is spent then) and ended its lease between the read above and the claim.
      const fenced = await this.fence(r);
      if ('served' in fenced) return fenced.served;
      const { fresh, access, refresh } = fenced;
      const started = Date.now();
      const connection: Connection = { ctx, integrationId: provider.integrationId, connectionId, key };
      // A rotated refresh token that could not be written over the stored one is the live one (the stored one is spent).
      const live = await this.rotated.live(connection, fresh, refresh);
      const step: Exchange = { r, connection, fresh, access, refresh, live, started };
      let tokens: OAuthTokenSet;
      let attempts = 0;
      try {
        ({ tokens, attempts } = await this.callWithRetries(provider, live.value, secret, reason));
        await this.validateKeepingRotated(step, tokens).catch((e: unknown) => {
          throw Object.assign(e as object, { attempts });
        });
      } catch (e) {
        if (e instanceof LateAnswer) {
          // The caller is answered now; the lock and the lease stay held until the answer came and was stored.
          releasedLater = true;
          r.keepLock(this.completeLate(step, e).finally(() => lease.release()));
          throw await this.failures.handle({ ctx, provider, connectionId, key, access, refresh, reason, error: e.failure, started });
        }
        throw await this.fail(step, e);
      }
      return await this.complete(step, tokens, attempts);
    } finally {
      if (!releasedLater) await lease.release();
    }
  }

  /** The connection as stored now: its token served when it moved or no longer needs a refresh, else what the refresh starts from. */
  private async fence(r: RefreshRequest): Promise<{ served: AccessTokenResult } | { fresh: ConnectionTokens; access: StoredToken; refresh: StoredToken }> {
    const { ctx, provider, connectionId, reason } = r;
    const { store, clock } = this.deps;
    const fresh = await store.load(ctx, provider.integrationId, connectionId);
    const access = requireUsable(fresh, provider.integrationId, connectionId);
    if (access.version !== r.seen.version) return { served: await serveToken(store, ctx, access) };
    if (!reason.forced && remainingMs(access, clock.now()) > r.needed) return { served: await serveToken(store, ctx, access) };
    const refresh = fresh.refresh;
    const missing = missingRefreshToken(fresh, clock.now());
    if (missing || !refresh) throw new OAuthReauthRequiredError(provider.integrationId, connectionId, missing ?? 'no refresh token is stored');
    return { fresh, access, refresh };
  }

  /**
   * A failed exchange: an invalid_grant also drops a rotated token kept only as pending (it is dead too); an answer the
   * token client refused that carried a rotated refresh token keeps it first. Returns the error to throw.
   */
  private async fail(step: Exchange, e: unknown) {
    const { r, connection, fresh, access, refresh, live, started } = step;
    if (live.unsaved && e instanceof TokenEndpointFailure && e.kind === 'invalid_grant') await this.rotated.discard(connection, fresh.pendingRefresh);
    if (e instanceof TokenEndpointFailure && e.rotatedRefreshToken !== undefined) await this.keepRotated(step, { refreshToken: e.rotatedRefreshToken });
    return this.failures.handle({ ctx: r.ctx, provider: r.provider, connectionId: r.connectionId, key: r.key, access, refresh, reason: r.reason, error: e, started });
  }

  /** Stores what the provider answered: the rotated refresh token first (the old one is spent), then the access token. */
  private async complete(step: Exchange, tokens: OAuthTokenSet, attempts: number): Promise<AccessTokenResult> {
    const { r, connection, fresh, access, refresh, live, started } = step;
    const { ctx, provider, connectionId } = r;
    const store = this.deps.store;
    const now = this.deps.clock.now();
    const nextRefreshToken = tokens.refreshToken ?? (live.unsaved ? live.value : undefined);
    const rotated = nextRefreshToken !== undefined && (live.unsaved || !sameSecret(nextRefreshToken, live.value));
    let newRefresh = refresh;
    // 1) The rotated refresh token first: the old one is already spent at the provider.
    if (rotated) {
      const kept = await this.rotated.keep(connection, fresh, refresh, refreshWrite({ ...tokens, refreshToken: nextRefreshToken }, now));
      if (kept.outcome === 'memory') {
        if (isRefusedValue(kept.error)) throw await this.unstorable(step, 'refresh', kept.error, attempts);
        throw new OAuthRefreshFailedError(
          `the rotated refresh token of this connection could not be stored; the next attempt uses it`,
          { integrationId: provider.integrationId, connectionId, transient: true },
          { cause: kept.error },
        );
      }
      if (kept.outcome === 'superseded') return serveCurrent(store, ctx, provider.integrationId, connectionId);
      if (kept.outcome === 'stored') newRefresh = kept.refresh;
      // 'pending': durable elsewhere; the refresh goes on and the next one presents it.
    }
    // 2) Then the access token.
    let newAccess: StoredToken | undefined;
    try {
      newAccess = await persistToken(this.deps, ctx, access, accessWrite(provider, tokens, now), provider.integrationId, connectionId);
    } catch (e) {
      if (!isRefusedValue(e)) throw e;
      throw await this.unstorable(step, 'access', e, attempts);
    }
    if (!newAccess) return serveCurrent(store, ctx, provider.integrationId, connectionId);
    await this.deps.cooldowns.clear(connection.key);
    await this.reportSuccess(r, newAccess, newRefresh, rotated, attempts, started, now);
    return {
      accessToken: tokens.accessToken,
      expiresAt: newAccess.expiresAt,
      credentialId: newAccess.credentialId,
      version: newAccess.version,
      tokenType: tokens.tokenType,
    };
  }

  /**
   * A token no credential can hold (over 25 KB, not one line) is the provider's nonsense, not the caller's: a failed
   * refresh (cooldown, event, audit row), else every call spends a refresh token on the same answer. Returns the error.
   */
  private unstorable(step: Exchange, which: 'access' | 'refresh', e: CredentialValidationError, attempts: number): Promise<CredentialVaultError> {
    const invalid = new OAuthInvalidTokenResponseError(`the token endpoint returned ${which === 'access' ? 'an access' : 'a refresh'} token that cannot be stored: ${e.message}`, { cause: e });
    return this.fail(step, Object.assign(invalid, { attempts }));
  }

  /**
   * A request that timed out may still be processed by the provider, rotating the refresh token: its
   * late answer is stored like a timely one (while the lock is held, so nobody presents the spent token).
   * A late `invalid_grant` is handled like a timely one too: the refresh token is dead either way.
   */
  private async completeLate(step: Exchange, late: LateAnswer): Promise<void> {
    const { connectionId, ctx, provider } = step.r;
    try {
      let tokens: OAuthTokenSet;
      try {
        tokens = await late.answer;
      } catch (e) {
        if (e instanceof TokenEndpointFailure && e.rotatedRefreshToken !== undefined) await this.keepRotated(step, { refreshToken: e.rotatedRefreshToken });
        if (!(e instanceof TokenEndpointFailure && e.kind === 'invalid_grant')) throw e;
        Object.assign(e, { attempts: late.attempts });
        this.deps.logger.warn(`the token endpoint of "${provider.integrationId}" refused the refresh token of connection ${connectionId} (tenant ${ctx.tenantId}) after its timeout (invalid_grant)`);
        await this.fail(step, e); // logged, emitted and audited there
        return;
      }
      await this.validateKeepingRotated(step, tokens);
      await this.complete(step, tokens, late.attempts);
      this.deps.logger.warn(`the token endpoint of "${provider.integrationId}" answered connection ${connectionId} (tenant ${ctx.tenantId}) after its timeout; its tokens were stored`);
    } catch (e) {
      this.deps.logger.warn(`the late answer of the token endpoint of "${provider.integrationId}" for connection ${connectionId} (tenant ${ctx.tenantId}) was not stored: ${describeRefreshError(e)}`);
    }
  }

  /**
   * A 200 the lib cannot use (no access token, no usable expires_in) may still carry a rotated refresh
   * token, the only live one now: it is kept before the answer is refused (OAuthInvalidTokenResponseError).
   */
  private async validateKeepingRotated(step: Exchange, tokens: OAuthTokenSet): Promise<void> {
    try {
      validateTokenSet(tokens);
      return;
    } catch (invalid) {
      await this.keepRotated(step, tokens ?? {});
      throw invalid;
    }
  }

  /** Keeps the rotated refresh token of an answer refused as a whole (best effort: the refusal is what the caller is told). */
  private async keepRotated(step: Exchange, tokens: Pick<OAuthTokenSet, 'refreshToken' | 'refreshTokenExpiresIn'>): Promise<void> {
    const rotated = typeof tokens.refreshToken === 'string' && tokens.refreshToken.length > 0 ? tokens.refreshToken : undefined;
    if (rotated === undefined || (!step.live.unsaved && sameSecret(rotated, step.live.value))) return;
    try {
      await this.rotated.keep(step.connection, step.fresh, step.refresh, refreshWrite({ ...tokens, refreshToken: rotated }, this.deps.clock.now()));
    } catch (e) {
      this.deps.logger.error(`could not keep the rotated refresh token of an invalid answer for connection ${step.r.connectionId}: ${describeRefreshError(e)}`);
    }
  }

  private async callWithRetries(provider: ResolvedOAuthProvider, refreshToken: string, secret: string | undefined, reason: RefreshReason): Promise<{ tokens: OAuthTokenSet; attempts: number }> {
    const { maxAttempts } = this.deps.options.retry;
    for (let attempt = 1; ; attempt++) {
      try {
        const tokens = await this.callOnce(provider, refreshToken, secret, attempt);
        return { tokens, attempts: attempt };
      } catch (e) {
        // Not retried: the provider may be processing the request, and a second one re-sends a token it may have spent.
        if (e instanceof LateAnswer) throw e;
        const transient = e instanceof TokenEndpointFailure && e.kind === 'transient';
        // A provider asking for more patience than a request can wait is not asked again now (the cooldown honours it).
        const tooLong = transient && (e.details.retryAfterMs ?? 0) > this.deps.options.retry.maxDelayMs;
        if (!transient || tooLong || attempt >= maxAttempts) throw Object.assign(e as object, { attempts: attempt });
        const delay = retryDelayMs(attempt + 1, this.deps.options.retry, e.details.retryAfterMs);
        // A transient failure is the provider's: the proactive job says it once per run and cause (ProactiveRefreshFailures).
        reason.retried?.(e);
        this.deps.logger[reason.retried ? 'debug' : 'warn'](
          `token endpoint of "${provider.integrationId}" failed (attempt ${attempt}/${maxAttempts}): ${describeRefreshError(e)}; retrying in ${Math.round(delay)} ms`,
        );
        await sleep(delay);
      }
    }
  }

  /**
   * One request, answered within `requestTimeoutMs`, else a LateAnswer holding the request, which lives `lateAnswerMs` longer.
   * Its failure asks for a cooldown of at least `lateAnswerMs`: until the answer came (which ends it) or can no longer come,
   * callers are answered at once (the still-valid token, or REFRESH_FAILED with `retryAfter`) instead of queueing on the
   * lock the refresh keeps held — up to `lockTimeoutMs`, to learn the same.
   */
  private callOnce(provider: ResolvedOAuthProvider, refreshToken: string, secret: string | undefined, attempt: number): Promise<OAuthTokenSet> {
    const lateAnswerMs = this.deps.options.lateAnswerMs;
    const answer = this.deps.client.refresh(provider, refreshToken, secret, { signal: AbortSignal.timeout(provider.requestTimeoutMs + lateAnswerMs) });
    if (lateAnswerMs === 0) return answer;
    return new Promise<OAuthTokenSet>((resolve, reject) => {
      const timer = setTimeout(() => {
        const failure = new TokenEndpointFailure('transient', `the token endpoint did not answer within ${provider.requestTimeoutMs} ms`, { retryAfterMs: lateAnswerMs, transport: 'timeout' });
        reject(new LateAnswer(answer, failure, attempt));
      }, provider.requestTimeoutMs);
      answer.then(resolve, reject).finally(() => clearTimeout(timer));
    });
  }

  private async reportSuccess(r: RefreshRequest, newAccess: StoredToken, newRefresh: StoredToken, rotated: boolean, attempts: number, started: number, now: Date): Promise<void> {
    const { ctx, provider, connectionId, reason } = r;
    emitEvent<OAuthRefreshedEvent>(this.deps, OAuthRefreshEvents.REFRESHED, {
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
    await auditRefresh(this.deps, ctx, newAccess.credentialId, AuditResult.SUCCESS, started, undefined, {
      integrationId: provider.integrationId,
      connectionId,
      version: newAccess.version,
      refreshTokenRotated: rotated,
      trigger: reason.trigger,
      attempts,
    });
    this.deps.logger.log(
      `refreshed access token of connection ${connectionId} (tenant ${ctx.tenantId}, integration ${provider.integrationId}) → v${newAccess.version}${rotated ? ', refresh token rotated' : ''}`,
    );
  }
}

/** The credentials lib's refusal of a token's value (size, lines, encoding): the same value is refused every time. */
function isRefusedValue(e: unknown): e is CredentialValidationError {
  return e instanceof CredentialValidationError && e.field === 'value';
}
