import { AuditAction } from '@app/audit';
import { TransactionRunner } from '@app/common';
import { TransactionGate } from '@app/common';
import { createTestDatabase, DATABASE_KINDS, loggedSelects, TestDatabase } from '@app/testing';
import { DataSource } from 'typeorm';
import { AuditHarness, event, eventually, exec, sleep, startAudit, tenant } from '../test/harness';
import { CATCH_UP_CHUNK_ROWS } from './internal/query-index-catch-up';

/** Rows of `t` not yet in SQLite's query indexes (query-index-catch-up.ts); PostgreSQL never has any. */
async function pending(ds: DataSource, t: string): Promise<number> {
  const p = ds.options.type === 'postgres' ? '$1' : '?';
  const [{ n }] = await exec<Array<{ n: string | number }>>(ds, `SELECT COUNT(*) AS n FROM cv_audit_log WHERE tenant_id = ${p} AND query_pending IS NOT NULL`, [t]);
  return Number(n);
}

const options = { suspicious: { enabled: false }, readBuffer: { batchSize: 50, maxSize: 5000, flushIntervalMs: 3_600_000 } };

// On SQLite a row reaches the query indexes after its commit; an audit query must still see every row written
// before it, through those indexes.
describe.each(DATABASE_KINDS)('audit queries right after the writes on %s', (kind) => {
  let db: TestDatabase;
  let h: AuditHarness;
  beforeAll(async () => {
    db = await createTestDatabase(kind);
    h = await startAudit(db, options);
  });
  afterAll(async () => {
    await h?.close();
    await db?.drop();
  });

  it('finds every row by resource, actor, action and time, the ones just written included', async () => {
    const t = tenant('q');
    const from = new Date(Date.now() - 1000);
    await h.audit.record(event(t, { action: AuditAction.STORE, resource: 'cred-a', context: { tenantId: t, actor: { id: 'alice' } } }));
    await Promise.all(Array.from({ length: 20 }, () => h.audit.recordRead(event(t, { resource: 'cred-b' }))));
    // SQLite: all 21 wait for the query indexes (fewer than a background chunk); PostgreSQL: none ever does.
    expect(await pending(h.ds, t)).toBe(kind === 'sqlite' ? 21 : 0);

    const q = (f: Parameters<AuditHarness['audit']['query']>[0]) => h.audit.query({ tenantId: t, limit: 500, ...f }).then((p) => p.items);
    let byResource: Awaited<ReturnType<typeof q>> = [];
    const sent = await loggedSelects(h.ds, async () => (byResource = await q({ resource: 'cred-b' })));
    expect(byResource).toHaveLength(20);
    expect(await q({ actorId: 'alice' })).toEqual([expect.objectContaining({ action: AuditAction.STORE, resource: 'cred-a' })]);
    expect(await q({ action: AuditAction.STORE })).toHaveLength(1);
    expect(await q({ from, to: new Date(Date.now() + 1000) })).toHaveLength(21);
    expect(await pending(h.ds, t)).toBe(0);

    if (kind === 'sqlite') {
      // Through the (partial) resource index, not the chain's with a filter.
      const [[sql, params]] = sent;
      const plan = ((await h.ds.query(`EXPLAIN QUERY PLAN ${sql}`, params)) as Array<{ detail: string }>).map((p) => p.detail).join(' | ');
      expect(plan).toContain('USING INDEX IDX_cv_audit_log_tenant_resource_seq');
    }
  });

  // A caller may query inside its own transaction (TransactionRunner.run): it reads in it, and on SQLite, where that
  // transaction holds the connection's gate, the catch-up joins it instead of waiting for it.
  it('sees the rows written before it and in it, at once', async () => {
    const t = tenant('tx');
    await h.audit.recordRead(event(t, { resource: 'before' }));
    const runner = new TransactionRunner(h.ds);
    const started = Date.now();
    const items = await runner.run(async () => {
      await h.audit.record(event(t, { action: AuditAction.STORE, resource: 'within' }));
      return (await h.audit.query({ tenantId: t, limit: 10, order: 'asc' })).items;
    });
    expect(items.map((r) => r.resource)).toEqual(['before', 'within']);
    expect(Date.now() - started).toBeLessThan(2000); // not the gate's 5 s wait and refusal
  });
});

