import { HttpStatus } from '@nestjs/common';
import { CredentialVaultError, ErrorSeverity } from '../errors';

/** Stable error codes of the lock helpers. Never renumber. */
export enum LockErrorCode {
  /** `DistributedLock.run()` could not take the lock within `timeoutMs`. */
  LOCK_TIMEOUT = 9001,
}

/** HTTP status of each code, composed by the host; a new code does not compile without one. */
export const LOCK_ERROR_HTTP_STATUS: Record<LockErrorCode, HttpStatus> = {
  [LockErrorCode.LOCK_TIMEOUT]: HttpStatus.SERVICE_UNAVAILABLE, // busy, not broken: the caller may retry
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
