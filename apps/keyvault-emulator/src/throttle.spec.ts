import { SlidingWindowLimiter } from './throttle';

/** The largest number of admissions inside any window [t, t + windowMs) (admissions sorted). */
function busiestWindow(admitted: number[], windowMs: number): number {
  let max = 0;
  for (let i = 0, j = 0; i < admitted.length; i++) {
    while (admitted[j] <= admitted[i] - windowMs) j++;
    max = Math.max(max, i - j + 1);
  }
  return max;
}

/** A deterministic pseudo-random sequence (no Math.random in a test that must reproduce). */
function lcg(seed: number): () => number {
  let s = seed;
  return () => (s = (s * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31;
}

describe('SlidingWindowLimiter', () => {
  it('admits a burst of exactly `limit`, then nothing until the window has passed', () => {
    let now = 0;
    const limiter = new SlidingWindowLimiter(4000, 10_000, () => now);
    let ok = 0;
    for (let i = 0; i < 5000; i++) if (limiter.take().ok) ok++;
    expect(ok).toBe(4000);
    // A token bucket would give 400 more after 1 s (and ~8,000 within 10 s); Azure's limit gives none.
    now = 9_999;
    expect(limiter.take()).toEqual({ ok: false, retryAfterSeconds: 1 });
    now = 10_000;
    ok = 0;
    for (let i = 0; i < 5000; i++) if (limiter.take().ok) ok++;
    expect(ok).toBe(4000);
  });

  it('counts a weighted request as that many transactions (an HSM key create weighs two of the 20 per 10 s)', () => {
    let now = 0;
    const limiter = new SlidingWindowLimiter(20, 10_000, () => now);
    for (let i = 0; i < 10; i++) expect(limiter.take(2).ok).toBe(true);
    expect(limiter.take(1)).toEqual({ ok: false, retryAfterSeconds: 10 });
    now = 10_000;
    for (let i = 0; i < 19; i++) {
      now += 1;
      expect(limiter.take().ok).toBe(true);
    }
    // One slot left (the last admission at 0 has left): a weight of 2 also waits for the one at 10,001.
    expect(limiter.take(2)).toEqual({ ok: false, retryAfterSeconds: 10 });
    expect(limiter.take(1).ok).toBe(true);
    now = 20_001;
    expect(limiter.take(2)).toEqual({ ok: false, retryAfterSeconds: 1 }); // the second (10,002) has not left yet
    now = 20_002;
    expect(limiter.take(2).ok).toBe(true);
    expect(limiter.take(99)).toEqual({ ok: false, retryAfterSeconds: 10 }); // clamped to the limit: the whole window must free
  });

  it('never admits more than `limit` in any window, for bursts and steady streams, and wastes no slot', () => {
    const rnd = lcg(42);
    for (const { limit, windowMs, ratePerMs } of [
      { limit: 4000, windowMs: 10_000, ratePerMs: 2 }, // 5× the budget, in clumps
      { limit: 20, windowMs: 1000, ratePerMs: 0.021 }, // just above the budget
      { limit: 3, windowMs: 250, ratePerMs: 0.5 },
    ]) {
      let now = 0;
      const limiter = new SlidingWindowLimiter(limit, windowMs, () => now);
      const admitted: number[] = [];
      const wrongRefusals: number[] = [];
      for (let i = 0; i < 60_000; i++) {
        // Clumps: several requests at the same instant, then gaps (mean rate `ratePerMs`).
        if (rnd() < 0.3) now += (rnd() * 2) / (0.3 * ratePerMs);
        const d = limiter.take();
        if (d.ok) {
          admitted.push(now);
          continue;
        }
        // Refused only when the window really is full (`limit` admissions within (now - windowMs, now]),
        // with the seconds until the oldest of them leaves it.
        const oldest = admitted[admitted.length - limit];
        if (!(oldest > now - windowMs) || d.retryAfterSeconds !== Math.max(1, Math.ceil((oldest + windowMs - now) / 1000))) wrongRefusals.push(now);
      }
      expect(wrongRefusals).toEqual([]);
      expect(busiestWindow(admitted, windowMs)).toBe(limit);
      expect(admitted.length).toBeGreaterThan(3 * limit);
    }
  });

  it('tells the whole seconds until the oldest admission leaves the window, at least 1', () => {
    let now = 0;
    const limiter = new SlidingWindowLimiter(2, 60_000, () => now);
    expect(limiter.take()).toEqual({ ok: true });
    now = 10_000;
    expect(limiter.take()).toEqual({ ok: true });
    now = 20_000;
    expect(limiter.take()).toEqual({ ok: false, retryAfterSeconds: 40 });
    now = 59_999.5;
    expect(limiter.take()).toEqual({ ok: false, retryAfterSeconds: 1 });
    now = 60_000;
    expect(limiter.take()).toEqual({ ok: true });
    // Next slot: the admission at 10 s leaves at 70 s.
    expect(limiter.take()).toEqual({ ok: false, retryAfterSeconds: 10 });
  });

  it('does not count refused requests (as Azure documents)', () => {
    let now = 0;
    const limiter = new SlidingWindowLimiter(1, 1000, () => now);
    expect(limiter.take().ok).toBe(true);
    for (now = 1; now < 1000; now += 10) expect(limiter.take().ok).toBe(false);
    now = 1000;
    expect(limiter.take().ok).toBe(true);
  });

  it('rejects nonsense configuration', () => {
    expect(() => new SlidingWindowLimiter(0, 1000)).toThrow(RangeError);
    expect(() => new SlidingWindowLimiter(1.5, 1000)).toThrow(RangeError);
    expect(() => new SlidingWindowLimiter(10, 0)).toThrow(RangeError);
  });
});
