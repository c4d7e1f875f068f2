import { randomBytes } from 'node:crypto';
import { DataSource } from 'typeorm';
import { AuditService } from '@app/audit';
import { DATABASE_KINDS } from '@app/testing';
import { legacySeedKind, legacySeedRows, seedLegacyTable } from './legacy/legacy-seed';
import { MigrationRunner } from './runner/migration.runner';
import { SqlLegacySource } from './sources/sql-legacy-source';
import type { MigrationSummary } from './runner/migration.types';
import { migrationStackImports, useMigrationStack, type MigrationStack } from './testing/migration-stack';

/**
 * Integration: a run stopped through `MigrationRunOptions.signal` while the vault is slow — it takes no new connection,
 * drops the vault calls not sent yet (reads in flight too), resolves promptly with `aborted: true`, and a re-run
 * stores every field once, with one MIGRATE row each, as after a kill -9.
 */
describe.each(DATABASE_KINDS)('a migration aborted through its signal (%s)', (kind) => {
  const COUNT = 30;
  const keys = [randomBytes(32)];
  const tenant = `abort-${randomBytes(3).toString('hex')}`;
  const stack = useMigrationStack(
    kind,
    // Two vault calls at a time, groups of ten connections (two groups in flight): the slow vault keeps most of their
    // value writes queued under the limit.
    ({ db, vault }) => migrationStackImports({ database: db.options, vault }, { keys: keys.map((k) => k.toString('hex')), concurrency: { initial: 2, min: 1, max: 2 }, group: { maxConnections: 10 } }),
    (legacy) => seedLegacyTable(legacy, legacySeedRows({ count: COUNT, keys, tenants: [tenant] })),
  );

  let expected = 0;
  for (let i = 0; i < COUNT; i++) expected += legacySeedKind(i, {}) === 1 ? 1 : 2;
  const count = async (sql: string) => Number((await stack.app.get(DataSource).query(sql))[0].n);
  const live = () => count(`SELECT COUNT(*) AS n FROM cv_credentials WHERE tenant_id = '${tenant}' AND status <> 'deleted'`);
  const slots = () => count(`SELECT COUNT(*) AS n FROM (SELECT DISTINCT integration_id, connection_id, type FROM cv_credentials WHERE tenant_id = '${tenant}' AND status <> 'deleted') d`);
  const migrateRows = () => count(`SELECT COUNT(*) AS n FROM cv_audit_log WHERE tenant_id = '${tenant}' AND action = 'migrate'`);
  const withOneMigrateRow = () =>
    count(`SELECT COUNT(*) AS n FROM cv_credentials c WHERE c.tenant_id = '${tenant}' AND (SELECT COUNT(*) FROM cv_audit_log a WHERE a.tenant_id = c.tenant_id AND a.action = 'migrate' AND a.resource = c.id) = 1`);
  const failedStores = () => count(`SELECT COUNT(*) AS n FROM cv_audit_log WHERE tenant_id = '${tenant}' AND action = 'store' AND result = 'failure'`);

  afterEach(() => stack.vault.clearFaults());

  it('stops promptly once aborted mid-run (writes not sent are dropped), says so, and a re-run stores every field once with one MIGRATE row each', async () => {
    const source = new SqlLegacySource(stack.legacy.db);
    // Every value write takes 400 ms: the whole run would take ~9 s at two at a time.
    stack.vault.injectFault({ kind: 'latency', latencyMs: 400, operations: ['setSecret'] });
    // Mid-run: the first two groups' value writes are under way (their 33 writes would take ~6.6 s), none committed.
    const { summary: first, stoppedAfterMs } = await runAbortedAfter(stack, source, 1_000);
    stack.vault.clearFaults();

    // The writes sent finish and their connections commit; the writes queued are dropped, nothing new starts.
    expect(stoppedAfterMs).toBeLessThan(2_000);
    expect(first).toMatchObject({ aborted: true, failedMigrations: 0, errors: [] });
    expect(first.successfulMigrations).toBeGreaterThan(0);
    expect(first.successfulMigrations).toBeLessThan(COUNT);
    // Each connection counted migrated committed all its fields with their MIGRATE rows; nothing else committed.
    expect(await live()).toBe(first.totalCredentialsMigrated);
    expect(await migrateRows()).toBe(first.totalCredentialsMigrated);

    const resumed = await stack.app.get(MigrationRunner).run(source);
    expect(resumed).toMatchObject({ aborted: false, failedMigrations: 0, skipped: first.successfulMigrations, errors: [] });
    expect(resumed.successfulMigrations + first.successfulMigrations).toBe(COUNT);
    expect(resumed.totalCredentialsMigrated + first.totalCredentialsMigrated).toBe(expected);
    expect(await live()).toBe(expected);
    expect(await slots()).toBe(expected);
    expect(await migrateRows()).toBe(expected);
    expect(await withOneMigrateRow()).toBe(expected);
    // A dropped write is the caller leaving, not a failed store.
    expect(await failedStores()).toBe(0);
    expect(await stack.app.get(AuditService).verify({ tenantId: tenant })).toMatchObject({ valid: true });
  }, 60_000);

  it("cuts the run's vault reads in flight at once (deleteAfterMigration's read-back), and a re-run clears every connection", async () => {
    const source = new SqlLegacySource(stack.legacy.db);
    const cleared = () => count(`SELECT COUNT(*) AS n FROM cv_migration_checkpoints WHERE source = '${source.name}' AND status = 'cleared'`);
    // Every connection is migrated (the test above): this run reads each value back before it clears the legacy fields.
    stack.vault.injectFault({ kind: 'latency', latencyMs: 10_000, operations: ['getSecret'] });
    const controller = new AbortController();
    const started = Date.now();
    setTimeout(() => controller.abort(), 300);
    const aborted = await stack.app.get(MigrationRunner).run(source, { signal: controller.signal, deleteAfterMigration: true });
    expect(Date.now() - started).toBeLessThan(2_000);
    stack.vault.clearFaults();
    expect(aborted).toMatchObject({ aborted: true, failedMigrations: 0, errors: [] });
    expect(await cleared()).toBe(0);

    const resumed = await stack.app.get(MigrationRunner).run(source, { deleteAfterMigration: true });
    expect(resumed).toMatchObject({ aborted: false, skipped: COUNT, failedMigrations: 0, errors: [] });
    expect(await cleared()).toBe(COUNT);
    expect(await live()).toBe(expected);
    expect(await migrateRows()).toBe(expected);
    expect(await stack.app.get(AuditService).verify({ tenantId: tenant })).toMatchObject({ valid: true });
  }, 60_000);
});

