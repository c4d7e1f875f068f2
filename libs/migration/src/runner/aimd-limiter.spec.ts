import { AimdLimiter } from './aimd-limiter';

describe('AimdLimiter', () => {
  it('adds one per window of successes and halves once per burst of throttles', async () => {
    const l = new AimdLimiter({ initial: 4, min: 1, max: 6 });
    for (let i = 0; i < 4; i++) l.success(await l.acquire());
    expect(l.snapshot().limit).toBe(5);
    const burst = await Promise.all([l.acquire(), l.acquire(), l.acquire()]);
    for (const p of burst) l.throttled(p, 0);
    expect(l.snapshot()).toMatchObject({ limit: 2, throttles: 3, decreases: 1 });
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
