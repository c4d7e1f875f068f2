import { createTestDatabase, TestDatabase } from '@app/testing';
import { DataSource } from 'typeorm';
import { deferred, openTestDataSource } from '../testing/persistence-test-db';
import { SqliteDurableCommit } from './sqlite-durable-commit';
import { TransactionRunner } from './transaction-runner';

/** `readSync` on SQLite's one shared connection: never a row another caller has not committed (and flushed). */
describe('TransactionRunner.readSync on sqlite', () => {
  let db: TestDatabase;
  let ds: DataSource;
  let runner: TransactionRunner;
  let count: () => number;

  beforeAll(async () => {
    db = await createTestDatabase('sqlite');
    ds = await openTestDataSource(db.options);
    runner = new TransactionRunner(ds);
    const connection = (ds.driver as unknown as { databaseConnection: { prepare(sql: string): { get(): { n: number } } } }).databaseConnection;
    const statement = connection.prepare('SELECT count(*) AS n FROM cv_test_items');
    count = () => statement.get().n;
  });
  afterAll(async () => {
    await ds?.destroy();
    await db?.drop();
  });
  beforeEach(async () => ds.query('DELETE FROM cv_test_items'));
  afterEach(() => jest.restoreAllMocks());

  const insert = (id: string) => runner.manager.query('INSERT INTO cv_test_items (id, label) VALUES (?, ?)', [id, 'x']);

  it('runs at once, without a scope, when the gate is idle', async () => {
    await runner.run(() => insert('a'));
    expect(runner.readSync(count)).toBe(1); // a value, not a promise
  });

  it("waits while another caller's transaction is open, and never sees its rows when it rolls back", async () => {
    const hold = deferred();
    const inserted = deferred();
    const failed = runner
      .run(async () => {
        await insert('a');
        inserted.resolve();
        await hold.promise;
        throw new Error('rolled back');
      })
      .catch(() => undefined);
    await inserted.promise;
    expect(count()).toBe(1); // an ungated read on the shared connection would see the uncommitted row
    const read = runner.readSync(count);
    expect(read).toBeInstanceOf(Promise);
    hold.resolve();
    await failed;
    await expect(read).resolves.toBe(0);
  });

  it('inside a transaction of its own context, reads that transaction at once (its own uncommitted rows)', async () => {
    await runner.run(async () => {
      await insert('a');
      expect(runner.readSync(count)).toBe(1);
    });
  });

  it('waits for a commit still being flushed to disk', async () => {
    const flush = deferred();
    jest.spyOn(SqliteDurableCommit.prototype, 'sync').mockImplementationOnce(() => flush.promise);
    const write = runner.run(() => insert('a'));
    await new Promise((r) => setTimeout(r, 30)); // committed, flush pending
    const read = runner.readSync(count);
    expect(read).toBeInstanceOf(Promise);
    flush.resolve();
    await write;
    await expect(read).resolves.toBe(1);
  });
});
