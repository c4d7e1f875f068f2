/** A permit: remember the epoch it was taken in, so one burst of 429s cuts the limit once. */
export interface AimdPermit {
  epoch: number;
}

export interface AimdStats {
  limit: number;
  maxLimitReached: number;
  throttles: number;
  decreases: number;
}

/** Stops a wait for a slot: once `signal` aborts, `acquire` takes none and rejects with `left()`. */
export interface AimdCancel {
  signal?: AbortSignal;
  left: () => Error;
}

/** What a burst of throttles leaves of the limit (CUBIC's β): halving emptied the vault's window for long. */
export const AIMD_DECREASE = 0.7;

/**
 * Additive-increase / multiplicative-decrease concurrency for vault writes. A 429 (RATE_LIMITED)
 * cuts the limit to 0.7× and pauses every new start until its Retry-After has passed (a vault outage pauses them
 * too, without a cut: `unavailable`). Each window of
 * `limit` successes then closes half the gap to the limit held before the cut (as BIC does: the
 * vault admitted nearly that much) and, once there, adds one; until the first throttle (slow start)
 * it doubles the limit. Throttles of requests started before the last decrease do not cut again
 * (they belong to the same burst). Time here is elapsed time, not the time of day, so it uses timers
 * rather than the Clock.
 */
export class AimdLimiter {
  private limit: number;
  private inFlight = 0;
  private epoch = 0;
  private successes = 0;
  private pausedUntil = 0;
  private readonly waiters: (() => void)[] = [];
  /** Per signal, the waits its abort ends: ONE listener per signal (a run's many waits on it made Node warn of a leak past 10). */
  private readonly leaving = new Map<AbortSignal, { waits: Set<() => void>; listener: () => void }>();
  private timer?: NodeJS.Timeout;
  private readonly stats = { maxLimitReached: 0, throttles: 0, decreases: 0 };
  /** Smoothed duration of unthrottled calls (ms): what a call takes when the vault did not throttle it. */
  private typicalMs = 0;
  /** Until the first throttle, a window of successes doubles the limit instead of adding one. */
  private slowStart = true;
  /** The limit held when the last burst began: recovery climbs back toward it quickly. */
  private beforeDecrease = 0;

  constructor(private readonly o: { initial: number; min: number; max: number }) {
    this.limit = o.initial;
    this.stats.maxLimitReached = o.initial;
  }

  /**
   * A slot, waited for while the limit is full or a Retry-After pause lasts. `cancel.signal` aborting ends the wait at
   * once (an aborted run must not sit out a throttled vault's pause): no slot is taken, and one it was woken for goes to
   * the next waiter.
   */
  async acquire(cancel?: AimdCancel): Promise<AimdPermit> {
    const signal = cancel?.signal;
    while (!signal?.aborted && (this.inFlight >= this.limit || Date.now() < this.pausedUntil)) await this.turn(signal);
    if (signal?.aborted) {
      // A slot it was woken for goes to the next waiter (none waiting: no timer is set).
      if (this.waiters.length) this.wake();
      throw cancel!.left();
    }
    this.inFlight++;
    return { epoch: this.epoch };
  }

  /**
   * Whether a call that succeeded after `durationMs` was throttled and retried by the vault client on
   * the way (Retry-After is at least `retryFloorMs`): it took that much longer than calls usually do.
   * Under CPU load every call is slow; comparing with the usual duration keeps that from counting.
   */
  slowAsThrottled(durationMs: number, retryFloorMs: number): boolean {
    return durationMs >= retryFloorMs + 2 * this.typicalMs;
  }

  /** The permit's request succeeded (after `durationMs`, when known). */
  success(permit: AimdPermit, durationMs?: number): void {
    this.inFlight--;
    if (durationMs !== undefined) this.typicalMs = this.typicalMs === 0 ? durationMs : 0.95 * this.typicalMs + 0.05 * durationMs;
    if (permit.epoch === this.epoch && ++this.successes >= this.limit) {
      this.successes = 0;
      if (this.limit < this.o.max) this.limit = Math.min(this.o.max, this.increased());
      this.stats.maxLimitReached = Math.max(this.stats.maxLimitReached, this.limit);
    }
    this.wake();
  }

