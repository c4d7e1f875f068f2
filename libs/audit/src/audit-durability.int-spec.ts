import { AuditUnavailableError } from '@app/audit';
import { CommitNotDurableError, SqliteDurableCommit } from '@app/common';
import { createTestDatabase, TestDatabase } from '@app/testing';
import { AuditHarness, countRows, event, startAudit, tenant } from '../test/harness';

/**
 * SQLite as the host opens it (WAL, synchronous FULL): a read batch's COMMIT is flushed off the event
 * loop, and a read resolves only once its row is on disk. A failed flush refuses that batch's reads.
 */
describe('buffered read auditing on SQLite (WAL, FULL): durable before a read resolves', () => {
  let db: TestDatabase;
  let h: AuditHarness;
  beforeAll(async () => {
    db = await createTestDatabase('sqlite'); // WAL and FULL, as the host opens it
    h = await startAudit(db, { readBuffer: { batchSize: 50, flushIntervalMs: 3_600_000 } });
  });
  afterAll(async () => {
    await h?.close();
    await db?.drop();
  });
  afterEach(() => jest.restoreAllMocks());

  it('a read resolves after its batch was flushed to disk', async () => {
    const sync = jest.spyOn(SqliteDurableCommit.prototype, 'sync');
    const t = tenant();
    await Promise.all(Array.from({ length: 10 }, (_, i) => h.audit.recordRead(event(t, { resource: `cred-${i}` }))));
    expect(sync).toHaveBeenCalled();
    await Promise.all(sync.mock.results.map((r) => r.value));
    expect(await countRows(h.ds, t)).toBe(10);
  });

  it('a batch that committed but could not be flushed: its reads are refused, its rows are written once, the next batch is served', async () => {
    jest.spyOn(SqliteDurableCommit.prototype, 'sync').mockRejectedValueOnce(new CommitNotDurableError({ cause: new Error('EIO') }));
    const t = tenant();
    const refused = await Promise.allSettled(Array.from({ length: 5 }, (_, i) => h.audit.recordRead(event(t, { resource: `cred-${i}` }))));
    expect(refused.map((r) => r.status)).toEqual(Array(5).fill('rejected'));
    expect((refused[0] as PromiseRejectedResult).reason).toBeInstanceOf(AuditUnavailableError);
    expect(await countRows(h.ds, t)).toBe(5); // committed once, not retried into duplicates
    expect(h.audit.bufferDepth).toBe(0);

    await h.audit.recordRead(event(t, { resource: 'after' }));
    expect(await countRows(h.ds, t)).toBe(6);
    expect(h.audit.healthy).toBe(true);
    await expect(h.audit.verify({ tenantId: t })).resolves.toMatchObject({ valid: true, checked: 6 });
  });
});
