import { Client } from 'pg';
import { ManualClock, postgresTimeoutOptions } from '@app/common';
import { AuditFixture, startAuditOn } from '../test/fixtures';
import { countRows, event, tenant } from '../test/harness';

/**
 * Retention under the host's PostgreSQL bounds (a 1 s statement timeout, a 1.5 s query deadline here): its first
 * run over a large log finds and deletes millions of rows of a chain in one statement, which takes longer than
 * any request may. A trigger makes the delete slow here.
 */
describe('audit retention under PostgreSQL statement timeouts', () => {
  let h: AuditFixture;
  const clock = new ManualClock(new Date('2026-01-01T00:00:00Z'));

  beforeAll(async () => {
    h = await startAuditOn('postgres', { suspicious: { enabled: false } }, {
      clock,
      lock: true,
      extra: postgresTimeoutOptions(Client, { queryTimeoutMs: 1500, statementTimeoutMs: 1000, idleInTransactionTimeoutMs: 2000 }),
    });
    await h.ds.query(`CREATE FUNCTION slow_delete() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(2); RETURN NULL; END $$`);
    await h.ds.query(`CREATE TRIGGER slow_delete BEFORE DELETE ON cv_audit_log FOR EACH STATEMENT EXECUTE FUNCTION slow_delete()`);
  });
  afterAll(() => h?.close());

  it('prunes a chain whose delete outlasts the statement timeout and the query deadline; verify stays green', async () => {
    const t = tenant('slow');
    for (let i = 0; i < 5; i++) await h.audit.record(event(t, { resource: `cred-${i}` }));
    clock.set(new Date('2026-03-01T00:00:00Z'));
    await h.audit.record(event(t, { resource: 'kept' }));

    await expect(h.audit.prune(new Date('2026-02-01T00:00:00Z'))).resolves.toMatchObject({ deleted: 5 });
    expect(await countRows(h.ds, t)).toBe(2); // the kept row and the checkpoint
    await expect(h.audit.verify({ tenantId: t })).resolves.toMatchObject({ valid: true });
  }, 60_000);
});
