import { performance } from 'node:perf_hooks';
import { CredentialWriteTooSlowError } from '../errors/credential-errors';

/**
 * A write commits within this long of starting its value write (its vault call) or not at all: its transaction checks
 * the deadline last, before COMMIT, and a write past it rolls back and discards its value. The orphan-versions job only
 * disables unreferenced versions older than its grace period (at least `MIN_ORPHAN_GRACE_MS`), so it never disables
 * the version of a write that can still commit.
 */
export const VALUE_COMMIT_DEADLINE_MS = 600_000;

/** The orphan-versions grace period's floor: three write deadlines, the rest a margin for clocks that disagree. */
export const MIN_ORPHAN_GRACE_MS = 3 * VALUE_COMMIT_DEADLINE_MS;

/** A monotonic instant, taken just before a value write is sent. */
export function valueWriteStart(): number {
  return performance.now();
}

/** Inside the write's transaction, after its rows: refuses the commit of a value written longer ago than the deadline. */
export function assertValueCommitInTime(since: number | undefined, credentialId: string, deadlineMs = VALUE_COMMIT_DEADLINE_MS): void {
  if (since === undefined) return;
  const elapsed = performance.now() - since;
  if (elapsed > deadlineMs) throw new CredentialWriteTooSlowError(credentialId, Math.round(elapsed), deadlineMs);
}
