import { AuditUnavailableError } from '../errors/audit.errors';

/**
 * The writer's failing state: entered when a read batch fails, left by the next one that commits. While
 * in it, reads are refused (failClosed) or accepted unawaited, and only the interval (or shutdown) retries.
 */
export class FailingState {
  /** The last write error while failing; undefined while healthy (asked on every read). */
  error?: Error;

  constructor(
    /** When the buffered rows are tried again (the read buffer's flush interval): a refused caller's Retry-After. */
    private readonly retryAfterMs: number,
  ) {}

  /** Enters the state (or stays in it) with `e` as its cause; true when it was healthy before. */
  enter(e: unknown): boolean {
    const first = !this.error;
    this.error = e instanceof Error ? e : new Error(String(e));
    return first;
  }

  leave(): void {
    this.error = undefined;
  }

  /** The error a refused read gets. */
  unavailable(): AuditUnavailableError {
    return new AuditUnavailableError('Audit log writes are failing; reads are refused until they recover (failClosed)', {
      cause: this.error,
      // The interval flush tries the buffered rows again then: one lost session (a failover) is over by the next.
      retryAfterMs: this.retryAfterMs,
    });
  }
}
