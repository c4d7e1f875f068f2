import { describeError } from '../errors';
import type { LockSession } from './lock-sessions';

/**
 * How a held advisory lock's session is checked while `fn` runs: a `SELECT 1` every `intervalMs`, which must answer
 * within `timeoutMs`. PersistenceModule's `locks.heartbeatMs` / `locks.heartbeatTimeoutMs`.
 */
export interface LockHeartbeat {
  intervalMs: number;
  timeoutMs: number;
}

/**
 * A session whose path stalls (a hung server, a proxy or network path that still ACKs) emits neither `error` nor
 * `end` until TCP keepalive gives up (hours), while PostgreSQL may already have let another replica take the lock.
 * Every 10 s, answered within 5 s, notices that within 15 s: a `SELECT 1` takes milliseconds on a healthy server,
 * so 5 s is slack for a loaded one (or a GC pause here) rather than a false LOCK_LOST, and one trivial query per held
 * lock every 10 s costs nothing; both stay well below the query deadline (40 s) that would otherwise notice first.
 */
export const DEFAULT_LOCK_HEARTBEAT: Readonly<LockHeartbeat> = { intervalMs: 10_000, timeoutMs: 5000 };

/** Refuses a heartbeat that is not two positive integers with the deadline below the interval. */
export function assertLockHeartbeat(heartbeat: LockHeartbeat): void {
  const { intervalMs, timeoutMs } = heartbeat;
  if (!Number.isInteger(intervalMs) || !Number.isInteger(timeoutMs) || intervalMs <= 0 || timeoutMs <= 0 || timeoutMs >= intervalMs) {
    throw new TypeError(`A lock heartbeat needs integer milliseconds with 0 < timeoutMs < intervalMs, got ${timeoutMs} and ${intervalMs}`);
  }
}

/**
 * Starts checking `session` (see `LockHeartbeat`); `failed` is called once, with why, when a check errs or is not
 * answered in time. Checks never overlap: the next one is scheduled after the previous answer. The returned stop
 * clears the timer and waits for a check in flight (at most `timeoutMs`), so that nothing else is sent on the
 * session (its unlock) while one is; a check that fails meanwhile still calls `failed`. Timers are unref'd.
 */
export function startLockHeartbeat(session: LockSession, heartbeat: LockHeartbeat, failed: (why: string) => void): () => Promise<void> {
  let stopped = false;
  let next: NodeJS.Timeout | undefined;
  let inFlight: Promise<void> | undefined;

  const check = async (): Promise<void> => {
    let deadline: NodeJS.Timeout | undefined;
    const late = new Promise<string>((resolve) => {
      deadline = setTimeout(() => resolve(`no answer to a heartbeat within ${heartbeat.timeoutMs} ms`), heartbeat.timeoutMs);
      deadline.unref();
    });
    // An answer that comes after the deadline is dropped: the session is released with an error, which ends the query.
    const answer = session.query('SELECT 1').then(
      () => undefined,
      (e: unknown) => `its heartbeat failed: ${describeError(e)}`,
    );
    const problem = await Promise.race([answer, late]);
    clearTimeout(deadline);
    if (problem !== undefined) failed(problem);
    else if (!stopped) schedule();
  };

  const schedule = () => {
    next = setTimeout(() => {
      next = undefined;
      inFlight = check().finally(() => (inFlight = undefined));
    }, heartbeat.intervalMs);
    next.unref();
  };

  schedule();
  return async () => {
    stopped = true;
    clearTimeout(next);
    await inFlight;
  };
}
