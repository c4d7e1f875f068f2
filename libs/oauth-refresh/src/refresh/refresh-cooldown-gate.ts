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
/** Connections remembered with a client refusal, at most (the least recently refused are forgotten: their cooldown answers as any). */
const MAX_CLIENT_REJECTIONS = 1000;

/** What the provider answered when it refused the OAuth client, kept for the answers of the cooldown that followed. */
export interface ClientRejection {
  answered: string;
  status?: number;
  oauthError?: string;
}

export class RefreshCooldownGate {
  private readonly local = new InProcessOAuthRefreshCooldowns();
  /**
   * Connections whose running cooldown followed a refusal of the OAuth client (invalid_client...), in this process: the
   * cooldown's answer names that cause rather than reading as a passing outage. Another replica sharing the cooldown
   * answers it as a cooldown (REFRESH_FAILED) until its own refresh is refused.
   */
  private readonly clientRejections = new Map<string, ClientRejection>();

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
    this.clientRejections.delete(key); // a failure of another kind: this cooldown is not the client's refusal
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

  /** The connection's cooldown (just recorded) follows a refusal of the OAuth client. */
  rememberClientRejection(key: string, rejection: ClientRejection): void {
    this.clientRejections.delete(key); // re-inserted: the most recent last
    this.clientRejections.set(key, rejection);
    if (this.clientRejections.size > MAX_CLIENT_REJECTIONS) this.clientRejections.delete(this.clientRejections.keys().next().value!);
  }

  /** The refusal of the OAuth client the connection's cooldown follows, if this process saw it. */
  clientRejection(key: string): ClientRejection | undefined {
    return this.clientRejections.get(key);
  }

  async clear(key: string): Promise<void> {
    this.clientRejections.delete(key);
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
