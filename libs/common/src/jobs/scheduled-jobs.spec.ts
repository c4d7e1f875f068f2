import { Logger } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import { ManualClock } from '../clock';
import { LockTimeoutError } from '../lock/lock.errors';
import { InProcessLock } from '../lock/in-process-lock';
import { LOCK_KEYS, LockKey } from '../lock/lock-keys';
import { ScheduledJobConfigurationError } from './jobs.errors';
import { ScheduledJobDefinition } from './scheduled-job.types';
import { ScheduledJobs } from './scheduled-jobs';

const def = (over: Partial<ScheduledJobDefinition> = {}): ScheduledJobDefinition =>
  ({
    name: 'test-job',
    enabled: true,
    cron: '0 * * * * *',
    timeZone: 'UTC',
    switchOption: 'TestModule option job.enabled',
    lockKey: LOCK_KEYS.auditRetention,
    run: async () => 'done',
    ...over,
  }) as ScheduledJobDefinition;

function setup() {
  const registry = new SchedulerRegistry();
  const lock = new InProcessLock();
  const clock = new ManualClock(new Date('2030-01-01T00:00:00Z'));
  const jobs = new ScheduledJobs(registry, lock, clock);
  return { registry, lock, clock, jobs };
}

describe('ScheduledJobs', () => {
  let jobs: ScheduledJobs;
  afterEach(() => jobs?.onModuleDestroy());

  it('needs ScheduleModule only for an enabled job, and says which option switches it off', () => {
    jobs = new ScheduledJobs(undefined, new InProcessLock());
    expect(() => jobs.schedule(def({ enabled: false }))).not.toThrow();
    const err = (() => {
      try {
        jobs.schedule(def());
      } catch (e) {
        return e as ScheduledJobConfigurationError;
      }
    })();
    expect(err).toBeInstanceOf(ScheduledJobConfigurationError);
    expect(err).toMatchObject({ code: 7001, codeName: 'SCHEDULED_JOB_CONFIGURATION', retryable: false });
    expect(err?.message).toMatch(/"test-job" job is enabled but SchedulerRegistry is missing: import ScheduleModule\.forRoot\(\).*TestModule option job\.enabled = false/);
    // Switching this one job off only moves the refusal to the next enabled job (an app of the libs has up to seven):
    // the message says so, rather than leaving the app to find them one start at a time.
    expect(err?.message).toContain('every other enabled job of the libs is refused the same way');
  });

  it("runs a job without a time zone of its own in UTC, not in the machine's zone (replicas fire together)", () => {
    const s = setup();
    jobs = s.jobs;
    jobs.schedule(def({ name: 'nightly', cron: '0 0 3 * * *', timeZone: undefined }));
    const cron = s.registry.getCronJob('nightly');
    expect(cron.cronTime.timeZone).toBe('UTC');
    expect(cron.nextDate().toUTC().hour).toBe(3);
    expect(jobs.status().find((j) => j.name === 'nightly')?.timeZone).toBe('UTC');
  });

  it('registers the named cron job, refuses a second one of that name, an unregistered lock key and a bad cron', () => {
    const s = setup();
    jobs = s.jobs;
    jobs.schedule(def({ enabled: false, name: 'off' }));
    expect(s.registry.doesExist('cron', 'off')).toBe(false);
    jobs.schedule(def());
    expect(s.registry.getCronJob('test-job').isActive).toBe(true);
    expect(() => jobs.schedule(def())).toThrow(/already scheduled: is the module that schedules it registered twice/);
    expect(() => jobs.schedule(def({ name: 'k', lockKey: 'made-up' as LockKey }))).toThrow(/not in LOCK_KEYS/);
    expect(() => jobs.schedule(def({ name: 'c', cron: 'every day' }))).toThrow(ScheduledJobConfigurationError);
    expect(() => jobs.schedule(def({ name: 'z', timeZone: 'Mars/Olympus' }))).toThrow(ScheduledJobConfigurationError);
    jobs.unschedule('test-job');
    expect(s.registry.doesExist('cron', 'test-job')).toBe(false);
    expect(jobs.status()).toEqual([]);
  });

  it('records start, finish, outcome, duration and counts per job', async () => {
    const s = setup();
    jobs = s.jobs;
    jobs.schedule(def({ run: async () => s.clock.advance(1500) }));
    expect(jobs.status()[0]).toMatchObject({ name: 'test-job', lockKey: 'audit-retention', intervalMs: 60_000, lastOutcome: null, degraded: false });
    await expect(jobs.runNow('test-job')).resolves.toBe('success');
    expect(jobs.status()[0]).toMatchObject({
      running: false,
      lastStart: new Date('2030-01-01T00:00:00Z'),
      lastFinish: new Date('2030-01-01T00:00:01.500Z'),
      lastSuccess: new Date('2030-01-01T00:00:01.500Z'),
      lastOutcome: 'success',
      runs: { success: 1, failed: 0, skipped: 0 },
    });
    expect(jobs.status()[0].lastDurationMs).toEqual(expect.any(Number));
  });

  it('skips while another holder has the lock, and when the work reports it did not get its own lock', async () => {
    const s = setup();
    jobs = s.jobs;
    const run = jest.fn(async () => undefined);
    jobs.schedule(def({ run }));
    let release!: () => void;
    const holder = s.lock.tryRun(LOCK_KEYS.auditRetention, () => new Promise<void>((r) => (release = r)));
    await expect(jobs.runNow('test-job')).resolves.toBe('skipped');
    expect(run).not.toHaveBeenCalled();
    release();
    await holder;
    jobs.schedule(def({ name: 'self-locking', lockKey: LOCK_KEYS.auditAnchor, lockedBy: 'work', run: async () => ({ acquired: false }) }));
    await expect(jobs.runNow('self-locking')).resolves.toBe('skipped');
    expect(jobs.status().map((j) => [j.name, j.runs.skipped])).toEqual([
      ['self-locking', 1],
      ['test-job', 1],
    ]);
  });

  it('logs a failed run by error name and code only, and keeps the job scheduled', async () => {
    const s = setup();
    jobs = s.jobs;
    const log = jest.spyOn(Logger.prototype, 'error').mockImplementation(() => undefined);
    try {
      jobs.schedule(def({ run: async () => Promise.reject(Object.assign(new Error('token=secret-value'), { code: 'E42' })) }));
      await expect(jobs.runNow('test-job')).resolves.toBe('failed');
      jobs.schedule(def({ name: 'typed', lockKey: LOCK_KEYS.auditAnchor, run: async () => Promise.reject(new LockTimeoutError('k', 5)) }));
      await expect(jobs.runNow('typed')).resolves.toBe('failed');
      expect(log.mock.calls.map((c) => c.length)).toEqual([1, 1]); // no stack argument
      expect(String(log.mock.calls[0][0])).toBe('The "test-job" job failed: Error(E42)');
      expect(String(log.mock.calls[1][0])).toBe('The "typed" job failed: LockTimeoutError(LOCK_TIMEOUT): Lock "k" was not acquired within 5 ms');
      expect(jobs.status().find((j) => j.name === 'test-job')).toMatchObject({ lastOutcome: 'failed', lastError: 'Error(E42)', lastSuccess: null });
      expect(s.registry.getCronJob('test-job').isActive).toBe(true);
    } finally {
      log.mockRestore();
    }
  });

  it('runs one at a time per process: a second call joins the run in flight', async () => {
    const s = setup();
    jobs = s.jobs;
    let release!: () => void;
    const run = jest.fn(() => new Promise<void>((r) => (release = r)));
    jobs.schedule(def({ run }));
    const a = jobs.runNow('test-job');
    const b = jobs.runNow('test-job');
    expect(jobs.status()[0].running).toBe(true);
    await new Promise((r) => setImmediate(r));
    release();
    await expect(Promise.all([a, b])).resolves.toEqual(['success', 'success']);
    expect(run).toHaveBeenCalledTimes(1);
    await expect(jobs.runNow('nope')).rejects.toThrow(ScheduledJobConfigurationError);
  });

  it('is degraded (not down) after 3 intervals without a success or a skip; a good run clears it', async () => {
    const s = setup();
    jobs = s.jobs;
    let fail = true;
    jobs.schedule(def({ run: async () => { if (fail) throw new Error('x'); } })); // every minute
    jest.spyOn(Logger.prototype, 'error').mockImplementationOnce(() => undefined);
    await jobs.runNow('test-job');
    s.clock.advance(180_000);
    expect(jobs.status()[0].degraded).toBe(false);
    s.clock.advance(1);
    expect(jobs.status()[0].degraded).toBe(true);
    fail = false;
    await jobs.runNow('test-job');
    expect(jobs.status()[0].degraded).toBe(false);
  });

  it('measures the interval as the longest gap between runs (weekday jobs: the weekend)', () => {
    const s = setup();
    jobs = s.jobs;
    jobs.schedule(def({ cron: '0 3 * * 1-5' }));
    expect(jobs.status()[0].intervalMs).toBe(3 * 86_400_000);
  });

  it('fires on its cron', async () => {
    const s = setup();
    jobs = s.jobs;
    const run = jest.fn(async () => undefined);
    jobs.schedule(def({ cron: '* * * * * *', run }));
    await new Promise((r) => setTimeout(r, 2200));
    expect(run).toHaveBeenCalled();
    expect(jobs.status()[0].runs.success).toBeGreaterThan(0);
  });
});