/** A run of `source` whose signal aborts `ms` after it starts; how long after the abort it resolved. */
async function runAbortedAfter(stack: MigrationStack, source: SqlLegacySource, ms: number): Promise<{ summary: MigrationSummary; stoppedAfterMs: number }> {
  const controller = new AbortController();
  let abortedAt = 0;
  const timer = setTimeout(() => {
    abortedAt = Date.now();
    controller.abort();
  }, ms);
  const summary = await stack.app.get(MigrationRunner).run(source, { signal: controller.signal });
  clearTimeout(timer);
  expect(abortedAt).toBeGreaterThan(0);
  return { summary, stoppedAfterMs: Date.now() - abortedAt };
}

/** A SQLite stack of `count` legacy rows of `tenant`: two vault calls at a time, groups of five connections. */
function sqliteStackInGroupsOfFive(count: number, keys: Buffer[], tenant: string) {
  return useMigrationStack(
    'sqlite',
    ({ db, vault }) => migrationStackImports({ database: db.options, vault }, { keys: keys.map((k) => k.toString('hex')), concurrency: { initial: 2, min: 1, max: 2 }, group: { maxConnections: 5 } }),
    (legacy) => seedLegacyTable(legacy, legacySeedRows({ count, keys, tenants: [tenant] })),
  );
}

describe('a migration whose signal aborted before it started (sqlite)', () => {
  const COUNT = 60;
  const keys = [randomBytes(32)];
  const tenant = `abort-early-${randomBytes(3).toString('hex')}`;
  // Groups of five: the feed holds a few groups' rows, far fewer than the source has.
  const stack = sqliteStackInGroupsOfFive(COUNT, keys, tenant);

  it('resolves at once, aborted, having migrated nothing (a stop during the count: the feed filled and waited for ever)', async () => {
    const started = Date.now();
    const summary = await stack.app.get(MigrationRunner).run(new SqlLegacySource(stack.legacy.db), { signal: AbortSignal.abort(), batchSize: 5 });
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(summary).toMatchObject({ aborted: true, successfulMigrations: 0, failedMigrations: 0, totalCredentialsMigrated: 0 });
  }, 15_000);
});

describe('a migration aborted while a throttled vault holds its writes back (sqlite)', () => {
  const COUNT = 20;
  const keys = [randomBytes(32)];
  const tenant = `abort-throttled-${randomBytes(3).toString('hex')}`;
  const stack = sqliteStackInGroupsOfFive(COUNT, keys, tenant);
  const count = async (sql: string) => Number((await stack.app.get(DataSource).query(sql))[0].n);

  it("stops promptly, not after the vault's Retry-After: the writes waiting for the limiter are dropped", async () => {
    // Every write is refused with a Retry-After of 20 s, above the client's own retry ceiling (16 s): the 429 reaches the
    // run, whose limiter pauses every vault call for 20 s.
    stack.vault.injectFault({ kind: 'status', status: 429, retryAfterSeconds: 20, operations: ['setSecret'] });
    const source = new SqlLegacySource(stack.legacy.db);
    const { summary: first, stoppedAfterMs } = await runAbortedAfter(stack, source, 1_000);
    stack.vault.clearFaults();

    expect(stack.vault.stats().byStatus['429']).toBeGreaterThan(0);
    expect(stoppedAfterMs).toBeLessThan(3_000);
    expect(first).toMatchObject({ aborted: true, successfulMigrations: 0, failedMigrations: 0, totalCredentialsMigrated: 0, errors: [] });
    expect(await count(`SELECT COUNT(*) AS n FROM cv_credentials WHERE tenant_id = '${tenant}'`)).toBe(0);
    expect(await count(`SELECT COUNT(*) AS n FROM cv_audit_log WHERE tenant_id = '${tenant}' AND action = 'store' AND result = 'failure'`)).toBe(0);

    // Nothing of it is left half-done: a re-run migrates every connection.
    const resumed = await stack.app.get(MigrationRunner).run(source);
    expect(resumed).toMatchObject({ aborted: false, successfulMigrations: COUNT, failedMigrations: 0, skipped: 0, errors: [] });
  }, 60_000);
});
