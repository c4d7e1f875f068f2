import { Client } from 'pg';
import { ManualClock, postgresTimeoutOptions } from '@app/common';
import { POSTGRES_URL, startStallProxy, type StallProxy } from '@app/testing';
import { AuditRetentionService } from './audit-retention.service';
import { AuditErrorCode, AuditRetentionTimeoutError } from './errors/audit.errors';
import { AuditFixture, startAuditOn } from '../test/fixtures';
import { countRows, event, tenant } from '../test/harness';

/**
 * Retention under the host's PostgreSQL bounds (a 1 s statement timeout, a 1.5 s query deadline here) and its own
 * (`retention.statementTimeoutMs`, 4 s here): its first run over a large log finds and deletes millions of rows of a
 * chain in one statement, which takes longer than any request may. A trigger makes the delete slow here (2 s).
 * The DataSource goes through a proxy that can stall the way a hung server or path does (TCP keepalive never trips).
 */
describe('audit retention under PostgreSQL statement timeouts', () => {
  let h: AuditFixture;
  let proxy: StallProxy;
  const clock = new ManualClock(new Date('2026-01-01T00:00:00Z'));
  const RETENTION_TIMEOUT_MS = 4000;

  beforeAll(async () => {
    proxy = await startStallProxy(POSTGRES_URL);
    h = await startAuditOn('postgres', { suspicious: { enabled: false }, retention: { statementTimeoutMs: RETENTION_TIMEOUT_MS } }, {
      clock,
      lock: true,
      url: proxy.url,
      extra: postgresTimeoutOptions(Client, { queryTimeoutMs: 1500, statementTimeoutMs: 1000, idleInTransactionTimeoutMs: 2000 }),
    });
    await h.ds.query(`CREATE FUNCTION slow_delete() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(2); RETURN NULL; END $$`);
    await h.ds.query(`CREATE TRIGGER slow_delete BEFORE DELETE ON cv_audit_log FOR EACH STATEMENT EXECUTE FUNCTION slow_delete()`);
  });
  afterAll(async () => {
    proxy?.resume();
    await h?.close();
    await proxy?.close();
  });

  const retention = () => h.moduleRef.get(AuditRetentionService);
  const record = async (t: string) => {
    clock.set(new Date('2026-01-01T00:00:00Z'));
    for (let i = 0; i < 5; i++) await h.audit.record(event(t, { resource: `cred-${i}` }));
    clock.set(new Date('2026-03-01T00:00:00Z'));
    await h.audit.record(event(t, { resource: 'kept' }));
  };

  it('prunes a chain whose delete outlasts the statement timeout and the query deadline; verify stays green', async () => {
    const t = tenant('slow');
    await record(t);

    await expect(h.audit.prune(new Date('2026-02-01T00:00:00Z'))).resolves.toMatchObject({ deleted: 5 });
    expect(await countRows(h.ds, t)).toBe(2); // the kept row and the checkpoint
    await expect(h.audit.verify({ tenantId: t })).resolves.toMatchObject({ valid: true });
  }, 60_000);

  it('a run whose delete PostgreSQL stops answering ends with AUDIT_RETENTION_TIMEOUT, and the next run prunes', async () => {
    const t = tenant('stalled');
    await record(t);
    clock.set(new Date('2026-05-01T00:00:00Z')); // 90 days after the old rows, fewer after the kept one

    // Stall the proxy while the DELETE runs (PostgreSQL shows it active on one of the proxy's connections).
    const admin = new Client({ connectionString: POSTGRES_URL });
    await admin.connect();
    const run = retention().runOnce().then(
      () => undefined,
      (e: unknown) => e,
    );
    try {
      for (let seen = false; !seen; ) {
        const { rows } = await admin.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM pg_stat_activity WHERE state = 'active' AND query ILIKE 'DELETE FROM%cv_audit_log%' AND client_port = ANY($1)",
          [proxy.serverPorts()],
        );
        seen = rows[0].n > 0;
        if (!seen) await new Promise((r) => setTimeout(r, 20));
      }
    } finally {
      await admin.end();
    }
    proxy.stall();
    const failed = await run;
    expect(failed).toBeInstanceOf(AuditRetentionTimeoutError);
    expect(failed).toMatchObject({ code: AuditErrorCode.RETENTION_TIMEOUT, statementTimeoutMs: RETENTION_TIMEOUT_MS });

    // PostgreSQL answers on new connections; the stalled ones stay wedged (the server ends their transactions itself).
    proxy.passNew();
    let next = await retention().runOnce();
    // The retention lock's session was lost in the stall: its backend is ended once PostgreSQL answers.
    for (const until = Date.now() + 30_000; !next.acquired && Date.now() < until; next = await retention().runOnce()) await new Promise((r) => setTimeout(r, 500));
    expect(next).toMatchObject({ acquired: true, deleted: 5 });
    expect(await countRows(h.ds, t)).toBe(2);
    await expect(h.audit.verify({ tenantId: t })).resolves.toMatchObject({ valid: true });
  }, 90_000);
});
