/**
 * A token bucket: `limit` transactions per `windowMs`, refilled continuously. Azure Key Vault's
 * secrets limit is 4,000 transactions per 10 s per vault; failed (429) requests also count there,
 * but a refused request takes no token here so a client that backs off recovers on schedule.
 */
export class TokenBucket {
  private tokens: number;
  private last: number;
  private readonly ratePerMs: number;

  constructor(
    readonly limit: number,
    readonly windowMs: number,
    private readonly now: () => number = Date.now,
  ) {
    if (!Number.isFinite(limit) || limit < 1) throw new RangeError(`throttle.limit must be >= 1 (got ${limit})`);
    if (!Number.isFinite(windowMs) || windowMs < 1) throw new RangeError(`throttle.windowMs must be >= 1 (got ${windowMs})`);
    this.tokens = limit;
    this.last = now();
    this.ratePerMs = limit / windowMs;
  }

  /** Takes one token if available; otherwise returns the whole seconds to wait (>= 1). */
  take(): { ok: true } | { ok: false; retryAfterSeconds: number } {
    this.refill();
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return { ok: true };
    }
    const waitMs = (1 - this.tokens) / this.ratePerMs;
    return { ok: false, retryAfterSeconds: Math.max(1, Math.ceil(waitMs / 1000)) };
  }

  /** Tokens currently available (fractional). */
  available(): number {
    this.refill();
    return this.tokens;
  }

  private refill(): void {
    const t = this.now();
    const elapsed = t - this.last;
    if (elapsed > 0) {
      this.tokens = Math.min(this.limit, this.tokens + elapsed * this.ratePerMs);
      this.last = t;
    }
  }
}
