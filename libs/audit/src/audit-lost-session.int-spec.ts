import { Client } from 'pg';
import { postgresTimeoutOptions } from '@app/common';
import { POSTGRES_URL, startStallProxy, type StallProxy } from '@app/testing';
import { AuditLogEntry } from './entities/audit-log-entry.entity';
import { AuditFixture, startAuditOn } from '../test/fixtures';
import { event, tenant } from '../test/harness';

/**
 * A PostgreSQL read batch appends optimistically: one autocommit INSERT after the cached chain head. When its
 * session breaks while it runs, the batch may or may not have committed. Either way each read is audited exactly
 * once and served (fail-closed stays on): a lost session that another can replace does not refuse reads. The
 * DataSource goes through a proxy that cuts one connection at the chosen moment.
 */
describe.each([
  ['named statement', true],
  ['simple query', false],
])('audit read batches whose PostgreSQL session breaks mid-statement (%s)', (_mode, preparedStatements) => {
  let h: AuditFixture;
  let proxy: StallProxy;

  beforeAll(async () => {
    proxy = await startStallProxy(POSTGRES_URL);
    // No interval retry during a test (an hour): what a read's caller sees is the batch's own outcome.
    h = await startAuditOn('postgres', { preparedStatements, suspicious: { enabled: false }, readBuffer: { batchSize: 50, maxSize: 1000, flushIntervalMs: 3_600_000 } }, { url: proxy.url });
  });
  afterAll(async () => {
    await h?.close();
    await proxy?.close();
  });

  const reads = (t: string, prefix: string, n: number) => Promise.all(Array.from({ length: n }, (_, i) => h.audit.recordRead(event(t, { resource: `${prefix}-${i}` }))));

  async function expectEachOnce(t: string, resources: string[]): Promise<void> {
    const rows = await h.ds.getRepository(AuditLogEntry).find({ where: { tenantId: t }, order: { sequence: 'ASC' } });
    expect(rows.map((r) => r.sequence)).toEqual(rows.map((_, i) => i + 1));
    expect(rows.map((r) => r.resource).sort()).toEqual([...resources].sort());
    await expect(h.audit.verify({ tenantId: t })).resolves.toMatchObject({ valid: true, checked: resources.length });
  }

  const names = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}-${i}`);

  it('a batch whose answer was lost after it committed is not written again, and its reads are served', async () => {
    const t = tenant('lost-answer');
    await reads(t, 'warm', 5); // the locked way: the head is cached after it
    await reads(t, 'steady', 5); // optimistic
    // The INSERT ran and committed; its answer ("INSERT 0 5") never reaches the host.
    proxy.cutNext('reply', /INSERT 0 5/);
    await expect(reads(t, 'lost', 5)).resolves.toHaveLength(5);
    expect(h.audit.healthy).toBe(true);
    await reads(t, 'after', 5);
    await expectEachOnce(t, [...names('warm', 5), ...names('steady', 5), ...names('lost', 5), ...names('after', 5)]);
  });

  it("a batch that committed while PgBouncer's server connection under it crashed is not written again, and its reads are served", async () => {
    const t = tenant('pooler-crashed');
    await reads(t, 'warm', 5);
    await reads(t, 'steady', 5);
    // The INSERT committed; in place of its answer the client gets PgBouncer's 08P01 "server conn crashed?" and the
    // connection closes, as PgBouncer does when the server connection under a client's query breaks.
    proxy.cutNext('reply', /INSERT 0 5/, { poolerError: 'server conn crashed?' });
    await expect(reads(t, 'lost', 5)).resolves.toHaveLength(5);
    expect(h.audit.healthy).toBe(true);
    await reads(t, 'after', 5);
    await expectEachOnce(t, [...names('warm', 5), ...names('steady', 5), ...names('lost', 5), ...names('after', 5)]);
  });

  it('a batch going the locked way (no cached head) whose COMMIT was answered to nobody is not written again', async () => {
    const t = tenant('lost-commit');
    proxy.cutNext('reply', /COMMIT/);
    await expect(reads(t, 'first', 5)).resolves.toHaveLength(5);
    expect(h.audit.healthy).toBe(true);
    await reads(t, 'after', 5);
    await expectEachOnce(t, [...names('first', 5), ...names('after', 5)]);
  });

  it('a batch going the locked way whose INSERT never reached PostgreSQL is appended on a new session', async () => {
    const t = tenant('lost-locked');
    proxy.cutNext('request', /first-0/);
    await expect(reads(t, 'first', 5)).resolves.toHaveLength(5);
    expect(h.audit.healthy).toBe(true);
    await expectEachOnce(t, names('first', 5));
  });

  it('a batch that committed unseen, then lost its settling sessions twice, is not written again by the retry', async () => {
    const t = tenant('lost-thrice');
    await reads(t, 'warm', 5);
    await reads(t, 'steady', 5);
    // The optimistic INSERT commits with its answer lost; both locked attempts lose their session at their first statement.
    proxy.cutNext('reply', /INSERT 0 5/);
    proxy.cutNext('request', /START TRANSACTION/);
    proxy.cutNext('request', /START TRANSACTION/);
    await expect(reads(t, 'lost', 5)).rejects.toMatchObject({ codeName: 'AUDIT_UNAVAILABLE' });
    // The failed batch stays buffered: the retry (the interval's, here at once) settles it.
    await h.audit.flush();
    expect(h.audit.healthy).toBe(true);
    await expectEachOnce(t, [...names('warm', 5), ...names('steady', 5), ...names('lost', 5)]);
  });

  it('a batch whose statement never reached PostgreSQL is appended the locked way, and its reads are served', async () => {
    const t = tenant('lost-request');
    await reads(t, 'warm', 5);
    await reads(t, 'steady', 5);
    // The batch's rows are in its statement's bytes (a named statement's Bind, a simple query's text).
    proxy.cutNext('request', /lost-0/);
    await expect(reads(t, 'lost', 5)).resolves.toHaveLength(5);
    expect(h.audit.healthy).toBe(true);
    await expectEachOnce(t, [...names('warm', 5), ...names('steady', 5), ...names('lost', 5)]);
  });
});

/**
 * The host's client-side query deadline closes a connection whose answer does not come (a hung path): the statement
 * may have committed on the server. That batch fails (DATABASE_UNRESPONSIVE is not a lost session another can
 * replace at once), and the buffer's retry must not write it a second time.
 */
describe('an audit read batch whose answer never comes (the query deadline)', () => {
  let h: AuditFixture;
  let proxy: StallProxy;

  beforeAll(async () => {
    proxy = await startStallProxy(POSTGRES_URL);
    h = await startAuditOn('postgres', { suspicious: { enabled: false }, readBuffer: { batchSize: 50, maxSize: 1000, flushIntervalMs: 3_600_000 } }, {
      url: proxy.url,
      extra: postgresTimeoutOptions(Client, { queryTimeoutMs: 500, statementTimeoutMs: 0, idleInTransactionTimeoutMs: 0 }),
    });
  });
  afterAll(async () => {
    await h?.close();
    await proxy?.close();
  });

  const reads = (t: string, prefix: string, n: number) => Promise.all(Array.from({ length: n }, (_, i) => h.audit.recordRead(event(t, { resource: `${prefix}-${i}` }))));

  it('a committed batch whose answer stalled past the deadline is not written again by the retry', async () => {
    const t = tenant('deadline');
    await reads(t, 'warm', 5);
    await reads(t, 'steady', 5);
    proxy.cutNext('reply', /INSERT 0 5/, 'stall');
    await expect(reads(t, 'lost', 5)).rejects.toMatchObject({ codeName: 'AUDIT_UNAVAILABLE' });
    await h.audit.flush();
    expect(h.audit.healthy).toBe(true);
    const rows = await h.ds.getRepository(AuditLogEntry).find({ where: { tenantId: t }, order: { sequence: 'ASC' } });
    const expected = ['warm', 'steady', 'lost'].flatMap((p) => Array.from({ length: 5 }, (_, i) => `${p}-${i}`));
    expect(rows.map((r) => r.resource).sort()).toEqual(expected.sort());
    await expect(h.audit.verify({ tenantId: t })).resolves.toMatchObject({ valid: true, checked: 15 });
  });
});
