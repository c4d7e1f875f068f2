import { InProcessLock } from './in-process-lock';
import { KeyedMutex } from './keyed-mutex';
import { LockTimeoutError } from './lock.errors';

const tick = () => new Promise((r) => setImmediate(r));

describe('InProcessLock', () => {
  it('tryRun runs fn when free and refuses (without running) while the key is held', async () => {
    const lock = new InProcessLock();
    let release!: () => void;
    const first = lock.tryRun('job', () => new Promise<string>((r) => (release = () => r('done'))));
    await tick();
    let ranSecond = false;
    await expect(lock.tryRun('job', async () => (ranSecond = true))).resolves.toEqual({ acquired: false });
    expect(ranSecond).toBe(false);
    await expect(lock.tryRun('other-job', async () => 1)).resolves.toEqual({ acquired: true, value: 1 });
    release();
    await expect(first).resolves.toEqual({ acquired: true, value: 'done' });
    await expect(lock.tryRun('job', async () => 2)).resolves.toEqual({ acquired: true, value: 2 });
  });

  it('releases the key when fn throws', async () => {
    const lock = new InProcessLock();
    await expect(lock.tryRun('k', async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(lock.isHeld('k')).toBe(false);
    await expect(lock.run('k', async () => 'ok', { timeoutMs: 50 })).resolves.toBe('ok');
  });

  it('run serialises callers in arrival order', async () => {
    const lock = new InProcessLock();
    const log: string[] = [];
    const job = (name: string) =>
      lock.run(
        'k',
        async () => {
          log.push(`${name}:start`);
          await tick();
          log.push(`${name}:end`);
        },
        { timeoutMs: 1000 },
      );
    await Promise.all([job('a'), job('b'), job('c')]);
    expect(log).toEqual(['a:start', 'a:end', 'b:start', 'b:end', 'c:start', 'c:end']);
  });

  it('run times out with LockTimeoutError and does not run fn', async () => {
    const lock = new InProcessLock();
    let release!: () => void;
    const holder = lock.run('k', () => new Promise<void>((r) => (release = r)), { timeoutMs: 1000 });
    await tick();
    let ran = false;
    const err = await lock.run('k', async () => (ran = true), { timeoutMs: 30 }).catch((e) => e);
    expect(err).toBeInstanceOf(LockTimeoutError);
    expect(err).toMatchObject({ code: 9001, codeName: 'LOCK_TIMEOUT', key: 'k', timeoutMs: 30, retryable: true });
    release();
    await holder;
    expect(ran).toBe(false);
    expect(lock.isHeld('k')).toBe(false); // the timed-out waiter did not inherit the lock
  });
});

describe('KeyedMutex', () => {
  it('hands the mutex to the next waiter, never to a later tryAcquire', async () => {
    const m = new KeyedMutex();
    const r1 = m.tryAcquire('k')!;
    const second = m.acquire('k');
    r1();
    expect(m.tryAcquire('k')).toBeUndefined();
    const r2 = await second;
    r2();
    r2(); // idempotent
    expect(m.isLocked('k')).toBe(false);
  });
});
