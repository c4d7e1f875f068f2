import { Injectable, Logger, OnModuleDestroy, Optional } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import { CronJob } from 'cron';
import { performance } from 'node:perf_hooks';
import { DataSource } from 'typeorm';
import { Clock, libClock } from '../clock';
import { CredentialVaultError, describeError } from '../errors';
import { createDistributedLock } from '../lock/create-distributed-lock';
import { DistributedLock } from '../lock/distributed-lock';
import { InProcessLock } from '../lock/in-process-lock';
import { LOCK_KEYS } from '../lock/lock-keys';
import { LockLostError } from '../lock/lock.errors';
import { inSpan } from '../telemetry';
import { ScheduledJobConfigurationError } from './jobs.errors';
import { JobRunLedger } from './job-run-ledger';
import { JOB_DEGRADED_AFTER_INTERVALS, JobOutcome, ScheduledJobDefinition, ScheduledJobStatus } from './scheduled-job.types';

interface JobState {
  def: ScheduledJobDefinition;
  cron: CronJob;
  intervalMs: number;
  scheduledAt: Date;
  inFlight?: Promise<JobOutcome>;
  lastStart: Date | null;
  lastFinish: Date | null;
  lastOutcome: JobOutcome | null;
  lastDurationMs: number | null;
  lastSuccess: Date | null;
  /** Last success or skip: the job ran somewhere — staleness is measured from here when no replica records its successes (no database). */
  lastGood: Date | null;
  /** The last success of any replica (`cv_job_runs`), as last read or written here; undefined: not known. */
  clusterSuccess?: Date | null;
  ledgerWarned?: boolean;
  lastError: string | null;
  runs: Record<JobOutcome, number>;
}

const REGISTERED_KEYS = new Set<string>(Object.values(LOCK_KEYS));
/** Jobs without a time zone of their own: replicas on machines with different TZ settings fire together. */
export const DEFAULT_JOB_TIME_ZONE = 'UTC';

/**
 * The one way a lib runs a cron job: named, cron + time zone from its options, switchable, under
 * the DistributedLock (key from `LOCK_KEYS`), one run at a time per process. A failed run is logged
 * (name and code of the error, no stack) and the job stays scheduled. Each run's start, finish,
 * outcome and duration are kept for `status()`, which the host puts on /metrics and /health/ready.
 *
 * One instance per application: libs import `ScheduledJobsModule` (global) and inject this.
 */
@Injectable()
export class ScheduledJobs implements OnModuleDestroy {
  private readonly logger = new Logger(ScheduledJobs.name);
  private readonly jobs = new Map<string, JobState>();
  private readonly clock: Clock;
  private lock?: DistributedLock;

  constructor(
    @Optional() private readonly registry?: SchedulerRegistry,
    @Optional() lock?: DistributedLock,
    @Optional() clock?: Clock,
    @Optional() private readonly dataSource?: DataSource,
  ) {
    this.lock = lock;
    this.clock = libClock(undefined, clock);
  }

