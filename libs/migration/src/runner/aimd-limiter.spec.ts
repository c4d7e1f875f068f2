import { AimdLimiter } from './aimd-limiter';

describe('AimdLimiter', () => {
  it('doubles per window of successes until the first throttle, halves once per burst of throttles, then adds one per window', async () => {
    const l = new AimdLimiter({ initial: 4, min: 1, max: 12 });
    for (let i = 0; i < 4; i++) l.success(await l.acquire());
    expect(l.snapshot().limit).toBe(8);
    const burst = await Promise.all([l.acquire(), l.acquire(), l.acquire()]);
    for (const p of burst) l.throttled(p, 0);
    expect(l.snapshot()).toMatchObject({ limit: 4, throttles: 3, decreases: 1 });
    for (let i = 0; i < 4; i++) l.success(await l.acquire());
    expect(l.snapshot().limit).toBe(5);
  });

  it('counts a call as throttled only when it took over the retry floor more than usual', async () => {
    const l = new AimdLimiter({ initial: 4, min: 1, max: 4 });
    for (let i = 0; i < 20; i++) l.success(await l.acquire(), 300);
    expect(l.slowAsThrottled(1200, 1000)).toBe(false); // a loaded machine: every call is slow
    expect(l.slowAsThrottled(1700, 1000)).toBe(true);
  });

  it('never exceeds the limit in flight and waits out Retry-After', async () => {
    const l = new AimdLimiter({ initial: 2, min: 1, max: 2 });
    const a = await l.acquire();
    const b = await l.acquire();
    let third = false;
    const p = l.acquire().then(() => (third = true));
    await new Promise((r) => setTimeout(r, 10));
    expect(third).toBe(false);
    const t0 = Date.now();
    l.throttled(a, 120); // the limit halves to 1: the third waits for b and for Retry-After
    l.success(b);
    await p;
    expect(Date.now() - t0).toBeGreaterThanOrEqual(100);
  });
});
