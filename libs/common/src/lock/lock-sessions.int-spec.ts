/**
 * Integration: the per-process pool of advisory-lock sessions on a real PostgreSQL — its size is the
 * PersistenceModule's `locks.maxSessions`, and a holder that finds every session taken gets a typed
 * error naming that setting, within its own timeout.
 */
import { randomBytes } from 'node:crypto';
import { Test } from '@nestjs/testing';
import { getDataSourceToken, TypeOrmModule } from '@nestjs/typeorm';
import { DataSource, type DataSourceOptions } from 'typeorm';
import { Client } from 'pg';
import { createTestDatabase, startStallProxy, TestDatabase } from '@app/testing';
import { OUTBOX_ENTITIES, OUTBOX_MIGRATIONS } from '../outbox';
import { PersistenceModule } from '../persistence/persistence.module';
import { postgresPoolStats } from '../persistence/postgres-pool';
import { postgresTimeoutOptions } from '../persistence/postgres-timeouts';
import { createDistributedLock } from './create-distributed-lock';
import type { DistributedLock } from './distributed-lock';
import { LockErrorCode, LockSessionsExhaustedError } from './lock.errors';
import { DEFAULT_LOCK_SESSIONS, LockSessions } from './lock-sessions';

const key = (name: string) => `${name}-${randomBytes(6).toString('hex')}`;

function gate() {
  let open!: () => void;
  const opened = new Promise<void>((r) => (open = r));
  return { opened, open };
}

/** Holds `n` different locks until `release` resolves; resolves once all are held. */
async function holdMany(lock: DistributedLock, n: number, release: Promise<void>): Promise<Promise<unknown>[]> {
  const held: Promise<void>[] = [];
  const runs = Array.from({ length: n }, (_, i) => {
    let heldNow!: () => void;
    held.push(new Promise<void>((r) => (heldNow = r)));
    return lock.tryRun(key(`hold-${i}`), async () => {
      heldNow();
      await release;
    });
  });
  await Promise.all(held);
  return runs;
}

