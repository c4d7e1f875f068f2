import { AuditAction, AuditLogEntry, AuditUnavailableError } from '@app/audit';
import { SqliteDurableCommit, SqliteWriteWorker, TransactionRunner } from '@app/common';
import { createTestDatabase, TestDatabase } from '@app/testing';
import { AuditHarness, countRows, event, startAudit, tenant } from '../test/harness';

/**
 * SQLite as the host opens it (a file, WAL, FULL): once a chain's head is known, its read batches are
 * inserted and committed by the write worker on its own connection, linked to the head our last commit
 * left. Anything that moved the head meanwhile (another process on the same file: a CLI command) makes
 * the insert fail on the chain's unique index, and the batch goes the locked way on the main connection.
 * Two DataSources on one file play the host and that other process.
 */
describe('read batches written by the SQLite write worker', () => {
  let db: TestDatabase;
  let a: AuditHarness;
  let b: AuditHarness;
  const options = { suspicious: { enabled: false }, readBuffer: { batchSize: 50, maxSize: 1000, flushIntervalMs: 3_600_000 } };

  beforeAll(async () => {
    db = await createTestDatabase('sqlite');
    a = await startAudit(db, options);
    b = await startAudit(db, options);
  });

  afterAll(async () => {
    await a?.close();
    await b?.close();
    await db?.drop();
  });

  afterEach(() => jest.restoreAllMocks());

  const reads = (h: AuditHarness, t: string, k: string, n: number) =>
    Promise.all(Array.from({ length: n }, (_, i) => h.audit.recordRead(event(t, { resource: `${k}-${i}` }))));
  const names = (k: string, n: number) => Array.from({ length: n }, (_, i) => `${k}-${i}`);

  async function expectLinearVerifiedChain(t: string, resources: string[]): Promise<void> {
    const rows = await a.ds.getRepository(AuditLogEntry).find({ where: { tenantId: t }, order: { sequence: 'ASC' } });
    expect(rows.map((r) => r.sequence)).toEqual(rows.map((_, i) => i + 1));
    expect(rows.map((r) => r.resource).sort()).toEqual([...resources].sort()); // each exactly once
    await expect(a.audit.verify({ tenantId: t })).resolves.toMatchObject({ valid: true, checked: resources.length });
  }

  it('after the first batch of a chain, its batches commit in the worker, and a read resolves only then', async () => {
    const t = tenant('worker');
    const worker = jest.spyOn(SqliteWriteWorker.prototype, 'transaction');
    const mainFlush = jest.spyOn(SqliteDurableCommit.prototype, 'sync');
    await reads(a, t, 'first', 10); // learns the head the locked way, on the main connection
    expect(worker).not.toHaveBeenCalled();
    expect(mainFlush).toHaveBeenCalledTimes(1);

    await reads(a, t, 'second', 20);
    expect(worker).toHaveBeenCalledTimes(1);
    expect(mainFlush).toHaveBeenCalledTimes(1); // nothing more written on the main connection
    expect(await countRows(a.ds, t)).toBe(30); // committed when the reads resolved
    await reads(a, t, 'third', 5);
    expect(worker).toHaveBeenCalledTimes(2);
    expect((worker.mock.contexts[0] as SqliteWriteWorker).synchronous).toBe(2); // FULL, as the host's connection
    await expectLinearVerifiedChain(t, [...names('first', 10), ...names('second', 20), ...names('third', 5)]);
  });

  it('another process appended to the chain: the worker batch is refused whole, the batch goes the locked way, nothing lost or doubled', async () => {
    const t = tenant('other-process');
    await reads(a, t, 'a1', 5);
    await reads(a, t, 'a2', 5); // worker; A caches sequence 10
    await b.audit.record(event(t, { resource: 'b-record', action: AuditAction.UPDATE_METADATA })); // sequence 11
    await reads(b, t, 'b-reads', 3);
    const worker = jest.spyOn(SqliteWriteWorker.prototype, 'transaction');
    await reads(a, t, 'a3', 6);
    expect(worker).toHaveBeenCalledTimes(1);
    await expect(worker.mock.results[0].value).rejects.toMatchObject({ driverError: { code: 'SQLITE_CONSTRAINT_UNIQUE' } });
    expect(a.audit.healthy).toBe(true);
    await reads(a, t, 'a4', 4); // the head is known again: the worker
    expect(worker).toHaveBeenCalledTimes(2);
    await expect(worker.mock.results[1].value).resolves.toBeUndefined();
    await expectLinearVerifiedChain(t, [...names('a1', 5), ...names('a2', 5), 'b-record', ...names('b-reads', 3), ...names('a3', 6), ...names('a4', 4)]);
  });

  it('reads, records in own and in callers\u2019 transactions (some rolled back) on the same chains, at once: each committed row once, contiguous, verified', async () => {
    const t = tenant('mix');
    const runner = new TransactionRunner(a.ds);
    await reads(a, t, 'warm', 3);
    const expected = names('warm', 3);
    const work: Array<Promise<unknown>> = [];
    for (let round = 0; round < 5; round++) {
      work.push(reads(a, t, `r${round}`, 8));
      expected.push(...names(`r${round}`, 8));
      work.push(a.audit.record(event(t, { resource: `own-${round}`, action: AuditAction.UPDATE_METADATA })));
      expected.push(`own-${round}`);
      work.push(runner.run(() => a.audit.record(event(t, { resource: `caller-${round}`, action: AuditAction.UPDATE_METADATA }))));
      expected.push(`caller-${round}`);
      work.push(
        runner
          .run(async () => {
            await a.audit.record(event(t, { resource: `rolled-back-${round}`, action: AuditAction.UPDATE_METADATA }));
            throw new Error('the caller fails after its audit row');
          })
          .catch(() => undefined),
      );
    }
    await Promise.all(work);
    await reads(a, t, 'tail', 4);
    expected.push(...names('tail', 4));
    await expectLinearVerifiedChain(t, expected);
  });

  it('a worker batch waits for a transaction open on the main connection, which had read before (it could not write after a commit of the worker)', async () => {
    const t = tenant('snapshot');
    const runner = new TransactionRunner(a.ds);
    await reads(a, t, 'warm', 2);
    let batch: Promise<unknown> | undefined;
    await runner.run(async () => {
      await runner.manager.query('SELECT COUNT(*) FROM cv_audit_log WHERE tenant_id = ?', [t]); // this transaction's snapshot
      batch = reads(a, t, 'during', 3);
      await new Promise((r) => setTimeout(r, 100)); // time enough for the worker, were it not held back
      await a.audit.record(event(t, { resource: 'caller', action: AuditAction.UPDATE_METADATA }));
    });
    await batch;
    await expectLinearVerifiedChain(t, [...names('warm', 2), 'caller', ...names('during', 3)]);
  });

  it('fail-closed: a worker transaction that fails refuses its reads and keeps their rows buffered; they are written once it recovers', async () => {
    const t = tenant('failing');
    await reads(a, t, 'ok', 3);
    await a.ds.query(
      `CREATE TRIGGER cv_test_refuse BEFORE INSERT ON cv_audit_log WHEN NEW.resource LIKE 'poison%' BEGIN SELECT RAISE(ABORT, 'refused by the test'); END`,
    );
    try {
      const refused = await Promise.allSettled(Array.from({ length: 4 }, (_, i) => a.audit.recordRead(event(t, { resource: `poison-${i}` }))));
      expect(refused.every((r) => r.status === 'rejected' && r.reason instanceof AuditUnavailableError)).toBe(true);
      expect(a.audit.healthy).toBe(false);
      await expect(a.audit.recordRead(event(t, { resource: 'while-failing' }))).rejects.toBeInstanceOf(AuditUnavailableError);
      expect(await countRows(a.ds, t)).toBe(3);
    } finally {
      await a.ds.query('DROP TRIGGER cv_test_refuse');
    }
    await a.audit.flush();
    expect(a.audit.healthy).toBe(true);
    await expectLinearVerifiedChain(t, [...names('ok', 3), ...names('poison', 4)]);
  });

  it('a worker that is gone: read batches are written on the main connection, still chained', async () => {
    const solo = await startAudit(db, options);
    try {
      const t = tenant('gone');
      await reads(solo, t, 'before', 3);
      await reads(solo, t, 'worker', 3);
      // The worker of `solo`, found through its next batch, then stopped behind the writer's back.
      const workers = jest.spyOn(SqliteWriteWorker.prototype, 'transaction');
      await reads(solo, t, 'probe', 1);
      const worker = workers.mock.contexts[0] as SqliteWriteWorker;
      await worker.stop();
      const mainFlush = jest.spyOn(SqliteDurableCommit.prototype, 'sync');
      await reads(solo, t, 'after', 5);
      expect(mainFlush).toHaveBeenCalled();
      expect(solo.audit.healthy).toBe(true);
      const rows = await solo.ds.getRepository(AuditLogEntry).find({ where: { tenantId: t }, order: { sequence: 'ASC' } });
      expect(rows.map((r) => r.resource)).toEqual([...names('before', 3), ...names('worker', 3), 'probe-0', ...names('after', 5)]);
      await expect(solo.audit.verify({ tenantId: t })).resolves.toMatchObject({ valid: true, checked: 12 });
    } finally {
      await solo.close();
    }
  });

  it('with sqliteWriteWorker: false, every batch is written on the main connection', async () => {
    const off = await startAudit(db, { ...options, sqliteWriteWorker: false });
    try {
      const worker = jest.spyOn(SqliteWriteWorker.prototype, 'transaction');
      const t = tenant('off');
      await reads(off, t, 'a', 5);
      await reads(off, t, 'b', 5);
      expect(worker).not.toHaveBeenCalled();
      expect(await countRows(off.ds, t)).toBe(10);
    } finally {
      await off.close();
    }
  });
});
