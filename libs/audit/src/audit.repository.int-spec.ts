import { ManualClock } from '@app/common';
import { DATABASE_KINDS, loggedSelects } from '@app/testing';
import { DataSource } from 'typeorm';
import { AuditAction, AuditResult, computeEntryHash } from '@app/audit';
import { AuditRepository, type AuditRowFilter } from './audit.repository';
import { canonicalJson } from './internal/canonical';
import { linkRows } from './internal/chain-link';
import { PreparedEvent, prepareEvent } from './internal/prepare-event';
import { AuditRepositoryFixture, openAuditRepository } from '../test/fixtures';
import { tenant } from '../test/harness';

const DAY = 86_400_000;
const clock = new ManualClock(new Date(0));

/** One event at `ms` past a fixed instant, prepared as the writer prepares it; `over` replaces any field. */
const at = (tenantId: string, ms: number, over: Partial<PreparedEvent> = {}): PreparedEvent => ({
  ...prepareEvent({ action: AuditAction.READ, context: { tenantId, actor: { id: 'user-1' } }, resource: 'cred-1', result: AuditResult.SUCCESS }, clock)
    .prepared,
  occurredAt: new Date(Date.UTC(2026, 0, 1) + ms),
  ...over,
});

// The repository alone, on a bare DataSource with the lib's migrations: no Nest module around it.
describe.each(DATABASE_KINDS)('AuditRepository on %s', (kind) => {
  let f: AuditRepositoryFixture;
  let ds: DataSource;
  let repo: AuditRepository;

  beforeAll(async () => {
    f = await openAuditRepository(kind);
    ({ ds, repo } = f);
  });
  afterAll(() => f?.close());

  /** Appends `events` to their chain the way the writer does (head, link, insert), in one transaction. */
  const append = (tenantId: string, events: PreparedEvent[]) =>
    ds.transaction(async (m) => {
      const rows = linkRows(events, await repo.head(tenantId, m));
      await repo.insert(rows, m);
      return rows.map((r) => r.row);
    });

  /**
   * `find` as `AuditQueries` runs it: on SQLite the pending rows into the query indexes first, then a find that
   * may use them (query-index-catch-up.ts); the rows appended here are all pending until then.
   */
  const find = async (filter: AuditRowFilter) => {
    await repo.catchUpQueryIndexes();
    return repo.find(filter, { indexedOnly: repo.queryIndexesDeferred });
  };

  /** The SQL and parameters of every SELECT `work` sends. */
  const selects = (work: () => Promise<unknown>) => loggedSelects(ds, work);

  it('inserts batches larger than one statement, and reads back every field as hashed', async () => {
    const t = tenant();
    expect(await repo.head(t)).toBeNull();
    const events = Array.from({ length: 150 }, (_, i) =>
      at(t, i, { actorIp: '10.0.0.1', errorCode: i % 2 ? '1003' : null, durationMs: i, details: { n: i, nested: { b: 1, a: [true, null] } } }),
    );
    const written = await append(t, events.slice(0, 100));
    await append(t, events.slice(100));
    const head = await repo.head(t);
    expect(head).toMatchObject({ sequence: 150 });
    const rows = await ds.transaction((m) => repo.chainPage(t, 0, 1000, m));
    expect(rows.map((r) => r.sequence)).toEqual(events.map((_, i) => i + 1));
    for (const [i, r] of rows.entries()) {
      expect(computeEntryHash(r, r.detailsJson ?? 'null')).toBe(r.hash);
      expect(JSON.parse(r.detailsJson!)).toEqual(events[i].details);
    }
    // The page keeps details as the stored text: the canonical JSON the writer hashed.
    expect(rows[0]).toEqual({ ...written[0], details: null, detailsJson: canonicalJson(written[0].details) });
    expect(rows[149].previousHash).toBe(rows[148].hash);
    expect(head).toEqual({ id: rows[149].id, sequence: 150, hash: rows[149].hash });
  });

  it('inserts in the caller transaction: a rollback leaves no row', async () => {
    const t = tenant();
    await expect(
      ds.transaction(async (m) => {
        await repo.insert(linkRows([at(t, 0)], null), m);
        expect(await repo.head(t, m)).toMatchObject({ sequence: 1 });
        throw new Error('roll back');
      }),
    ).rejects.toThrow('roll back');
    expect(await repo.head(t)).toBeNull();
  });

  it('looks rows up by sequence and by hash, and pages one chain after a sequence', async () => {
    const t = tenant();
    const rows = await append(t, [0, 1, 2, 3, 4].map((i) => at(t, i)));
    // Another chain with the same sequences, written after: paging t never returns its rows.
    const other = tenant();
    await append(other, [0, 1, 2, 3, 4].map((i) => at(other, i)));
    await ds.transaction(async (m) => {
      expect(await repo.firstSequence(t, m)).toBe(1);
      expect(await repo.firstSequence(tenant('none'), m)).toBeUndefined();
      expect(await repo.rowAt(t, 3, m)).toEqual({ id: rows[2].id, sequence: 3, hash: rows[2].hash });
      expect(await repo.rowAt(t, 6, m)).toBeNull();
      expect(await repo.rowWithHash(t, rows[3].previousHash, m)).toMatchObject({ sequence: 3 });
      expect((await repo.chainPage(t, 2, 2, m)).map((r) => [r.sequence, r.id])).toEqual([
        [3, rows[2].id],
        [4, rows[3].id],
      ]);
      expect((await repo.chainPage(t, 4, 2, m)).map((r) => r.id)).toEqual([rows[4].id]);
      expect(await repo.chainPage(t, 5, 2, m)).toEqual([]);
    });
  });

  it('lists tenants with rows, distinct and sorted', async () => {
    const [a, b] = [tenant('list-b'), tenant('list-a')];
    await append(a, [at(a, 0), at(a, 1)]);
    await append(b, [at(b, 0)]);
    const tenants = await repo.tenants();
    expect(tenants).toEqual([...new Set(tenants)].sort());
    expect(tenants).toEqual(expect.arrayContaining([a, b]));
  });

  describe('find', () => {
    let t: string;
    let u: string;
    // A day after the other tests' rows, so a time range selects only these.
    const day = Date.UTC(2026, 0, 2);
    beforeAll(async () => {
      t = tenant('find');
      u = tenant('find');
      await append(t, [
        at(t, DAY, { action: 'store', actorId: 'alice', correlationId: 'c1' }),
        at(t, DAY + 10, { resource: 'cred-2', result: AuditResult.FAILURE }),
        at(t, DAY + 20, { action: 'delete', actorId: 'alice' }),
        at(t, DAY + 30, { result: AuditResult.DENIED }),
      ]);
      // The same instants in another tenant: time order ties are broken by id.
      await append(u, [at(u, DAY), at(u, DAY + 10)]);
    });
    const seqs = async (f: Partial<Parameters<AuditRepository['find']>[0]>) =>
      (await find({ order: 'asc', by: 'seq', limit: 100, tenantId: t, ...f })).map((r) => r.sequence);

    it('filters by every field, in chain order either way', async () => {
      expect(await seqs({})).toEqual([1, 2, 3, 4]);
      expect(await seqs({ order: 'desc' })).toEqual([4, 3, 2, 1]);
      expect(await seqs({ resource: 'cred-2' })).toEqual([2]);
      expect(await seqs({ actorId: 'alice' })).toEqual([1, 3]);
      expect(await seqs({ correlationId: 'c1' })).toEqual([1]);
      expect(await seqs({ actions: ['store', 'delete'] })).toEqual([1, 3]);
      expect(await seqs({ results: [AuditResult.FAILURE, AuditResult.DENIED] })).toEqual([2, 4]);
      expect(await seqs({ fromMs: day + 10, toMs: day + 30 })).toEqual([2, 3]);
    });

    it('continues after a sequence, and limits', async () => {
      expect(await seqs({ after: { order: 'asc', by: 'seq', sequence: 2 } })).toEqual([3, 4]);
      expect(await seqs({ order: 'desc', after: { order: 'desc', by: 'seq', sequence: 2 }, limit: 1 })).toEqual([1]);
    });

    it('orders across tenants by time then id, and continues after a (time, id) position', async () => {
      const both = async (order: 'asc' | 'desc', after?: { occurredAtMs: number; id: string }) =>
        (await find({ order, by: 'time', limit: 100, fromMs: day, after: after && { order, by: 'time', ...after } })).filter(
          (r) => r.tenantId === t || r.tenantId === u,
        );
      const asc = await both('asc');
      const keys = asc.map((r) => [r.occurredAt.getTime(), r.id] as const);
      expect(keys).toEqual([...keys].sort((x, y) => x[0] - y[0] || (x[1] < y[1] ? -1 : 1)));
      expect(asc).toHaveLength(6);
      const [first] = asc;
      expect(await both('asc', { occurredAtMs: first.occurredAt.getTime(), id: first.id })).toEqual(asc.slice(1));
      const desc = await both('desc');
      expect(desc.map((r) => r.id)).toEqual(asc.map((r) => r.id).reverse());
    });
  });

  describe('find in one chain with a filter: the filter indexes are in chain order', () => {
    const FILTER_INDEXES = {
      resource: ['IDX_cv_audit_log_tenant_resource_seq', 'resource'],
      actorId: ['IDX_cv_audit_log_tenant_actor_seq', 'actor_id'],
      actions: ['IDX_cv_audit_log_tenant_action_seq', 'action'],
    } as const;
    let t: string;
    beforeAll(async () => {
      t = tenant('hot');
      // One credential read far more than the others, as in a busy tenant.
      const events = Array.from({ length: 240 }, (_, i) =>
        at(t, DAY * 3 + i, i % 4 === 3 ? { resource: `cred-${i % 10}`, actorId: 'bob', action: 'store' } : { resource: 'cred-hot' }),
      );
      for (let i = 0; i < events.length; i += 60) await append(t, events.slice(i, i + 60));
    });

    it('pages a hot credential newest first and on from a cursor, bounded in time', async () => {
      const hot = (await find({ tenantId: t, resource: 'cred-hot', order: 'asc', by: 'seq', limit: 500 })).map((r) => r.sequence);
      expect(hot).toHaveLength(180);
      const first = await find({ tenantId: t, resource: 'cred-hot', order: 'desc', by: 'seq', limit: 50 });
      expect(first.map((r) => r.sequence)).toEqual(hot.slice(-50).reverse());
      const next = await find({ tenantId: t, resource: 'cred-hot', order: 'desc', by: 'seq', limit: 50, after: { order: 'desc', by: 'seq', sequence: first[49].sequence } });
      expect(next.map((r) => r.sequence)).toEqual(hot.slice(-100, -50).reverse());
      const from = Date.UTC(2026, 0, 1) + DAY * 3 + 100;
      const bounded = await find({ tenantId: t, actorId: 'bob', fromMs: from, toMs: from + 40, order: 'asc', by: 'seq', limit: 500 });
      expect(bounded.map((r) => r.occurredAt.getTime() - from)).toEqual([3, 7, 11, 15, 19, 23, 27, 31, 35, 39]);
    });

    it('has them (tenant, filter, sequence, occurred_at), and SQLite reads a page from them without sorting', async () => {
      if (kind === 'postgres') {
        const schema = (ds.options as { schema?: string }).schema ?? 'public';
        const rows = (await ds.query(`SELECT indexname AS name, indexdef AS def FROM pg_indexes WHERE tablename = 'cv_audit_log' AND schemaname = $1`, [schema])) as Array<{ name: string; def: string }>;
        const defs = new Map(rows.map((r) => [r.name, r.def]));
        for (const [name, column] of Object.values(FILTER_INDEXES)) expect(defs.get(name)).toContain(`(tenant_id, ${column}, sequence, occurred_at)`);
        expect([...defs.keys()].filter((n) => n.endsWith('_time'))).toEqual(['IDX_cv_audit_log_tenant_time']);
        return;
      }
      // The statement `find` itself runs.
      const filters = { resource: 'cred-hot', actorId: 'user-1', actions: [AuditAction.READ] } as const;
      for (const [field, [index]] of Object.entries(FILTER_INDEXES)) {
        const [[sql, params]] = await selects(() => find({ tenantId: t, [field]: filters[field as keyof typeof filters], order: 'desc', by: 'seq', limit: 50 }));
        const plan = (await sqlitePlan(ds, sql, params)).join(' | ');
        expect(plan).toContain(`USING INDEX ${index}`);
        expect(plan).not.toMatch(/TEMP B-TREE/);
      }
    });
  });

  describe('find across tenants: the primary key as the (occurredAt, id) order', () => {
    // Its own day, so `from`/`to` select only these rows.
    const base = Date.UTC(2026, 0, 5);
    const v = tenant('pk');
    const w = tenant('pk');
    let rows: Array<{ id: string; occurredAt: Date; tenantId: string }>;
    beforeAll(async () => {
      // Many rows in few milliseconds, interleaved across two chains: ties inside a millisecond are the rule.
      const offsets = Array.from({ length: 60 }, (_, i) => DAY * 4 + (i % 4));
      await append(v, offsets.slice(0, 30).map((ms) => at(v, ms)));
      await append(w, offsets.slice(30).map((ms) => at(w, ms)));
      await append(v, [at(v, DAY * 4 + 5), at(v, DAY * 4 + 1)]); // a later append of an earlier instant
      rows = [...(await ds.query(`SELECT id, occurred_at AS "occurredAt", tenant_id AS "tenantId" FROM cv_audit_log WHERE tenant_id IN ('${v}', '${w}')`))].map(
        (r: { id: string; occurredAt: string | number; tenantId: string }) => ({ ...r, occurredAt: new Date(Number(r.occurredAt)) }),
      );
    });
    const byTime = (order: 'asc' | 'desc', fromMs?: number, toMs?: number) => {
      const keep = rows.filter((r) => (fromMs === undefined || r.occurredAt.getTime() >= fromMs) && (toMs === undefined || r.occurredAt.getTime() < toMs));
      const asc = keep.sort((x, y) => x.occurredAt.getTime() - y.occurredAt.getTime() || (x.id < y.id ? -1 : 1)).map((r) => r.id);
      return order === 'asc' ? asc : asc.reverse();
    };
    const page = async (order: 'asc' | 'desc', fromMs: number, toMs: number | undefined, limit: number) => {
      const ids: string[] = [];
      let after: { occurredAtMs: number; id: string } | undefined;
      for (;;) {
        const got = await find({ order, by: 'time', limit, fromMs, toMs, after: after && { order, by: 'time', ...after } });
        ids.push(...got.filter((r) => r.tenantId === v || r.tenantId === w).map((r) => r.id));
        if (got.length < limit) return ids;
        const last = got[got.length - 1];
        after = { occurredAtMs: last.occurredAt.getTime(), id: last.id };
      }
    };

    it('pages exactly the (occurredAt, id) order, either way, with `from` inclusive and `to` exclusive at millisecond edges', async () => {
      const t0 = base + 0;
      expect(rows).toHaveLength(62);
      for (const order of ['asc', 'desc'] as const) {
        expect(await page(order, t0, undefined, 7)).toEqual(byTime(order));
        expect(await page(order, t0 + 1, t0 + 3, 5)).toEqual(byTime(order, t0 + 1, t0 + 3));
        expect(await page(order, t0 + 3, t0 + 4, 100)).toEqual(byTime(order, t0 + 3, t0 + 4));
        expect(await page(order, t0 + 5, t0 + 5, 100)).toEqual([]);
      }
      expect(byTime('asc', t0 + 1, t0 + 3)).toHaveLength(31);
    });

    it('no longer has an index of its own: the migration dropped it, and the plan reads the primary key in order', async () => {
      const q = kind === 'postgres'
        ? `SELECT indexname AS name FROM pg_indexes WHERE tablename = 'cv_audit_log' AND schemaname = '${(ds.options as { schema?: string }).schema ?? 'public'}'`
        : `SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'cv_audit_log'`;
      const names = ((await ds.query(q)) as Array<{ name: string }>).map((r) => r.name);
      expect(names).not.toContain('IDX_cv_audit_log_time');
      expect(names.filter((n) => n.endsWith('_time'))).toEqual(['IDX_cv_audit_log_tenant_time']);
      expect(names).toEqual(expect.arrayContaining(['IDX_cv_audit_log_tenant_time', 'UQ_cv_audit_log_tenant_sequence']));
      if (kind === 'sqlite') {
        const sql = `SELECT * FROM cv_audit_log a WHERE a.occurred_at >= ? AND a.id >= ? ORDER BY a.id DESC LIMIT 10`;
        const text = (await sqlitePlan(ds, sql, [base, '0'])).join(' | ');
        expect(text).toMatch(/USING INDEX sqlite_autoindex_cv_audit_log_1/);
        expect(text).not.toMatch(/TEMP B-TREE/);
      }
    });
  });

  describe('retention', () => {
    it('bounds the prunable prefix, deletes through a sequence, and reads the latest checkpoint', async () => {
      const t = tenant('prune');
      const base = Date.UTC(2026, 0, 1);
      await append(t, [0, 1, 2, 3].map((i) => at(t, i * 1000)));
      await ds.transaction(async (m) => {
        expect(await repo.pruneBounds(t, base + 2000, m)).toEqual({ first: 1, firstKept: 3 });
        expect(await repo.pruneBounds(t, base + 10_000, m)).toEqual({ first: 1, firstKept: null });
        expect(await repo.pruneBounds(tenant('none'), base, m)).toBeUndefined();
        expect(await repo.latestCheckpoint(t, m)).toBeUndefined();
        expect(await repo.deleteThrough(t, 2, m)).toBe(2);
      });
      const cp = { prunedThroughSequence: 2, prunedThroughHash: 'h'.repeat(64) };
      const [older] = await append(t, [at(t, 5000, { action: AuditAction.RETENTION_CHECKPOINT, details: { ...cp, deleted: 2 } })]);
      const [latest] = await append(t, [at(t, 6000, { action: AuditAction.RETENTION_CHECKPOINT, details: { ...cp, prunedThroughSequence: 3 } })]);
      // As the verifier does first (SQLite: the checkpoints are still pending).
      await repo.catchUpQueryIndexes();
      await ds.transaction(async (m) => {
        expect(older.sequence).toBe(5);
        expect(await repo.firstSequence(t, m)).toBe(3);
        expect(await repo.latestCheckpoint(t, m)).toEqual({ id: latest.id, sequence: 6, details: { ...cp, prunedThroughSequence: 3 } });
      });
    });

    it('keeps the chain a prefix: the first row at or after the cutoff in chain order, though a later row is older', async () => {
      const t = tenant('prune-order');
      const base = Date.UTC(2026, 0, 1);
      // Sequences 1..5; occurredAt is the event's instant, so a later link may be older (another replica's clock).
      await append(t, [0, 3000, 1000, 4000, 2000].map((ms) => at(t, ms)));
      await ds.transaction(async (m) => {
        expect(await repo.pruneBounds(t, base + 2500, m)).toEqual({ first: 1, firstKept: 2 });
        expect(await repo.pruneBounds(t, base + 3500, m)).toEqual({ first: 1, firstKept: 4 });
        expect(await repo.pruneBounds(t, base + 4001, m)).toEqual({ first: 1, firstKept: null });
        expect(await repo.pruneBounds(t, base, m)).toEqual({ first: 1, firstKept: 1 });
      });
    });
  });

  describe('on a long chain: retention and time ranges read about what they return', () => {
    const t = tenant('prune-long');
    const base = Date.UTC(2026, 1, 1);
    const ROWS = 3000;
    beforeAll(async () => {
      // One row a minute; a few other tenants, so that listing them has somewhere to seek.
      for (let i = 0; i < ROWS; i += 500) await append(t, Array.from({ length: 500 }, (_, k) => at(t, (i + k) * 60_000 - (Date.UTC(2026, 0, 1) - base))));
      for (const other of [tenant('prune-x'), tenant('prune-y')]) await append(other, [at(other, 0)]);
      await ds.query(kind === 'postgres' ? 'ANALYZE cv_audit_log' : 'ANALYZE');
    });

    it('finds the prunable prefix reading about the rows it prunes, not the chain', async () => {
      const cutoff = base + 10 * 60_000; // 10 rows older than it
      const statements = await selects(() => ds.transaction(async (m) => expect(await repo.pruneBounds(t, cutoff, m)).toEqual({ first: 1, firstKept: 11 })));
      expect(statements.length).toBeGreaterThan(0);
      for (const [sql, params] of statements) {
        if (kind === 'sqlite') {
          const plan = (await sqlitePlan(ds, sql, params)).join(' | ');
          expect(plan).toMatch(/^SEARCH \S+ USING (COVERING )?INDEX UQ_cv_audit_log_tenant_sequence \(tenant_id=\?\)$/);
        } else {
          // The rows each statement's scan really returned: 1 for the first row, 11 for the first kept.
          const scanned = await scans(ds, sql, params);
          expect(scanned.map((n) => n['Node Type'])).not.toContain('Seq Scan');
          for (const n of scanned) expect(n['Actual Rows']).toBeLessThanOrEqual(11);
        }
      }
    });

    it('lists the tenants seeking from one to the next, not reading every row', async () => {
      const statements = await selects(async () => expect(await repo.tenants()).toEqual(expect.arrayContaining([t])));
      expect(statements.length).toBe(1);
      const [[sql]] = statements;
      if (kind === 'sqlite') {
        const plan = await sqlitePlan(ds, sql, []);
        expect(plan.filter((d) => /cv_audit_log/.test(d))).toEqual([
          expect.stringMatching(/^SEARCH cv_audit_log USING COVERING INDEX UQ_cv_audit_log_tenant_sequence/),
          expect.stringMatching(/^SEARCH cv_audit_log USING COVERING INDEX UQ_cv_audit_log_tenant_sequence \(tenant_id>\?\)$/),
        ]);
      } else {
        const rows = planNodes(await explainAnalyze(ds, sql, [])).filter((n) => n['Relation Name'] === 'cv_audit_log');
        expect(rows.length).toBeGreaterThan(0);
        expect(rows.map((n) => n['Node Type'])).not.toContain('Seq Scan');
        // Each probe returns one index entry (a tenant's first), however many rows the chains hold.
        for (const n of rows) expect(n['Actual Rows']).toBeLessThanOrEqual(1);
      }
    });

    it('pages an old time range of the chain by (occurredAt, id) from its index, reading about a page', async () => {
      // An hour near the chain's start (rows 101..160), far from its newest row.
      const [from, to] = [base + 100 * 60_000, base + 160 * 60_000];
      for (const order of ['desc', 'asc'] as const) {
        const statements = await selects(async () => {
          const first = await find({ tenantId: t, fromMs: from, toMs: to, order, by: 'time', limit: 21 });
          expect(first.map((r) => r.sequence)).toEqual(order === 'desc' ? range(160, 140) : range(101, 121));
          const last = first[first.length - 1];
          const after = { order, by: 'time', occurredAtMs: last.occurredAt.getTime(), id: last.id } as const;
          const next = await find({ tenantId: t, fromMs: from, toMs: to, order, by: 'time', limit: 21, after });
          expect(next.map((r) => r.sequence)).toEqual(order === 'desc' ? range(139, 119) : range(122, 142));
        });
        expect(statements).toHaveLength(2);
        for (const [sql, params] of statements) {
          if (kind === 'sqlite') {
            const plan = (await sqlitePlan(ds, sql, params)).join(' | ');
            // A range of the index (the time bounds, or after a cursor (occurred_at, id) past it), and no sort.
            expect(plan).toMatch(/^SEARCH \S+ USING INDEX IDX_cv_audit_log_tenant_time \(tenant_id=\? AND [^|]*\)$/);
          } else {
            const scanned = await scans(ds, sql, params);
            expect(scanned.map((n) => n['Node Type'])).not.toContain('Seq Scan');
            for (const n of scanned) expect(n['Actual Rows']).toBeLessThanOrEqual(21);
          }
        }
      }
    });
  });
});

