import type { Logger } from '@nestjs/common';
import { createTestDatabase, DATABASE_KINDS, TestDatabase } from '@app/testing';
import { DataSource, EntityManager } from 'typeorm';
import { countRows, deferred, openTestDataSource, params } from '../testing/persistence-test-db';
import { DatabaseConnectionLostError, PERSISTENCE_ERROR_HTTP_STATUS, TransactionRollbackOnlyError, WriteInReadError } from './persistence.errors';
import { TransactionRunner } from './transaction-runner';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const depth = (m: EntityManager) => (m.queryRunner as unknown as { transactionDepth: number }).transactionDepth;

describe.each(DATABASE_KINDS)('TransactionRunner on %s', (kind) => {
  let db: TestDatabase;
  let ds: DataSource;
  // Two runners on one DataSource stand for two libs that never pass an EntityManager to each other.
  let libA: TransactionRunner;
  let libB: TransactionRunner;

  beforeAll(async () => {
    db = await createTestDatabase(kind);
    ds = await openTestDataSource(db.options);
    libA = new TransactionRunner(ds);
    libB = new TransactionRunner(ds);
  });

  afterAll(async () => {
    await ds?.destroy();
    await db?.drop();
  });

  beforeEach(async () => {
    await ds.query('DELETE FROM cv_test_items');
  });

  const insert = (runner: TransactionRunner, id: string) =>
    runner.manager.query(`INSERT INTO cv_test_items (id, label) VALUES (${params(ds, 2)})`, [id, 'x']);

  it('a run inside a run joins the ambient transaction (same manager, no nested BEGIN), across runners', async () => {
    expect(libA.inTransaction()).toBe(false);
    expect(libA.manager).toBe(ds.manager);
    await libA.run(async () => {
      const outer = libA.manager;
      expect(outer).not.toBe(ds.manager);
      await insert(libA, 'a');
      await libB.run(async () => {
        expect(libB.inTransaction()).toBe(true);
        expect(libB.manager).toBe(outer);
        expect(depth(libB.manager)).toBe(1);
        await insert(libB, 'b');
      });
    });
    expect(await countRows(ds, 'cv_test_items')).toBe(2);
    expect(libA.inTransaction()).toBe(false);
  });

  it('sequential runs open separate transactions', async () => {
    const managers: EntityManager[] = [];
    await libA.run(async () => void managers.push(libA.manager));
    await libB.run(async () => void managers.push(libB.manager));
    expect(managers[0]).not.toBe(managers[1]);
  });

  it('a throw rolls back everything written in the run and its joined runs; afterCommit does not run', async () => {
    const after = jest.fn();
    const err = await libA
      .run(async () => {
        await insert(libA, 'a');
        await libB.run(async () => {
          await insert(libB, 'b');
          libB.afterCommit(after);
        });
        throw new Error('fail late');
      })
      .catch((e) => e);
    expect(err.message).toBe('fail late');
    expect(await countRows(ds, 'cv_test_items')).toBe(0);
    expect(after).not.toHaveBeenCalled();
  });

  it('a joined run that fails makes the transaction rollback-only even if the error is swallowed', async () => {
    const after = jest.fn();
    const err = await libA
      .run(async () => {
        await insert(libA, 'a');
        libA.afterCommit(after);
        await libB.run(async () => Promise.reject(new Error('inner'))).catch(() => undefined);
        return 'looks fine';
      })
      .catch((e) => e);
    expect(err).toBeInstanceOf(TransactionRollbackOnlyError);
    expect(err).toMatchObject({ code: 6002, codeName: 'TRANSACTION_ROLLBACK_ONLY' });
    expect((err.cause as Error).message).toBe('inner');
    expect(await countRows(ds, 'cv_test_items')).toBe(0);
    expect(after).not.toHaveBeenCalled();
  });

  it('afterCommit runs once, in order, after the outermost commit and outside the transaction; run waits for it', async () => {
    const log: string[] = [];
    const logged = jest.spyOn((libA as unknown as { logger: Logger }).logger, 'error').mockImplementation(() => undefined);
    const result = await libA.run(async () => {
      libA.afterCommit(() => log.push(`first:${libA.inTransaction()}`));
      await libB.run(async () => {
        libB.afterCommit(async () => {
          await sleep(5);
          log.push(`second:${libB.inTransaction()}`);
        });
      });
      libA.afterCommit(() => {
        throw Object.assign(new Error('a failing callback is logged, not thrown: MARKER-0c4d'), { code: 'E_CALLBACK' });
      });
      libA.afterCommit(() => log.push('third'));
      log.push('work done');
      return 42;
    });
    expect(result).toBe(42);
    expect(log).toEqual(['work done', 'first:false', 'second:false', 'third']);
    // The failure is logged by class and code: its message may quote the data the callback handled.
    expect(logged.mock.calls.map((c) => String(c[0]))).toEqual(['An after-commit callback failed: Error(E_CALLBACK)']);
  });

  it('afterCommit outside a transaction runs at once', () => {
    const fn = jest.fn();
    libA.afterCommit(fn);
    expect(fn).toHaveBeenCalledTimes(1);
  });

  it('async work that outlives its transaction does not join it afterwards', async () => {
    let late: Promise<{ inTx: boolean; manager: EntityManager }> | undefined;
    // Continues only once `run` has returned (a fixed sleep raced a commit slowed by its fsync on a loaded machine).
    let ended!: () => void;
    const afterRun = new Promise<void>((resolve) => (ended = resolve));
    await libA.run(async () => {
      late = afterRun.then(() => ({ inTx: libA.inTransaction(), manager: libA.manager }));
    });
    ended();
    const seen = await late!;
    expect(seen.inTx).toBe(false);
    expect(seen.manager).toBe(ds.manager);
  });

  it('read() inside a run just runs; run() inside read() is refused; reads nest', async () => {
    await libA.run(async () => {
      await insert(libA, 'a');
      await expect(libB.read(() => countRows(ds, 'cv_test_items', libB.manager))).resolves.toBe(1);
    });
    await expect(libA.read(() => libB.read(async () => 'nested'))).resolves.toBe('nested');
    const err = await libA.read(() => libB.run(async () => 'never')).catch((e) => e);
    expect(err).toBeInstanceOf(WriteInReadError);
    expect(err.code).toBe(6003);
  });

  it('read() never sees a row whose transaction has not committed', async () => {
    const hold = deferred();
    const inserted = deferred();
    const writer = libA.run(async () => {
      await insert(libA, 'pending');
      inserted.resolve();
      await hold.promise;
    });
    await inserted.promise;
    if (kind === 'postgres') {
      // Its own pooled connection: the read completes while the writer still holds its transaction open.
      const whileOpen = await libB.read(() => countRows(ds, 'cv_test_items', libB.manager));
      hold.resolve();
      await writer;
      expect(whileOpen).toBe(0);
      expect(await libB.read(() => countRows(ds, 'cv_test_items', libB.manager))).toBe(1);
      return;
    }
    let committed = false;
    const read = libB.read(() => countRows(ds, 'cv_test_items', libB.manager)).then((n) => ({ n, committed }));
    await sleep(50);
    committed = true;
    hold.resolve();
    await writer;
    // One shared connection: the read waited for the commit rather than read the open transaction.
    expect(await read).toEqual({ n: 1, committed: true });
  });

  it('concurrent runs never nest: each commits or rolls back alone', async () => {
    const depths: number[] = [];
    await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        libA
          .run(async () => {
            depths.push(depth(libA.manager));
            await insert(libA, `r${String(i).padStart(2, '0')}`);
            await sleep(1);
            await libB.run(async () => depths.push(depth(libB.manager)));
            if (i % 2) throw new Error('roll back this one only');
          })
          .catch(() => undefined),
      ),
    );
    expect(depths).toEqual(Array(40).fill(1));
    const rows: Array<{ id: string }> = await ds.query('SELECT id FROM cv_test_items ORDER BY id');
    expect(rows.map((r) => r.id)).toEqual(Array.from({ length: 10 }, (_, i) => `r${String(i * 2).padStart(2, '0')}`));
  });

  it('a runner of another DataSource neither joins nor is rolled back with this one', async () => {
    const other = await new DataSource({ ...ds.options }).initialize();
    try {
      const otherRunner = new TransactionRunner(other);
      await libA
        .run(async () => {
          await insert(libA, 'a');
          expect(otherRunner.inTransaction()).toBe(false);
          // Awaiting another DataSource's transaction inside a SQLite one would wait on the file lock: not on SQLite.
          if (kind === 'postgres') await otherRunner.run(() => insert(otherRunner, 'other'));
          throw new Error('rollback A');
        })
        .catch(() => undefined);
      expect(await countRows(ds, 'cv_test_items')).toBe(kind === 'postgres' ? 1 : 0);
    } finally {
      await other.destroy();
    }
  });
});