describe('Advisory-lock sessions (PostgreSQL)', () => {
  let db: TestDatabase;

  beforeAll(async () => {
    db = await createTestDatabase('postgres');
  });
  afterAll(async () => {
    await db?.drop();
  });

  /** This DataSource's lock sessions in pg_stat_activity. */
  async function lockSessionsOf(ds: DataSource, appName: string): Promise<number> {
    const rows: Array<{ n: string }> = await ds.query(`SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = $1`, [`${appName} (locks)`]);
    return Number(rows[0].n);
  }

  it(`by default the ${DEFAULT_LOCK_SESSIONS + 1}th concurrent holder gets LOCK_SESSIONS_EXHAUSTED naming the setting, within its own timeout`, async () => {
    const ds = await new DataSource({ ...db.options, extra: { ...(db.options as { extra?: object }).extra, connectionTimeoutMillis: 3000 } } as DataSourceOptions).initialize();
    const release = gate();
    try {
      const lock = createDistributedLock(ds);
      const runs = await holdMany(lock, DEFAULT_LOCK_SESSIONS, release.opened);
      const started = Date.now();
      const err = await lock.run(key('ninth'), async () => 'ran', { timeoutMs: 300 }).catch((e: unknown) => e);
      const waited = Date.now() - started;
      expect(err).toBeInstanceOf(LockSessionsExhaustedError);
      expect(err).toMatchObject({ code: LockErrorCode.LOCK_SESSIONS_EXHAUSTED, codeName: 'LOCK_SESSIONS_EXHAUSTED', maxSessions: DEFAULT_LOCK_SESSIONS });
      expect((err as Error).message).toContain('locks.maxSessions');
      expect(waited).toBeLessThan(1500); // its own 300 ms, not the pool's 3 s connect timeout
      // tryRun waits as long as a connection may take (the DataSource's connectionTimeoutMillis), then the same error.
      const tryErr = await lock.tryRun(key('ninth-try'), async () => 'ran').catch((e: unknown) => e);
      expect(tryErr).toBeInstanceOf(LockSessionsExhaustedError);
      release.open();
      await Promise.all(runs);
      // A freed session serves the next holder at once.
      await expect(lock.run(key('after'), async () => 'ran', { timeoutMs: 300 })).resolves.toBe('ran');
    } finally {
      release.open();
      await ds.destroy();
    }
  }, 20_000);

  it('a holder waiting for a session gets the first one freed', async () => {
    const ds = await new DataSource({ ...db.options } as DataSourceOptions).initialize();
    const release = gate();
    try {
      const lock = createDistributedLock(ds);
      const runs = await holdMany(lock, DEFAULT_LOCK_SESSIONS, release.opened);
      const waiting = lock.run(key('waiter'), async () => 'ran', { timeoutMs: 3000 });
      setTimeout(release.open, 200);
      await expect(waiting).resolves.toBe('ran');
      await Promise.all(runs);
    } finally {
      release.open();
      await ds.destroy();
    }
  });

  it('postgresPoolStats shows the sessions as a pool: held ones busy, a holder waiting, its LOCK_SESSIONS_EXHAUSTED counted; idle once released', async () => {
    const ds = await new DataSource({ ...db.options } as DataSourceOptions).initialize();
    const release = gate();
    const locks = () => postgresPoolStats(ds).find((p) => p.pool === 'locks');
    try {
      expect(locks()).toEqual({ pool: 'locks', max: DEFAULT_LOCK_SESSIONS, busy: 0, idle: 0, waiting: 0, exhausted: 0 });
      const lock = createDistributedLock(ds);
      const runs = await holdMany(lock, DEFAULT_LOCK_SESSIONS, release.opened);
      expect(locks()).toMatchObject({ busy: DEFAULT_LOCK_SESSIONS, idle: 0, waiting: 0 });
      let settled = false;
      const refused = lock.run(key('ninth'), async () => 'ran', { timeoutMs: 1000 }).catch((e: unknown) => e).finally(() => (settled = true));
      while (!settled && locks()!.waiting === 0) await new Promise((r) => setTimeout(r, 5));
      expect(locks()).toMatchObject({ waiting: 1, exhausted: 0 });
      expect(await refused).toBeInstanceOf(LockSessionsExhaustedError);
      expect(locks()).toMatchObject({ busy: DEFAULT_LOCK_SESSIONS, waiting: 0, exhausted: 1 });
      release.open();
      await Promise.all(runs);
      expect(locks()).toMatchObject({ busy: 0, idle: DEFAULT_LOCK_SESSIONS, waiting: 0, exhausted: 1 });
    } finally {
      release.open();
      await ds.destroy();
    }
    // A DataSource no longer open has no pool to show.
    expect(postgresPoolStats(ds)).toEqual([]);
  });

  it("PersistenceModule's locks.maxSessions sizes the pool: that many holders at once, one more is refused; its heartbeat options reach the sessions", async () => {
    const appName = `cv-h-${randomBytes(4).toString('hex')}`;
    const moduleRef = await Test.createTestingModule({
      imports: [
        TypeOrmModule.forRoot({
          ...db.options,
          extra: { ...(db.options as { extra?: object }).extra, application_name: appName },
          entities: OUTBOX_ENTITIES,
          migrations: OUTBOX_MIGRATIONS,
          migrationsRun: true,
        } as never),
        PersistenceModule.forRoot({ outbox: { dispatch: false }, locks: { maxSessions: 3, heartbeatMs: 2000, heartbeatTimeoutMs: 700 } }),
      ],
    }).compile();
    const app = await moduleRef.init();
    const release = gate();
    try {
      const ds = app.get<DataSource>(getDataSourceToken());
      expect(LockSessions.for(ds).heartbeat).toEqual({ intervalMs: 2000, timeoutMs: 700 });
      const lock = createDistributedLock(ds);
      const runs = await holdMany(lock, 3, release.opened);
      expect(await lockSessionsOf(ds, appName)).toBe(3);
      const err = await lock.run(key('fourth'), async () => 'ran', { timeoutMs: 200 }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: LockErrorCode.LOCK_SESSIONS_EXHAUSTED, maxSessions: 3 });
      release.open();
      await Promise.all(runs);
    } finally {
      release.open();
      await app.close();
    }
  });

  it('a session lost while holding a lock (PostgreSQL stalled; the server never heard of the close) is ended once PostgreSQL answers: another replica takes the lock', async () => {
    const proxy = await startStallProxy((db.options as { url: string }).url);
    const timeouts = postgresTimeoutOptions(Client, { queryTimeoutMs: 1500, statementTimeoutMs: 1000, idleInTransactionTimeoutMs: 2000 });
    // Replica A reaches PostgreSQL through the proxy, replica B directly.
    const a = await new DataSource({ ...db.options, url: proxy.url, extra: { ...(db.options as { extra?: object }).extra, connectionTimeoutMillis: 1000, ...timeouts } } as DataSourceOptions).initialize();
    const b = await new DataSource({ ...db.options } as DataSourceOptions).initialize();
    try {
      const k = key('job');
      const held = gate();
      const release = gate();
      const holding = createDistributedLock(a).tryRun(k, async () => {
        held.open();
        await release.opened;
      });
      await held.opened;
      proxy.stall();
      release.open();
      // A's unlock gets no answer: A closes that session. PostgreSQL, behind the stalled proxy, keeps it and its lock.
      await expect(holding).resolves.toEqual({ acquired: true, value: undefined });
      proxy.passNew();
      const other = createDistributedLock(b);
      let acquired = false;
      for (const deadline = Date.now() + 30_000; !acquired && Date.now() < deadline; ) {
        acquired = (await other.tryRun(k, async () => undefined)).acquired;
        if (!acquired) await new Promise((r) => setTimeout(r, 500));
      }
      expect(acquired).toBe(true);
    } finally {
      proxy.resume();
      await a.destroy();
      await b.destroy();
      await proxy.close();
    }
  }, 60_000);
});
