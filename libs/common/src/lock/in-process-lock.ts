import { DistributedLock, LockRunOptions, TryRunResult, assertLockKey } from './distributed-lock';
import { KeyedMutex } from './keyed-mutex';

/**
 * `DistributedLock` for a single process (the SQLite deployment): a keyed FIFO mutex. It gives no
 * exclusion across processes — use `PostgresAdvisoryLock` when replicas share a PostgreSQL database.
 */
export class InProcessLock extends DistributedLock {
  private readonly mutex = new KeyedMutex();

  // One process: the lock cannot be lost while held, so `held` never aborts.
  async tryRun<T>(key: string, fn: (held: AbortSignal) => Promise<T>): Promise<TryRunResult<T>> {
    assertLockKey(key);
    const release = this.mutex.tryAcquire(key);
    if (!release) return { acquired: false };
    try {
      return { acquired: true, value: await fn(new AbortController().signal) };
    } finally {
      release();
    }
  }

  async run<T>(key: string, fn: (held: AbortSignal) => Promise<T>, options: LockRunOptions): Promise<T> {
    assertLockKey(key);
    return this.mutex.runExclusive(key, () => fn(new AbortController().signal), options.timeoutMs);
  }

  /** Whether `key` is held in this process right now. */
  isHeld(key: string): boolean {
    return this.mutex.isLocked(key);
  }
}