  /**
   * Registers and starts `def` when it is enabled (a disabled job is not registered). Throws
   * `ScheduledJobConfigurationError` when ScheduleModule is missing, the name is taken, the lock
   * key is not in the registry, or the cron expression or time zone is invalid.
   */
  schedule(def: ScheduledJobDefinition): void {
    if (!def.enabled) return;
    if (!this.registry) {
      throw new ScheduledJobConfigurationError(
        `The "${def.name}" job is enabled but SchedulerRegistry is missing: import ScheduleModule.forRoot() in the host, ` +
          `or set ${def.switchOption} = false — and every other enabled job of the libs is refused the same way (retention, ` +
          'anchoring, orphan versions, proactive OAuth refresh, expiry monitor, rotation check, webhook rotation: each has an enabled option)',
      );
    }
    if (this.jobs.has(def.name) || this.registry.doesExist('cron', def.name)) {
      // The libs' jobs have fixed names: a second one almost always means a module registered twice.
      throw new ScheduledJobConfigurationError(
        `A job named "${def.name}" is already scheduled: is the module that schedules it registered twice (forRoot in two places)? Register each module once; a job of your own needs a name of its own`,
      );
    }
    if (!REGISTERED_KEYS.has(def.lockKey)) {
      throw new ScheduledJobConfigurationError(`The "${def.name}" job's lock key is not in LOCK_KEYS (libs/common lock-keys.ts)`);
    }
    let cron: CronJob;
    try {
      cron = CronJob.from({
        name: def.name,
        cronTime: def.cron,
        timeZone: def.timeZone ?? DEFAULT_JOB_TIME_ZONE,
        start: false,
        waitForCompletion: true,
        onTick: async () => {
          await this.runNow(def.name);
        },
      });
    } catch (e) {
      throw new ScheduledJobConfigurationError(`The "${def.name}" job has an invalid cron expression or time zone (${describeError(e)})`, { cause: e });
    }
    const state: JobState = {
      def,
      cron,
      intervalMs: longestGapMs(cron),
      scheduledAt: this.clock.now(),
      lastStart: null,
      lastFinish: null,
      lastOutcome: null,
      lastDurationMs: null,
      lastSuccess: null,
      lastGood: null,
      lastError: null,
      runs: { success: 0, failed: 0, skipped: 0 },
    };
    this.registry.addCronJob(def.name, cron);
    this.jobs.set(def.name, state);
    cron.start();
  }

  /** Stops and forgets the job (no-op when it is not scheduled). A run in flight finishes. */
  unschedule(name: string): void {
    const state = this.jobs.get(name);
    if (!state) return;
    this.jobs.delete(name);
    state.cron.stop();
    if (this.registry?.doesExist('cron', name)) this.registry.deleteCronJob(name);
  }

  /**
   * Runs the job now, as its cron would: under the lock, recorded in `status()`. Joins the run in
   * flight instead of starting a second one in this process. Never throws for a failed run.
   */
  runNow(name: string): Promise<JobOutcome> {
    const state = this.jobs.get(name);
    if (!state) return Promise.reject(new ScheduledJobConfigurationError(`No job named "${name}" is scheduled`));
    state.inFlight ??= this.execute(state).finally(() => {
      state.inFlight = undefined;
    });
    return state.inFlight;
  }

  /** Every scheduled job's schedule and last runs, sorted by name. */
  status(): ScheduledJobStatus[] {
    const now = this.clock.nowMs();
    return [...this.jobs.values()]
      .map((s): ScheduledJobStatus => {
        const since = this.staleSince(s);
        return {
          name: s.def.name,
          cron: s.def.cron,
          timeZone: s.def.timeZone ?? DEFAULT_JOB_TIME_ZONE,
          lockKey: s.def.lockKey,
          intervalMs: s.intervalMs,
          scheduledAt: s.scheduledAt,
          running: s.inFlight !== undefined,
          lastStart: s.lastStart,
          lastFinish: s.lastFinish,
          lastOutcome: s.lastOutcome,
          lastDurationMs: s.lastDurationMs,
          lastSuccess: s.lastSuccess,
          lastError: s.lastError,
          runs: { ...s.runs },
          degraded: now - since > JOB_DEGRADED_AFTER_INTERVALS * s.intervalMs,
        };
      })
      .sort((a, b) => a.name.localeCompare(b.name));
  }

  onModuleDestroy(): void {
    for (const name of [...this.jobs.keys()]) this.unschedule(name);
  }

