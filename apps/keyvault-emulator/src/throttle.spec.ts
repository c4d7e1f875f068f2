import { TokenBucket } from './throttle';

describe('TokenBucket', () => {
  it('allows a burst of `limit`, then refills at limit/window', () => {
    let now = 0;
    const bucket = new TokenBucket(4000, 10_000, () => now);
    let ok = 0;
    for (let i = 0; i < 5000; i++) if (bucket.take().ok) ok++;
    expect(ok).toBe(4000);
    now += 1000; // 400 tokens back
    ok = 0;
    for (let i = 0; i < 1000; i++) if (bucket.take().ok) ok++;
    expect(ok).toBe(400);
  });

  it('tells how long to wait, in whole seconds, at least 1', () => {
    let now = 0;
    const bucket = new TokenBucket(2, 60_000, () => now);
    bucket.take();
    bucket.take();
    expect(bucket.take()).toEqual({ ok: false, retryAfterSeconds: 30 });
    now = 29_500;
    expect(bucket.take()).toEqual({ ok: false, retryAfterSeconds: 1 });
    now = 30_000;
    expect(bucket.take()).toEqual({ ok: true });
  });

  it('never holds more than limit tokens', () => {
    let now = 0;
    const bucket = new TokenBucket(20, 1000, () => now);
    now = 1_000_000;
    expect(bucket.available()).toBe(20);
  });

  it('rejects nonsense configuration', () => {
    expect(() => new TokenBucket(0, 1000)).toThrow(RangeError);
    expect(() => new TokenBucket(10, 0)).toThrow(RangeError);
  });
});
