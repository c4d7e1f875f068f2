import { getEventListeners } from 'node:events';
import { AimdLimiter } from './aimd-limiter';

describe('AimdLimiter', () => {
  it('doubles per window of successes until the first throttle, cuts to 0.7× once per burst of throttles', async () => {
    const l = new AimdLimiter({ initial: 10, min: 1, max: 40 });
    for (let i = 0; i < 10; i++) l.success(await l.acquire());
    expect(l.snapshot().limit).toBe(20);
    const burst = await Promise.all([l.acquire(), l.acquire(), l.acquire()]);
    for (const p of burst) l.throttled(p, 0);
    expect(l.snapshot()).toMatchObject({ limit: 14, throttles: 3, decreases: 1 });
    // A throttle of a request started after the cut is a new burst: it cuts again.
    l.throttled(await l.acquire(), 0);
    expect(l.snapshot()).toMatchObject({ limit: 9, decreases: 2 });
  });

  it('after a cut, climbs half the gap back to the limit held before it per window of successes, then one per window', async () => {
    const l = new AimdLimiter({ initial: 20, min: 1, max: 40 });
    l.throttled(await l.acquire(), 0); // 20 → 14; the vault admitted nearly 20
    const limits: number[] = [];
    for (let w = 0; w < 5; w++) {
      const n = l.snapshot().limit;
      for (let i = 0; i < n; i++) l.success(await l.acquire());
      limits.push(l.snapshot().limit);
    }
    expect(limits).toEqual([17, 19, 20, 21, 22]);
    expect(l.snapshot().maxLimitReached).toBe(22);
  });

  it('never cuts below the minimum nor climbs above the maximum', async () => {
    const l = new AimdLimiter({ initial: 2, min: 2, max: 3 });
    l.throttled(await l.acquire(), 0);
    expect(l.snapshot().limit).toBe(2);
    for (let w = 0; w < 4; w++) for (let i = 0; i < 3; i++) l.success(await l.acquire());
    expect(l.snapshot().limit).toBe(3);
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
    l.throttled(a, 120); // the limit is cut to 1: the third waits for b and for Retry-After
    l.success(b);
    await p;
    expect(Date.now() - t0).toBeGreaterThanOrEqual(100);
  });
});

describe('AimdLimiter: a wait its signal stops', () => {
  class Left extends Error {}
  const left = () => new Left('the caller left');
  const within = <T>(p: Promise<T>, ms: number) => Promise.race([p, new Promise((r) => setTimeout(() => r('still waiting'), ms))]);

  afterEach(() => jest.useRealTimers());

  it('rejects at once when its signal aborts during a Retry-After pause, and leaves no timer behind', async () => {
    jest.useFakeTimers({ doNotFake: ['queueMicrotask', 'nextTick', 'setImmediate'] });
    const l = new AimdLimiter({ initial: 1, min: 1, max: 1 });
    l.throttled(await l.acquire(), 60_000);
    const controller = new AbortController();
    const waiting = l.acquire({ signal: controller.signal, left });
    expect(jest.getTimerCount()).toBe(1);
    controller.abort();
    await expect(waiting).rejects.toBeInstanceOf(Left);
    // Nothing waits any more: no timer keeps an aborted run's process alive until the pause ends.
    expect(jest.getTimerCount()).toBe(0);
  });

  it('takes no slot once its signal has aborted, even a free one', async () => {
    const l = new AimdLimiter({ initial: 1, min: 1, max: 1 });
    await expect(l.acquire({ signal: AbortSignal.abort(), left })).rejects.toBeInstanceOf(Left);
    // The one slot is still free.
    await expect(within(l.acquire(), 50)).resolves.toEqual({ epoch: 0 });
  });

  /** One slot, held; a first waiter its controller stops, and a next one. */
  async function heldWithTwoWaiting() {
    const l = new AimdLimiter({ initial: 1, min: 1, max: 1 });
    const held = await l.acquire();
    const controller = new AbortController();
    return { l, held, controller, first: l.acquire({ signal: controller.signal, left }), next: l.acquire() };
  }

  it('never hands a slot to a waiter that gave up: the next waiter gets it', async () => {
    const { l, held, controller, first: gaveUp, next } = await heldWithTwoWaiting();
    controller.abort();
    await expect(gaveUp).rejects.toBeInstanceOf(Left);
    l.success(held);
    await expect(within(next, 200)).resolves.toEqual({ epoch: 0 });
  });

  it('passes a slot on when its waiter was woken for it and aborted before it took it', async () => {
    const { l, held, controller, first: woken, next } = await heldWithTwoWaiting();
    await new Promise((r) => setTimeout(r, 10));
    l.success(held); // wakes the first waiter…
    controller.abort(); // …which leaves before it resumes
    await expect(woken).rejects.toBeInstanceOf(Left);
    await expect(within(next, 200)).resolves.toEqual({ epoch: 0 });
  });
});

describe('AimdLimiter: no timer once nobody waits', () => {
  afterEach(() => jest.useRealTimers());
  it('a call in flight that ends after the abort, during the pause, leaves no timer behind', async () => {
    jest.useFakeTimers({ doNotFake: ['queueMicrotask', 'nextTick', 'setImmediate'] });
    const l = new AimdLimiter({ initial: 2, min: 1, max: 2 });
    const a = await l.acquire();
    const b = await l.acquire(); // still in flight (e.g. a write already sent)
    l.throttled(a, 60_000); // 429 with Retry-After 60 s: pause
    const controller = new AbortController();
    const waiting = l.acquire({ signal: controller.signal, left: () => new Error('left') });
    controller.abort();
    await expect(waiting).rejects.toThrow('left');
    expect(jest.getTimerCount()).toBe(0);
    l.success(b, 10); // the write in flight finishes after the abort
    expect(jest.getTimerCount()).toBe(0);
  });
});

describe('AimdLimiter: the waits of one signal', () => {
  it('many waits on one signal hold one abort listener (Node warns of a leak past 10) and all end when it aborts', async () => {
    const l = new AimdLimiter({ initial: 1, min: 1, max: 1 });
    const held = await l.acquire();
    const controller = new AbortController();
    const waits = Array.from({ length: 20 }, () => l.acquire({ signal: controller.signal, left: () => new Error('left') }));
    await new Promise((r) => setImmediate(r));
    expect(getEventListeners(controller.signal, 'abort').length).toBeLessThanOrEqual(1);
    controller.abort();
    const settled = await Promise.allSettled(waits);
    expect(settled.every((s) => s.status === 'rejected')).toBe(true);
    l.success(held);
    await expect(l.acquire()).resolves.toBeDefined();
  });

  it('a wait woken normally drops its listener', async () => {
    const l = new AimdLimiter({ initial: 1, min: 1, max: 1 });
    const held = await l.acquire();
    const controller = new AbortController();
    const waiting = l.acquire({ signal: controller.signal, left: () => new Error('left') });
    l.success(held);
    await waiting;
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
  });

  it('holds every new start through a vault outage without cutting the limit (not a throttle)', async () => {
    const l = new AimdLimiter({ initial: 4, min: 1, max: 4 });
    const t0 = Date.now();
    await l.acquire();
    l.unavailable(150); // its call met the vault's open breaker: the next trial in 150 ms
    const [a, b] = await Promise.all([l.acquire(), l.acquire()]);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(140);
    expect(l.snapshot()).toMatchObject({ limit: 4, throttles: 0, decreases: 0 });
    l.success(a);
    l.success(b);
  });
});
