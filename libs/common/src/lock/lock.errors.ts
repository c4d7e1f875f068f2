import { HttpStatus } from '@nestjs/common';
import { CredentialVaultError, ErrorSeverity } from '../errors';

/** Stable error codes of the lock helpers. Never renumber. */
export enum LockErrorCode {
  /** `DistributedLock.run()` could not take the lock within `timeoutMs`. */
  LOCK_TIMEOUT = 9001,
  /** Every advisory-lock session of this process is held (PersistenceModule `locks.maxSessions`) and none came free in time. */
  LOCK_SESSIONS_EXHAUSTED = 9002,
  /** The session an advisory lock was held on ended, or stopped answering, while its holder worked: the lock is gone (or may be), the work stopped. */
  LOCK_LOST = 9003,
}

/** HTTP status of each code, composed by the host; a new code does not compile without one. */
export const LOCK_ERROR_HTTP_STATUS: Record<LockErrorCode, HttpStatus> = {
  [LockErrorCode.LOCK_TIMEOUT]: HttpStatus.SERVICE_UNAVAILABLE, // busy, not broken: the caller may retry
  [LockErrorCode.LOCK_SESSIONS_EXHAUSTED]: HttpStatus.SERVICE_UNAVAILABLE, // this replica's lock capacity, not the request
  [LockErrorCode.LOCK_LOST]: HttpStatus.SERVICE_UNAVAILABLE, // a lost database session, not the request: a retry takes the lock anew
};

/** Thrown by `DistributedLock.run()` (and `KeyedMutex.acquire()`) when the lock is not obtained in time. */
export class LockTimeoutError extends CredentialVaultError {
  readonly code = LockErrorCode.LOCK_TIMEOUT;
  readonly codeName = 'LOCK_TIMEOUT';
  readonly severity = ErrorSeverity.TRANSIENT;

  constructor(
    readonly key: string,
    readonly timeoutMs: number,
    options?: { cause?: unknown },
  ) {
    super(`Lock "${key}" was not acquired within ${timeoutMs} ms`, options);
  }
}

/**
 * Thrown by `PostgresAdvisoryLock` when this process already holds as many advisory locks as it has lock
 * sessions (each held lock pins one) and none came free within the caller's wait.
 */
export class LockSessionsExhaustedError extends CredentialVaultError {
  readonly code = LockErrorCode.LOCK_SESSIONS_EXHAUSTED;
  readonly codeName = 'LOCK_SESSIONS_EXHAUSTED';
  readonly severity = ErrorSeverity.TRANSIENT;

  constructor(
    readonly maxSessions: number,
    readonly waitedMs: number,
  ) {
    super(
      `All ${maxSessions} advisory-lock sessions of this process are held and none came free within ${waitedMs} ms: ` +
        "raise PersistenceModule's locks.maxSessions (the stock host's DATABASE_LOCK_SESSIONS), within PostgreSQL's max_connections",
    );
  }
}

/**
 * The reason of the signal `DistributedLock` hands its holder once the lock is gone under it (`PostgresAdvisoryLock`:
 * its session ended — terminated, the server restarted, the socket broke — or stopped answering its heartbeat, a
 * stalled path after which another replica may hold the lock); `held.throwIfAborted()` throws it.
 */
export class LockLostError extends CredentialVaultError {
  readonly code = LockErrorCode.LOCK_LOST;
  readonly codeName = 'LOCK_LOST';
  readonly severity = ErrorSeverity.TRANSIENT;

  constructor(
    readonly key: string,
    how: 'ended' | 'stopped answering' = 'ended',
  ) {
    super(`Lock "${key}" was lost while held (its database session ${how}): the work under it stops`);
  }
}
