/** Outcome of `DistributedLock.tryRun`: the value of `fn` when the lock was free, else nothing ran. */
export type TryRunResult<T> = { acquired: true; value: T } | { acquired: false };

export interface LockRunOptions {
  /** How long `run()` waits for the lock before throwing `LockTimeoutError`. */
  timeoutMs: number;
}

/**
 * A named mutual-exclusion lock that holds across replicas when the backing store allows it.
 * An abstract class so it doubles as the DI token: inject `DistributedLock`; the host binds it,
 * typically with `createDistributedLock(dataSource)`.
 *
 * The lock is held for exactly the duration of `fn` and released when `fn` settles, also when it
 * throws. It is not re-entrant: calling `run(k)` inside `run(k)` waits for itself (and times out).
 *
 * `fn` gets `held`, aborted (reason: `LockLostError`) if the lock is lost before `fn` settles — an advisory lock
 * goes with its session, and another replica may take it at once. Work of many items calls `held.throwIfAborted()`
 * before each, so it stops instead of going on unlocked beside that replica.
 */
export abstract class DistributedLock {
  /**
   * Runs `fn` only if nobody (in this process or another replica) holds `key`; never waits.
   * Meant for "exactly one replica runs this cron job".
   */
  abstract tryRun<T>(key: string, fn: (held: AbortSignal) => Promise<T>): Promise<TryRunResult<T>>;

  /**
   * Waits up to `options.timeoutMs` for `key`, then runs `fn`. Throws `LockTimeoutError` when the
   * lock was not obtained in time (and `fn` did not run).
   */
  abstract run<T>(key: string, fn: (held: AbortSignal) => Promise<T>, options: LockRunOptions): Promise<T>;
}

export function assertLockKey(key: string): void {
  if (typeof key !== 'string' || key.length === 0 || key.length > 512) {
    throw new TypeError('A lock key must be a non-empty string of at most 512 characters');
  }
}
