import type { Logger } from '@nestjs/common';
import { describeError } from '@app/common';
import { CooldownPolicy, InProcessOAuthRefreshCooldowns, OAuthRefreshCooldowns } from '../store/oauth-refresh-cooldowns';

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

  async recordFailure(key: string, now: Date): Promise<{ until: Date; failures: number }> {
    if (this.store) {
      try {
        return await this.store.recordFailure(key, now, this.policy);
      } catch (e) {
        this.failed('record', e);
      }
    }
    return this.local.recordFailure(key, now, this.policy);
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