/** `a` to `b` inclusive, either way. */
const range = (a: number, b: number): number[] => Array.from({ length: Math.abs(b - a) + 1 }, (_, i) => (a <= b ? a + i : a - i));

interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  'Actual Rows'?: number;
  Plans?: PlanNode[];
}

/** PostgreSQL's executed plan of `sql` (EXPLAIN ANALYZE, JSON). */
async function explainAnalyze(ds: DataSource, sql: string, params: unknown[]): Promise<PlanNode> {
  const [row] = (await ds.query(`EXPLAIN (ANALYZE, FORMAT JSON) ${sql}`, params)) as Array<{ 'QUERY PLAN': Array<{ Plan: PlanNode }> }>;
  return row['QUERY PLAN'][0].Plan;
}

/** The scan nodes of PostgreSQL's executed plan of `sql`. */
async function scans(ds: DataSource, sql: string, params: unknown[]): Promise<PlanNode[]> {
  return planNodes(await explainAnalyze(ds, sql, params)).filter((n) => /Scan/.test(n['Node Type']));
}

/** SQLite's plan of `sql`, one detail per step. */
async function sqlitePlan(ds: DataSource, sql: string, params: unknown[]): Promise<string[]> {
  return ((await ds.query(`EXPLAIN QUERY PLAN ${sql}`, params)) as Array<{ detail: string }>).map((p) => p.detail);
}

/** Every node of a plan tree, depth first. */
function planNodes(n: PlanNode): PlanNode[] {
  return [n, ...(n.Plans ?? []).flatMap(planNodes)];
}
