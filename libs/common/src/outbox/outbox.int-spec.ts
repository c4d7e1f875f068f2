import { Logger } from '@nestjs/common';
import { EventEmitter2 } from '@nestjs/event-emitter';
import { CapturingLogger, createTestDatabase, DATABASE_KINDS, endLockSession, TestDatabase } from '@app/testing';
import { DataSource, EntityManager } from 'typeorm';
import { ManualClock } from '../clock';
import { createDistributedLock } from '../lock/create-distributed-lock';
import type { TryRunResult } from '../lock/distributed-lock';
import { InProcessLock } from '../lock/in-process-lock';
import { LockLostError } from '../lock/lock.errors';
import { PostgresAdvisoryLock } from '../lock/postgres-advisory-lock';
import { OutboxInvalidEventError, OutboxNoTransactionError } from '../persistence/persistence.errors';
import { resolvePersistenceOptions, ResolvedOutboxOptions } from '../persistence/persistence.options';
import { TransactionRunner } from '../persistence/transaction-runner';
import { countRows, deferred, openTestDataSource, params } from '../testing/persistence-test-db';
import { Outbox, OutboxNudge } from './outbox';
import { OutboxDispatcher } from './outbox-dispatcher';
import { OutboxEventEntity } from './outbox-event.entity';
import { OutboxHandlerRegistry } from './outbox-handler-registry';
import { OutboxDeferredError, type OutboxEvent } from './outbox.types';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const options = (o: Record<string, unknown> = {}): ResolvedOutboxOptions =>
  resolvePersistenceOptions({ outbox: { pollIntervalMs: 0, backoff: { baseMs: 1000, maxMs: 60_000 }, ...o } }).outbox;

async function until(check: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(10);
  }
}

