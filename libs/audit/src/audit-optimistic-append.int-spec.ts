import { Logger } from '@nestjs/common';
import { TransactionRunner } from '@app/common';
import { createTestDatabase, TestDatabase } from '@app/testing';
import { AuditAction, AuditEventInput, AuditLogEntry } from '@app/audit';
import { AuditHarness, countRows, event, startAudit, tenant } from '../test/harness';
import { AuditRepository } from './audit.repository';

/**
 * PostgreSQL read batches append optimistically: ONE autocommit INSERT linked to the chain head our
 * last commit left, falling back to the locked path when another writer moved the head. Two
 * DataSources play two replicas writing the same chains.
 */
/** The optimistic try's one statement: the chain locks and the INSERT, named or as one simple query. */
const OPTIMISTIC = {
  prepared: /^INSERT INTO .* FROM jsonb_array_elements\(\$1::jsonb\) AS x WHERE \(SELECT count\(\*\) FROM \(SELECT pg_advisory_xact_lock\(k\) FROM unnest\(\$2::bigint\[\]\)/s,
  simple: /^SELECT pg_advisory_xact_lock\([^)]*\); INSERT INTO/,
};

describe.each([
  ['named statement', true],
  ['simple query (preparedStatements: false)', false],
])('optimistic read-batch append on postgres (two replicas), %s', (_mode, preparedStatements) => {
  let db: TestDatabase;
  let a: AuditHarness;
  let b: AuditHarness;
  let runnerA: TransactionRunner;
  let runnerB: TransactionRunner;
  const options = { preparedStatements, suspicious: { enabled: false }, readBuffer: { batchSize: 50, maxSize: 1000, flushIntervalMs: 3_600_000 } };
  const optimistic = preparedStatements ? OPTIMISTIC.prepared : OPTIMISTIC.simple;

  beforeAll(async () => {
    db = await createTestDatabase('postgres');
    a = await startAudit(db, options);
    b = await startAudit(db, options);
    runnerA = new TransactionRunner(a.ds);
    runnerB = new TransactionRunner(b.ds);
  });

  afterAll(async () => {
    await a?.close();
    await b?.close();
    await db?.drop();
  });

  /** The statements `h` sends while `work` runs. */
  async function statementsOf(h: AuditHarness, work: () => Promise<unknown>): Promise<string[]> {
    const spy = jest.spyOn(h.ds.logger, 'logQuery');
    try {
      await work();
      return spy.mock.calls.map(([sql]) => sql);
    } finally {
      spy.mockRestore();
    }
  }

  const reads = (h: AuditHarness, t: string, k: string, n: number) =>
    Promise.all(Array.from({ length: n }, (_, i) => h.audit.recordRead(event(t, { resource: `${k}-${i}` }))));

  async function chainOf(t: string): Promise<AuditLogEntry[]> {
    return a.ds.getRepository(AuditLogEntry).find({ where: { tenantId: t }, order: { sequence: 'ASC' } });
  }

  async function expectLinearVerifiedChain(t: string, resources: string[]): Promise<void> {
    const rows = await chainOf(t);
    expect(rows.map((r) => r.sequence)).toEqual(rows.map((_, i) => i + 1));
    // Every row present exactly once.
    expect(rows.map((r) => r.resource).sort()).toEqual([...resources].sort());
    await expect(a.audit.verify({ tenantId: t })).resolves.toMatchObject({ valid: true, checked: resources.length });
    await expect(b.audit.verify({ tenantId: t })).resolves.toMatchObject({ valid: true, checked: resources.length });
  }

  it('a steady-state read batch is ONE statement; a batch after another replica appended collides, falls back to the lock and still chains', async () => {
    const t = tenant('fast');
    // The first batch learns the head the locked way.
    const first = await statementsOf(a, () => reads(a, t, 'a1', 20));
    expect(first.some((s) => s.includes('pg_advisory_xact_lock'))).toBe(true);

    const steady = await statementsOf(a, () => reads(a, t, 'a2', 20));
    expect(steady).toHaveLength(1);
    // One round trip: the chain's lock and the INSERT (no head read, no BEGIN/COMMIT).
    expect(steady[0]).toMatch(optimistic);
    expect(await countRows(a.ds, t)).toBe(40); // committed: another connection sees them

    await reads(b, t, 'b1', 10); // replica B moves the head
    const collided = await statementsOf(a, () => reads(a, t, 'a3', 15));
    expect(collided[0]).toMatch(optimistic); // the optimistic try, rejected whole
    expect(collided.filter((s) => /INSERT INTO/.test(s))).toHaveLength(2);
    expect(collided.some((s) => s.includes('pg_advisory_xact_lock'))).toBe(true);
    expect(collided).toContain('COMMIT');

    // The fallback refreshed the head: fast again — and data with `$` sequences goes unchanged (bound, or inline).
    expect(await statementsOf(a, () => reads(a, t, 'a4', 5))).toHaveLength(1);
    await reads(a, t, "a5 $& $' $` $$ $1 $cvj$", 1);
    const names = (k: string, n: number) => Array.from({ length: n }, (_, i) => `${k}-${i}`);
    await expectLinearVerifiedChain(t, [...names('a1', 20), ...names('a2', 20), ...names('b1', 10), ...names('a3', 15), ...names('a4', 5), "a5 $& $' $` $$ $1 $cvj$-0"]);
  });

  if (preparedStatements) {
    it('a pooler that loses the named statement costs one batch its fast path: the batch still commits, later ones go as simple queries', async () => {
      // One connection, whose prepared statements are dropped behind node-postgres' back (what a pooler
      // in transaction mode amounts to).
      const solo = await startAudit({ ...db, options: { ...db.options, extra: { max: 1 } } } as TestDatabase, options);
      try {
        const t = tenant('pooler');
        const warn = jest.spyOn(Logger.prototype, 'warn');
        await reads(solo, t, 'p1', 3); // locked: learns the head
        await reads(solo, t, 'p2', 3); // named statement, prepared on the one connection
        await solo.ds.query('DEALLOCATE ALL');
        const lost = await statementsOf(solo, () => reads(solo, t, 'p3', 3));
        expect(lost[0]).toMatch(OPTIMISTIC.prepared);
        expect(lost).toContain('COMMIT'); // the locked way
        expect(warn.mock.calls.some(([m]) => /simple queries[\s\S]*pooler in transaction mode/.test(String(m)))).toBe(true);
        warn.mockRestore();
        const after = await statementsOf(solo, () => reads(solo, t, 'p4', 3));
        expect(after).toHaveLength(1);
        expect(after[0]).toMatch(OPTIMISTIC.simple);
        expect(solo.audit.healthy).toBe(true);
        const names = (k: string) => Array.from({ length: 3 }, (_, i) => `${k}-${i}`);
        await expectLinearVerifiedChain(t, [...names('p1'), ...names('p2'), ...names('p3'), ...names('p4')]);
      } finally {
        await solo.close();
      }
    });
  }

  it('a caller transaction that appended and rolled back leaves no cached head behind: the next batch links to the committed head', async () => {
    const t = tenant('rollback');
    await reads(a, t, 'before', 5);
    await expect(
      runnerA.run(async () => {
        await a.audit.record(event(t, { resource: 'rolled-back', action: AuditAction.UPDATE_METADATA }));
        throw new Error('the caller fails after its audit row');
      }),
    ).rejects.toThrow('the caller fails');
    await reads(a, t, 'after', 5);
    await reads(a, t, 'again', 5);
    const names = (k: string) => Array.from({ length: 5 }, (_, i) => `${k}-${i}`);
    await expectLinearVerifiedChain(t, [...names('before'), ...names('after'), ...names('again')]);
  });

  it('a prune that deletes a chain up to its head does not leave the head cached (the sequences after it are free again)', async () => {
    const t = tenant('prune');
    await reads(a, t, 'old-a', 5); // A caches sequence 5
    await reads(b, t, 'old-b', 5); // B appends 6..10
    await a.audit.prune(new Date(Date.now() + 60_000)); // deletes 1..10, checkpoint at 11
    await reads(a, t, 'new', 5);
    const rows = await chainOf(t);
    expect(rows.map((r) => r.action)).toEqual([AuditAction.RETENTION_CHECKPOINT, ...Array(5).fill('read')]);
    expect(rows.map((r) => r.sequence)).toEqual([11, 12, 13, 14, 15, 16]);
    await expect(a.audit.verify({ tenantId: t })).resolves.toMatchObject({ valid: true });
  });

  /** Runs `between` once, right after B's next head read of `t` (inside B's locked append). */
  function afterNextHeadReadOfB(between: () => Promise<unknown>): void {
    const repo = b.moduleRef.get(AuditRepository);
    const spies: jest.SpyInstance[] = [];
    for (const method of ['head', 'heads'] as const) {
      const real = (repo[method] as (...args: unknown[]) => Promise<unknown>).bind(repo);
      const spy = jest.spyOn(repo, method).mockImplementation((async (...args: unknown[]) => {
        for (const s of spies) s.mockRestore();
        const result = await real(...args);
        await between();
        return result;
      }) as never);
      spies.push(spy);
    }
  }

  it('an optimistic batch waits for a locked writer between its head read and insert instead of overtaking it (caller and own transactions)', async () => {
    const t = tenant('race');
    await reads(a, t, 'a0', 3); // A caches its head
    const names = (k: string, n: number) => Array.from({ length: n }, (_, i) => `${k}-${i}`);
    const pause = () => new Promise((r) => setTimeout(r, 300));

    // B's caller transaction holds the chain's lock and has read the head; A's fast batch starts now.
    let aBatch: Promise<unknown> | undefined;
    afterNextHeadReadOfB(async () => {
      aBatch = reads(a, t, 'a1', 4);
      await pause(); // time enough to overtake, were it not for the lock
    });
    await runnerB.run(async () => {
      await b.audit.record(event(t, { resource: 'b-caller', action: AuditAction.UPDATE_METADATA }));
    });
    await aBatch; // waited for B's commit, collided with B's row, went the locked way

    afterNextHeadReadOfB(async () => {
      aBatch = reads(a, t, 'a2', 4);
      await pause();
    });
    await b.audit.recordMany([event(t, { resource: 'b-own-0' }), event(t, { resource: 'b-own-1' })]);
    await aBatch;

    const expected = [...names('a0', 3), 'b-caller', ...names('a1', 4), 'b-own-0', 'b-own-1', ...names('a2', 4)];
    await expectLinearVerifiedChain(t, expected);
    expect((await chainOf(t)).map((r) => r.resource)).toEqual(expected);
  });

  it('reads, records (own and caller transactions, some rolled back) and batches of both replicas on the same chains: each committed row once, contiguous, verified', async () => {
    const tenants = [tenant('mix-1'), tenant('mix-2'), tenant('mix-3')];
    const expected = new Map<string, string[]>(tenants.map((t) => [t, []]));
    const work: Array<Promise<unknown>> = [];
    const want = (t: string, resource: string) => expected.get(t)!.push(resource);
    const replicas = [
      { name: 'A', h: a, runner: runnerA },
      { name: 'B', h: b, runner: runnerB },
    ];
    for (let round = 0; round < 8; round++) {
      for (const { name, h, runner } of replicas) {
        for (const t of tenants) {
          for (let i = 0; i < 12; i++) {
            const resource = `${name}-read-${round}-${i}`;
            want(t, resource);
            work.push(h.audit.recordRead(event(t, { resource })));
          }
          const own = `${name}-record-${round}`;
          want(t, own);
          work.push(h.audit.record(event(t, { resource: own, action: AuditAction.UPDATE_METADATA })));
          const inCaller = `${name}-caller-${round}`;
          want(t, inCaller);
          work.push(runner.run(() => h.audit.record(event(t, { resource: inCaller, action: AuditAction.UPDATE_METADATA }))));
          // Rolled back after its row: never in the chain.
          work.push(
            runner
              .run(async () => {
                await h.audit.record(event(t, { resource: `${name}-rolled-back-${round}`, action: AuditAction.UPDATE_METADATA }));
                throw new Error('rolled back');
              })
              .catch(() => undefined),
          );
        }
        const many: AuditEventInput[] = tenants.map((t) => {
          const resource = `${name}-many-${round}`;
          want(t, resource);
          return event(t, { resource, action: AuditAction.UPDATE_METADATA });
        });
        work.push(h.audit.recordMany(many));
      }
      // Let some batches go between rounds, so fast, colliding and locked appends interleave.
      if (round % 2 === 1) await Promise.all(work.splice(0));
    }
    await Promise.all(work);
    for (const t of tenants) await expectLinearVerifiedChain(t, expected.get(t)!);
    expect(a.audit.healthy && b.audit.healthy).toBe(true);
  });
});
