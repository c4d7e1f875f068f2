import { Logger } from '@nestjs/common';
import { AuditUnavailableError } from '@app/audit';
import { createTestDatabase, TestDatabase } from '@app/testing';
import { AuditHarness, countRows, event, eventually, startAudit, tenant } from '../test/harness';
import { FlushBarrier } from './internal/flush-barrier';

/** Barriers held by the running test: released after it whatever it asserted, so the host can close. */
const releases: Array<() => void> = [];

/** A barrier that waits for `release()` after it committed: the flush that a read's answer waits for, held. */
function holdBarriers() {
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  releases.push(release);
  const original = FlushBarrier.prototype.after;
  const spy = jest.spyOn(FlushBarrier.prototype, 'after').mockImplementation(function (this: FlushBarrier) {
    return original.call(this).then(() => held);
  });
  return { spy, release };
}

/** The test database's own session options (its schema on the search path), to add to. */
const sessionOptions = (db: TestDatabase) => String((db.options as { extra?: { options?: string } }).extra?.options ?? '');

/** Settles to 'pending' while `p` has not settled. */
async function state(p: Promise<unknown>): Promise<'pending' | 'fulfilled' | 'rejected'> {
  const pending = {};
  const v = await Promise.race([p.then(() => 'fulfilled' as const, () => 'rejected' as const), new Promise((r) => setImmediate(() => r(pending)))]);
  return v === pending ? 'pending' : (v as 'fulfilled' | 'rejected');
}

/**
 * PostgreSQL: a read batch commits without waiting for its WAL flush, its reads are answered once a flush
 * barrier committed after it, and the chain's next batch is written meanwhile (`postgresFlushBarrier`).
 */
