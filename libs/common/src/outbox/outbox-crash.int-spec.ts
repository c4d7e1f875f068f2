import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestDatabase, DATABASE_KINDS, killHard, startCrashChild, TestDatabase, writeRequireHook, type CrashChild } from '@app/testing';
import { DataSource } from 'typeorm';
import { resolvePersistenceOptions } from '../persistence/persistence.options';
import { TransactionRunner } from '../persistence/transaction-runner';
import { applyEffectOnce, countRows, openTestDataSource } from '../testing/persistence-test-db';
import { OutboxDispatcher } from './outbox-dispatcher';
import { OutboxEventEntity } from './outbox-event.entity';
import { OutboxHandlerRegistry } from './outbox-handler-registry';

const CHILD = join(__dirname, '..', 'testing', 'outbox-crash.child.ts');

/** Starts the child in `mode`; `line` resolves with the value of its first `<prefix> <value>` line. */
function startChild(hook: string, mode: string, db: TestDatabase, prefix: string): CrashChild {
  return startCrashChild(hook, CHILD, prefix, { args: [mode], env: { CV_TEST_DS: JSON.stringify(db.options) }, timeoutMs: 45_000 });
}

describe.each(DATABASE_KINDS)('Outbox crash safety on %s', (kind) => {
  let db: TestDatabase;
  let dir: string;
  let hook: string;
  let ds: DataSource;

  beforeAll(async () => {
    db = await createTestDatabase(kind);
    dir = mkdtempSync(join(tmpdir(), 'cv-outbox-crash-'));
    hook = writeRequireHook(dir);
    ds = await openTestDataSource(db.options); // migrations run once, before the children
  });

  afterAll(async () => {
    await ds?.destroy();
    await db?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('an event committed by a process killed before dispatch is delivered by the next one, its effect applied exactly once', async () => {
    // 1. A process commits a change + its event and dies (SIGKILL) before anything dispatches it.
    const writer = startChild(hook, 'commit', db, 'COMMITTED');
    const eventId = await writer.line;
    expect(await killHard(writer.child)).toBe('SIGKILL');
    expect(await countRows(ds, 'cv_test_items')).toBe(1);
    const pending = await ds.getRepository(OutboxEventEntity).findOneByOrFail({ id: eventId });
    expect(pending).toMatchObject({ name: 'credential.stored', tenantId: 't-crash', deliveredAt: null, attempts: 0 });

    // 2. A dispatcher process applies the effect, then dies before marking the row delivered.
    const crashingDispatcher = startChild(hook, 'dispatch', db, 'EFFECT');
    await expect(crashingDispatcher.line).resolves.toBe(eventId);
    expect(await killHard(crashingDispatcher.child)).toBe('SIGKILL');
    expect((await ds.getRepository(OutboxEventEntity).findOneByOrFail({ id: eventId })).deliveredAt).toBeNull();

    // 3. A new DataSource starts a dispatcher: the event is delivered again; the idempotent handler
    //    de-duplicates on the event id, so the effect exists exactly once.
    const fresh = await new DataSource({ ...ds.options }).initialize();
    const runner = new TransactionRunner(fresh);
    const registry = new OutboxHandlerRegistry();
    const seen: string[] = [];
    registry.register('credential.stored', async (event) => {
      seen.push(event.id);
      await applyEffectOnce(runner, event.id, 'survivor');
    });
    const dispatcher = new OutboxDispatcher({ runner, registry, options: resolvePersistenceOptions({ outbox: { pollIntervalMs: 20 } }).outbox });
    try {
      dispatcher.start();
      const deadline = Date.now() + 10_000;
      while (!(await fresh.getRepository(OutboxEventEntity).findOneByOrFail({ id: eventId })).deliveredAt) {
        if (Date.now() > deadline) throw new Error('the surviving dispatcher did not deliver the event');
        await new Promise((r) => setTimeout(r, 20));
      }
    } finally {
      await dispatcher.stop();
      await fresh.destroy();
    }
    expect(seen).toEqual([eventId]);
    const effects: Array<{ event_id: string; applied_by: string }> = await ds.query('SELECT event_id, applied_by FROM cv_test_effects');
    expect(effects).toHaveLength(1);
    expect(effects[0].event_id).toBe(eventId);
    expect(effects[0].applied_by).toMatch(/^child-\d+$/); // the first delivery's effect, not a second one
  });
});
