import { uuidV7, uuidV7Floor } from './uuid-v7';

describe('uuidV7', () => {
  it('is an RFC 9562 version 7 UUID carrying the millisecond timestamp', () => {
    const ms = Date.UTC(2026, 10, 30, 12, 0, 0, 123);
    const id = uuidV7(ms);
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(parseInt(id.replace(/-/g, '').slice(0, 12), 16)).toBe(ms);
  });

  it('sorts by time across milliseconds and never repeats', () => {
    const ids: string[] = [];
    for (let ms = 1_700_000_000_000; ms < 1_700_000_000_000 + 300; ms++) ids.push(uuidV7(ms), uuidV7(ms));
    const byTime = ids.filter((_, i) => i % 2 === 0);
    expect([...byTime].sort()).toEqual(byTime);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('carries the whole 48-bit time range and refuses a time outside it', () => {
    for (const ms of [0, 1, 0xffffff, 0x1000000, 2 ** 48 - 1]) {
      const id = uuidV7(ms);
      expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      expect(parseInt(id.replace(/-/g, '').slice(0, 12), 16)).toBe(ms);
    }
    for (const bad of [-1, 2 ** 48, 1.5, Number.NaN]) expect(() => uuidV7(bad)).toThrow(RangeError);
  });

  it('draws fresh random bits for every id, across refills of its random pool', () => {
    const tails = new Set<string>();
    for (let i = 0; i < 2000; i++) tails.add(uuidV7(1_700_000_000_000).slice(14));
    expect(tails.size).toBe(2000);
  });

  it('uuidV7Floor(ms) sits between every id of the millisecond before and every id of ms', () => {
    for (const ms of [0, 1, 0xffffff, 0x1000000, 1_700_000_000_000, 2 ** 48 - 1]) {
      const floor = uuidV7Floor(ms)!;
      expect(floor).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-0000-0000-000000000000$/);
      for (let i = 0; i < 50; i++) {
        expect(uuidV7(ms) > floor).toBe(true);
        if (ms > 0) expect(uuidV7(ms - 1) < floor).toBe(true);
      }
    }
    for (const outside of [-1, 2 ** 48, 1.5, Number.NaN]) expect(uuidV7Floor(outside)).toBeUndefined();
  });
});
