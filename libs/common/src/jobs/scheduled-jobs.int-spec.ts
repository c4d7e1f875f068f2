import { SchedulerRegistry } from '@nestjs/schedule';
import { DataSource, type DataSourceOptions } from 'typeorm';
import { createTestDatabase, DATABASE_KINDS, type TestDatabase } from '@app/testing';
import { ManualClock } from '../clock';
import { InProcessLock } from '../lock/in-process-lock';
import { LOCK_KEYS } from '../lock/lock-keys';
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
