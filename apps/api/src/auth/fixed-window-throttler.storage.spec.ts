import { FixedWindowThrottlerStorage } from './fixed-window-throttler.storage';

/** Rate-limit counters as the throttler guard reads them, on a clock the test moves. */
describe('FixedWindowThrottlerStorage', () => {
  const ttl = 60_000;
  let clock: number;
  let storage: FixedWindowThrottlerStorage;
  const hit = (key = 'client-a', limit = 3, blockDuration = ttl, name = 'default') => storage.increment(key, ttl, limit, blockDuration, name);
  const hits = async (n: number, key?: string, limit?: number, blockDuration?: number) => {
    const out = [];
    for (let i = 0; i < n; i++) out.push(await hit(key, limit, blockDuration));
    return out;
  };

  beforeEach(() => {
    clock = 1_000_000;
    storage = new FixedWindowThrottlerStorage({ now: () => clock });
  });

  afterEach(() => storage.onModuleDestroy());

  it('counts hits within the window and reports the seconds left in it', async () => {
    expect(await hit()).toEqual({ totalHits: 1, timeToExpire: 60, isBlocked: false, timeToBlockExpire: 0 });
    clock += 20_500;
    expect(await hit()).toEqual({ totalHits: 2, timeToExpire: 40, isBlocked: false, timeToBlockExpire: 0 });
    expect(await hit()).toMatchObject({ totalHits: 3, isBlocked: false });
  });

  it('starts a fresh window once ttl has passed since the first hit', async () => {
    await hits(3);
    clock += ttl;
    expect(await hit()).toEqual({ totalHits: 1, timeToExpire: 60, isBlocked: false, timeToBlockExpire: 0 });
  });

  it('blocks past the limit for blockDuration, even beyond the window, then starts a fresh window', async () => {
    const block = 90_000;
    expect((await hits(3, 'client-a', 3, block)).every((r) => !r.isBlocked)).toBe(true);
    expect(await hit('client-a', 3, block)).toEqual({ totalHits: 4, timeToExpire: 60, isBlocked: true, timeToBlockExpire: 90 });
    clock += 89_000;
    // The window has ended, the block has not; blocked requests do not count.
    expect(await hit('client-a', 3, block)).toEqual({ totalHits: 4, timeToExpire: 0, isBlocked: true, timeToBlockExpire: 1 });
    clock += 1_000;
    expect(await hit('client-a', 3, block)).toEqual({ totalHits: 1, timeToExpire: 60, isBlocked: false, timeToBlockExpire: 0 });
  });

  it('without a blockDuration, refuses until the window ends', async () => {
    await hits(3, 'client-a', 3, 0);
    clock += 45_000;
    expect(await hit('client-a', 3, 0)).toMatchObject({ isBlocked: true, timeToBlockExpire: 15 });
    clock += 15_000;
    expect(await hit('client-a', 3, 0)).toMatchObject({ totalHits: 1, isBlocked: false });
  });

  it('counts keys and throttler names independently', async () => {
    await hits(4, 'client-a');
    expect(await hit('client-a')).toMatchObject({ isBlocked: true });
    expect(await hit('client-b')).toMatchObject({ totalHits: 1, isBlocked: false });
    expect(await hit('client-a', 3, ttl, 'burst')).toMatchObject({ totalHits: 1, isBlocked: false });
  });

  it('sweeps ended windows but keeps live and blocked ones', async () => {
    await hit('ended');
    clock += 30_000;
    await hit('live');
    await hits(4, 'blocked', 3, 120_000);
    clock += 30_000;
    storage.sweep();
    expect(storage.size).toBe(2);
    clock += 30_000;
    storage.sweep();
    expect(storage.size).toBe(1);
    clock += 60_000;
    storage.sweep();
    expect(storage.size).toBe(0);
  });

  it('does not keep the process alive: its sweep timer is unref\'d', async () => {
    const refTimers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const before = refTimers();
    await hit();
    expect(refTimers()).toBe(before);
  });

  describe('periodic sweep', () => {
    beforeEach(() => jest.useFakeTimers());
    afterEach(() => jest.useRealTimers());

    it('runs on one timer, started by the first hit and cleared on module destroy', async () => {
      const s = new FixedWindowThrottlerStorage({ now: () => clock, sweepIntervalMs: 10_000 });
      expect(jest.getTimerCount()).toBe(0);
      await s.increment('a', ttl, 3, ttl, 'default');
      await s.increment('b', ttl, 3, ttl, 'default');
      expect(jest.getTimerCount()).toBe(1);
      clock += ttl;
      jest.advanceTimersByTime(10_000);
      expect(s.size).toBe(0);
      s.onModuleDestroy();
      expect(jest.getTimerCount()).toBe(0);
      // A straggler after shutdown does not start it again.
      await s.increment('c', ttl, 3, ttl, 'default');
      expect(jest.getTimerCount()).toBe(0);
    });
  });
});
