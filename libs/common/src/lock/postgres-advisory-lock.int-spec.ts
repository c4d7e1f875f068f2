import { randomBytes } from 'node:crypto';
import { createTestDatabase, TestDatabase } from '@app/testing';
import type { Logger } from '@nestjs/common';
import { DataSource, type DataSourceOptions } from 'typeorm';
import { createDistributedLock } from './create-distributed-lock';
import { InProcessLock } from './in-process-lock';
import { LockTimeoutError } from './lock.errors';
import type { LockSession, LockSessions } from './lock-sessions';
import { PostgresAdvisoryLock } from './postgres-advisory-lock';
import { TransactionGate } from './transaction-gate';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Advisory locks are database-wide: unique names keep parallel test runs apart. */
const key = (name: string) => `${name}-${randomBytes(6).toString('hex')}`;

function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

describe('PostgresAdvisoryLock (two replicas on one PostgreSQL)', () => {
  let db: TestDatabase;
  let replicaA: DataSource;
  let replicaB: DataSource;
  let lockA: PostgresAdvisoryLock;
  let lockB: PostgresAdvisoryLock;

  beforeAll(async () => {
    db = await createTestDatabase('postgres');
    replicaA = await new DataSource({ ...db.options }).initialize();
    replicaB = await new DataSource({ ...db.options }).initialize();
    lockA = new PostgresAdvisoryLock(replicaA);
    lockB = new PostgresAdvisoryLock(replicaB);
  });

  afterAll(async () => {
    await replicaA?.destroy();
    await replicaB?.destroy();
    await db?.drop();
  });

  /** Sessions holding the advisory lock of `name` right now (pg_locks splits the 64-bit key in two oids). */
  async function holders(name: string): Promise<number> {
    const id = BigInt.asUintN(64, BigInt(lockA.advisoryId(name)));
    const rows: Array<{ n: string }> = await replicaA.query(
      `SELECT count(*) AS n FROM pg_locks
        WHERE locktype = 'advisory' AND granted AND objsubid = 1 AND classid::bigint = $1::bigint AND objid::bigint = $2::bigint`,
      [(id >> 32n).toString(), (id & 0xffffffffn).toString()],
    );
    return Number(rows[0].n);
  }

  it('only one replica runs the job; the other is told it did not acquire', async () => {
    const k = key('cron');
    for (let round = 0; round < 5; round++) {
      const runs: string[] = [];
      // The winner holds the lock until the other replica has tried (a fixed 50 ms let a replica slowed by a loaded
      // machine try only after the winner had finished, and rightly run too). Both running would wait out the 5 s.
      const otherTried = deferred();
      const job = (name: string) => async () => {
        runs.push(name);
        // The bound's timer is cleared: left running, five of them outlived the file by up to 5 s, in a jest worker that
        // then could not exit when this file was its last one.
        let bound: NodeJS.Timeout | undefined;
        await Promise.race([otherTried.promise, new Promise((r) => (bound = setTimeout(r, 5000)))]);
        clearTimeout(bound);
        return name;
      };
      const tries = [lockA.tryRun(k, job('A')), lockB.tryRun(k, job('B'))];
      void Promise.race(tries).then(otherTried.resolve, otherTried.resolve);
      const [a, b] = await Promise.all(tries);
      expect(runs).toHaveLength(1);
      expect([a.acquired, b.acquired].filter(Boolean)).toHaveLength(1);
      const winner = a.acquired ? a : b;
      expect(winner).toEqual({ acquired: true, value: runs[0] });
    }
  });

  it('a replica cannot take a lock the other holds, and can once it is released', async () => {
    const k = key('held');
    const gate = deferred();
    const holding = lockA.tryRun(k, () => gate.promise.then(() => 'a-done'));
    await sleep(100);
    let ranB = false;
    await expect(lockB.tryRun(k, async () => (ranB = true))).resolves.toEqual({ acquired: false });
    expect(ranB).toBe(false);
    gate.resolve();
    await expect(holding).resolves.toEqual({ acquired: true, value: 'a-done' });
    await expect(lockB.tryRun(k, async () => 'b')).resolves.toEqual({ acquired: true, value: 'b' });
  });

  it('serialises concurrent callers in one process without a second session', async () => {
    const k = key('local');
    const gate = deferred();
    const first = lockA.tryRun(k, () => gate.promise);
    await sleep(50);
    await expect(lockA.tryRun(k, async () => 'x')).resolves.toEqual({ acquired: false });
    gate.resolve();
    await first;
  });

  it('releases the lock when fn throws (the other replica gets it at once)', async () => {
    const k = key('throws');
    await expect(lockA.tryRun(k, async () => Promise.reject(new Error('job failed')))).rejects.toThrow('job failed');
    await expect(lockB.tryRun(k, async () => 'b')).resolves.toEqual({ acquired: true, value: 'b' });
    await expect(lockA.run(k, async () => Promise.reject(new Error('again')), { timeoutMs: 1000 })).rejects.toThrow('again');
    await expect(lockB.run(k, async () => 'b2', { timeoutMs: 500 })).resolves.toBe('b2');
  });

  it('is per schema: a host in another schema of the same server takes the same key at the same time', async () => {
    const other = await createTestDatabase('postgres');
    const elsewhere = await new DataSource({ ...other.options }).initialize();
    try {
      const lockElsewhere = new PostgresAdvisoryLock(elsewhere);
      const k = key('job');
      const gate = deferred();
      const entered = deferred();
      const holding = lockA.tryRun(k, () => {
        entered.resolve();
        return gate.promise;
      });
      await entered.promise; // lockA holds the advisory lock from here on
      await expect(lockB.tryRun(k, async () => 'b')).resolves.toEqual({ acquired: false });
      await expect(lockElsewhere.tryRun(k, async () => 'other schema')).resolves.toEqual({ acquired: true, value: 'other schema' });
      gate.resolve();
      await holding;
    } finally {
      await elsewhere.destroy();
      await other.drop();
    }
  });

  it("a holder whose lock session ends is told at once and stops before its next item, while the other replica takes the lock", async () => {
    const k = key('session-ends');
    const done: number[] = [];
    const firstItem = deferred();
    const finishFirst = deferred();
    let told = false;
    const run = lockA.tryRun(k, async (held) => {
      held.addEventListener('abort', () => (told = true));
      for (const item of [1, 2, 3]) {
        // A job checks before each item that it still holds its lock.
        held.throwIfAborted();
        if (item === 1) {
          firstItem.resolve();
          await finishFirst.promise;
        }
        done.push(item);
      }
      return 'all';
    });
    await firstItem.promise;
    // End that one lock session, found by its advisory lock (this test's key, in this test's schema namespace).
    const id = BigInt.asUintN(64, BigInt(lockA.advisoryId(k)));
    const [{ pid }]: Array<{ pid: number }> = await replicaB.query(
      `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1 AND classid::bigint = $1::bigint AND objid::bigint = $2::bigint`,
      [(id >> 32n).toString(), (id & 0xffffffffn).toString()],
    );
    await replicaB.query('SELECT pg_terminate_backend($1)', [pid]);
    // The lock went with the session: the other replica runs the job meanwhile.
    for (let i = 0; i < 100 && (await holders(k)) > 0; i++) await sleep(20);
    await expect(lockB.tryRun(k, async () => 'b')).resolves.toEqual({ acquired: true, value: 'b' });
    for (let i = 0; i < 100 && !told; i++) await sleep(20);
    finishFirst.resolve();
    // The first run ends its item in flight and starts no other one unlocked.
    await expect(run).rejects.toMatchObject({ codeName: 'LOCK_LOST' });
    expect(done).toEqual([1]);
    await expect(lockA.tryRun(k, async () => 'a again')).resolves.toEqual({ acquired: true, value: 'a again' });
  });

  it('a failed unlock discards the session (freeing the lock) and is logged by class and SQLSTATE, not by message', async () => {
    const name = key('unlock-fails');
    const lock = new PostgresAdvisoryLock(replicaA);
    const logged = jest.spyOn((lock as unknown as { logger: Logger }).logger, 'error').mockImplementation(() => undefined);
    const sessions = (lock as unknown as { sessions: LockSessions }).sessions;
    const connect = sessions.connect.bind(sessions);
    jest.spyOn(sessions, 'connect').mockImplementationOnce(async () => {
      const session = await connect();
      const query = session.query.bind(session);
      // pg quotes statement values in its messages; this one stands for such a message.
      session.query = (async (sql: string, params?: unknown[]) =>
        sql.includes('pg_advisory_unlock')
          ? Promise.reject(Object.assign(new Error(`unlock failed for value 'MARKER-a81f'`), { name: 'QueryFailedError', code: '57P01' }))
          : query(sql, params)) as LockSession['query'];
      return session;
    });
    await expect(lock.tryRun(name, async () => expect(await holders(name)).toBe(1))).resolves.toEqual({ acquired: true, value: undefined });
    // The server ends the dropped session's backend (and its locks) shortly after the disconnect.
    for (let i = 0; i < 100 && (await holders(name)) > 0; i++) await sleep(20);
    expect(await holders(name)).toBe(0);
    expect(logged.mock.calls.map((c) => String(c[0]))).toEqual([expect.stringContaining('QueryFailedError(57P01)')]);
    expect(String(logged.mock.calls[0][0])).not.toContain('MARKER-a81f');
  });

  it("more holders than the DataSource's pool has connections, each querying through that pool, all finish; other queries are not held up", async () => {
    // A pool of 3: each holder's session once came from it, and the work inside then waited for a connection none gave back.
    const small = await new DataSource({ ...db.options, extra: { max: 3, connectionTimeoutMillis: 5000 } } as DataSourceOptions).initialize();
    try {
      const lock = new PostgresAdvisoryLock(small);
      const started = Date.now();
      const held = Array.from({ length: 6 }, (_, i) => lock.tryRun(key(`pool-${i}`), async () => (await small.query('SELECT pg_sleep(0.2), 1 AS one'))[0].one as number));
      await sleep(50);
      const other = Date.now();
      await small.query('SELECT 1');
      expect(Date.now() - other).toBeLessThan(1000);
      expect(await Promise.all(held)).toEqual(Array.from({ length: 6 }, () => ({ acquired: true, value: 1 })));
      expect(Date.now() - started).toBeLessThan(4000);
    } finally {
      await small.destroy();
    }
  });

  it('holds the advisory lock only while fn runs, also after many runs and failures', async () => {
    const k = key('leak');
    await expect(lockA.tryRun(k, () => holders(k))).resolves.toEqual({ acquired: true, value: 1 });
    for (let i = 0; i < 20; i++) {
      await lockA.tryRun(k, async () => undefined);
      await lockB.run(k, async () => Promise.reject(new Error('x')), { timeoutMs: 1000 }).catch(() => undefined);
    }
    expect(await holders(k)).toBe(0);
  });

  it('run() waits for the other replica and then runs', async () => {
    const k = key('wait');
    const gate = deferred();
    const holding = lockA.tryRun(k, () => gate.promise);
    await sleep(50);
    const started = Date.now();
    const waiting = lockB.run(k, async () => Date.now() - started, { timeoutMs: 5000 });
    await sleep(200);
    gate.resolve();
    await holding;
    await expect(waiting).resolves.toBeGreaterThanOrEqual(180);
  });

  it('run() throws LockTimeoutError after timeoutMs without running fn, and leaves no lock behind', async () => {
    const k = key('timeout');
    const gate = deferred();
    const holding = lockA.tryRun(k, () => gate.promise);
    await sleep(50);
    let ran = false;
    const started = Date.now();
    const err = await lockB.run(k, async () => (ran = true), { timeoutMs: 300 }).catch((e) => e);
    const elapsed = Date.now() - started;
    expect(err).toBeInstanceOf(LockTimeoutError);
    expect(err.code).toBe(9001);
    expect(ran).toBe(false);
    expect(elapsed).toBeGreaterThanOrEqual(250);
    expect(elapsed).toBeLessThan(3000);
    gate.resolve();
    await holding;
    // B's timed-out wait did not leave B holding the lock: A can take it again immediately.
    await expect(lockA.tryRun(k, async () => 'a')).resolves.toEqual({ acquired: true, value: 'a' });
  });

  it('createDistributedLock picks advisory locks for postgres and an in-process lock otherwise', async () => {
    expect(createDistributedLock(replicaA)).toBeInstanceOf(PostgresAdvisoryLock);
    const sqlite = await createTestDatabase('sqlite');
    const ds = await new DataSource({ ...sqlite.options }).initialize();
    try {
      expect(createDistributedLock(ds)).toBeInstanceOf(InProcessLock);
      expect(() => new PostgresAdvisoryLock(ds)).toThrow(/postgres/);
    } finally {
      await ds.destroy();
      await sqlite.drop();
    }
  });
});

describe('TransactionGate on SQLite (one shared connection)', () => {
  it('runs concurrent transactions one after another instead of nesting them', async () => {
    const sqlite = await createTestDatabase('sqlite');
    const ds = await new DataSource({ ...sqlite.options }).initialize();
    try {
      await ds.query('CREATE TABLE t (n integer)');
      const gate = TransactionGate.for(ds);
      expect(TransactionGate.for(ds)).toBe(gate);
      const depths: number[] = [];
      await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          gate.transaction(async (m) => {
            depths.push((m.queryRunner as unknown as { transactionDepth: number }).transactionDepth);
            await m.query('INSERT INTO t (n) VALUES (?)', [i]);
            await sleep(1);
            if (i % 2) throw new Error('roll back this one only');
          }).catch(() => undefined),
        ),
      );
      expect(depths).toEqual(Array(20).fill(1));
      const rows: Array<{ n: number }> = await ds.query('SELECT n FROM t ORDER BY n');
      expect(rows.map((r) => r.n)).toEqual([0, 2, 4, 6, 8, 10, 12, 14, 16, 18]);
    } finally {
      await ds.destroy();
      await sqlite.drop();
    }
  });
});