describe('TransactionRunner on postgres when the session is terminated mid-transaction', () => {
  let db: TestDatabase;
  let ds: DataSource;
  let runner: TransactionRunner;

  beforeAll(async () => {
    db = await createTestDatabase('postgres');
    ds = await openTestDataSource(db.options);
    runner = new TransactionRunner(ds);
  });

  afterAll(async () => {
    await ds?.destroy();
    await db?.drop();
  });

  /** What an operator's pg_terminate_backend (or a failover) does to the transaction's session; resolves once the driver saw it. */
  const terminateOwnSession = async () => {
    const pid = (await runner.manager.query('SELECT pg_backend_pid() AS pid'))[0].pid as number;
    await ds.query('SELECT pg_terminate_backend($1)', [pid]);
    const released = () => (runner.manager.queryRunner as unknown as { isReleased: boolean }).isReleased;
    for (let i = 0; i < 100 && !released(); i++) await sleep(20);
    expect(released()).toBe(true);
  };

  it.each([
    ['the work then resolves (the commit finds the session gone)', false],
    ['the work then queries again', true],
  ])('fails with DATABASE_CONNECTION_LOST (503), nothing written, when %s', async (_, queryAfter) => {
    const run = runner.run(async () => {
      await runner.manager.query(`INSERT INTO cv_test_items (id, label) VALUES ($1, $2)`, [`lost-${queryAfter}`, 'x']);
      await terminateOwnSession();
      if (queryAfter) await runner.manager.query('SELECT 1');
    });
    const error = await run.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DatabaseConnectionLostError);
    expect(error).toMatchObject({ code: 6009, codeName: 'DATABASE_CONNECTION_LOST', retryAfterMs: 1000 });
    expect(PERSISTENCE_ERROR_HTTP_STATUS[(error as DatabaseConnectionLostError).code]).toBe(503);
    expect(await countRows(ds, 'cv_test_items')).toBe(0);
    // The pool replaced the session: the next transaction commits.
    await runner.run(() => runner.manager.query(`INSERT INTO cv_test_items (id, label) VALUES ($1, $2)`, [`after-${queryAfter}`, 'x']));
    expect(await countRows(ds, 'cv_test_items')).toBe(1);
    await ds.query('DELETE FROM cv_test_items');
  });
});
