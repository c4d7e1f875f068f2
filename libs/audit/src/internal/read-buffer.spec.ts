import { ReadBuffer } from './read-buffer';

const item = (n: number) => ({ n });

describe('ReadBuffer', () => {
  it('accepts up to maxSize, then makes further pushes wait (no drop) and admits them FIFO as written items leave', async () => {
    const buf = new ReadBuffer<{ n: number }>(2);
    const a = item(1);
    const b = item(2);
    await buf.push(a);
    await buf.push(b);
    const order: number[] = [];
    const c = buf.push(item(3)).then(() => order.push(3));
    const d = buf.push(item(4)).then(() => order.push(4));
    await new Promise((r) => setImmediate(r));
    expect(order).toEqual([]);
    expect(buf.waiting).toBe(2);
    buf.remove(new Set([a]));
    await c;
    expect(order).toEqual([3]);
    buf.remove(new Set([b]));
    await d;
    expect(order).toEqual([3, 4]);
    expect(buf.peek(10).map((i) => i.n)).toEqual([3, 4]);
  });

  it('keeps peeked items until they are removed (a failed write loses nothing)', async () => {
    const buf = new ReadBuffer<{ n: number }>(10);
    for (let i = 0; i < 5; i++) await buf.push(item(i));
    expect(buf.peek(3).map((i) => i.n)).toEqual([0, 1, 2]);
    expect(buf.depth).toBe(5);
  });

  it('rejects waiters when asked to (fail-closed)', async () => {
    const buf = new ReadBuffer<{ n: number }>(1);
    await buf.push(item(1));
    const waiting = buf.push(item(2));
    expect(buf.rejectWaiters(new Error('down'))).toBe(1);
    await expect(waiting).rejects.toThrow('down');
    expect(buf.depth).toBe(1);
  });
});
