/**
 * Integration (real PostgreSQL, through a TCP proxy that can stall): the bounds `postgresTimeoutOptions` puts on
 * a DataSource, and the long work that must still run under them (migrations, a long advisory-lock wait, work
 * inside `withStatementTimeout`); and `postgresDriver`'s typed error for a full pool, and its pools' refusal to hand out a
 * connection that sat idle through a stall.
 */
import { randomBytes } from 'node:crypto';
import { Logger } from '@nestjs/common';
import pg, { Client } from 'pg';
import { DataSource, type DataSourceOptions, type MigrationInterface, type QueryRunner } from 'typeorm';
import { createTestDatabase, startStallProxy, type StallProxy, type TestDatabase } from '@app/testing';
import { sqlState } from '../errors';
import { createDistributedLock } from '../lock/create-distributed-lock';
import { initializeWithMigrations } from './migrate-on-start';
import { DatabasePoolExhaustedError, DatabaseUnresponsiveError, PersistenceErrorCode } from './persistence.errors';
import { postgresDriver, postgresPoolStats } from './postgres-pool';
import { postgresTimeoutOptions, withStatementTimeout, type PostgresTimeouts } from './postgres-timeouts';

const TIMEOUTS: PostgresTimeouts = { queryTimeoutMs: 1500, statementTimeoutMs: 1000, idleInTransactionTimeoutMs: 2000 };