  /** The permit's request was throttled; `retryAfterMs` from the vault (at least 1 s is assumed without one). */
  throttled(permit: AimdPermit, retryAfterMs: number | undefined): void {
    this.inFlight--;
    this.stats.throttles++;
    this.slowStart = false;
    this.pausedUntil = Math.max(this.pausedUntil, Date.now() + (retryAfterMs ?? 1000));
    if (permit.epoch === this.epoch) {
      this.epoch++;
      this.successes = 0;
      this.beforeDecrease = this.limit;
      this.limit = Math.max(this.o.min, Math.floor(this.limit * AIMD_DECREASE));
      this.stats.decreases++;
    }
    this.wake();
  }

  /**
   * The permit's request met a vault outage (`VaultOutage`): not a throttle (the limit stays), but every new start waits
   * `pauseMs` — until the vault client's breaker lets a trial call through.
   */
  unavailable(pauseMs: number): void {
    this.inFlight--;
    this.pausedUntil = Math.max(this.pausedUntil, Date.now() + pauseMs);
    this.wake();
  }

  /** Neither: a failure that says nothing about the vault's budget. */
  release(): void {
    this.inFlight--;
    this.wake();
  }

  snapshot(): AimdStats {
    return { limit: this.limit, ...this.stats };
  }

  private increased(): number {
    if (this.slowStart) return 2 * this.limit;
    const gap = this.beforeDecrease - this.limit;
    return this.limit + Math.max(1, Math.ceil(gap / 2));
  }

  /** Resolves when woken (a slot may be free), or once `signal` aborts — then out of the queue, never woken later. */
  private turn(signal: AbortSignal | undefined): Promise<void> {
    return new Promise<void>((resolve) => {
      const woken = () => {
        if (signal) this.stopLeaving(signal, gone);
        resolve();
      };
      const gone = () => {
        const i = this.waiters.indexOf(woken);
        if (i >= 0) this.waiters.splice(i, 1);
        // Nobody waits: no timer keeps the process alive until the pause ends (set again by the next wait).
        if (!this.waiters.length && this.timer) {
          clearTimeout(this.timer);
          this.timer = undefined;
        }
        resolve();
      };
      this.waiters.push(woken);
      if (signal) this.leaveOn(signal, gone);
      this.schedule();
    });
  }

  private leaveOn(signal: AbortSignal, gone: () => void): void {
    let entry = this.leaving.get(signal);
    if (!entry) {
      const waits = new Set<() => void>();
      const listener = () => {
        this.leaving.delete(signal);
        for (const w of waits) w();
      };
      this.leaving.set(signal, (entry = { waits, listener }));
      signal.addEventListener('abort', listener, { once: true });
    }
    entry.waits.add(gone);
  }

  private stopLeaving(signal: AbortSignal, gone: () => void): void {
    const entry = this.leaving.get(signal);
    if (!entry) return;
    entry.waits.delete(gone);
    if (entry.waits.size) return;
    this.leaving.delete(signal);
    signal.removeEventListener('abort', entry.listener);
  }

  private wake(): void {
    if (Date.now() < this.pausedUntil) return this.schedule();
    const free = Math.max(0, this.limit - this.inFlight);
    for (const w of this.waiters.splice(0, free)) w();
  }

  private schedule(): void {
    // Nobody to wake (a call ending during a pause after every waiter left): no timer keeping the process alive.
    if (this.timer || !this.waiters.length) return;
    const delay = Math.max(0, this.pausedUntil - Date.now());
    if (delay === 0 && this.inFlight < this.limit) {
      queueMicrotask(() => this.wake());
      return;
    }
    if (delay === 0) return; // a release will wake the waiters
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.wake();
    }, delay);
  }
}