  private async execute(state: JobState): Promise<JobOutcome> {
    const { def } = state;
    state.lastStart = this.clock.now();
    const started = performance.now();
    let outcome: JobOutcome;
    try {
      outcome = await inSpan(`job ${def.name}`, { attributes: { 'job.name': def.name } }, async (span) => {
        const ran =
          def.lockedBy === 'work'
            ? (await def.run()).acquired === false
              ? 'skipped'
              : 'success'
            : (await this.lockFor().tryRun(def.lockKey, (held) => def.run(held))).acquired
              ? 'success'
              : 'skipped';
        span.setAttribute('job.outcome', ran);
        return ran;
      });
    } catch (e) {
      outcome = 'failed';
      state.lastError = describeError(e);
      // Our typed errors' messages never hold a value; any other error's might, so only its name and code.
      const detail = e instanceof CredentialVaultError ? `${state.lastError}: ${e.message}` : state.lastError;
      // A lost lock is no fault of the job: it stopped before its next item, and the next run (here or on the replica
      // that took the lock) does the rest.
      if (e instanceof LockLostError) this.logger.warn(`The "${def.name}" job stopped: ${detail}`);
      else this.logger.error(`The "${def.name}" job failed: ${detail}`);
    }
    state.lastFinish = this.clock.now();
    state.lastDurationMs = Math.round(performance.now() - started);
    state.lastOutcome = outcome;
    state.runs[outcome]++;
    if (outcome === 'success') state.lastSuccess = state.lastFinish;
    if (outcome !== 'failed') state.lastGood = state.lastFinish;
    if (outcome === 'skipped') this.logger.debug(`The "${def.name}" job is running elsewhere; skipped`);
    await this.shareOutcome(state, outcome);
    return outcome;
  }

  /**
   * Successes go to `cv_job_runs`; a skip reads the last one there. A replica that only ever skips then
   * turns degraded when no one succeeds — a lock holder that hangs, whoever it is — instead of counting
   * every skip as "it ran elsewhere". Best effort: without the table the skips count, as before.
   */
  private async shareOutcome(state: JobState, outcome: JobOutcome): Promise<void> {
    const ledger = this.ledger();
    if (!ledger || outcome === 'failed') return;
    try {
      if (outcome === 'success') await ledger.recordSuccess(state.def.name, state.lastFinish as Date);
      state.clusterSuccess = outcome === 'success' ? state.lastFinish : await ledger.lastSuccess(state.def.name);
    } catch (e) {
      state.clusterSuccess = undefined;
      // Once per job: a host without the table (OUTBOX_ENTITIES / OUTBOX_MIGRATIONS left out) would say it every run.
      if (!state.ledgerWarned) this.logger.warn(`The "${state.def.name}" job's last success could not be ${outcome === 'success' ? 'recorded' : 'read'} (${describeError(e)}): its skips count as runs elsewhere`);
      state.ledgerWarned = true;
    }
  }

  /** What staleness is measured from: the last success anywhere when known, else the last success or skip here. */
  private staleSince(s: JobState): number {
    const known = s.clusterSuccess !== undefined;
    const last = known ? Math.max(s.lastSuccess?.getTime() ?? 0, s.clusterSuccess?.getTime() ?? 0) : (s.lastGood?.getTime() ?? 0);
    return Math.max(last, s.scheduledAt.getTime());
  }

  /** One ledger per DataSource (`JobRunLedger.for` keeps it). */
  private ledger(): JobRunLedger | null {
    return this.dataSource ? JobRunLedger.for(this.dataSource) : null;
  }

  /** The host's lock, else one for its DataSource, else an in-process lock (one process, no database). */
  private lockFor(): DistributedLock {
    this.lock ??= this.dataSource ? createDistributedLock(this.dataSource) : new InProcessLock();
    return this.lock;
  }
}

/** The longest gap between the next few runs of `cron` (a weekday-only job's weekend counts). */
function longestGapMs(cron: CronJob): number {
  const next = cron.nextDates(8).map((d) => d.toMillis());
  let gap = 0;
  for (let i = 1; i < next.length; i++) gap = Math.max(gap, next[i] - next[i - 1]);
  return gap || 60_000;
}
