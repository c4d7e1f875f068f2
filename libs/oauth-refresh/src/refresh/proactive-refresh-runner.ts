import { forEachLimited, systemContext, type OperationContext } from '@app/common';
import type { TokenEndpointFailure } from '../client/oauth-token-client';
import { OAuthRefreshFailedError } from '../errors/oauth-refresh.errors';
import { PROACTIVE_REFRESH_LOCK } from '../oauth-refresh.constants';
import type { ResolvedOAuthProvider } from '../providers/oauth-provider.config';
import { effectiveRefreshWindowMs, remainingMs } from '../refresh-policy';
import type { DuePageCursor, StoredToken } from '../store/oauth-token-store';
import { ProactiveRefreshFailures } from './proactive-refresh-failures';
import { AccessTokenResult, connectionKey, describeRefreshError, missingRefreshToken, RefreshDeps, RefreshReason } from './refresh-support';

export interface ProactiveRefreshResult {
  /** False when another replica (or run) held the job lock: nothing was done here. */
  acquired: boolean;
  scanned: number;
  refreshed: number;
  /** Already fresh (refreshed elsewhere), unregistered integration, or cooling down. */
  skipped: number;
  /**
   * Left to another refresh of the connection, in progress on this replica or another (it holds the connection's
   * refresh-in-flight lease, or its lock past `lockTimeoutMs`): not a failure, a later run refreshes it if needed.
   */
  inFlight: number;
  failed: number;
}

/** The single-flight refresh of the facade, so a proactive refresh joins callers' refreshes. */
export type RefreshOne = (ctx: OperationContext, provider: ResolvedOAuthProvider, connectionId: string, seen: StoredToken, reason: RefreshReason, needed: number) => Promise<AccessTokenResult>;

/**
 * The proactive job's work: pages through active access tokens of all tenants expiring within the
 * largest refresh-ahead window (`proactive.batchSize` per page, at most `proactive.maxPerRun` per
 * run) and refreshes those inside their own window, `proactive.concurrency` at a time, under the
 * lock `oauth-proactive-refresh` (one replica at a time). One connection's failure is counted, never thrown; the
 * run's log says a provider's failure once per cause, not once per connection (ProactiveRefreshFailures).
 */
export class ProactiveRefreshRunner {
  constructor(
    private readonly deps: RefreshDeps,
    private readonly refresh: RefreshOne,
  ) {}

  async run(): Promise<ProactiveRefreshResult> {
    const r = await this.deps.lock.tryRun(PROACTIVE_REFRESH_LOCK, (held) => this.runHoldingLock(held));
    if (!r.acquired) {
      this.deps.logger.debug('proactive refresh is running elsewhere; skipped');
      return { acquired: false, scanned: 0, refreshed: 0, skipped: 0, inFlight: 0, failed: 0 };
    }
    return r.value;
  }

  /**
   * Stops before its next page or connection once `held` aborts (the lock's session ended: another replica may run
   * the job now), rejecting with its `LockLostError` after the refreshes in flight settle; the next run refreshes the rest.
   */
  private async runHoldingLock(held: AbortSignal): Promise<ProactiveRefreshResult> {
    const { batchSize, concurrency, maxPerRun } = this.deps.options.proactive;
    const result: ProactiveRefreshResult = { acquired: true, scanned: 0, refreshed: 0, skipped: 0, inFlight: 0, failed: 0 };
    const failures = new ProactiveRefreshFailures(this.deps.logger);
    const horizon = new Date(this.deps.clock.now().getTime() + this.deps.registry.maxRefreshAheadMs());
    let cursor: DuePageCursor | undefined;
    try {
      while (result.scanned < maxPerRun) {
        held.throwIfAborted();
        const page = await this.deps.store.listDue(horizon, Math.min(batchSize, maxPerRun - result.scanned), cursor);
        if (page.length === 0) break;
        result.scanned += page.length;
        await forEachLimited(
          page,
          concurrency,
          async (due) => {
            result[await this.one(due.tenantId, due.integrationId, due.connectionId, failures)]++;
          },
          held,
        );
        const last = page[page.length - 1];
        cursor = { expiresAt: last.expiresAt, credentialId: last.credentialId };
        if (page.length < batchSize) break;
      }
    } finally {
      // Also when the lock was lost mid-run: the provider-level failures met so far are said, once.
      failures.reportFolded();
    }
    if (result.scanned > 0) {
      const inFlight = result.inFlight > 0 ? `, ${result.inFlight} in flight elsewhere` : '';
      this.deps.logger.log(`proactive refresh: ${result.refreshed} refreshed, ${result.skipped} skipped${inFlight}, ${result.failed} failed of ${result.scanned}${failures.summary()}`);
    }
    return result;
  }

  private async one(tenantId: string, integrationId: string, connectionId: string, failures: ProactiveRefreshFailures): Promise<'refreshed' | 'skipped' | 'inFlight' | 'failed'> {
    const provider = this.deps.registry.find(tenantId, integrationId);
    if (!provider) return 'skipped';
    const ctx = systemContext(tenantId, PROACTIVE_REFRESH_LOCK);
    if (await this.deps.cooldowns.activeUntil(connectionKey(tenantId, integrationId, connectionId), this.deps.clock.now())) return 'skipped';
    try {
      const tokens = await this.deps.store.load(ctx, integrationId, connectionId);
      const access = tokens.access;
      if (!access || access.reauthRequired || tokens.refresh?.reauthRequired || missingRefreshToken(tokens, this.deps.clock.now())) return 'skipped';
      const needed = effectiveRefreshWindowMs(access, provider.refreshAheadMs);
      if (remainingMs(access, this.deps.clock.now()) > needed) return 'skipped';
      const before = access.version;
      // The token endpoint's failures it retried: news when the retry then worked (said once per run and cause), else the failure says them.
      let firstRetried: TokenEndpointFailure | undefined;
      const retried = (failure: TokenEndpointFailure) => void (firstRetried ??= failure);
      const r = await this.refresh(ctx, provider, connectionId, access, { trigger: 'proactive', forced: false, retried }, needed);
      if (firstRetried) failures.recordRetried(tenantId, provider, connectionId, firstRetried);
      return r.version !== before ? 'refreshed' : 'skipped';
    } catch (e) {
      // Another refresh of the connection holds its lease or lock: nothing failed, it is being refreshed.
      if (e instanceof OAuthRefreshFailedError && e.details.inFlight) {
        this.deps.logger.debug(`proactive refresh of connection ${connectionId} (tenant ${tenantId}, integration ${integrationId}) left to another refresh in flight: ${describeRefreshError(e)}`);
        return 'inFlight';
      }
      failures.record(tenantId, provider, connectionId, e);
      return 'failed';
    }
  }
}