describe('the SQLite query indexes caught up without a query', () => {
  let db: TestDatabase;
  beforeAll(async () => (db = await createTestDatabase('sqlite')));
  afterAll(() => db?.drop());

  it('in the background once a chunk of rows is pending (on the write worker)', async () => {
    const h = await startAudit(db, options);
    try {
      const t = tenant('bg');
      const n = 50 * Math.ceil((CATCH_UP_CHUNK_ROWS + 1) / 50); // batches of 50, past one chunk
      for (let done = 0; done < n; done += 50) {
        await Promise.all(Array.from({ length: 50 }, (_, i) => h.audit.recordRead(event(t, { resource: `cred-${done + i}` }))));
      }
      // One chunk took the oldest CATCH_UP_CHUNK_ROWS; the rest waits for the next chunk or query.
      expect(await eventually(() => pending(h.ds, t), (p) => p <= n - CATCH_UP_CHUNK_ROWS)).toBe(n - CATCH_UP_CHUNK_ROWS);
    } finally {
      await h.close();
    }
  });

  // A batch of more rows than a chunk (readBuffer.batchSize up to 1,000, recordMany) or rows appended while a chunk
  // runs: the chunks go on until fewer than one chunk's worth is pending, rather than the rest piling up for the
  // next query (which catches them all up in one statement, holding every append meanwhile).
  it('in the background, chunk after chunk, when more than a chunk is appended at once', async () => {
    const h = await startAudit(db, { ...options, readBuffer: { batchSize: 1000, maxSize: 5000, flushIntervalMs: 3_600_000 } });
    try {
      const t = tenant('big');
      for (let round = 0; round < 3; round++) {
        await Promise.all(Array.from({ length: 1000 }, (_, i) => h.audit.recordRead(event(t, { resource: `cred-${i}` }))));
      }
      expect(await eventually(() => pending(h.ds, t), (p) => p < CATCH_UP_CHUNK_ROWS)).toBeLessThan(CATCH_UP_CHUNK_ROWS);
    } finally {
      await h.close();
    }
  });

  // Verify reads a pruned chain's retention checkpoint through the (tenant, action) index, so the pending rows go
  // into it first — a write, which must wait for the shared connection like every other (TransactionGate): not
  // join another lib's open transaction (and go with its rollback), nor overlap a write worker's transaction.
  it('by verify of a pruned chain, outside any other transaction on the shared connection', async () => {
    const h = await startAudit(db, options);
    try {
      const t = tenant('vfy');
      for (let i = 0; i < 3; i++) await h.audit.record(event(t));
      await h.audit.prune(new Date(Date.now() + 60_000));
      await h.audit.record(event(t));
      expect(await pending(h.ds, t)).toBeGreaterThan(0); // the checkpoint and the row after it

      let release!: () => void;
      const held = new Promise<void>((r) => (release = r));
      const other = TransactionGate.for(h.ds)
        .transaction(async (m) => {
          await m.query('SELECT 1');
          await held;
          throw new Error('rolled back');
        })
        .catch(() => undefined);
      const verified = h.audit.verify({ tenantId: t });
      await sleep(50);
      release();
      await other;
      await expect(verified).resolves.toMatchObject({ valid: true, checked: 2 });
      expect(await pending(h.ds, t)).toBe(0);
    } finally {
      await h.close();
    }
  });

  it('at start, every row a crash left pending (more than a chunk)', async () => {
    const t = tenant('crash');
    const n = 50 * Math.ceil((CATCH_UP_CHUNK_ROWS + 1) / 50); // batches of 50, more than a chunk
    const first = await startAudit(db, options);
    for (let done = 0; done < n; done += 50) await Promise.all(Array.from({ length: 50 }, () => first.audit.recordRead(event(t))));
    // As after a kill whose background chunks had not run (or had failed): every row of the chain still pending.
    await exec(first.ds, `UPDATE cv_audit_log SET query_pending = 1 WHERE tenant_id = ?`, [t]);
    await first.close();
    const next = await startAudit(db, options);
    try {
      expect(await eventually(() => pending(next.ds, t), (p) => p === 0)).toBe(0);
      expect((await next.audit.query({ tenantId: t, resource: 'cred-1', limit: 500 })).items).toHaveLength(n);
    } finally {
      await next.close();
    }
  });
});

