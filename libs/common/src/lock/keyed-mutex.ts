import { LockTimeoutError } from './lock.errors';

/** Gives a held mutex back. Idempotent: calling it twice releases once. */
export type MutexRelease = () => void;

interface Waiter {
  grant: (release: MutexRelease) => void;
  timer?: NodeJS.Timeout;
}

/**
 * An in-process mutex per key with a FIFO queue of waiters. Ownership is handed directly to the
 * next waiter on release, so a waiter can never be overtaken by a later `tryAcquire`.
 */
export class KeyedMutex {
  /** key → queue of waiters; presence of the key means "held". */
  private readonly held = new Map<string, Waiter[]>();

  isLocked(key: string): boolean {
    return this.held.has(key);
  }

  /** Number of keys currently held (for tests and metrics). */
  get size(): number {
    return this.held.size;
  }

  /** Takes the mutex if it is free; `undefined` when another holder has it. Never waits. */
  tryAcquire(key: string): MutexRelease | undefined {
    if (this.held.has(key)) return undefined;
    this.held.set(key, []);
    return this.releaser(key);
  }

  /**
   * Waits for the mutex. With `timeoutMs`, rejects with `LockTimeoutError` when it is not granted in
   * time (the waiter is removed from the queue, so a late grant cannot leak the mutex).
   */
  acquire(key: string, timeoutMs?: number): Promise<MutexRelease> {
    const queue = this.held.get(key);
    if (!queue) {
      this.held.set(key, []);
      return Promise.resolve(this.releaser(key));
    }
    return new Promise<MutexRelease>((resolve, reject) => {
      const waiter: Waiter = { grant: resolve };
      if (timeoutMs !== undefined) {
        waiter.timer = setTimeout(() => {
          const i = queue.indexOf(waiter);
          if (i >= 0) queue.splice(i, 1);
          reject(new LockTimeoutError(key, timeoutMs));
        }, Math.max(0, timeoutMs));
      }
      queue.push(waiter);
    });
  }

  /** Runs `fn` while holding the mutex for `key`. */
  async runExclusive<T>(key: string, fn: () => Promise<T>, timeoutMs?: number): Promise<T> {
    const release = await this.acquire(key, timeoutMs);
    try {
      return await fn();
    } finally {
      release();
    }
  }

  private releaser(key: string): MutexRelease {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const queue = this.held.get(key);
      const next = queue?.shift();
      if (!next) {
        this.held.delete(key);
        return;
      }
      if (next.timer) clearTimeout(next.timer);
      next.grant(this.releaser(key));
    };
  }
}