describe('postgresTimeoutOptions (PostgreSQL)', () => {
  let db: TestDatabase;
  let proxy: StallProxy;
  const sources: DataSource[] = [];

  beforeAll(async () => {
    db = await createTestDatabase('postgres');
    proxy = await startStallProxy((db.options as { url: string }).url);
  });
  afterEach(async () => {
    proxy.resume();
    await Promise.all(sources.splice(0).map((s) => s.destroy().catch(() => undefined)));
  });
  afterAll(async () => {
    await proxy?.close();
    await db?.drop();
  });

  const options = (extra: object = {}, more: Partial<DataSourceOptions> = {}): DataSourceOptions =>
    ({
      ...db.options,
      url: proxy.url,
      ...more,
      extra: { ...(db.options as { extra?: object }).extra, max: 2, connectionTimeoutMillis: 1000, ...postgresTimeoutOptions(Client, TIMEOUTS), ...extra },
    }) as DataSourceOptions;
  const open = async (o: DataSourceOptions = options()) => {
    const ds = await new DataSource(o).initialize();
    sources.push(ds);
    return ds;
  };
  const failure = (work: Promise<unknown>) => work.then(() => undefined, (e: unknown) => e as { driverError?: unknown; code?: unknown });

  // The deadline alone, on a pool of plain pg (an app that sets postgresTimeoutOptions without postgresDriver), on
  // purpose: no query waits past it, and each slot serves again. That pool still hands out a connection that sat idle
  // through the stall, which waits for the deadline in vain once; postgresDriver's recovery is tested below.
  it('a query PostgreSQL never answers fails with DATABASE_UNRESPONSIVE after the deadline, and its pool slot serves again (plain pg: an idle stalled connection fails once too)', async () => {
    const ds = await open();
    // Both connections of the pool open and idle.
    await Promise.all([ds.query('SELECT pg_sleep(0.1)'), ds.query('SELECT pg_sleep(0.1)')]);
    proxy.stall();
    const started = Date.now();
    const e = await failure(ds.query('SELECT 1'));
    expect(e?.driverError).toBeInstanceOf(DatabaseUnresponsiveError);
    expect(e?.code).toBe(PersistenceErrorCode.DATABASE_UNRESPONSIVE);
    expect(Date.now() - started).toBeLessThan(15_000);
    // The stalled connections stay stalled; new ones answer. The one that met the deadline was closed; the other one,
    // idle through the stall, is handed out and fails the same way; then both slots serve on new connections.
    proxy.passNew();
    const answers: unknown[] = [];
    for (let i = 0; i < 3; i++) answers.push(await ds.query('SELECT 1 AS one').then(() => 'ok', (x: unknown) => (x as { code?: unknown }).code));
    expect(answers).toEqual([PersistenceErrorCode.DATABASE_UNRESPONSIVE, 'ok', 'ok']);
    expect(await Promise.all([ds.query('SELECT 1 AS one'), ds.query('SELECT 1 AS one')])).toEqual([[{ one: 1 }], [{ one: 1 }]]);
  }, 60_000);

  it('PostgreSQL cancels a statement past its statement timeout itself (57014), and the connection serves on', async () => {
    const ds = await open(options({ max: 1 }));
    const e = await failure(ds.query('SELECT pg_sleep(3)'));
    expect(sqlState(e)).toBe('57014');
    expect(await ds.query('SELECT 1 AS one')).toEqual([{ one: 1 }]);
  }, 30_000);

  it('ends a transaction left idle past its timeout (its locks with it)', async () => {
    const ds = await open();
    const runner = ds.createQueryRunner();
    await runner.startTransaction();
    const key = Number.parseInt(randomBytes(4).toString('hex'), 16);
    await runner.query('SELECT pg_advisory_xact_lock($1)', [key]);
    await new Promise((r) => setTimeout(r, TIMEOUTS.idleInTransactionTimeoutMs + 1500));
    await expect(runner.query('SELECT 1')).rejects.toThrow();
    await runner.release();
    expect(await ds.query('SELECT pg_try_advisory_xact_lock($1) AS got', [key])).toEqual([{ got: true }]);
  }, 30_000);

  it('work inside withStatementTimeout runs past both bounds, up to its own (audit retention on a large log)', async () => {
    const ds = await open();
    const [row] = await ds.transaction((m) => withStatementTimeout(m, 4000, () => m.query('SELECT pg_sleep(2.5), 1 AS done')));
    expect(row.done).toBe(1);
    // Past its own bound, PostgreSQL cancels it.
    expect(sqlState(await failure(ds.transaction((m) => withStatementTimeout(m, 2000, () => m.query('SELECT pg_sleep(3)')))))).toBe('57014');
    // 0: no bound at all.
    const [unbounded] = await ds.transaction((m) => withStatementTimeout(m, 0, () => m.query('SELECT pg_sleep(2.5), 1 AS done')));
    expect(unbounded.done).toBe(1);
    // Only inside that transaction.
    expect(sqlState(await failure(ds.query('SELECT pg_sleep(3)')))).toBe('57014');
  }, 30_000);

  it('work inside withStatementTimeout that PostgreSQL stops answering fails with DATABASE_UNRESPONSIVE after its bound plus the deadline, and frees its connection', async () => {
    const ds = await open(options({ max: 1 }));
    const e = await failure(
      ds.transaction(async (m) => {
        await m.query('SELECT 1');
        return withStatementTimeout(m, 2000, () => {
          proxy.stall();
          return m.query('SELECT 1');
        });
      }),
    );
    expect((e as { driverError?: unknown })?.driverError).toBeInstanceOf(DatabaseUnresponsiveError);
    expect(e).toMatchObject({ driverError: { timeoutMs: 2000 + TIMEOUTS.queryTimeoutMs } });
    // The one slot serves on a new connection.
    proxy.passNew();
    expect(await ds.query('SELECT 1 AS one')).toEqual([{ one: 1 }]);
  }, 30_000);

  it('an advisory-lock wait longer than both bounds ends when the lock comes free (its own lock_timeout bounds it)', async () => {
    const ds = await open();
    // Two locks (as two replicas would be): one process' callers would queue in process, not in PostgreSQL.
    const [holder, waiter] = [createDistributedLock(ds), createDistributedLock(ds)];
    const key = `job-${randomBytes(4).toString('hex')}`;
    let release!: () => void;
    const holding = new Promise<void>((r) => (release = r));
    let held!: () => void;
    const isHeld = new Promise<void>((r) => (held = r));
    const first = holder.tryRun(key, async () => {
      held();
      await holding;
    });
    await isHeld;
    setTimeout(release, 3000);
    await expect(waiter.run(key, async () => 'second', { timeoutMs: 20_000 })).resolves.toBe('second');
    await first;
  }, 30_000);

  it('migrations run past both bounds', async () => {
    class SlowMigration1700000000001 implements MigrationInterface {
      name = 'SlowMigration1700000000001';
      async up(q: QueryRunner): Promise<void> {
        // An index built on a large table takes longer than any request may.
        await q.query('CREATE TABLE slow_migration_marker (id int)');
        await q.query('SELECT pg_sleep(2.5)');
      }
      async down(): Promise<void> {}
    }
    const ds = await initializeWithMigrations(options({}, { migrations: [SlowMigration1700000000001], migrationsTableName: 'cv_migrations' }));
    sources.push(ds);
    expect(await ds.query(`SELECT count(*)::int AS n FROM slow_migration_marker`)).toEqual([{ n: 0 }]);
    // The session that ran them is back in the pool with its statement timeout.
    expect(sqlState(await failure(ds.query('SELECT pg_sleep(3)')))).toBe('57014');
  }, 30_000);

  // A caller who waited in vain for a connection: was the pool full of busy connections, or of ones being opened?
  describe('postgresDriver', () => {
    const withDriver = () => open(options({}, { driver: postgresDriver(pg) } as Partial<DataSourceOptions>));

    it('a caller who waited for a connection while every one was busy gets DATABASE_POOL_EXHAUSTED; the pool serves once one is free', async () => {
      const ds = await withDriver();
      const held: QueryRunner[] = [ds.createQueryRunner(), ds.createQueryRunner()];
      for (const r of held) await r.connect();
      try {
        const e = await failure(ds.query('SELECT 1'));
        expect(e).toBeInstanceOf(DatabasePoolExhaustedError);
        expect(e).toMatchObject({ code: PersistenceErrorCode.DATABASE_POOL_EXHAUSTED, poolSize: 2, waitedMs: 1000 });
        // The pool's own query (no query runner) goes the same way.
        const pool = (ds.driver as unknown as { master: { query(sql: string): Promise<unknown> } }).master;
        expect(await failure(pool.query('SELECT 1'))).toBeInstanceOf(DatabasePoolExhaustedError);
      } finally {
        await held[0].release();
      }
      await expect(ds.query('SELECT 1 AS one')).resolves.toEqual([{ one: 1 }]);
      await held[1].release();
    }, 30_000);

    it('a caller who waited while a connection was still being opened (the database does not answer) keeps pg error: a larger pool would not help', async () => {
      const ds = await withDriver();
      proxy.stall();
      // A takes the one open connection (stalled); B opens the second, which never answers; C waits in the queue.
      const pool = (ds.driver as unknown as { master: { idleCount: number; waitingCount: number } }).master;
      void failure(ds.query('SELECT 1'));
      while (pool.idleCount > 0 || pool.waitingCount > 0) await new Promise((r) => setTimeout(r, 5));
      const b = failure(ds.query('SELECT 1'));
      const c = await failure(ds.query('SELECT 1'));
      expect(c).not.toBeInstanceOf(DatabasePoolExhaustedError);
      expect(c).toMatchObject({ message: 'timeout exceeded when trying to connect' });
      expect(await b).toMatchObject({ message: 'Connection terminated due to connection timeout' });
    }, 30_000);

    // PostgreSQL stalled and answers again on new connections only (the path the open ones took is still dead: a
    // lost NAT or load-balancer flow, a pooler stuck on its server connection). A connection that sat idle through it
    // must not be handed out: its first query would wait for the deadline and fail.
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
    /** What `postgresPoolStats` (the host's connections_replaced_total) says of each pool. */
    const replaced = (ds: DataSource) => Object.fromEntries(postgresPoolStats(ds).map((p) => [p.pool, p.replaced]));
    const lockKey = () => `job-${randomBytes(4).toString('hex')}`;

    it("after a query met its deadline, the connections not heard from since (the pool's and the lock sessions') are closed when taken: the next queries and locks go through at once", async () => {
      const ds = await withDriver();
      // Both connections of the pool open and idle, and a lock session idle beside them.
      await Promise.all([ds.query('SELECT pg_sleep(0.1)'), ds.query('SELECT pg_sleep(0.1)')]);
      const lock = createDistributedLock(ds);
      expect(await lock.tryRun(lockKey(), async () => 'held')).toEqual({ acquired: true, value: 'held' });

      proxy.stall();
      expect(await failure(ds.query('SELECT 1'))).toMatchObject({ code: PersistenceErrorCode.DATABASE_UNRESPONSIVE });
      proxy.passNew();
      // The pool's other connection and the lock session sat idle through the stall: each is replaced, not tried.
      const started = Date.now();
      expect(await ds.query('SELECT 1 AS one')).toEqual([{ one: 1 }]);
      expect(await ds.query('SELECT 1 AS one')).toEqual([{ one: 1 }]);
      expect(await lock.tryRun(lockKey(), async () => 'again')).toEqual({ acquired: true, value: 'again' });
      expect(Date.now() - started).toBeLessThan(TIMEOUTS.queryTimeoutMs);
      // Counted for operators (the connection that met the deadline was closed by it, not replaced when taken).
      expect(replaced(ds)).toEqual({ main: { stall: 1, idle_check: 0 }, locks: { stall: 1, idle_check: 0 } });
    }, 30_000);

    it('a connection idle past idleCheckMs is checked before it is handed out: a live one serves on, one a stall nobody noticed left dead is replaced', async () => {
      const ds = await open(options({}, { driver: postgresDriver(pg, { idleCheckMs: 300 }) } as Partial<DataSourceOptions>));
      const [first] = await ds.query('SELECT pg_backend_pid() AS pid');
      await sleep(500);
      expect(await ds.query('SELECT pg_backend_pid() AS pid')).toEqual([first]);
      expect(replaced(ds).main).toEqual({ stall: 0, idle_check: 0 });

      await Promise.all([ds.query('SELECT pg_sleep(0.1)'), ds.query('SELECT pg_sleep(0.1)')]);
      // No query during the stall: no deadline tells the pool anything.
      proxy.stall();
      await sleep(200);
      proxy.passNew();
      await sleep(500);
      // The check of the first connection taken gets no answer within the connect timeout (1 s): it is closed. That
      // showed a stall, so the other one, not heard from since, is closed without a check of its own (one failed
      // check per stall, not one per connection), and a new connection serves.
      const started = Date.now();
      expect(await ds.query('SELECT 1 AS one')).toEqual([{ one: 1 }]);
      expect(Date.now() - started).toBeLessThan(1800);
      expect(await Promise.all([ds.query('SELECT 1 AS one'), ds.query('SELECT 1 AS one')])).toEqual([[{ one: 1 }], [{ one: 1 }]]);
      // No lock was taken: the lock sessions' pool is not open, and counts nothing.
      expect(replaced(ds)).toEqual({ main: { stall: 1, idle_check: 1 }, locks: { stall: 0, idle_check: 0 } });
    }, 30_000);

    // A path lost for a moment while PostgreSQL answers new connections (a NAT or load-balancer flow dropped): the
    // connections used just before it are idle under idleCheckMs, so they are handed out unchecked.
    const LONG_DEADLINE: PostgresTimeouts = { queryTimeoutMs: 8000, statementTimeoutMs: 6000, idleInTransactionTimeoutMs: 10_000 };
    const withProbe = () =>
      open(options({ max: 4, connectionTimeoutMillis: 4000, ...postgresTimeoutOptions(Client, LONG_DEADLINE) }, { driver: postgresDriver(pg, { probeAfterMs: 500 }) } as Partial<DataSourceOptions>));

    it('queries sent on connections a brief path loss left dead fail once PostgreSQL shows it is not working on them, not at the query deadline; the pool serves on', async () => {
      const ds = await withProbe();
      await Promise.all(Array.from({ length: 4 }, () => ds.query('SELECT pg_sleep(0.1)')));
      proxy.stall();
      await sleep(100);
      proxy.passNew();
      const started = Date.now();
      const outcomes = await Promise.all(Array.from({ length: 6 }, () => ds.query('SELECT 1 AS one').then(() => 'ok', (e: { code?: unknown }) => e.code)));
      // Before: the four waited the whole deadline (8 s) and the two behind them found the pool full.
      expect(Date.now() - started).toBeLessThan(3000);
      expect(outcomes.filter((o) => o !== 'ok' && o !== PersistenceErrorCode.DATABASE_UNRESPONSIVE)).toEqual([]);
      expect(outcomes.filter((o) => o === 'ok').length).toBeGreaterThanOrEqual(2);
      expect(await Promise.all(Array.from({ length: 4 }, () => ds.query('SELECT 1 AS one')))).toEqual(Array.from({ length: 4 }, () => [{ one: 1 }]));
    }, 30_000);

    it('a query PostgreSQL is still working on, and a transaction its caller leaves idle, are not taken for a dead path', async () => {
      const ds = await withProbe();
      expect(await ds.query('SELECT pg_sleep(1.5), 1 AS one')).toEqual([{ pg_sleep: '', one: 1 }]);
      const runner = ds.createQueryRunner();
      await runner.connect();
      try {
        await runner.startTransaction();
        await runner.query('SELECT 1');
        await sleep(1500); // the caller works elsewhere: no query outstanding, the session idle in its transaction
        expect(await runner.query('SELECT 2 AS two')).toEqual([{ two: 2 }]);
        await runner.commitTransaction();
      } finally {
        await runner.release();
      }
    }, 30_000);

    /** The driver's warn lines, and a promise of the first `count` of them. */
    function poolWarnings(count: number): { lines: string[]; arrived: Promise<string[]> } {
      const lines: string[] = [];
      let arrive!: (l: string[]) => void;
      const arrived = new Promise<string[]>((resolve) => (arrive = resolve));
      jest.spyOn(Logger.prototype, 'warn').mockImplementation(function (this: Logger, message: unknown) {
        if ((this as unknown as { context?: string }).context !== 'PostgresPool') return;
        lines.push(String(message));
        if (lines.length === count) arrive([...lines]);
      });
      return { lines, arrived };
    }
    const line = (pool: string, stall: number, idleCheck: number) =>
      `PostgreSQL pool ${pool} replaced ${stall + idleCheck} connection(s) that sat idle through a stall (stall: ${stall}, idle_check: ${idleCheck}): closed when taken, new ones opened`;

    /** 8 connections of the main pool and a lock session sit idle through a stall that one query met; then all are taken again. */
    async function stallWithEightIdle(ds: DataSource): Promise<void> {
      await Promise.all(Array.from({ length: 8 }, () => ds.query('SELECT pg_sleep(0.1)')));
      const lock = createDistributedLock(ds);
      expect(await lock.tryRun(lockKey(), async () => 'held')).toMatchObject({ acquired: true });
      proxy.stall();
      expect(await failure(ds.query('SELECT 1 AS marker_query_text'))).toMatchObject({ code: PersistenceErrorCode.DATABASE_UNRESPONSIVE });
      proxy.passNew();
      await Promise.all(Array.from({ length: 8 }, () => ds.query('SELECT 1 AS marker_query_text')));
      expect(await lock.tryRun(lockKey(), async () => 'again')).toMatchObject({ acquired: true });
      expect(replaced(ds)).toEqual({ main: { stall: 7, idle_check: 0 }, locks: { stall: 1, idle_check: 0 } });
    }

    it('a stall that replaces many connections is one warn line per pool, with how many and why, never one per connection nor a query', async () => {
      const warned = poolWarnings(2);
      try {
        const ds = await open(options({ max: 8 }, { driver: postgresDriver(pg, { replacedLogWindowMs: 1000 }) } as Partial<DataSourceOptions>));
        await stallWithEightIdle(ds);
        expect((await warned.arrived).sort()).toEqual([line('locks', 1, 0), line('main', 7, 0)]);
        expect(warned.lines.join('\n')).not.toMatch(/marker_query_text|SELECT/);
      } finally {
        jest.restoreAllMocks();
      }
    }, 30_000);

    it('a pool that ends logs the replacements it has not logged yet', async () => {
      const warned = poolWarnings(2);
      try {
        const ds = await open(options({ max: 8 }, { driver: postgresDriver(pg) } as Partial<DataSourceOptions>));
        await stallWithEightIdle(ds);
        // The default window (10 s) has not closed: nothing yet.
        expect(warned.lines).toEqual([]);
        await ds.destroy();
        expect([...warned.lines].sort()).toEqual([line('locks', 1, 0), line('main', 7, 0)]);
      } finally {
        jest.restoreAllMocks();
      }
    }, 30_000);
  });
});
