import type { Logger } from '@nestjs/common';
import { describeError } from '@app/common';
import { reportedOAuthError } from '../client/oauth-error-code';
import { ActiveCooldown, CooldownCause, CooldownPolicy, InProcessOAuthRefreshCooldowns, OAuthRefreshCooldowns } from '../store/oauth-refresh-cooldowns';

/** The longest provider Retry-After a cooldown honours (a provider's absurd value must not park a connection for days). */
export const MAX_PROVIDER_RETRY_AFTER_MS = 3_600_000;

/**
 * The lib's view of refresh cooldowns: the host's `OAuthRefreshCooldowns` when it provides one
 * (shared by the replicas), else in this process. A failing store never fails a refresh: the call is
 * logged and answered from this process's cooldowns instead.
 */
/** Cooldown causes remembered for a store that keeps none, at most (the least recently recorded are forgotten). */
const MAX_REMEMBERED_CAUSES = 1000;

export class RefreshCooldownGate {
  private readonly local = new InProcessOAuthRefreshCooldowns();
  /**
   * For a host store that keeps no cause (written before causes existed): the causes of the cooldowns this process
   * recorded, with the end the store gave them. Only that cooldown is answered with it here (as the previous release
   * did); a later one another replica recorded ends elsewhere and answers as any.
   */
  private readonly causesKeptHere = new Map<string, { until: number; cause: CooldownCause }>();

  constructor(
    private readonly store: OAuthRefreshCooldowns | undefined,
    private readonly policy: CooldownPolicy,
    private readonly logger: Logger,
  ) {}

  async activeUntil(key: string, now: Date): Promise<Date | undefined> {
    return (await this.activeCooldown(key, now))?.until;
  }

  /**
   * The running cooldown with its cause as the store keeps it (shared: every replica answers it alike), a cause that
   * is not one this lib records dropped (the cooldown then answers as any).
   */
  async activeCooldown(key: string, now: Date): Promise<ActiveCooldown | undefined> {
    let active: ActiveCooldown | undefined;
    try {
      active = this.store ? await storedCooldown(this.store, key, now) : await this.local.activeCooldown(key, now);
    } catch (e) {
      this.failed('read', e);
      active = await this.local.activeCooldown(key, now);
    }
    if (!active) return undefined;
    const here = this.causesKeptHere.get(key);
    const cause = knownCause(active.cause ?? (here?.until === active.until.getTime() ? here.cause : undefined));
    return { until: active.until, ...(cause ? { cause } : {}) };
  }

  /**
   * `retryAfterMs`: what the provider asked for (its Retry-After), honoured up to an hour. `cause`: kept with the
   * cooldown, so that every replica answers it with the failure's code.
   */
  async recordFailure(key: string, now: Date, retryAfterMs?: number, cause?: CooldownCause): Promise<{ until: Date; failures: number }> {
    const policy = retryAfterMs && retryAfterMs > 0 ? { ...this.policy, atLeastMs: Math.min(retryAfterMs, MAX_PROVIDER_RETRY_AFTER_MS) } : this.policy;
    this.causesKeptHere.delete(key);
    if (this.store) {
      try {
        const recorded = await this.store.recordFailure(key, now, policy, cause);
        if (cause && !keepsCauses(this.store)) this.keepCauseHere(key, recorded.until, cause);
        return recorded;
      } catch (e) {
        this.failed('record', e);
      }
    }
    return this.local.recordFailure(key, now, policy, cause);
  }

  async clear(key: string): Promise<void> {
    this.causesKeptHere.delete(key);
    await this.local.clear(key);
    if (!this.store) return;
    try {
      await this.store.clear(key);
    } catch (e) {
      this.failed('clear', e);
    }
  }

  private keepCauseHere(key: string, until: Date, cause: CooldownCause): void {
    this.causesKeptHere.set(key, { until: until.getTime(), cause });
    if (this.causesKeptHere.size > MAX_REMEMBERED_CAUSES) this.causesKeptHere.delete(this.causesKeptHere.keys().next().value!);
  }

  private failed(what: string, e: unknown): void {
    this.logger.warn(`could not ${what} a refresh cooldown in the shared store (using this process's): ${describeError(e)}`);
  }
}

/** The store's cooldown; one given as a plain object with the port's first three methods (no `activeCooldown`) gets the port's default (no cause). */
function storedCooldown(store: OAuthRefreshCooldowns, key: string, now: Date): Promise<ActiveCooldown | undefined> {
  const read = typeof store.activeCooldown === 'function' ? store.activeCooldown : OAuthRefreshCooldowns.prototype.activeCooldown;
  return read.call(store, key, now);
}

/** The store keeps causes: it answers `activeCooldown` itself (not the port's default over `activeUntil`, nor none). */
function keepsCauses(store: OAuthRefreshCooldowns): boolean {
  return typeof store.activeCooldown === 'function' && store.activeCooldown !== OAuthRefreshCooldowns.prototype.activeCooldown;
}

/** A cause as this lib records it, read back from a store (shared: written by another replica, or by hand): else none. */
function knownCause(cause: CooldownCause | undefined): CooldownCause | undefined {
  if (cause?.code !== 'OAUTH_CLIENT_REJECTED') return undefined;
  const status = Number.isInteger(cause.status) && cause.status! >= 100 && cause.status! <= 599 ? cause.status : undefined;
  const oauthError = reportedOAuthError(cause.oauthError);
  return { code: cause.code, ...(status !== undefined ? { status } : {}), ...(oauthError !== undefined ? { oauthError } : {}) };
}
