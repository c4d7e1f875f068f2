import { AsyncLocalStorage, AsyncResource } from 'node:async_hooks';
import { EventEmitter } from 'node:events';
import { createTestDatabase, DATABASE_KINDS, TestDatabase } from '@app/testing';
import { DataSource, EntityManager } from 'typeorm';
import { countRows, deferred, openTestDataSource, params } from '../testing/persistence-test-db';
import { WriteInReadError } from './persistence.errors';
import { TransactionRunner } from './transaction-runner';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * On Node 20 an enabled AsyncLocalStorage keeps the async_hooks promise hooks on for every promise in
 * the process. They cannot be observed process-wide here (jest-circus runs each test in an
 * AsyncLocalStorage of its own), so this watches the runner's storage: a callback bound inside a
 * scope that has since closed still carries that scope, and `getStore()` returns it exactly while
 * the storage is enabled (a disabled storage answers undefined: Node's documented `disable()`).
 */
function storageWatch(runner: TransactionRunner): Promise<() => boolean> {
  const storage = (runner as unknown as { storage: AsyncLocalStorage<unknown> }).storage;
  return runner.run(async () => {
    const peek = AsyncResource.bind(() => storage.getStore());
    return () => peek() !== undefined;
  });
}

/** What a piece of code sees of the ambient transaction. */
interface Seen {
  inTx: boolean;
  manager: EntityManager;
}

describe.each(DATABASE_KINDS)('TransactionRunner keeps the async hooks off while no scope is open, on %s', (kind) => {
  let db: TestDatabase;
  let ds: DataSource;
  let libA: TransactionRunner;
  let libB: TransactionRunner;
  let storageOn: () => boolean;

  const seen = (runner: TransactionRunner): Seen => ({ inTx: runner.inTransaction(), manager: runner.manager });
  const insert = (runner: TransactionRunner, id: string) =>
    runner.manager.query(`INSERT INTO cv_test_items (id, label) VALUES (${params(ds, 2)})`, [id, 'x']);

  beforeAll(async () => {
    db = await createTestDatabase(kind);
    ds = await openTestDataSource(db.options);
    libA = new TransactionRunner(ds);
    libB = new TransactionRunner(ds);
    storageOn = await storageWatch(libB);
  });

  afterAll(async () => {
    await ds?.destroy();
    await db?.drop();
  });

  beforeEach(async () => {
    await ds.query('DELETE FROM cv_test_items');
  });

  afterEach(async () => {
    // Every test ends with every scope closed: the storage (and with it the hooks) must be off again.
    expect(storageOn()).toBe(false);
  });

  it('the storage is off before any scope, on inside one, off once it settles — and on again for the next', async () => {
    expect(storageOn()).toBe(false);
    for (let round = 0; round < 2; round++) {
      await libA.run(async () => {
        expect(storageOn()).toBe(true);
        await insert(libA, `r${round}`);
      });
      expect(storageOn()).toBe(false);
      await libA.read(async () => expect(storageOn()).toBe(true));
      expect(storageOn()).toBe(false);
    }
    expect(await countRows(ds, 'cv_test_items')).toBe(2);
  });

  it('the transaction is visible across awaits, timers, immediates, nextTick and event callbacks inside the scope', async () => {
    const events = new EventEmitter();
    const views: Record<string, Seen> = {};
    await libA.run(async () => {
      const tx = libA.manager;
      await sleep(1);
      views.await = seen(libB);
      views.timeout = await new Promise<Seen>((r) => setTimeout(() => r(seen(libB)), 5));
      views.immediate = await new Promise<Seen>((r) => setImmediate(() => r(seen(libB))));
      views.nextTick = await new Promise<Seen>((r) => process.nextTick(() => r(seen(libB))));
      const emitted = new Promise<Seen>((r) => events.once('go', () => r(seen(libB))));
      setTimeout(() => events.emit('go'), 1);
      views.event = await emitted;
      for (const [where, view] of Object.entries(views)) {
        expect({ where, inTx: view.inTx, same: view.manager === tx }).toEqual({ where, inTx: true, same: true });
      }
    });
    expect(seen(libA)).toEqual({ inTx: false, manager: ds.manager });
  });

  it('a joined run ending does not end the outer transaction: it is still seen, and the hooks stay on', async () => {
    await libA.run(async () => {
      const outer = libA.manager;
      await libB.run(async () => {
        await libA.run(() => insert(libA, 'inner'));
        expect(libB.manager).toBe(outer);
      });
      await sleep(2);
      expect(storageOn()).toBe(true);
      expect(seen(libA)).toEqual({ inTx: true, manager: outer });
      await insert(libA, 'outer');
    });
    expect(await countRows(ds, 'cv_test_items')).toBe(2);
  });

  it('concurrent transactions: the one that ends first leaves the other its transaction; hooks off after the last', async () => {
    const releaseB = deferred();
    const bStarted = deferred();
    let bManager: EntityManager | undefined;
    const b = libB.run(async () => {
      bManager = libB.manager;
      bStarted.resolve();
      await releaseB.promise;
      // Still its own transaction after the other one committed and closed.
      await sleep(2);
      expect(seen(libB)).toEqual({ inTx: true, manager: bManager });
      await insert(libB, 'b');
    });
    await bStarted.promise;
    // On SQLite, A queues behind B (one shared connection); on PostgreSQL it runs alongside.
    const a = libA.run(async () => {
      expect(libA.manager).not.toBe(bManager);
      await insert(libA, 'a');
    });
    if (kind === 'postgres') {
      await a;
      // A is over, B is not: its scope keeps the storage on.
      expect(storageOn()).toBe(true);
    }
    releaseB.resolve();
    await Promise.all([a, b]);
    expect(await countRows(ds, 'cv_test_items')).toBe(2);
  });

  it('many concurrent transactions, some failing: each sees only its own, and the last one out turns the hooks off', async () => {
    const results = await Promise.allSettled(
      Array.from({ length: 12 }, (_, i) =>
        libA.run(async () => {
          const mine = libA.manager;
          await sleep(i % 3);
          await insert(libA, `c${String(i).padStart(2, '0')}`);
          await libB.run(async () => expect(libB.manager).toBe(mine));
          if (i % 4 === 0) throw new Error(`fail ${i}`);
          return i;
        }),
      ),
    );
    expect(results.filter((r) => r.status === 'rejected')).toHaveLength(3);
    expect(await countRows(ds, 'cv_test_items')).toBe(9);
  });

  it('detached() runs outside the transaction, which is seen again right after; outside any scope it keeps the hooks off', async () => {
    expect(libA.detached(() => seen(libA))).toEqual({ inTx: false, manager: ds.manager });
    expect(libA.detached(() => storageOn())).toBe(false);
    let background: Promise<Seen> | undefined;
    await libA.run(async () => {
      const tx = libA.manager;
      const inside = libB.detached(() => seen(libB));
      expect(inside).toEqual({ inTx: false, manager: ds.manager });
      // A detached transaction of its own, started from inside this one (not joining it, nor awaited by it).
      background = libB.detached(async () => {
        await sleep(2);
        const before = seen(libB);
        await libB.run(() => insert(libB, 'detached'));
        return before;
      });
      expect(seen(libA)).toEqual({ inTx: true, manager: tx });
      await sleep(1);
      expect(seen(libA)).toEqual({ inTx: true, manager: tx });
      await insert(libA, 'tx');
    });
    expect(await background).toEqual({ inTx: false, manager: ds.manager });
    expect(await countRows(ds, 'cv_test_items')).toBe(2);
  });

  it('work that outlives its transaction sees no transaction: while idle, and while another transaction is open', async () => {
    const gate = deferred();
    // Resolved once libA's run has settled: a fixed sleep here raced the COMMIT on a loaded PostgreSQL (CI).
    const settled = deferred();
    let late: Promise<Seen[]> | undefined;
    await libA.run(async () => {
      late = (async () => {
        const views: Seen[] = [];
        await settled.promise;
        views.push(seen(libA)); // the scope has closed; the hooks are off
        await gate.promise;
        views.push(seen(libA)); // another transaction re-enabled the storage
        await sleep(1);
        views.push(seen(libA));
        return views;
      })();
    });
    settled.resolve();
    await sleep(10);
    expect(storageOn()).toBe(false);
    await libB.run(async () => {
      const other = libB.manager;
      gate.resolve();
      const views = await late!;
      expect(views).toEqual([
        { inTx: false, manager: ds.manager },
        { inTx: false, manager: ds.manager },
        { inTx: false, manager: ds.manager },
      ]);
      // ...and the other transaction is still its own.
      expect(seen(libB)).toEqual({ inTx: true, manager: other });
    });
  });

  it('synchronous throws reject, open nothing, and leave the hooks off', async () => {
    const boom = () => {
      throw new Error('sync boom');
    };
    await expect(libA.run(boom as () => Promise<never>)).rejects.toThrow('sync boom');
    const read = libA.read(boom as () => Promise<never>);
    expect(read).toBeInstanceOf(Promise);
    await expect(read).rejects.toThrow('sync boom');
    await expect(
      libA.run(async () => {
        await insert(libA, 'x');
        boom();
      }),
    ).rejects.toThrow('sync boom');
    expect(await countRows(ds, 'cv_test_items')).toBe(0);
  });

  it('a read scope is seen across awaits and timers: a write inside it is refused there too', async () => {
    const errors = await libA.read(async () => {
      await sleep(1);
      const viaTimer = await new Promise<unknown>((r) => setTimeout(() => libB.run(async () => 'never').catch(r), 1));
      const viaAwait = await libB.run(async () => 'never').catch((e) => e);
      return [viaTimer, viaAwait];
    });
    for (const e of errors) expect(e).toBeInstanceOf(WriteInReadError);
    await expect(libB.run(async () => 'after the read')).resolves.toBe('after the read');
  });

  it('afterCommit callbacks run outside the finished transaction and may open their own', async () => {
    const views: Seen[] = [];
    await libA.run(async () => {
      await insert(libA, 'tx');
      libA.afterCommit(async () => {
        views.push(seen(libA));
        await libB.run(async () => {
          views.push(seen(libB));
          await insert(libB, 'after');
        });
      });
    });
    expect(views[0]).toEqual({ inTx: false, manager: ds.manager });
    expect(views[1].inTx).toBe(true);
    expect(await countRows(ds, 'cv_test_items')).toBe(2);
  });
});
