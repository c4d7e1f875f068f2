import { mkdtempSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataSource } from 'typeorm';
import { TransactionGate } from '../lock/transaction-gate';
import { countRows, deferred, openTestDataSource } from '../testing/persistence-test-db';
import { CommitNotDurableError } from './persistence.errors';
import { SqliteDurableCommit } from './sqlite-durable-commit';
import { TransactionRunner } from './transaction-runner';

/** A better-sqlite3 file as the host opens it: WAL, `synchronous` as given. */
async function openSqlite(dir: string, synchronous: 'FULL' | 'NORMAL', enableWAL = true): Promise<DataSource> {
  return openTestDataSource({
    type: 'better-sqlite3',
    database: join(dir, 'db.sqlite'),
    enableWAL,
    prepareDatabase: (db: { pragma(source: string): unknown }) => void db.pragma(`synchronous = ${synchronous}`),
  });
}

const level = async (ds: DataSource) => Number((await ds.query('PRAGMA synchronous'))[0].synchronous);

describe('SQLite commits flushed off the event loop (SqliteDurableCommit via TransactionGate)', () => {
  let dir: string;
  let ds: DataSource | undefined;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'cv-durable-'));
  });

  afterEach(async () => {
    jest.restoreAllMocks();
    await ds?.destroy();
    ds = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  it('FULL in WAL mode: commits with NORMAL, resolves only after the WAL flush, and the connection is FULL again', async () => {
    ds = await openSqlite(dir, 'FULL');
    const runner = new TransactionRunner(ds);
    const flush = deferred();
    const sync = jest.spyOn(SqliteDurableCommit.prototype, 'sync').mockImplementation(() => flush.promise);

    let inside = -1;
    let settled = false;
    const write = runner
      .run(async () => {
        inside = await level(ds!);
        await runner.manager.query("INSERT INTO cv_test_items (id, label) VALUES ('a', 'x')");
      })
      .then(() => (settled = true));
    // A reader queued behind the write must not see the commit before it is durable.
    let seenBeforeFlush: number | undefined;
    const reader = runner.read(async () => (seenBeforeFlush = await countRows(ds!, 'cv_test_items')));

    await new Promise((r) => setTimeout(r, 50));
    expect(sync).toHaveBeenCalledTimes(1);
    expect(settled).toBe(false);
    expect(seenBeforeFlush).toBeUndefined();
    expect(inside).toBe(1); // NORMAL while the transaction ran

    flush.resolve();
    await write;
    await reader;
    expect(seenBeforeFlush).toBe(1);
    expect(await level(ds)).toBe(2); // FULL again for anything outside the gate
  });

  it('the real flush: every transaction is followed by one, and a rollback needs none', async () => {
    ds = await openSqlite(dir, 'FULL');
    const runner = new TransactionRunner(ds);
    const sync = jest.spyOn(SqliteDurableCommit.prototype, 'sync');
    await runner.run(() => runner.manager.query("INSERT INTO cv_test_items (id, label) VALUES ('a', 'x')"));
    await runner.run(() => runner.manager.query("INSERT INTO cv_test_items (id, label) VALUES ('b', 'x')"));
    await expect(
      runner.run(async () => {
        await runner.manager.query("INSERT INTO cv_test_items (id, label) VALUES ('c', 'x')");
        throw new Error('rolled back');
      }),
    ).rejects.toThrow('rolled back');
    expect(sync).toHaveBeenCalledTimes(2);
    await expect(Promise.all(sync.mock.results.map((r) => r.value))).resolves.toBeDefined();
    expect(await countRows(ds, 'cv_test_items')).toBe(2);
    expect(await level(ds)).toBe(2);
  });

  it('keeps one WAL descriptor of its own while commits keep coming, and closes it once idle', async () => {
    ds = await openSqlite(dir, 'FULL');
    const runner = new TransactionRunner(ds);
    const wal = join(dir, 'db.sqlite-wal');
    const walDescriptors = () =>
      readdirSync('/proc/self/fd').filter((fd) => {
        try {
          return readlinkSync(`/proc/self/fd/${fd}`) === wal;
        } catch {
          return false; // closed meanwhile
        }
      }).length;
    await runner.run(() => runner.manager.query("INSERT INTO cv_test_items (id, label) VALUES ('a', 'x')"));
    const sqlitesOwn = walDescriptors() - 1;
    for (let i = 0; i < 5; i++) await runner.run(() => runner.manager.query(`INSERT INTO cv_test_items (id, label) VALUES ('b${i}', 'x')`));
    expect(walDescriptors()).toBe(sqlitesOwn + 1); // one, reused
    await new Promise((r) => setTimeout(r, 1300));
    expect(walDescriptors()).toBe(sqlitesOwn);
  });

  it('a failed flush: CommitNotDurableError (stable code), the row is committed and the after-commit callbacks ran', async () => {
    ds = await openSqlite(dir, 'FULL');
    const runner = new TransactionRunner(ds);
    jest.spyOn(SqliteDurableCommit.prototype, 'sync').mockRejectedValueOnce(new CommitNotDurableError({ cause: new Error('EIO') }));
    const after = jest.fn();
    const err = await runner
      .run(async () => {
        await runner.manager.query("INSERT INTO cv_test_items (id, label) VALUES ('a', 'x')");
        runner.afterCommit(after);
      })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CommitNotDurableError);
    expect(err).toMatchObject({ code: 6004, codeName: 'COMMIT_NOT_DURABLE', committed: true });
    expect(after).toHaveBeenCalledTimes(1);
    expect(await countRows(ds, 'cv_test_items')).toBe(1);
    // The next transaction flushes for itself.
    await runner.run(() => runner.manager.query("INSERT INTO cv_test_items (id, label) VALUES ('b', 'x')"));
    expect(await countRows(ds, 'cv_test_items')).toBe(2);
  });

  it.each([
    ['synchronous NORMAL (the operator chose not to flush every commit)', 'NORMAL' as const, true],
    ['a rollback journal instead of WAL (COMMIT syncs by itself)', 'FULL' as const, false],
  ])('%s: commits as configured, no extra flush', async (_name, synchronous, enableWAL) => {
    ds = await openSqlite(dir, synchronous, enableWAL);
    const before = await level(ds);
    const sync = jest.spyOn(SqliteDurableCommit.prototype, 'sync');
    const runner = new TransactionRunner(ds);
    let inside = -1;
    await runner.run(async () => {
      inside = await level(ds!);
      await runner.manager.query("INSERT INTO cv_test_items (id, label) VALUES ('a', 'x')");
    });
    expect(sync).not.toHaveBeenCalled();
    expect(inside).toBe(before);
    expect(await level(ds)).toBe(before);
  });

  it('a DataSource destroyed and initialised again is detected anew (no flush of a closed connection)', async () => {
    ds = await openSqlite(dir, 'FULL');
    const gate = TransactionGate.for(ds);
    const sync = jest.spyOn(SqliteDurableCommit.prototype, 'sync');
    await gate.transaction((m) => m.query("INSERT INTO cv_test_items (id, label) VALUES ('a', 'x')"));
    await ds.destroy();
    await ds.initialize();
    await gate.transaction((m) => m.query("INSERT INTO cv_test_items (id, label) VALUES ('b', 'x')"));
    expect(sync).toHaveBeenCalledTimes(2);
    expect(await countRows(ds, 'cv_test_items')).toBe(2);
    expect(await level(ds)).toBe(2);
  });
});
