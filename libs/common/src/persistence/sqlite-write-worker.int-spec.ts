import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataSource } from 'typeorm';
import { countRows, openTestDataSource } from '../testing/persistence-test-db';
import { SqliteWorkerWriteError } from './persistence.errors';
import { SqliteWriteWorker } from './sqlite-write-worker';

const insert = (id: string, label = 'x') => ({ sql: 'INSERT INTO cv_test_items (id, label) VALUES (?, ?)', params: [id, label] });

describe('SqliteWriteWorker: write transactions of a SQLite file on a worker thread', () => {
  let dir: string;
  let ds: DataSource | undefined;
  let worker: SqliteWriteWorker | undefined;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'cv-write-worker-'));
  });

  afterEach(async () => {
    await worker?.stop();
    worker = undefined;
    await ds?.destroy();
    ds = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  const openFile = (enableWAL = true, synchronous: 'FULL' | 'NORMAL' = 'FULL') =>
    openTestDataSource({
      type: 'better-sqlite3',
      database: join(dir, 'db.sqlite'),
      enableWAL,
      prepareDatabase: (db: { pragma(source: string): unknown }) => void db.pragma(`synchronous = ${synchronous}`),
    });

  it("commits as durably as the main connection: it copies the connection's synchronous level", async () => {
    ds = await openFile();
    worker = SqliteWriteWorker.for(ds)!;
    expect(worker.synchronous).toBe(2); // FULL: the WAL is flushed before COMMIT returns, in the worker
    await worker.stop();
    await ds.destroy();
    ds = await openFile(true, 'NORMAL');
    worker = SqliteWriteWorker.for(ds)!;
    expect(worker.synchronous).toBe(1);
  });

  it("checkpoints as the main connection does: it copies the connection's wal_autocheckpoint", async () => {
    // The main connection checkpoints after 20 pages; the worker's commits must too (SQLite's default is 1,000).
    ds = await openTestDataSource({
      type: 'better-sqlite3',
      database: join(dir, 'db.sqlite'),
      enableWAL: true,
      prepareDatabase: (db: { pragma(source: string): unknown }) => void db.pragma('wal_autocheckpoint = 20'),
    });
    worker = SqliteWriteWorker.for(ds)!;
    // ~60 rows of 60 bytes a transaction, 30 transactions: far more than 20 pages of WAL in all.
    for (let t = 0; t < 30; t++) {
      await worker.transaction(Array.from({ length: 60 }, (_, i) => insert(`${t}-${i}`, 'v'.repeat(60))));
    }
    // Frames in the WAL now: each auto-checkpoint let the next commit start the WAL over.
    const [{ log }] = (await ds.query('PRAGMA wal_checkpoint(PASSIVE)')) as Array<{ log: number }>;
    expect(log).toBeLessThan(60);
  });

  it('commits the statements as one transaction, visible on the main connection once it resolves', async () => {
    ds = await openFile();
    worker = SqliteWriteWorker.for(ds)!;
    expect(worker).toBeDefined();
    await worker.transaction([insert('a'), insert('b'), insert('c')]);
    expect(await countRows(ds, 'cv_test_items')).toBe(3);
    // Several in flight: each commits, in the order posted.
    await Promise.all([worker.transaction([insert('d')]), worker.transaction([insert('e')])]);
    expect((await ds.query('SELECT id FROM cv_test_items ORDER BY rowid')).map((r: { id: string }) => r.id)).toEqual(['a', 'b', 'c', 'd', 'e']);
  });

  it('a failing statement rolls the whole transaction back and rejects with the driver code, never the values', async () => {
    ds = await openFile();
    worker = SqliteWriteWorker.for(ds)!;
    await worker.transaction([insert('a')]);
    const err = await worker.transaction([insert('b', 'secret-label-1'), insert('a', 'secret-label-2')]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SqliteWorkerWriteError);
    expect(err).toMatchObject({ code: 6006, codeName: 'SQLITE_WORKER_WRITE', driverError: { code: 'SQLITE_CONSTRAINT_PRIMARYKEY' } });
    expect(String((err as Error).message)).not.toMatch(/secret-label/);
    expect(await countRows(ds, 'cv_test_items')).toBe(1); // 'b' rolled back with the failing 'a'
    // The worker goes on.
    await worker.transaction([insert('b')]);
    expect(await countRows(ds, 'cv_test_items')).toBe(2);
  });

  it('waits for a write transaction of the main connection instead of failing (busy timeout)', async () => {
    ds = await openFile();
    worker = SqliteWriteWorker.for(ds)!;
    const qr = ds.createQueryRunner();
    await qr.startTransaction();
    await qr.query("INSERT INTO cv_test_items (id, label) VALUES ('main', 'x')");
    let settled = false;
    const write = worker.transaction([insert('w')]).finally(() => (settled = true));
    await new Promise((r) => setTimeout(r, 100));
    expect(settled).toBe(false); // waiting for SQLite's write lock, in the worker
    await qr.commitTransaction();
    await qr.release();
    await write;
    expect(await countRows(ds, 'cv_test_items')).toBe(2);
  });

  it('stop lets posted transactions finish; afterwards it is not running and refuses new ones', async () => {
    ds = await openFile();
    worker = SqliteWriteWorker.for(ds)!;
    const posted = worker.transaction([insert('a')]);
    const stopped = worker.stop();
    await expect(posted).resolves.toBeUndefined();
    await stopped;
    expect(worker.running).toBe(false);
    await expect(worker.transaction([insert('b')])).rejects.toBeInstanceOf(SqliteWorkerWriteError);
    expect(await countRows(ds, 'cv_test_items')).toBe(1);
  });

  it('is not offered where another connection cannot share the writes: :memory:, a rollback journal', async () => {
    ds = await openTestDataSource({ type: 'better-sqlite3', database: ':memory:' });
    expect(SqliteWriteWorker.for(ds)).toBeUndefined();
    await ds.destroy();
    ds = await openFile(false);
    expect(SqliteWriteWorker.for(ds)).toBeUndefined();
  });
});
