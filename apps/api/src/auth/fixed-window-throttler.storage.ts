import type { OnModuleDestroy } from '@nestjs/common';
import type { ThrottlerStorage } from '@nestjs/throttler';

type ThrottlerStorageRecord = Awaited<ReturnType<ThrottlerStorage['increment']>>;

interface Window {
  hits: number;
  /** Epoch ms the current window ends (it starts at the key's first hit). */
  endsAt: number;
  /** Epoch ms a block ends; 0 when not blocked. */
  blockedUntil: number;
}

export interface FixedWindowThrottlerStorageOptions {
  /** Clock in epoch ms (tests inject one). */
  now?: () => number;
  /** How often expired windows are dropped. */
  sweepIntervalMs?: number;
}

/**
 * In-memory rate-limit counters with O(1) work per request: one counter and one window start per key
 * and throttler, where @nestjs/throttler's default storage keeps (and filters, on every request) an
 * array of every hit in the window.
 *
 * A key may make `limit` requests in a window of `ttl` ms that starts at its first request. The next
 * one blocks the key for `blockDuration` ms (the guard defaults it to `ttl`; without one, until the
 * window ends); once a block is over the key starts a fresh window. Blocked requests do not count.
 * Expired entries are dropped by one unref'd periodic sweep, so memory is bounded by the keys seen
 * within about ttl + block + sweep interval.
 */
export class FixedWindowThrottlerStorage implements ThrottlerStorage, OnModuleDestroy {
  private readonly windows = new Map<string, Window>();
  private readonly now: () => number;
  private readonly sweepIntervalMs: number;
  private sweepTimer: NodeJS.Timeout | undefined;
  private destroyed = false;

  constructor(options: FixedWindowThrottlerStorageOptions = {}) {
    this.now = options.now ?? Date.now;
    this.sweepIntervalMs = options.sweepIntervalMs ?? 60_000;
  }

  /** Keys currently held (windows not yet swept). */
  get size(): number {
    return this.windows.size;
  }

  async increment(key: string, ttl: number, limit: number, blockDuration: number, throttlerName: string): Promise<ThrottlerStorageRecord> {
    return this.hit(key, ttl, limit, blockDuration, throttlerName);
  }

  /** `increment` without a promise: the global guard counts through this (the count is synchronous anyway). */
  hit(key: string, ttl: number, limit: number, blockDuration: number, throttlerName: string): ThrottlerStorageRecord {
    this.ensureSweep();
    const now = this.now();
    // Throttlers of one key count separately (the guard's default key holds the name, a custom one may not).
    const id = `${throttlerName}\u0000${key}`;
    let w = this.windows.get(id);
    if (w === undefined) {
      w = { hits: 0, endsAt: now + ttl, blockedUntil: 0 };
      this.windows.set(id, w);
    } else if (w.blockedUntil > now) {
      return { totalHits: w.hits, timeToExpire: seconds(w.endsAt - now), isBlocked: true, timeToBlockExpire: seconds(w.blockedUntil - now) };
    } else if (w.blockedUntil !== 0 || w.endsAt <= now) {
      w.hits = 0;
      w.endsAt = now + ttl;
      w.blockedUntil = 0;
    }
    w.hits++;
    if (w.hits <= limit) return { totalHits: w.hits, timeToExpire: seconds(w.endsAt - now), isBlocked: false, timeToBlockExpire: 0 };
    if (blockDuration > 0) w.blockedUntil = now + blockDuration;
    const blockEnds = blockDuration > 0 ? w.blockedUntil : w.endsAt;
    return { totalHits: w.hits, timeToExpire: seconds(w.endsAt - now), isBlocked: true, timeToBlockExpire: seconds(blockEnds - now) };
  }

  /** Drops every window that has ended and is not blocked (the periodic sweep calls this). */
  sweep(): void {
    const now = this.now();
    for (const [id, w] of this.windows) {
      if (w.endsAt <= now && w.blockedUntil <= now) this.windows.delete(id);
    }
  }

  onModuleDestroy(): void {
    this.destroyed = true;
    clearInterval(this.sweepTimer);
    this.sweepTimer = undefined;
    this.windows.clear();
  }

  private ensureSweep(): void {
    if (this.sweepTimer !== undefined || this.destroyed) return;
    this.sweepTimer = setInterval(() => this.sweep(), this.sweepIntervalMs);
    // Never keeps the process alive on its own.
    this.sweepTimer.unref();
  }
}

/** The guard sends these as Retry-After / X-RateLimit-Reset: whole seconds, never negative. */
function seconds(ms: number): number {
  return ms > 0 ? Math.ceil(ms / 1000) : 0;
}
