import type { ActiveCooldown, CooldownCause } from './store/oauth-refresh-cooldowns';
import type { StoredToken } from './store/oauth-token-store';

/**
 * How long before expiry a token is refreshed: the provider's window, but at most half the token's
 * lifetime — a provider issuing 60-second tokens with a 5-minute window would otherwise be asked
 * for a new token on every call.
 */
export function effectiveRefreshWindowMs(token: Pick<StoredToken, 'expiresAt' | 'issuedAt'>, windowMs: number): number {
  if (!token.expiresAt) return windowMs;
  const lifetime = token.expiresAt.getTime() - token.issuedAt.getTime();
  return lifetime > 0 ? Math.min(windowMs, Math.floor(lifetime / 2)) : windowMs;
}

/**
 * The validity a caller's `minValidityMs` asks of a token, as far as a refresh can give it. A token of the connection
 * lives about as long as the current one did (`expiresAt` − its issue): a minimum at or beyond that is met by no
 * refresh, and asked of every call it would spend a refresh at the provider per call (a refresh token each, where
 * they rotate). The refresh-ahead window applies then; the answer's `expiresAt` says what the token gives.
 */
export function requestedValidityMs(token: Pick<StoredToken, 'expiresAt' | 'issuedAt'>, minValidityMs: number, windowMs: number): number {
  if (!token.expiresAt) return minValidityMs;
  const lifetime = token.expiresAt.getTime() - token.issuedAt.getTime();
  return lifetime > 0 && minValidityMs >= lifetime ? windowMs : minValidityMs;
}

/** Milliseconds the token stays valid from `now` (Infinity without an expiry). */
export function remainingMs(token: Pick<StoredToken, 'expiresAt'>, now: Date): number {
  return token.expiresAt ? token.expiresAt.getTime() - now.getTime() : Number.POSITIVE_INFINITY;
}

/** Delay before retry `attempt` (2, 3, ...): exponential from `initialMs`, ±20 % jitter, capped; Retry-After wins when larger (still capped). */
export function retryDelayMs(attempt: number, opts: { initialDelayMs: number; maxDelayMs: number }, retryAfterMs?: number, random: () => number = Math.random): number {
  const base = opts.initialDelayMs * 2 ** Math.max(0, attempt - 2);
  const jittered = base * (0.8 + 0.4 * random());
  return Math.min(opts.maxDelayMs, Math.max(jittered, retryAfterMs ?? 0));
}

interface FailureState {
  failures: number;
  cooldownUntil: number;
  cause?: CooldownCause;
}

/**
 * Per-connection cooldown after failed refreshes (in this process): `baseMs` after the first
 * failure, doubling with each consecutive one up to `maxMs`; a success clears it.
 */
export class RefreshCooldowns {
  private readonly states = new Map<string, FailureState>();

  constructor(
    private readonly baseMs: number,
    private readonly maxMs: number,
  ) {}

  /** The end of the cooldown if `key` is cooling down at `now`, else undefined. */
  activeUntil(key: string, now: Date): Date | undefined {
    return this.active(key, now)?.until;
  }

  /** The running cooldown of `key` at `now` with the cause of the failure that started it, else undefined. */
  active(key: string, now: Date): ActiveCooldown | undefined {
    const s = this.states.get(key);
    if (!s || s.cooldownUntil <= now.getTime()) return undefined;
    return { until: new Date(s.cooldownUntil), ...(s.cause ? { cause: s.cause } : {}) };
  }

  /** Records a failure (lasting at least `atLeastMs`, its cause kept with it); returns the end of the new cooldown and the consecutive-failure count. */
  recordFailure(key: string, now: Date, atLeastMs = 0, cause?: CooldownCause): { until: Date; failures: number } {
    const failures = (this.states.get(key)?.failures ?? 0) + 1;
    const ms = Math.max(atLeastMs, Math.min(this.maxMs, this.baseMs * 2 ** (failures - 1)));
    const cooldownUntil = now.getTime() + ms;
    this.states.set(key, { failures, cooldownUntil, ...(cause ? { cause } : {}) });
    return { until: new Date(cooldownUntil), failures };
  }

  clear(key: string): void {
    this.states.delete(key);
  }

  failures(key: string): number {
    return this.states.get(key)?.failures ?? 0;
  }
}
