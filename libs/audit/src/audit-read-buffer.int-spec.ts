import { createTestDatabase, DATABASE_KINDS, TestDatabase } from '@app/testing';
import { AuditUnavailableError, AuditWriteError } from '@app/audit';
import { DataSource } from 'typeorm';
import { AuditHarness, countRows, event, eventually, exec, sleep, startAudit, tenant } from '../test/harness';

describe.each(DATABASE_KINDS)('buffered read auditing on %s', (kind) => {
  let db: TestDatabase;
  beforeAll(async () => (db = await createTestDatabase(kind)));
  afterAll(async () => db?.drop());

  const settled = async (p: Promise<unknown>) => {
    let done = false;
    void p.then(
      () => (done = true),
      () => (done = true),
    );
    await sleep(150);
    return done;
  };

  describe('with a long interval', () => {
    let h: AuditHarness;
    beforeAll(async () => (h = await startAudit(db, { readBuffer: { batchSize: 10, maxSize: 100, flushIntervalMs: 3_600_000 } })));
    afterAll(async () => h?.close());

    it('resolves a read only once its row is committed, without waiting for the interval', async () => {
      const t = tenant();
      await h.audit.recordRead(event(t, { resource: 'cred-0' }));
      expect(await countRows(h.ds, t)).toBe(1); // readable by another connection: committed
      expect(h.audit.bufferDepth).toBe(0);
    });

    it('group-commits concurrent reads in batches of at most batchSize, one chain link per read, in arrival order', async () => {
      const t = tenant();
      await Promise.all(Array.from({ length: 25 }, (_, i) => h.audit.recordRead(event(t, { resource: `cred-${i}` }))));
      expect(await countRows(h.ds, t)).toBe(25);
      expect(h.audit.bufferDepth).toBe(0);
      const { items } = await h.audit.query({ tenantId: t, order: 'asc', limit: 500 });
      expect(items.map((r) => r.resource)).toEqual(Array.from({ length: 25 }, (_, i) => `cred-${i}`)); // arrival order kept
      await expect(h.audit.verify({ tenantId: t })).resolves.toMatchObject({ valid: true, checked: 25 });
    });
  });

  it('retries on the interval after a failure', async () => {
    const h = await startAudit(db, { failClosed: false, readBuffer: { batchSize: 100, flushIntervalMs: 50 } });
    try {
      const t = tenant();
      await exec(h.ds, 'ALTER TABLE cv_audit_log RENAME TO cv_audit_log_off');
      for (let i = 0; i < 3; i++) await h.audit.recordRead(event(t));
      expect(h.audit.healthy).toBe(false);
      await exec(h.ds, 'ALTER TABLE cv_audit_log_off RENAME TO cv_audit_log');
      expect(await eventually(() => countRows(h.ds, t), (n) => n === 3, 3000)).toBe(3);
      // Healthy once the batch is on disk too, which may follow the rows becoming visible (SQLite flushes off the event loop).
      expect(await eventually(async () => h.audit.healthy, (ok) => ok, 3000)).toBe(true);
    } finally {
      await h.close();
    }
  });

  it('writes every accepted read on application shutdown', async () => {
    const t = tenant();
    const h = await startAudit(db, { readBuffer: { batchSize: 100, flushIntervalMs: 3_600_000 } });
    const reads = Array.from({ length: 7 }, (_, i) => h.audit.recordRead(event(t, { resource: `cred-${i}` })));
    await h.close();
    await expect(Promise.all(reads)).resolves.toBeDefined();
    const ds = await new DataSource({ ...db.options }).initialize();
    try {
      expect(await countRows(ds, t)).toBe(7);
    } finally {
      await ds.destroy();
    }
  });

  it('applies back-pressure when full: recordRead waits for space and nothing is dropped (failClosed off)', async () => {
    const h = await startAudit(db, { failClosed: false, readBuffer: { maxSize: 5, batchSize: 5, flushIntervalMs: 3_600_000 } });
    const t = tenant();
    try {
      await exec(h.ds, 'ALTER TABLE cv_audit_log RENAME TO cv_audit_log_off');
      // failClosed off: a failed batch lets its readers go on, and while failing a read resolves once buffered.
      for (let i = 0; i < 5; i++) await h.audit.recordRead(event(t, { resource: `cred-${i}` }));
      const sixth = h.audit.recordRead(event(t, { resource: 'cred-5' }));
      const seventh = h.audit.recordRead(event(t, { resource: 'cred-6' }));
      expect(await settled(sixth)).toBe(false); // waiting for space, not dropped, not failed
      expect(h.audit.stats).toMatchObject({ bufferDepth: 5, bufferWaiters: 2, healthy: false });
      expect(h.audit.stats.flushFailures).toBeGreaterThanOrEqual(1);
      await expect(h.audit.flush()).rejects.toBeInstanceOf(AuditWriteError);
      expect(await settled(sixth)).toBe(false);

      await exec(h.ds, 'ALTER TABLE cv_audit_log_off RENAME TO cv_audit_log');
      await h.audit.flush();
      await expect(sixth).resolves.toBeUndefined();
      await expect(seventh).resolves.toBeUndefined();
      await h.audit.flush();
      expect(await countRows(h.ds, t)).toBe(7);
      expect(h.audit.stats).toMatchObject({ healthy: true, bufferDepth: 0, readsFlushed: 7, readsRejected: 0 });
      const { items } = await h.audit.query({ tenantId: t, order: 'asc' });
      expect(items.map((r) => r.resource)).toEqual(['cred-0', 'cred-1', 'cred-2', 'cred-3', 'cred-4', 'cred-5', 'cred-6']);
    } finally {
      await h.close();
    }
  });

  it('fails closed: a failed batch rejects its readers, later reads are refused until writes recover, and the rows are kept and written', async () => {
    const h = await startAudit(db, { readBuffer: { maxSize: 3, batchSize: 3, flushIntervalMs: 3_600_000 } });
    const t = tenant();
    try {
      await exec(h.ds, 'ALTER TABLE cv_audit_log RENAME TO cv_audit_log_off');
      const a = h.audit.recordRead(event(t, { resource: 'a' }));
      const b = h.audit.recordRead(event(t, { resource: 'b' }));
      await expect(a).rejects.toBeInstanceOf(AuditUnavailableError); // the caller must not serve the value
      await expect(b).rejects.toMatchObject({ code: 5003, retryable: true });
      expect(h.audit.healthy).toBe(false);
      await expect(h.audit.recordRead(event(t, { resource: 'refused' }))).rejects.toBeInstanceOf(AuditUnavailableError);

      await exec(h.ds, 'ALTER TABLE cv_audit_log_off RENAME TO cv_audit_log');
      await h.audit.flush();
      expect(h.audit.healthy).toBe(true);
      await h.audit.recordRead(event(t, { resource: 'c' }));
      const { items } = await h.audit.query({ tenantId: t, order: 'asc' });
      // a and b were refused to their callers but are still written: the log may over-report, never under-report.
      expect(items.map((r) => r.resource)).toEqual(['a', 'b', 'c']);
      expect(h.audit.stats.readsRejected).toBe(3);
    } finally {
      await h.close();
    }
  });

  it('fails closed for callers waiting on a full buffer too, instead of hanging', async () => {
    const h = await startAudit(db, { readBuffer: { maxSize: 2, batchSize: 2, flushIntervalMs: 3_600_000 } });
    const t = tenant();
    try {
      await exec(h.ds, 'ALTER TABLE cv_audit_log RENAME TO cv_audit_log_off');
      const accepted = [h.audit.recordRead(event(t, { resource: 'a' })), h.audit.recordRead(event(t, { resource: 'b' }))];
      const waiting = h.audit.recordRead(event(t, { resource: 'c' }));
      await expect(waiting).rejects.toBeInstanceOf(AuditUnavailableError);
      for (const p of accepted) await expect(p).rejects.toBeInstanceOf(AuditUnavailableError);
    } finally {
      await exec(h.ds, 'ALTER TABLE cv_audit_log_off RENAME TO cv_audit_log');
      await h.close(); // shutdown flush writes the two accepted reads
    }
    const ds = await new DataSource({ ...db.options }).initialize();
    try {
      expect(await countRows(ds, t)).toBe(2);
    } finally {
      await ds.destroy();
    }
  });
});
