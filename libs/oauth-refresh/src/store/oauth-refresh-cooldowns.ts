import { RefreshCooldowns } from '../refresh-policy';

/** The cooldown after failed refreshes: `baseMs` after the first, doubling per consecutive failure up to `maxMs`. */
export interface CooldownPolicy {
  baseMs: number;
  maxMs: number;
  /**
   * This failure's own minimum (the provider's `Retry-After`, capped at an hour): the cooldown lasts
   * at least that long, even past `maxMs`, so no replica asks again sooner than the provider said.
   */
  atLeastMs?: number;
}

/**
 * Where per-connection refresh cooldowns live. Abstract class = DI token: by default the lib keeps
 * them in process memory (`InProcessOAuthRefreshCooldowns`: each replica cools down on its own); a
 * host with several replicas provides a shared implementation globally (the reference host: Redis)
 * so a connection cooling down is cooling down on every replica. `key` identifies the connection
 * (tenant, integration, connection ids; never a token), or a provider's client-secret reference (owner
 * tenant and credential id, prefixed `client-secret:`) whose secret could not be used; times are the lib's clock.
 *
 * The lib calls `recordFailure` and `clear` while holding a connection's DistributedLock (for a client-secret
 * reference, that of the connection whose refresh met it: two replicas may record one failure each). If an
 * implementation throws, the lib logs it and uses its in-process cooldowns for that call.
 */
export abstract class OAuthRefreshCooldowns {
  /** The end of the connection's cooldown if it is cooling down at `now`, else undefined. */
  abstract activeUntil(key: string, now: Date): Promise<Date | undefined>;
  /** Records a failed refresh; returns the end of the new cooldown and the consecutive-failure count. */
  abstract recordFailure(key: string, now: Date, policy: CooldownPolicy): Promise<{ until: Date; failures: number }>;
  /** A refresh succeeded or new tokens were stored: no cooldown, the failure count restarts. */
  abstract clear(key: string): Promise<void>;
}

/** The default: cooldowns in this process's memory (per process), kept by `RefreshCooldowns`. */
export class InProcessOAuthRefreshCooldowns extends OAuthRefreshCooldowns {
  /** One per policy (a lib instance has one): the same key under another policy is another count. */
  private readonly byPolicy = new Map<string, RefreshCooldowns>();

  activeUntil(key: string, now: Date): Promise<Date | undefined> {
    for (const c of this.byPolicy.values()) {
      const until = c.activeUntil(key, now);
      if (until) return Promise.resolve(until);
    }
    return Promise.resolve(undefined);
  }

  recordFailure(key: string, now: Date, policy: CooldownPolicy): Promise<{ until: Date; failures: number }> {
    const id = `${policy.baseMs}/${policy.maxMs}`;
    let cooldowns = this.byPolicy.get(id);
    if (!cooldowns) this.byPolicy.set(id, (cooldowns = new RefreshCooldowns(policy.baseMs, policy.maxMs)));
    return Promise.resolve(cooldowns.recordFailure(key, now, policy.atLeastMs));
  }

  clear(key: string): Promise<void> {
    for (const c of this.byPolicy.values()) c.clear(key);
    return Promise.resolve();
  }
}
