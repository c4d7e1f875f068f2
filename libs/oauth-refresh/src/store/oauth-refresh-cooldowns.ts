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
 * Why a connection is cooling down, kept with the cooldown so that every replica answers it alike (not only the one
 * that saw the failure). Codes and numbers only: never a token, a secret or text the provider wrote.
 */
export interface CooldownCause {
  /** The failure's code: the provider refused the OAuth client (4009). A cooldown without a cause answers "cooling down". */
  code: 'OAUTH_CLIENT_REJECTED';
  /** The token endpoint's HTTP status. */
  status?: number;
  /** Its OAuth `error`: a registered code, else `unregistered_error`. */
  oauthError?: string;
}

/** A running cooldown: its end and, when the store keeps it, the cause of the failure that started it. */
export interface ActiveCooldown {
  until: Date;
  cause?: CooldownCause;
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
  /**
   * The running cooldown with the cause recorded with it. A store that keeps no cause (one written before causes
   * existed) need not override this: its cooldowns answer as "cooling down", as they did.
   */
  async activeCooldown(key: string, now: Date): Promise<ActiveCooldown | undefined> {
    const until = await this.activeUntil(key, now);
    return until && { until };
  }
  /**
   * Records a failed refresh; returns the end of the new cooldown and the consecutive-failure count. `cause`: why it
   * failed, to keep with this cooldown (it replaces the previous failure's: none means a failure of no special cause).
   */
  abstract recordFailure(key: string, now: Date, policy: CooldownPolicy, cause?: CooldownCause): Promise<{ until: Date; failures: number }>;
  /** A refresh succeeded or new tokens were stored: no cooldown, the failure count restarts. */
  abstract clear(key: string): Promise<void>;
}

/** The default: cooldowns in this process's memory (per process), kept by `RefreshCooldowns`. */
export class InProcessOAuthRefreshCooldowns extends OAuthRefreshCooldowns {
  /** One per policy (a lib instance has one): the same key under another policy is another count. */
  private readonly byPolicy = new Map<string, RefreshCooldowns>();

  async activeUntil(key: string, now: Date): Promise<Date | undefined> {
    return (await this.activeCooldown(key, now))?.until;
  }

  override activeCooldown(key: string, now: Date): Promise<ActiveCooldown | undefined> {
    for (const c of this.byPolicy.values()) {
      const active = c.active(key, now);
      if (active) return Promise.resolve(active);
    }
    return Promise.resolve(undefined);
  }

  recordFailure(key: string, now: Date, policy: CooldownPolicy, cause?: CooldownCause): Promise<{ until: Date; failures: number }> {
    const id = `${policy.baseMs}/${policy.maxMs}`;
    let cooldowns = this.byPolicy.get(id);
    if (!cooldowns) this.byPolicy.set(id, (cooldowns = new RefreshCooldowns(policy.baseMs, policy.maxMs)));
    return Promise.resolve(cooldowns.recordFailure(key, now, policy.atLeastMs, cause));
  }

  clear(key: string): Promise<void> {
    for (const c of this.byPolicy.values()) c.clear(key);
    return Promise.resolve();
  }
}
