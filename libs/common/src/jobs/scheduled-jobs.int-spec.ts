import { Logger } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import { DataSource, type DataSourceOptions } from 'typeorm';
import { CapturingLogger, createTestDatabase, DATABASE_KINDS, endLockSession, type TestDatabase } from '@app/testing';
import { ManualClock } from '../clock';
import { InProcessLock } from '../lock/in-process-lock';
import { LOCK_KEYS } from '../lock/lock-keys';
import { PostgresAdvisoryLock } from '../lock/postgres-advisory-lock';
import { OUTBOX_ENTITIES, OUTBOX_MIGRATIONS } from '../outbox';
import type { ScheduledJobDefinition } from './scheduled-job.types';
import { ScheduledJobs } from './scheduled-jobs';

// Replicas share the job's lock and the database; the lock here is one in-process lock standing for the cluster's.
describe.each(DATABASE_KINDS)('ScheduledJobs: staleness measured from the last success of any replica (%s)', (kind) => {
  let db: TestDatabase;
  let ds: DataSource;
  const replicas: ScheduledJobs[] = [];
  beforeAll(async () => {
    db = await createTestDatabase(kind);
    ds = await new DataSource({ ...db.options, entities: OUTBOX_ENTITIES, migrations: OUTBOX_MIGRATIONS, migrationsRun: true } as DataSourceOptions).initialize();
  });
  afterAll(async () => {
    for (const r of replicas) r.onModuleDestroy();
    await ds?.destroy();
    await db?.drop();
  });

  it('a replica that only skips turns degraded when no one succeeds (a hung lock holder), and not while another replica succeeds', async () => {
    const clock = new ManualClock(new Date('2030-01-01T00:00:30Z'));
    const lock = new InProcessLock();
    const def: ScheduledJobDefinition = { name: `stuck-${kind}`, enabled: true, cron: '0 * * * * *', switchOption: 'test', lockKey: LOCK_KEYS.auditRetention, run: async () => undefined };
    const replica = () => {
      const jobs = new ScheduledJobs(new SchedulerRegistry(), lock, clock, ds);
      jobs.schedule(def);
      replicas.push(jobs);
      return jobs;
    };
    const [a, b] = [replica(), replica()];
    const degraded = (jobs: ScheduledJobs) => jobs.status()[0].degraded;
    // Someone else (a CLI, a psql session) takes the lock and hangs, except while `b` runs.
    let release!: () => void;
    const hold = () => void lock.tryRun(def.lockKey, () => new Promise<void>((r) => (release = r)));

    expect(await b.runNow(def.name)).toBe('success');
    hold();
    clock.advance(60_000);
    expect(await a.runNow(def.name)).toBe('skipped');
    expect(degraded(a)).toBe(false); // b succeeded a minute ago

    for (let minute = 0; minute < 3; minute++) {
      clock.advance(60_000);
      expect(await a.runNow(def.name)).toBe('skipped');
    }
    expect(degraded(a)).toBe(true); // 4 minutes without a success anywhere: more than 3 intervals

    release();
    await new Promise((r) => setImmediate(r));
    expect(await b.runNow(def.name)).toBe('success');
    hold();
    expect(await a.runNow(def.name)).toBe('skipped');
    expect(degraded(a)).toBe(false);
    release();
  });
});

describe('ScheduledJobs on postgres: a run whose lock session ends', () => {
  let db: TestDatabase;
  let dsA: DataSource;
  let dsB: DataSource;
  const replicas: ScheduledJobs[] = [];
  const logger = new CapturingLogger();
  beforeAll(async () => {
    db = await createTestDatabase('postgres');
    const options = { ...db.options, entities: OUTBOX_ENTITIES, migrations: OUTBOX_MIGRATIONS } as DataSourceOptions;
    dsA = await new DataSource({ ...options, migrationsRun: true } as DataSourceOptions).initialize();
    dsB = await new DataSource(options).initialize();
    Logger.overrideLogger(logger);
  });
  afterAll(async () => {
    Logger.overrideLogger(new Logger());
    for (const r of replicas) r.onModuleDestroy();
    await dsA?.destroy();
    await dsB?.destroy();
    await db?.drop();
  });

  it("stops before its next item, ends 'failed' with a warning, and the other replica runs the job meanwhile", async () => {
    const clock = new ManualClock(new Date('2030-01-01T00:00:30Z'));
    const done: string[] = [];
    let inFirstItem!: () => void;
    const firstItem = new Promise<void>((r) => (inFirstItem = r));
    let finishFirst!: () => void;
    const gate = new Promise<void>((r) => (finishFirst = r));
    const def = (replica: string): ScheduledJobDefinition => ({
      name: 'items',
      enabled: true,
      cron: '0 0 * * * *',
      switchOption: 'test',
      lockKey: LOCK_KEYS.auditRetention,
      run: async (held) => {
        for (const item of [1, 2, 3]) {
          held.throwIfAborted();
          if (replica === 'a' && item === 1) {
            inFirstItem();
            await gate;
          }
          done.push(`${replica}${item}`);
        }
      },
    });
    const lockA = new PostgresAdvisoryLock(dsA);
    const replica = (ds: DataSource, lock: PostgresAdvisoryLock, name: string) => {
      const jobs = new ScheduledJobs(new SchedulerRegistry(), lock, clock, ds);
      jobs.schedule(def(name));
      replicas.push(jobs);
      return jobs;
    };
    const a = replica(dsA, lockA, 'a');
    const b = replica(dsB, new PostgresAdvisoryLock(dsB), 'b');

    const runA = a.runNow('items');
    await Promise.race([firstItem, runA.then((outcome) => Promise.reject(new Error(`the run ended (${outcome}: ${a.status()[0].lastError}) before its first item`)))]);
    await endLockSession(dsB, lockA.advisoryId(LOCK_KEYS.auditRetention));
    expect(await b.runNow('items')).toBe('success');
    for (let i = 0; i < 250 && !logger.lines.some((l) => l.includes('was lost while held')); i++) await new Promise((r) => setTimeout(r, 20));
    finishFirst();

    expect(await runA).toBe('failed');
    expect(done).toEqual(['b1', 'b2', 'b3', 'a1']);
    expect(a.status()[0]).toMatchObject({ lastOutcome: 'failed', lastError: expect.stringContaining('LOCK_LOST') });
    const stopped = logger.lines.filter((l) => l.includes('"items" job'));
    expect(stopped).toEqual([expect.stringMatching(/^warn The "items" job stopped: .*LOCK_LOST/)]);
    // The job stays scheduled and takes its lock anew next time.
    expect(await a.runNow('items')).toBe('success');
  });
});