describe('read batches and the flush barrier on postgres', () => {
  let db: TestDatabase;
  let h: AuditHarness | undefined;
  beforeAll(async () => {
    db = await createTestDatabase('postgres');
  });
  afterEach(async () => {
    releases.splice(0).forEach((release) => release());
    jest.restoreAllMocks();
    await h?.close();
    h = undefined;
  });
  afterAll(async () => {
    await db?.drop();
  });

  /** A fresh host (its own DataSource: its own barrier and head cache) whose barrier is known to work. */
  async function start(options = {}) {
    h = await startAudit(db, { readBuffer: { batchSize: 50, flushIntervalMs: 3_600_000 }, ...options });
    return h;
  }

  it("a read is answered only once a barrier after its batch committed; the chain's next batch is written while it waits", async () => {
    const { audit, ds } = await start();
    const t = tenant();
    await audit.recordRead(event(t, { resource: 'first' })); // head read under the lock; the barrier probed
    expect(await eventually(async () => FlushBarrier.for(ds).usable, (ok) => ok)).toBe(true);
    await audit.recordRead(event(t, { resource: 'second' })); // optimistic now: the head is cached

    const { spy, release } = holdBarriers();
    const r1 = audit.recordRead(event(t, { resource: 'r1' }));
    expect(await eventually(() => countRows(ds, t), (n) => n === 3)).toBe(3); // committed, visible
    expect(spy).toHaveBeenCalledTimes(1);
    expect(await state(r1)).toBe('pending'); // not durable yet: not answered

    const r2 = audit.recordRead(event(t, { resource: 'r2' }));
    expect(await eventually(() => countRows(ds, t), (n) => n === 4)).toBe(4); // linked to r1's row, not waiting for its flush
    expect(await state(r1)).toBe('pending');
    expect(await state(r2)).toBe('pending');

    release();
    await expect(Promise.all([r1, r2])).resolves.toBeDefined();
    await expect(audit.verify({ tenantId: t })).resolves.toMatchObject({ valid: true, checked: 4 });
  });

  it("a read batch's commit does not wait for the WAL flush: batch after batch lands while the barrier is held", async () => {
    // Every synchronous commit of the host's sessions waits 100 ms before its flush (`commit_delay`, superuser).
    h = await startAudit(db, { readBuffer: { batchSize: 50, flushIntervalMs: 3_600_000 } }, { extra: { options: `${sessionOptions(db)} -c commit_delay=100000 -c commit_siblings=0`.trim() } });
    const { audit, ds } = h;
    const t = tenant();
    await audit.recordRead(event(t));
    expect(await eventually(async () => FlushBarrier.for(ds).usable, (ok) => ok)).toBe(true);
    await audit.recordRead(event(t)); // the head is cached: optimistic from here
    const { release } = holdBarriers();
    const start = performance.now();
    const reads: Promise<void>[] = [];
    for (let i = 1; i <= 5; i++) {
      reads.push(audit.recordRead(event(t, { resource: `r${i}` })));
      await eventually(() => countRows(ds, t), (n) => n === 2 + i);
    }
    // Five synchronous commits would take 500 ms or more here.
    expect(performance.now() - start).toBeLessThan(400);
    expect(await countRows(ds, t)).toBe(7);
    release();
    await Promise.all(reads);
    await expect(audit.verify({ tenantId: t })).resolves.toMatchObject({ valid: true, checked: 7 });
  });

  it('flush() waits for the reads a barrier still holds', async () => {
    const { audit, ds } = await start();
    const t = tenant();
    await audit.recordRead(event(t));
    expect(await eventually(async () => FlushBarrier.for(ds).usable, (ok) => ok)).toBe(true);
    await audit.recordRead(event(t));
    const { release } = holdBarriers();
    const read = audit.recordRead(event(t));
    const flushed = audit.flush();
    await eventually(() => countRows(ds, t), (n) => n === 3);
    expect(await state(flushed)).toBe('pending');
    release();
    await flushed;
    expect(await state(read)).toBe('fulfilled');
  });

  it("a failed barrier refuses its batch's reads (fail-closed), keeps their rows once, and the next batch links to the database's head", async () => {
    const { audit, ds } = await start();
    const t = tenant();
    await audit.recordRead(event(t));
    expect(await eventually(async () => FlushBarrier.for(ds).usable, (ok) => ok)).toBe(true);
    await audit.recordRead(event(t));

    jest.spyOn(FlushBarrier.prototype, 'after').mockRejectedValueOnce(new Error('terminating connection due to administrator command'));
    const refused = await Promise.allSettled([audit.recordRead(event(t, { resource: 'a' })), audit.recordRead(event(t, { resource: 'b' }))]);
    expect(refused.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    expect((refused[0] as PromiseRejectedResult).reason).toBeInstanceOf(AuditUnavailableError);
    expect(await countRows(ds, t)).toBe(4); // committed once, not written again
    expect(audit.bufferDepth).toBe(0);
    expect(audit.healthy).toBe(true);

    // A crash before the flush would have lost the refused batch: the next batch must not link to it. Its cached
    // head was forgotten, so it links to the database's head.
    await ds.query("DELETE FROM cv_audit_log WHERE tenant_id = $1 AND resource IN ('a', 'b')", [t]);
    await audit.recordRead(event(t, { resource: 'after' }));
    expect(await countRows(ds, t)).toBe(3);
    await expect(audit.verify({ tenantId: t })).resolves.toMatchObject({ valid: true, checked: 3 });
  });

  it('where the database refuses the barrier, read batches commit synchronously and are answered, said once', async () => {
    const denied = Object.assign(new Error('permission denied for function pg_logical_emit_message'), { code: '42501' });
    const query = jest.spyOn(FlushBarrier.prototype, 'after').mockRejectedValue(denied);
    const warn = jest.spyOn(Logger.prototype, 'warn');
    const { audit, ds } = await start();
    const t = tenant();
    for (let i = 0; i < 5; i++) await audit.recordRead(event(t, { resource: `r${i}` }));
    await Promise.all(Array.from({ length: 20 }, (_, i) => audit.recordRead(event(t, { resource: `c${i}` }))));
    expect(await countRows(ds, t)).toBe(25);
    expect(FlushBarrier.for(ds).refused).toBe(true);
    expect(query).toHaveBeenCalledTimes(1); // asked once, then never again
    expect(warn.mock.calls.filter(([m]) => String(m).includes('pg_logical_emit_message'))).toHaveLength(1);
    await expect(audit.verify({ tenantId: t })).resolves.toMatchObject({ valid: true, checked: 25 });
  });

  it('postgresFlushBarrier: false — no barrier, every batch waits for its own flush', async () => {
    const after = jest.spyOn(FlushBarrier.prototype, 'after');
    const { audit, ds } = await start({ postgresFlushBarrier: false });
    const t = tenant();
    for (let i = 0; i < 3; i++) await audit.recordRead(event(t));
    expect(await countRows(ds, t)).toBe(3);
    expect(after).not.toHaveBeenCalled();
  });
});
