import { performance } from 'node:perf_hooks';

export type ThrottleDecision = { ok: true } | { ok: false; retryAfterSeconds: number };

/**
 * Azure Key Vault's limit as it is stated: at most `limit` transactions in any `windowMs` (secrets:
 * 4,000 per 10 s per vault). A sliding window over the admission times: a ring of the last `limit`
 * admissions, so a request is admitted only when the `limit`-th admission before it is at least
 * `windowMs` old — no window [t, t + windowMs) ever holds more than `limit` (a token bucket let up to
 * twice the limit through in one window). O(1) per request, `limit` numbers of memory. A refused
 * (429) request is not recorded: Azure documents that throttled requests do not count towards the limit.
 */
export class SlidingWindowLimiter {
  private readonly admitted: Float64Array;
  /** Index of the oldest admission once the ring is full. */
  private oldest = 0;
  private count = 0;

  constructor(
    readonly limit: number,
    readonly windowMs: number,
    /** Monotonic milliseconds: a wall-clock step back must not stall the vault. */
    private readonly now: () => number = () => performance.now(),
  ) {
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`throttle.limit must be an integer >= 1 (got ${limit})`);
    if (!Number.isFinite(windowMs) || windowMs < 1) throw new RangeError(`throttle.windowMs must be >= 1 (got ${windowMs})`);
    this.admitted = new Float64Array(limit);
  }

  /**
   * Admits one request counting `weight` transactions (Azure weighs some, e.g. an HSM key create as two software ones;
   * clamped to `limit`), or tells the whole seconds (>= 1) until enough admissions have left the window.
   */
  take(weight = 1): ThrottleDecision {
    const waitMs = this.waitMs(weight);
    if (waitMs > 0) return { ok: false, retryAfterSeconds: Math.max(1, Math.ceil(waitMs / 1000)) };
    this.admit(weight);
    return { ok: true };
  }

  /** Milliseconds until a request of `weight` would be admitted; 0: now. Records nothing. */
  waitMs(weight = 1): number {
    const leaving = this.count + this.clamp(weight) - this.limit;
    if (leaving <= 0) return 0;
    // The admissions that must leave the window first: those beyond the free slots, oldest first.
    const freeAt = this.admitted[(this.oldest + leaving - 1) % this.limit] + this.windowMs;
    return Math.max(0, freeAt - this.now());
  }

  /** Records a request of `weight` as admitted now: call it only once waitMs is 0 (several budgets admit together). */
  admit(weight = 1): void {
    const w = this.clamp(weight);
    const t = this.now();
    const leaving = this.count + w - this.limit;
    if (leaving > 0) {
      this.oldest = (this.oldest + leaving) % this.limit;
      this.count -= leaving;
    }
    for (let i = 0; i < w; i++) this.admitted[(this.oldest + this.count++) % this.limit] = t;
  }

  private clamp(weight: number): number {
    return Math.min(Math.max(1, Math.trunc(weight)), this.limit);
  }
}
