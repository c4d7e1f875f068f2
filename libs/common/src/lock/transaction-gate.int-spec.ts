import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataSource } from 'typeorm';
import { SqliteWriteWorker } from '../persistence/sqlite-write-worker';
import { TransactionGate } from './transaction-gate';
import { TransactionRunner } from '../persistence/transaction-runner';
import { openTestDataSource } from '../testing/persistence-test-db';

const insert = (id: string) => ({ sql: "INSERT INTO cv_test_items (id, label) VALUES (?, 'x')", params: [id] });

describe('TransactionGate on a SQLite file that another connection writes too (a CLI, another process)', () => {
  let dir: string;
  let ours: DataSource;
  let theirs: DataSource;
  let theirWorker: SqliteWriteWorker;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cv-gate-'));
    const open = () => openTestDataSource({ type: 'better-sqlite3', database: join(dir, 'db.sqlite'), enableWAL: true });
    ours = await open();
    theirs = await open();
    // Another process's writer: its own connection on its own thread, waiting in SQLite's busy handler.
    theirWorker = SqliteWriteWorker.for(theirs)!;
  });

  afterEach(async () => {
    await theirWorker.stop();
    await theirs.destroy();
    await ours.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a transaction that read before the other connection wrote still commits its write; the other write waits its turn', async () => {
    const runner = new TransactionRunner(ours);
    let theirWrite: Promise<void> | undefined;
    await runner.run(async () => {
      const [{ n }] = await runner.manager.query('SELECT count(*) AS n FROM cv_test_items');
      expect(n).toBe(0);
      theirWrite = theirWorker.transaction([insert('theirs')]);
      // A deferred BEGIN would let their commit land here, and our write below would then be refused at once
      // (SQLITE_BUSY_SNAPSHOT): our snapshot is older than their commit.
      await Promise.race([theirWrite, new Promise((r) => setTimeout(r, 300))]);
      await runner.manager.query("INSERT INTO cv_test_items (id, label) VALUES ('ours', 'x')");
    });
    await theirWrite;
    const rows: Array<{ id: string }> = await ours.query('SELECT id FROM cv_test_items ORDER BY rowid');
    expect(rows.map((r) => r.id)).toEqual(['ours', 'theirs']);
  });
});

describe('TransactionGate on the one shared SQLite connection', () => {
  let dir: string;
  let ds: DataSource;
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cv-gate-'));
    ds = await openTestDataSource({ type: 'better-sqlite3', database: join(dir, 'db.sqlite'), enableWAL: true });
  });
  afterEach(async () => {
    await ds.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses a transaction it cannot have in time (503 LOCK_TIMEOUT) instead of nesting it in the open one, whose rollback would undo it', async () => {
    const gate = TransactionGate.for(ds);
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const slow = gate.transaction(async (m) => {
      await m.query("INSERT INTO cv_test_items (id, label) VALUES ('slow', 'x')");
      await held; // e.g. a slow call made inside the transaction
      throw new Error('the slow one fails');
    });
    await new Promise((r) => setTimeout(r, 20));
    const quick = gate.transaction((m) => m.query("INSERT INTO cv_test_items (id, label) VALUES ('quick', 'x')"), { maxWaitMs: 100 });
    const settled = await Promise.allSettled([quick]);
    release();
    await expect(slow).rejects.toThrow('the slow one fails');
    // Reported committed means committed: either it was refused, or its row is there.
    const rows: Array<{ id: string }> = await ds.query('SELECT id FROM cv_test_items');
    expect(settled[0]).toMatchObject({ status: 'rejected', reason: { code: 9001, codeName: 'LOCK_TIMEOUT' } });
    expect(rows).toEqual([]);
  });
});