describe.each(DATABASE_KINDS)('Outbox and OutboxDispatcher on %s', (kind) => {
  let db: TestDatabase;
  let ds: DataSource;
  let runner: TransactionRunner;
  let clock: ManualClock;

  beforeAll(async () => {
    db = await createTestDatabase(kind);
    ds = await openTestDataSource(db.options);
    runner = new TransactionRunner(ds);
  });

  afterAll(async () => {
    await ds?.destroy();
    await db?.drop();
  });

  beforeEach(async () => {
    clock = new ManualClock(new Date('2026-01-01T00:00:00Z'));
    await ds.query('DELETE FROM cv_outbox');
    await ds.query('DELETE FROM cv_test_items');
  });

  const change = (id: string) => runner.manager.query(`INSERT INTO cv_test_items (id, label) VALUES (${params(ds, 2)})`, [id, 'x']);
  const rows = () => ds.getRepository(OutboxEventEntity).find({ order: { createdAt: 'ASC', id: 'ASC' } });
  /** `n` events added one after another, 1 ms apart (claimed in that order). */
  const addInTurn = async (n: number, name: string): Promise<string[]> => {
    const outbox = new Outbox(runner, clock);
    const ids: string[] = [];
    for (let i = 0; i < n; i++) {
      clock.advance(1);
      ids.push(await runner.run(() => outbox.add({ name, payload: { i } })));
    }
    return ids;
  };
  const dispatcher = (registry: OutboxHandlerRegistry, o: Record<string, unknown> = {}, events?: EventEmitter2) =>
    new OutboxDispatcher({ runner, registry, options: options(o), clock, events, random: () => 0.5 });
  /** An event `name` whose handler throws the next of `answers` at each delivery (done at an `undefined`); `calls`: the attempts it saw. */
  const answeredInTurn = async (name: string, answers: Array<Error | undefined>) => {
    const id = await runner.run(() => new Outbox(runner, clock).add({ name, payload: {} }));
    const registry = new OutboxHandlerRegistry();
    const calls: number[] = [];
    registry.register(name, (e) => {
      calls.push(e.attempts);
      const answer = answers.shift();
      if (answer) throw answer;
    });
    return { id, registry, calls };
  };

  it('add() outside a transaction throws a typed error; bad events are refused with every problem named', async () => {
    const outbox = new Outbox(runner, clock);
    const err = await outbox.add({ name: 'credential.rotated', payload: {} }).catch((e) => e);
    expect(err).toBeInstanceOf(OutboxNoTransactionError);
    expect(err.code).toBe(6101);
    const bad = await runner.run(() => outbox.add({ name: '', tenantId: '', payload: [] as never })).catch((e) => e);
    expect(bad).toBeInstanceOf(OutboxInvalidEventError);
    expect(bad.code).toBe(6102);
    expect(bad.message).toMatch(/name .*; tenantId .*; payload must be a JSON object/);
    const big = await runner.run(() => new Outbox(runner, clock, undefined, 256).add({ name: 'x', payload: { ids: 'y'.repeat(300) } })).catch((e) => e);
    expect(big).toBeInstanceOf(OutboxInvalidEventError);
    expect(await countRows(ds, 'cv_outbox')).toBe(0);
  });

  it('the event commits with its change, and the dispatcher is nudged only after commit', async () => {
    const nudge: OutboxNudge = { nudge: jest.fn() };
    const outbox = new Outbox(runner, clock, nudge);
    const id = await runner.run(async () => {
      await change('item-1');
      const eventId = await outbox.add({ name: 'credential.stored', tenantId: 't1', payload: { credentialId: 'item-1', version: 1 } });
      expect(nudge.nudge).not.toHaveBeenCalled();
      return eventId;
    });
    expect(nudge.nudge).toHaveBeenCalledTimes(1);
    expect(await rows()).toEqual([
      {
        id,
        name: 'credential.stored',
        tenantId: 't1',
        payload: { credentialId: 'item-1', version: 1 },
        createdAt: clock.now(),
        availableAt: clock.now(),
        attempts: 0,
        lastError: null,
        deliveredAt: null,
      },
    ]);
  });

  it('a rollback discards both the change and its outbox row, and nudges nobody', async () => {
    const nudge: OutboxNudge = { nudge: jest.fn() };
    const outbox = new Outbox(runner, clock, nudge);
    await runner
      .run(async () => {
        await change('item-2');
        await outbox.add({ name: 'credential.stored', payload: { credentialId: 'item-2' } });
        throw new Error('vault write failed');
      })
      .catch(() => undefined);
    expect(await countRows(ds, 'cv_test_items')).toBe(0);
    expect(await countRows(ds, 'cv_outbox')).toBe(0);
    expect(nudge.nudge).not.toHaveBeenCalled();
  });

  it('addMany() commits every event with its change (nudging once), refuses a batch with a bad event whole, and rolls back together', async () => {
    const nudge: OutboxNudge = { nudge: jest.fn() };
    const outbox = new Outbox(runner, clock, nudge);
    const events = Array.from({ length: 230 }, (_, i) => ({ name: 'credential.stored', tenantId: `t${i % 3}`, payload: { credentialId: `c-${i}`, version: 1 } }));
    const ids = await runner.run(async () => {
      await change('item-many');
      return outbox.addMany(events);
    });
    expect(nudge.nudge).toHaveBeenCalledTimes(1);
    expect(new Set(ids).size).toBe(230);
    const stored = await rows();
    expect(stored).toHaveLength(230);
    const byId = new Map(stored.map((r) => [r.id, r]));
    ids.forEach((id, i) => expect(byId.get(id)).toEqual({ id, name: 'credential.stored', tenantId: `t${i % 3}`, payload: events[i].payload, createdAt: clock.now(), availableAt: clock.now(), attempts: 0, lastError: null, deliveredAt: null }));

    const bad = await runner.run(() => outbox.addMany([events[0], { name: '', payload: {} }])).catch((e) => e);
    expect(bad).toBeInstanceOf(OutboxInvalidEventError);
    expect(await outbox.addMany([events[0]]).catch((e) => e)).toBeInstanceOf(OutboxNoTransactionError);
    await runner
      .run(async () => {
        await outbox.addMany(events.slice(0, 5));
        throw new Error('vault write failed');
      })
      .catch(() => undefined);
    expect(await countRows(ds, 'cv_outbox')).toBe(230);
    expect(await runner.run(() => outbox.addMany([]))).toEqual([]);
  });

  it('delivers each event once to every matching handler and to the event bus, oldest first, in batches', async () => {
    const outbox = new Outbox(runner, clock);
    const ids: string[] = [];
    for (let i = 0; i < 7; i++) {
      clock.advance(1);
      ids.push(await runner.run(() => outbox.add({ name: i % 2 ? 'credential.rotated' : 'audit.anchored', tenantId: null, payload: { i } })));
    }
    const registry = new OutboxHandlerRegistry();
    const seen: Record<string, string[]> = { all: [], credential: [], exact: [], bus: [], none: [] };
    registry.register('*', (e) => void seen.all.push(e.id));
    registry.register('credential.*', (e) => void seen.credential.push(e.id));
    registry.register('audit.anchored', (e) => void seen.exact.push(e.id));
    const unregister = registry.register('credential', (e) => void seen.none.push(e.id));
    unregister();
    const bus = new EventEmitter2();
    const busEvents: OutboxEvent[] = [];
    bus.on('credential.rotated', async (e: OutboxEvent) => void busEvents.push(e));
    const d = dispatcher(registry, { batchSize: 3 }, bus);

    await expect(d.drain()).resolves.toEqual({ acquired: true, delivered: 7, failed: 0, pruned: 0 });
    expect(seen.all).toEqual(ids);
    expect(seen.credential).toEqual(ids.filter((_, i) => i % 2));
    expect(seen.exact).toEqual(ids.filter((_, i) => i % 2 === 0));
    expect(seen.none).toEqual([]);
    expect(busEvents.map((e) => e.id)).toEqual(seen.credential);
    expect(busEvents[0]).toMatchObject({ name: 'credential.rotated', tenantId: null, payload: { i: 1 }, attempts: 0 });
    expect((await rows()).every((r) => r.deliveredAt?.getTime() === clock.nowMs())).toBe(true);

    await expect(d.drain()).resolves.toMatchObject({ delivered: 0, failed: 0 });
    expect(seen.all).toHaveLength(7);
  });

  it('a burst of events is marked delivered in one write per batch, not one per event, each delivered once', async () => {
    const outbox = new Outbox(runner, clock);
    const ids = await runner.run(() => outbox.addMany(Array.from({ length: 250 }, (_, i) => ({ name: 'credential.revoked', tenantId: 't1', payload: { credentialId: `c-${i}` } }))));
    const registry = new OutboxHandlerRegistry();
    const seen: string[] = [];
    registry.register('credential.*', (e) => void seen.push(e.id));
    const d = dispatcher(registry, { batchSize: 100 });
    // Every write of a pass is a transaction of the runner: on SQLite a turn at its gate, on PostgreSQL a pool
    // connection and a commit, each queued behind the writers of the moment. One per event was nearly all of a pass.
    const writes = jest.spyOn(runner, 'run');
    try {
      await expect(d.drain()).resolves.toEqual({ acquired: true, delivered: 250, failed: 0, pruned: 0 });
      // Three batches' marks and the first pass's prune.
      expect(writes.mock.calls.length).toBeLessThanOrEqual(Math.ceil(250 / 100) + 1);
    } finally {
      writes.mockRestore();
    }
    expect(new Set(seen).size).toBe(250);
    expect(seen.sort()).toEqual([...ids].sort());
    expect(await countPending()).toBe(0);
    await expect(d.drain()).resolves.toMatchObject({ delivered: 0, failed: 0 });
  });

  it('slow handlers do not hold delivered events unmarked: they are marked once the first of them waited a second', async () => {
    const ids = await addInTurn(4, 'slow.handler');
    const registry = new OutboxHandlerRegistry();
    const markedWhenCalled: string[][] = [];
    registry.register('slow.handler', async () => {
      const marked: Array<{ id: string }> = await ds.query('SELECT id FROM cv_outbox WHERE delivered_at IS NOT NULL');
      markedWhenCalled.push(marked.map((r) => r.id).sort());
      clock.advance(600);
    });
    await expect(dispatcher(registry, { batchSize: 10 }).drain()).resolves.toMatchObject({ delivered: 4, failed: 0 });
    // The first was done at 600 ms; the third, done at 1,800 ms, found it waiting 1,200 ms: those three were marked.
    expect(markedWhenCalled).toEqual([[], [], [], ids.slice(0, 3).sort()]);
    expect(await countPending()).toBe(0);
  });

  it('a mark of slow handlers\' events that fails is tried again on the way out, before the error leaves the pass', async () => {
    const ids = await addInTurn(4, 'slow.handler');
    const registry = new OutboxHandlerRegistry();
    registry.register('slow.handler', () => void clock.advance(600));
    // The first mark (of three events, the first of them waiting 1,200 ms) fails once: a blip of the database.
    const update = jest.spyOn(EntityManager.prototype, 'update').mockRejectedValueOnce(new Error('blip'));
    try {
      await expect(dispatcher(registry, { batchSize: 10 }).drain()).rejects.toThrow('blip');
    } finally {
      update.mockRestore();
    }
    // Those three are marked by the second try (else the next pass delivers them again); the fourth is still due.
    expect((await rows()).map((r) => [r.id, r.deliveredAt !== null])).toEqual(ids.map((id, i) => [id, i < 3]));
  });

  it('the bus receives what the registry maps an event to (first matching mapping), else the event; a throwing mapping fails the delivery', async () => {
    const outbox = new Outbox(runner, clock);
    const mappedId = await runner.run(() => outbox.add({ name: 'credential.rotated', payload: { credentialId: 'c1' } }));
    await runner.run(() => outbox.add({ name: 'audit.anchored', payload: { n: 1 } }));
    const registry = new OutboxHandlerRegistry();
    registry.mapBusPayload('credential.*', (e) => ({ name: e.name, ...e.payload, eventId: e.id }));
    registry.mapBusPayload('credential.rotated', () => 'never: the first mapping wins');
    const bus = new EventEmitter2();
    const received: Record<string, unknown[]> = { 'credential.rotated': [], 'audit.anchored': [] };
    for (const name of Object.keys(received)) bus.on(name, (p: unknown) => void received[name].push(p));
    await expect(dispatcher(registry, {}, bus).drain()).resolves.toMatchObject({ delivered: 2, failed: 0 });
    expect(received['credential.rotated']).toEqual([{ name: 'credential.rotated', credentialId: 'c1', eventId: mappedId }]);
    expect(received['audit.anchored']).toEqual([expect.objectContaining({ name: 'audit.anchored', payload: { n: 1 } })]);

    const broken = new OutboxHandlerRegistry();
    const remove = broken.mapBusPayload('*', () => {
      throw new TypeError('bad mapping');
    });
    await runner.run(() => outbox.add({ name: 'credential.deleted', payload: { credentialId: 'c2' } }));
    await expect(dispatcher(broken, {}, bus).drain()).resolves.toMatchObject({ delivered: 0, failed: 1 });
    expect((await rows()).find((r) => r.name === 'credential.deleted')).toMatchObject({ attempts: 1, lastError: 'TypeError', deliveredAt: null });
    remove();
    expect(broken.busPayloadFor({ id: 'x', name: 'credential.deleted', tenantId: null, payload: {}, createdAt: new Date(0), attempts: 0 })).toMatchObject({ id: 'x' });
  });

  it("keeps a lib's own events off the bus while its handlers still get them, until the exclusion is removed", async () => {
    const outbox = new Outbox(runner, clock);
    await runner.run(() => outbox.add({ name: 'lib.own.work', payload: { n: 1 } }));
    await runner.run(() => outbox.add({ name: 'lib.announced', payload: { n: 2 } }));
    const registry = new OutboxHandlerRegistry();
    const handled: string[] = [];
    registry.register('*', async (e) => void handled.push(e.name));
    const removeExclusion = registry.keepOffBus('lib.own.*');
    const bus = new EventEmitter2();
    const heard: string[] = [];
    bus.onAny((name: string | string[]) => void heard.push(String(name)));
    await expect(dispatcher(registry, {}, bus).drain()).resolves.toMatchObject({ delivered: 2, failed: 0 });
    expect(handled.sort()).toEqual(['lib.announced', 'lib.own.work']);
    expect(heard).toEqual(['lib.announced']);
    removeExclusion();
    expect(registry.isOnBus('lib.own.work')).toBe(true);
  });

  it('a failed delivery is retried after a jittered exponential backoff, recording only the error name/code', async () => {
    const outbox = new Outbox(runner, clock);
    const id = await runner.run(() => outbox.add({ name: 'credential.rotated', payload: { credentialId: 'c1' } }));
    const registry = new OutboxHandlerRegistry();
    const calls: OutboxEvent[] = [];
    let failures = 2;
    registry.register('credential.rotated', (e) => {
      calls.push(e);
      if (failures-- > 0) throw Object.assign(new Error('webhook said: value=hunter2'), { code: 'EHOOK' });
    });
    const okHandler = jest.fn();
    registry.register('*', okHandler);
    const d = dispatcher(registry);

    await expect(d.drain()).resolves.toMatchObject({ delivered: 0, failed: 1 });
    let [row] = await rows();
    // attempts 1: exp = 1000, equal jitter with random 0.5 → 500 + 250.
    expect(row).toMatchObject({ attempts: 1, lastError: 'Error(EHOOK)', deliveredAt: null });
    expect(row.availableAt.getTime() - clock.nowMs()).toBe(750);
    expect(JSON.stringify(row)).not.toContain('hunter2');

    await expect(d.drain()).resolves.toMatchObject({ delivered: 0, failed: 0 }); // not due yet
    clock.advance(750);
    await expect(d.drain()).resolves.toMatchObject({ delivered: 0, failed: 1 });
    [row] = await rows();
    expect(row.attempts).toBe(2);
    expect(row.availableAt.getTime() - clock.nowMs()).toBe(1500); // exp = 2000

    clock.advance(1500);
    await expect(d.drain()).resolves.toMatchObject({ delivered: 1, failed: 0 });
    [row] = await rows();
    expect(row).toMatchObject({ id, attempts: 2, deliveredAt: clock.now() });
    expect(calls.map((e) => [e.id, e.attempts])).toEqual([
      [id, 0],
      [id, 1],
      [id, 2],
    ]);
    // At least once: the healthy handler saw every attempt and must de-duplicate on event.id.
    expect(okHandler).toHaveBeenCalledTimes(3);
  });

  it('a handler deferring an event (OutboxDeferral) has it back when it asked, not before, logged at debug; a failure beside it keeps the backoff and its warning', async () => {
    const logger = new CapturingLogger();
    Logger.overrideLogger(logger);
    try {
      // A channel in a 10-minute backoff: nothing to do before then, and its own failure is reported by the handler.
      const later = (retryAfterMs?: number) => Object.assign(new Error('channel backing off'), { outboxDeferred: true as const, retryAfterMs });
      const { id, registry, calls } = await answeredInTurn('notify.later', [later(600_000), later(), undefined]);
      const d = dispatcher(registry);

      await expect(d.drain()).resolves.toMatchObject({ delivered: 0, failed: 1 });
      let [row] = await rows();
      expect(row).toMatchObject({ attempts: 1, lastError: 'Error', deliveredAt: null });
      expect(row.availableAt.getTime() - clock.nowMs()).toBe(600_000);
      clock.advance(599_999);
      await expect(d.drain()).resolves.toMatchObject({ delivered: 0, failed: 0 });
      expect(calls).toEqual([0]);
      // Due: redelivered. A deferral that names no time waits the usual backoff (attempts 2: 1500 ms).
      clock.advance(1);
      await expect(d.drain()).resolves.toMatchObject({ delivered: 0, failed: 1 });
      [row] = await rows();
      expect(row.availableAt.getTime() - clock.nowMs()).toBe(1500);
      clock.advance(1500);
      await expect(d.drain()).resolves.toMatchObject({ delivered: 1, failed: 0 });
      expect(calls).toEqual([0, 1, 2]);
      expect(logger.lines.filter((l) => l.includes(id)).map((l) => l.split(' ')[0])).toEqual(['debug', 'debug']);

      // Beside a handler that failed, the event comes back after the backoff (the sooner), and that failure is warned about.
      const both = await runner.run(() => new Outbox(runner, clock).add({ name: 'notify.both', payload: {} }));
      registry.register('notify.both', () => Promise.reject(later(600_000)));
      registry.register('notify.both', () => Promise.reject(Object.assign(new Error('receiver down'), { code: 'EDOWN' })));
      await expect(d.drain()).resolves.toMatchObject({ delivered: 0, failed: 1 });
      row = (await rows()).find((r) => r.id === both)!;
      expect(row).toMatchObject({ attempts: 1, lastError: 'Error(EDOWN)' });
      expect(row.availableAt.getTime() - clock.nowMs()).toBe(750);
      expect(logger.lines.filter((l) => l.includes(both))).toEqual([expect.stringMatching(/^warn Outbox event \S+ \(notify\.both\) failed delivery #1: Error\(EDOWN\); retry in 750 ms/)]);
    } finally {
      Logger.overrideLogger(new Logger());
    }
  });

  it('a handler throwing OutboxDeferredError defers its event, not fails it: back when it asked, attempts counted, debug only, last_error saying why', async () => {
    const logger = new CapturingLogger();
    Logger.overrideLogger(logger);
    try {
      const busy = Object.assign(new Error('another rotation holds the lock'), { code: 3207, codeName: 'ROTATION_IN_PROGRESS' });
      const { id, registry, calls } = await answeredInTurn('cleanup.later', [
        new OutboxDeferredError('the lock is still held', { cause: busy, retryAfterMs: 30_000 }),
        new OutboxDeferredError('still in its grace period', { code: 'GRACE' }),
        undefined,
      ]);
      const d = dispatcher(registry);

      await d.drain();
      let [row] = await rows();
      expect(row).toMatchObject({ attempts: 1, lastError: 'OutboxDeferredError(ROTATION_IN_PROGRESS)', deliveredAt: null });
      expect(row.availableAt.getTime() - clock.nowMs()).toBe(30_000);
      clock.advance(29_999);
      await d.drain();
      expect(calls).toEqual([0]);
      // Due: redelivered. Naming no time, it waits the usual backoff (attempts 2: 1500 ms).
      clock.advance(1);
      await d.drain();
      [row] = await rows();
      expect(row).toMatchObject({ attempts: 2, lastError: 'OutboxDeferredError(GRACE)', deliveredAt: null });
      expect(row.availableAt.getTime() - clock.nowMs()).toBe(1500);
      clock.advance(1500);
      await expect(d.drain()).resolves.toMatchObject({ delivered: 1 });
      expect(calls).toEqual([0, 1, 2]);
      expect(logger.lines.filter((l) => l.includes(id)).map((l) => l.split(' ')[0])).toEqual(['debug', 'debug']);
    } finally {
      Logger.overrideLogger(new Logger());
    }
  });

  it('backlog() counts the undelivered events, those backing off, and when the oldest was added', async () => {
    const outbox = new Outbox(runner, clock);
    expect(await outbox.backlog()).toEqual({ pending: 0, retrying: 0, oldestCreatedAt: null });
    await runner.run(() => outbox.add({ name: 'credential.rotated', payload: { credentialId: 'c1' } }));
    clock.advance(60_000);
    await runner.run(() => outbox.addMany([{ name: 'credential.rotated', payload: { credentialId: 'c2' } }, { name: 'credential.revoked', payload: { credentialId: 'c3' } }]));
    const registry = new OutboxHandlerRegistry();
    registry.register('credential.revoked', () => {
      throw new Error('receiver down');
    });
    await expect(dispatcher(registry).drain()).resolves.toMatchObject({ delivered: 2, failed: 1 });
    expect(await outbox.backlog()).toEqual({ pending: 1, retrying: 1, oldestCreatedAt: clock.now() });
    await runner.run(() => outbox.add({ name: 'credential.rotated', payload: { credentialId: 'c4' } }));
    expect(await outbox.backlog()).toMatchObject({ pending: 2, retrying: 1 });
  });

  it('an event its producer marked delivered (markDelivered: it did the work itself) is not delivered again; isDelivered tells either mark', async () => {
    const outbox = new Outbox(runner, clock);
    const [done, due] = await addInTurn(2, 'own.work');
    const registry = new OutboxHandlerRegistry();
    const seen: string[] = [];
    registry.register('own.work', (e) => void seen.push(e.id));
    expect(await outbox.isDelivered(done)).toBe(false);
    await outbox.markDelivered(done);
    const markedAt = (await rows()).find((r) => r.id === done)?.deliveredAt;
    expect(markedAt).toEqual(clock.now());
    clock.advance(1000);
    await outbox.markDelivered(done); // again: its first mark stays (pruning counts from it)
    expect((await rows()).find((r) => r.id === done)?.deliveredAt).toEqual(markedAt);
    expect(await outbox.isDelivered(done)).toBe(true);
    await expect(dispatcher(registry).drain()).resolves.toMatchObject({ delivered: 1, failed: 0 });
    expect(seen).toEqual([due]);
    expect(await outbox.isDelivered(due)).toBe(true);
    // A row no longer there was delivered and pruned.
    expect(await outbox.isDelivered('00000000-0000-4000-8000-000000000000')).toBe(true);
  });

  it('a started dispatcher delivers after commit without polling, and stop() waits for the batch in flight', async () => {
    const registry = new OutboxHandlerRegistry();
    const release = deferred();
    const started = deferred();
    const delivered: string[] = [];
    registry.register('*', async (e) => {
      started.resolve();
      await release.promise;
      delivered.push(e.id);
    });
    const d = dispatcher(registry);
    const outbox = new Outbox(runner, clock, d);
    d.start();
    const id = await runner.run(async () => {
      await change('item-3');
      return outbox.add({ name: 'credential.stored', payload: { credentialId: 'item-3' } });
    });
    await started.promise;
    let stopped = false;
    const stopping = d.stop().then(() => (stopped = true));
    await sleep(30);
    expect(stopped).toBe(false);
    release.resolve();
    await stopping;
    expect(delivered).toEqual([id]);
    expect((await rows())[0].deliveredAt).not.toBeNull();
    // Stopped: later nudges do nothing.
    await runner.run(() => outbox.add({ name: 'credential.stored', payload: {} }));
    await sleep(30);
    expect(delivered).toHaveLength(1);
  });

  it('stop() during a batch marks what the batch delivered, the event in flight included, and leaves the rest due', async () => {
    const ids = await addInTurn(3, 'x.y');
    const registry = new OutboxHandlerRegistry();
    const inSecond = deferred();
    const release = deferred();
    const seen: string[] = [];
    registry.register('*', async (e) => {
      if (seen.push(e.id) === 2) {
        inSecond.resolve();
        await release.promise;
      }
    });
    const d = dispatcher(registry);
    d.start();
    await inSecond.promise;
    const stopping = d.stop();
    release.resolve();
    await stopping;
    expect(seen).toEqual(ids.slice(0, 2));
    expect((await rows()).map((r) => r.deliveredAt !== null)).toEqual([true, true, false]);
  });

  it('the mark at a lost lock commits on its own, outside the transaction of whatever context the loss was told in', async () => {
    const ids = await addInTurn(2, 'x.y');
    // `held` aborts synchronously in the context of whoever ends the lock (a socket event of its session): here, from
    // inside a transaction that then rolls back. A mark that joined it would be rolled back with it.
    const held = new AbortController();
    const lock = new (class extends InProcessLock {
      override async tryRun<T>(_key: string, fn: (signal: AbortSignal) => Promise<T>): Promise<TryRunResult<T>> {
        return { acquired: true, value: await fn(held.signal) };
      }
    })();
    const registry = new OutboxHandlerRegistry();
    registry.register('*', async (e) => {
      if (e.id !== ids[1]) return;
      await runner
        .run(async () => {
          held.abort(new LockLostError('outbox'));
          await sleep(50);
          throw new Error('rolled back');
        })
        .catch(() => undefined);
    });
    const d = new OutboxDispatcher({ runner, registry, options: options(), clock, lock, random: () => 0.5 });
    await expect(d.drain()).rejects.toMatchObject({ codeName: 'LOCK_LOST' });
    expect((await rows()).map((r) => r.deliveredAt !== null)).toEqual([true, true]);
  });

  it('a handler or bus listener that never settles holds neither the events behind it nor stop(): after handlerTimeoutMs it is a failure, retried', async () => {
    const outbox = new Outbox(runner, clock);
    const hung = await runner.run(() => outbox.add({ name: 'slow.hang', payload: {} }));
    clock.advance(1);
    const bused = await runner.run(() => outbox.add({ name: 'slow.bus', payload: {} }));
    clock.advance(1);
    const next = await runner.run(() => outbox.add({ name: 'fast.next', payload: {} }));
    const registry = new OutboxHandlerRegistry();
    const delivered: string[] = [];
    registry.register('slow.hang', () => new Promise(() => undefined));
    registry.register('fast.*', (e) => void delivered.push(e.id));
    const bus = new EventEmitter2();
    bus.on('slow.bus', () => new Promise(() => undefined));
    const d = dispatcher(registry, { handlerTimeoutMs: 200 }, bus);

    await expect(Promise.race([d.drain(), sleep(2000).then(() => 'still delivering after 2 s')])).resolves.toMatchObject({ delivered: 1, failed: 2 });
    expect(delivered).toEqual([next]);
    const byId = Object.fromEntries((await rows()).map((r) => [r.id, r]));
    for (const id of [hung, bused]) expect(byId[id]).toMatchObject({ attempts: 1, lastError: 'Error(ETIMEDOUT)', deliveredAt: null });

    // stop() during a hanging delivery returns within about one handler timeout.
    clock.advance(60_000);
    d.start();
    await sleep(20);
    await expect(Promise.race([d.stop().then(() => 'stopped'), sleep(1500).then(() => 'still stopping after 1.5 s')])).resolves.toBe('stopped');
  });

  it('polls on an interval for events it was not nudged about', async () => {
    const registry = new OutboxHandlerRegistry();
    const delivered: string[] = [];
    registry.register('*', (e) => void delivered.push(e.id));
    const d = dispatcher(registry, { pollIntervalMs: 20 });
    d.start();
    try {
      const id = await runner.run(() => new Outbox(runner, clock).add({ name: 'x.y', payload: {} }));
      await until(() => delivered.length === 1);
      expect(delivered).toEqual([id]);
    } finally {
      await d.stop();
    }
  });

  it('prunes rows delivered more than retentionMs ago, keeping recent and undelivered ones', async () => {
    const outbox = new Outbox(runner, clock);
    const old = await runner.run(() => outbox.add({ name: 'old', payload: {} }));
    const registry = new OutboxHandlerRegistry();
    const d = dispatcher(registry, { retentionMs: 60_000, pruneEveryMs: 1000 });
    await expect(d.drain()).resolves.toMatchObject({ delivered: 1, pruned: 0 });
    clock.advance(30_000);
    const recent = await runner.run(() => outbox.add({ name: 'recent', payload: {} }));
    await d.drain();
    registry.register('pending', () => Promise.reject(new Error('down')));
    const pending = await runner.run(() => outbox.add({ name: 'pending', payload: {} }));
    clock.advance(30_001);
    const result = await d.drain();
    expect(result).toMatchObject({ failed: 1, pruned: 1 });
    expect((await rows()).map((r) => r.id).sort()).toEqual([recent, pending].sort());
    expect((await rows()).find((r) => r.id === old)).toBeUndefined();
  });

  if (kind === 'postgres') {
    it('two dispatchers (two DataSources on one database) never deliver the same event, nor concurrently', async () => {
      const outbox = new Outbox(runner, clock);
      const ids = new Set<string>();
      for (let i = 0; i < 40; i++) ids.add(await runner.run(() => outbox.add({ name: 'credential.rotated', payload: { i } })));
      const replicaDs = await new DataSource({ ...ds.options }).initialize();
      try {
        const deliveries = new Map<string, number>();
        let active = 0;
        let maxActive = 0;
        const handler = async (e: OutboxEvent) => {
          active++;
          maxActive = Math.max(maxActive, active);
          await sleep(2);
          deliveries.set(e.id, (deliveries.get(e.id) ?? 0) + 1);
          active--;
        };
        const lockKey = `cv-outbox-test-${(db.options as { schema?: string }).schema}`;
        const make = (source: DataSource) => {
          const registry = new OutboxHandlerRegistry();
          registry.register('*', handler);
          const r = new TransactionRunner(source);
          return new OutboxDispatcher({ runner: r, registry, options: options({ batchSize: 5, lockKey }), clock, lock: createDistributedLock(source) });
        };
        const a = make(ds);
        const b = make(replicaDs);
        const results = await Promise.all([a.drain(), b.drain(), a.drain(), b.drain()]);
        // Whoever lost the race for the lock found nothing left to do afterwards.
        while ((await countPending()) > 0) await Promise.all([a.drain(), b.drain()]);
        expect(results.some((r) => r.acquired)).toBe(true);
        expect(maxActive).toBe(1);
        expect(new Set(deliveries.keys())).toEqual(ids);
        expect([...deliveries.values()].every((n) => n === 1)).toBe(true);
      } finally {
        await replicaDs.destroy();
      }
    });
    it('a dispatcher whose lock session ends settles the events it delivered and the one in flight, starts no other, and the other replica takes the lock', async () => {
      const outbox = new Outbox(runner, clock);
      const ids: string[] = [];
      for (let i = 0; i < 6; i++) {
        clock.advance(1);
        ids.push(await runner.run(() => outbox.add({ name: 'credential.rotated', payload: { i } })));
      }
      const replicaDs = await new DataSource({ ...ds.options }).initialize();
      const logger = new CapturingLogger();
      Logger.overrideLogger(logger);
      try {
        const lockKey = `cv-outbox-lost-${(db.options as { schema?: string }).schema}`;
        const seen: Record<'a' | 'b', string[]> = { a: [], b: [] };
        const inFirst = deferred();
        const finishFirst = deferred();
        const make = (source: DataSource, lock: PostgresAdvisoryLock, name: 'a' | 'b') => {
          const registry = new OutboxHandlerRegistry();
          registry.register('*', async (e) => {
            seen[name].push(e.id);
            if (name === 'a' && seen.a.length === 3) {
              inFirst.resolve();
              await finishFirst.promise;
            }
          });
          return new OutboxDispatcher({ runner: new TransactionRunner(source), registry, options: options({ batchSize: 10, lockKey }), clock, lock });
        };
        const lockA = new PostgresAdvisoryLock(ds);
        const lockB = new PostgresAdvisoryLock(replicaDs);
        const a = make(ds, lockA, 'a');
        const b = make(replicaDs, lockB, 'b');

        const drainA = a.drain();
        await inFirst.promise;
        await endLockSession(replicaDs, lockA.advisoryId(lockKey));
        await expect(lockB.tryRun(lockKey, async () => 'b')).resolves.toEqual({ acquired: true, value: 'b' });
        await until(() => logger.lines.some((l) => l.includes('was lost while held')));
        // What A delivered before the event in flight is marked once the loss is known, not when that event ends (up to
        // handlerTimeoutMs later): meanwhile the replica holding the lock would claim and deliver them again.
        await until(async () => (await rows()).filter((r) => r.deliveredAt).length === 2, 2000);
        finishFirst.resolve();

        await expect(drainA).rejects.toMatchObject({ codeName: 'LOCK_LOST' });
        expect(seen.a).toEqual(ids.slice(0, 3));
        // The events delivered before and the one in flight were settled; the rest is left due for whoever holds the lock.
        expect((await rows()).filter((r) => r.deliveredAt).map((r) => r.id)).toEqual(ids.slice(0, 3));
        await expect(b.drain()).resolves.toMatchObject({ acquired: true, delivered: 3, failed: 0 });
        expect(seen.b).toEqual(ids.slice(3));
      } finally {
        Logger.overrideLogger(new Logger());
        await replicaDs.destroy();
      }
    });

    it('a started dispatcher whose lock session ends warns, and delivers the rest itself soon after, without polling', async () => {
      const outbox = new Outbox(runner, clock);
      const logger = new CapturingLogger();
      Logger.overrideLogger(logger);
      const other = await new DataSource({ ...ds.options }).initialize();
      const lockKey = `cv-outbox-lost-alone-${(db.options as { schema?: string }).schema}`;
      const lock = new PostgresAdvisoryLock(ds);
      const registry = new OutboxHandlerRegistry();
      const seen: string[] = [];
      const inFirst = deferred();
      const finishFirst = deferred();
      let seenWhenStopped: string[] | undefined;
      registry.register('*', async (e) => {
        seen.push(e.id);
        if (seen.length === 1) {
          inFirst.resolve();
          await finishFirst.promise;
        }
      });
      const d = new OutboxDispatcher({ runner, registry, options: options({ batchSize: 10, lockKey, pollIntervalMs: 0, lockRetryMs: 50 }), clock, lock });
      try {
        const ids: string[] = [];
        for (let i = 0; i < 4; i++) {
          clock.advance(1);
          ids.push(await runner.run(() => outbox.add({ name: 'credential.rotated', payload: { i } })));
        }
        d.start();
        await inFirst.promise;
        await endLockSession(other, lock.advisoryId(lockKey));
        await until(() => logger.lines.some((l) => l.includes('was lost while held')));
        finishFirst.resolve();
        await until(() => {
          if (!seenWhenStopped && logger.lines.some((l) => l.startsWith('warn Outbox dispatch stopped'))) seenWhenStopped = [...seen];
          return seen.length >= ids.length;
        });
        expect(seenWhenStopped).toEqual([ids[0]]);
        expect(seen).toEqual(ids);
        expect(logger.lines.filter((l) => l.startsWith('error'))).toEqual([]);
        await until(async () => (await countPending()) === 0);
      } finally {
        finishFirst.resolve();
        await d.stop();
        Logger.overrideLogger(new Logger());
        await other.destroy();
      }
    });
  }

  async function countPending(): Promise<number> {
    const r: Array<{ n: string }> = await ds.query('SELECT count(*) AS n FROM cv_outbox WHERE delivered_at IS NULL');
    return Number(r[0].n);
  }
});
