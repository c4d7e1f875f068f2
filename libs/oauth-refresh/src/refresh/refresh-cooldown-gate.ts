import type { Logger } from '@nestjs/common';
import { describeError } from '@app/common';
import { CooldownPolicy, InProcessOAuthRefreshCooldowns, OAuthRefreshCooldowns } from '../store/oauth-refresh-cooldowns';

/** The longest provider Retry-After a cooldown honours (a provider's absurd value must not park a connection for days). */
export const MAX_PROVIDER_RETRY_AFTER_MS = 3_600_000;

/**
 * The lib's view of refresh cooldowns: the host's `OAuthRefreshCooldowns` when it provides one
 * (shared by the replicas), else in this process. A failing store never fails a refresh: the call is
 * logged and answered from this process's cooldowns instead.
 */
export class RefreshCooldownGate {
  private readonly local = new InProcessOAuthRefreshCooldowns();

  constructor(
    private readonly store: OAuthRefreshCooldowns | undefined,
    private readonly policy: CooldownPolicy,
    private readonly logger: Logger,
  ) {}

  async activeUntil(key: string, now: Date): Promise<Date | undefined> {
    if (this.store) {
      try {
        return await this.store.activeUntil(key, now);
      } catch (e) {
        this.failed('read', e);
      }
    }
    return this.local.activeUntil(key, now);
  }

  /** `retryAfterMs`: what the provider asked for (its Retry-After), honoured up to an hour. */
  async recordFailure(key: string, now: Date, retryAfterMs?: number): Promise<{ until: Date; failures: number }> {
    const policy = retryAfterMs && retryAfterMs > 0 ? { ...this.policy, atLeastMs: Math.min(retryAfterMs, MAX_PROVIDER_RETRY_AFTER_MS) } : this.policy;
    if (this.store) {
      try {
        return await this.store.recordFailure(key, now, policy);
      } catch (e) {
        this.failed('record', e);
      }
    }
    return this.local.recordFailure(key, now, policy);
  }

  async clear(key: string): Promise<void> {
    await this.local.clear(key);
    if (!this.store) return;
    try {
      await this.store.clear(key);
    } catch (e) {
      this.failed('clear', e);
    }
  }

  private failed(what: string, e: unknown): void {
    this.logger.warn(`could not ${what} a refresh cooldown in the shared store (using this process's): ${describeError(e)}`);
  }
}
