import { randomUUID } from 'node:crypto';
import { LockTimeoutError, type LeaseClaim } from '@app/common';
import { OAuthRefreshFailedError } from '../errors/oauth-refresh.errors';
import type { ResolvedOAuthProvider } from '../providers/oauth-provider.config';
import { describeRefreshError, lockName, RefreshDeps } from './refresh-support';

/**
 * Time a lease outlives the longest exchange it covers: storing the answer, and the replicas' clocks
 * disagreeing (a lease's expiry is written by one replica and compared by another).
 */
export const LEASE_MARGIN_MS = 30_000;

/**
 * A held lease's expiry is this far ahead, renewed every RENEW_EVERY_MS while its holder lives (up to `durationMs`):
 * a crashed holder's lease lapses within it, not after the whole exchange could have lasted (a restarted replica
 * refreshes its connections again within seconds). Replicas' clocks must agree within it.
 */
export const LEASE_TTL_MS = 20_000;
const RENEW_EVERY_MS = 5_000;

/**
 * `retryAfter` when the lease was ended by others as fast as it was claimed (LockLeases' LOCK_TIMEOUT): other
 * refreshes are storing answers and ending it right now, so the next attempt soon finds the connection settled.
 */
export const LEASE_CHURN_RETRY_MS = 1_000;

/** A lease this refresh holds: ended once its answer is stored or the refresh failed (never throws). */
export interface HeldRefreshLease {
  release(): Promise<void>;
}

const NO_LEASE: HeldRefreshLease = { release: () => Promise.resolve() };

/**
 * The refresh-in-flight lease of a connection (`cv_lock_leases`, through `LockLeases` of libs/common): the real
 * guard against presenting one refresh token twice. The connection's advisory lock is only the fast path:
 * PostgreSQL frees it when its session dies (a lost connection, `pg_terminate_backend`) while its holder still
 * awaits the token endpoint, and the next holder must then not present the token the first one may have spent.
 *
 * Taken, compare-and-set, right before the token endpoint is called, for everything that call may take
 * (retries, a late answer) plus `LEASE_MARGIN_MS`; ended when the answer is stored or the refresh failed. A
 * holder that crashed leaves it to expire. Without a DataSource (a host's own DistributedLock) there is none.
 */
export class RefreshLeases {
  constructor(private readonly deps: RefreshDeps) {}

  /** How long a lease lasts for `provider`: every attempt timing out, the delays between them, a late answer, the margin. */
  durationMs(provider: ResolvedOAuthProvider): number {
    const { retry, lateAnswerMs } = this.deps.options;
    return retry.maxAttempts * provider.requestTimeoutMs + (retry.maxAttempts - 1) * retry.maxDelayMs + lateAnswerMs + LEASE_MARGIN_MS;
  }

  /**
   * Takes the connection's lease, or throws a retryable OAuthRefreshFailedError (as a lock timeout does,
   * `retryAfter` the lease's expiry) when another refresh holds it: its request may have spent the refresh token.
   */
  async claim(provider: ResolvedOAuthProvider, connectionId: string, key: string): Promise<HeldRefreshLease> {
    const leases = this.deps.leases;
    if (!leases) return NO_LEASE;
    const name = lockName(key);
    const holder = randomUUID();
    // Real time, not the lib's Clock: the lease covers real timers (requestTimeoutMs, lateAnswerMs), not token expiry.
    const now = new Date();
    const until = now.getTime() + this.durationMs(provider);
    const expiry = (at: number) => new Date(Math.min(until, at + LEASE_TTL_MS));
    let claim: LeaseClaim;
    try {
      claim = await leases.claim(name, holder, expiry(now.getTime()), now);
    } catch (e) {
      if (!(e instanceof LockTimeoutError)) throw e;
      // Busy, like a held lease: answered as one (4003 in flight), not as the lock wait's LOCK_TIMEOUT the facade maps.
      throw new OAuthRefreshFailedError(
        `the refresh lease of this connection was ended by other refreshes (on this replica or another) as fast as it was claimed; retry shortly`,
        { integrationId: provider.integrationId, connectionId, transient: true, retryAfter: new Date(now.getTime() + LEASE_CHURN_RETRY_MS), inFlight: true },
        { cause: e },
      );
    }
    if (!claim.claimed) {
      throw new OAuthRefreshFailedError(
        `another refresh of this connection (on this replica or another) is awaiting the token endpoint until ${claim.expiresAt.toISOString()} at the latest; its refresh token is not presented twice`,
        { integrationId: provider.integrationId, connectionId, transient: true, retryAfter: claim.expiresAt, inFlight: true },
      );
    }
    // Renewed while this process lives and the exchange may still be under way; a renewal that fails or finds the lease
    // taken is logged (the lease then lapses: another replica may present the token this refresh may still spend).
    let renewing: Promise<unknown> = Promise.resolve();
    const renewal = setInterval(() => {
      const at = Date.now();
      if (at >= until) return clearInterval(renewal);
      renewing = leases.claim(name, holder, expiry(at), new Date(at)).then(
        (c) => c.claimed || this.deps.logger.warn(`the refresh lease of connection ${connectionId} (integration ${provider.integrationId}) was taken by another holder while this refresh may still be awaiting the token endpoint`),
        (e: unknown) => this.deps.logger.warn(`could not renew the refresh lease of connection ${connectionId} (integration ${provider.integrationId}); it lapses within ${LEASE_TTL_MS} ms: ${describeRefreshError(e)}`),
      );
    }, RENEW_EVERY_MS);
    renewal.unref();
    return {
      release: async () => {
        clearInterval(renewal);
        await renewing; // a renewal landing after the release would take the lease again
        try {
          await leases.release(name, holder);
        } catch (e) {
          this.deps.logger.warn(`could not end the refresh lease of connection ${connectionId} (integration ${provider.integrationId}); it ends at its expiry: ${describeRefreshError(e)}`);
        }
      },
    };
  }

  /**
   * Ends the connection's lease whoever holds it: new tokens with a new refresh token were stored, so a request in
   * flight spends one no longer stored (its answer loses the compare-and-set) and the next refresh may go at once.
   */
  async clear(key: string): Promise<void> {
    try {
      await this.deps.leases?.clear(lockName(key));
    } catch (e) {
      this.deps.logger.warn(`could not end the refresh lease of a connection whose tokens were replaced; it ends at its expiry: ${describeRefreshError(e)}`);
    }
  }
}
