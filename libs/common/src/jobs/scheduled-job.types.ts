import type { LockKey } from '../lock/lock-keys';

/** How one run ended. `skipped`: another replica (or run) held the job's lock, so nothing ran here. */
export type JobOutcome = 'success' | 'failed' | 'skipped';

export const JOB_OUTCOMES: readonly JobOutcome[] = ['success', 'failed', 'skipped'];

interface JobDefinitionBase {
  /** Name in SchedulerRegistry, logs, metrics (`job` label) and health. Unique per process. */
  name: string;
  /** When false the job is not registered at all (and ScheduleModule is not needed). */
  enabled: boolean;
  /** Cron expression (seconds optional). */
  cron: string;
  /** IANA time zone of `cron`. @default 'UTC': a job runs at the same instant on every replica, whatever each machine's TZ */
  timeZone?: string;
  /** The option that switches the job off, named in the configuration error: `AuditModule option retention.enabled`. */
  switchOption: string;
  /** The job's key in the lock-key registry (`LOCK_KEYS`). */
  lockKey: LockKey;
}

/**
 * The job takes `DistributedLock.tryRun(lockKey)` around `run`: one replica runs it at a time. `run` gets that lock's
 * `held` signal: a job of many items calls `held.throwIfAborted()` before each, so it stops once the lock is lost
 * (the run then ends `failed`, logged as a warning) instead of going on beside the replica that took it.
 */
export interface JobLockedByHelper extends JobDefinitionBase {
  lockedBy?: 'job';
  run: (held: AbortSignal) => Promise<unknown>;
}

/**
 * `run` takes the lock `lockKey` itself and reports whether it got it. For work whose public entry
 * point (a CLI command, a test, an admin call) must be exclusive however it is called: locking again
 * here would only make the job skip itself (the lock is not re-entrant).
 */
export interface JobLockedByWork extends JobDefinitionBase {
  lockedBy: 'work';
  run: () => Promise<{ acquired: boolean }>;
}

export type ScheduledJobDefinition = JobLockedByHelper | JobLockedByWork;

/** What `ScheduledJobs.status()` reports per scheduled job. Times come from the host's Clock. */
export interface ScheduledJobStatus {
  name: string;
  cron: string;
  timeZone: string;
  lockKey: string;
  /** The longest gap between the next few runs: what "3 intervals" of staleness is measured in. */
  intervalMs: number;
  scheduledAt: Date;
  running: boolean;
  lastStart: Date | null;
  lastFinish: Date | null;
  lastOutcome: JobOutcome | null;
  lastDurationMs: number | null;
  lastSuccess: Date | null;
  /** Name and code of the last failure, never its message. */
  lastError: string | null;
  runs: Record<JobOutcome, number>;
  /**
   * No run succeeded — here, or on any replica as `cv_job_runs` records it — for more than 3 intervals
   * since the job was scheduled (without that table a skip counts as a run elsewhere): degraded, not
   * down — the process still serves.
   */
  degraded: boolean;
}

/** How many intervals without a good run make a job degraded. */
export const JOB_DEGRADED_AFTER_INTERVALS = 3;
