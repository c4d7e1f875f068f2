/**
 * The vault's clock: a time source (the `now` option, else the system clock) plus an offset that `advanceTime` moves
 * forward, so a test sees in seconds what Key Vault does over days (rotation policies, expiry, soft-delete retention).
 * The offset lives in memory: a restarted vault starts from its source again.
 */
export class VaultClock {
  private offsetMs = 0;

  constructor(private readonly source: () => number = Date.now) {}

  now(): number {
    return this.source() + this.offsetMs;
  }

  get offset(): number {
    return this.offsetMs;
  }

  /** Moves the clock `ms` forward (a non-negative integer: time never runs backwards here). */
  advance(ms: number): void {
    if (!Number.isSafeInteger(ms) || ms < 0) throw new TypeError(`advanceTime takes a non-negative integer of milliseconds (got ${String(ms).slice(0, 32)})`);
    this.offsetMs += ms;
  }
}
