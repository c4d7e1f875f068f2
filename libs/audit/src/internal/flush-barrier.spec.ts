import type { DataSource } from 'typeorm';
import { FlushBarrier } from './flush-barrier';

/** A DataSource whose barrier statements answer when the test says. */
function fakeDataSource() {
  const calls: Array<{ resolve: () => void; reject: (e: unknown) => void }> = [];
  const ds = {
    query: jest.fn(() => new Promise<void>((resolve, reject) => calls.push({ resolve, reject }))),
  } as unknown as DataSource;
  return { ds, calls };
}

const tick = () => new Promise((r) => setImmediate(r));

describe('FlushBarrier', () => {
  it('runs at most two barriers at once; callers beyond share ONE barrier started after all of them', async () => {
    const { ds, calls } = fakeDataSource();
    const barrier = FlushBarrier.for(ds);
    const done: string[] = [];
    const a = barrier.after().then(() => done.push('a'));
    const b = barrier.after().then(() => done.push('b'));
    const c = barrier.after().then(() => done.push('c'));
    const d = barrier.after().then(() => done.push('d'));
    expect(calls).toHaveLength(2);
    calls[1].resolve();
    await tick();
    expect(done).toEqual(['b']); // c and d wait for a barrier that starts after them
    expect(calls).toHaveLength(3);
    calls[2].resolve();
    await Promise.all([b, c, d]);
    expect(done).toEqual(['b', 'c', 'd']);
    calls[0].resolve();
    await a;
    expect(calls).toHaveLength(3);
  });

  it('learns once that the database refuses the barrier; a transient failure leaves the question open', async () => {
    const { ds, calls } = fakeDataSource();
    const barrier = FlushBarrier.for(ds);
    const first = barrier.probe();
    calls[0].reject(Object.assign(new Error('connection reset'), { code: 'ECONNRESET' }));
    await expect(first).resolves.toBe(false);
    expect(barrier.refused).toBe(false);
    expect(barrier.usable).toBe(false);

    const second = barrier.probe();
    calls[1].reject(Object.assign(new Error('permission denied for function pg_logical_emit_message'), { code: '42501' }));
    await expect(second).resolves.toBe(false);
    expect(barrier.refused).toBe(true);
    await expect(barrier.probe()).resolves.toBe(false);
    await expect(barrier.durableOrRefused()).resolves.toBeUndefined(); // nothing can be waiting for it
    expect(calls).toHaveLength(2);
  });

  it('is usable once a barrier has committed; durableOrRefused then waits for one', async () => {
    const { ds, calls } = fakeDataSource();
    const barrier = FlushBarrier.for(ds);
    const probe = barrier.probe();
    calls[0].resolve();
    await expect(probe).resolves.toBe(true);
    expect(barrier.usable).toBe(true);
    let durable = false;
    const waiting = barrier.durableOrRefused().then(() => (durable = true));
    await tick();
    expect(durable).toBe(false);
    calls[1].resolve();
    await waiting;
    expect(durable).toBe(true);
  });
});
