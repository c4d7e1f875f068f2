import { DATABASE_KINDS, useMigrationDatabase } from '@app/testing';
import { AUDIT_ENTITIES, AUDIT_MIGRATIONS } from '@app/audit';
import { DataSource } from 'typeorm';

const BY_TIME = ['IDX_cv_audit_log_tenant_resource_time', 'IDX_cv_audit_log_tenant_actor_time', 'IDX_cv_audit_log_tenant_action_time'];
const BY_SEQUENCE = ['IDX_cv_audit_log_tenant_resource_seq', 'IDX_cv_audit_log_tenant_actor_seq', 'IDX_cv_audit_log_tenant_action_seq'];
const QUERY_INDEXES = ['IDX_cv_audit_log_tenant_time', ...BY_SEQUENCE];
/** The migrations up to and including the one named. */
const through = (name: string) => AUDIT_MIGRATIONS.slice(0, AUDIT_MIGRATIONS.findIndex((m) => m.name === name) + 1);
const CHAIN_ORDER = through('AuditQueryIndexesInChainOrder1890000000000');

/** Index name → its definition as the database tells it (quotes dropped, whitespace collapsed). */
async function indexesOf(kind: string, ds: DataSource, schema: string): Promise<Map<string, string>> {
  const rows = (await (kind === 'postgres'
    ? ds.query(`SELECT indexname AS name, indexdef AS def FROM pg_indexes WHERE tablename = 'cv_audit_log' AND schemaname = $1`, [schema])
    : ds.query(`SELECT name, sql AS def FROM sqlite_master WHERE type = 'index' AND tbl_name = 'cv_audit_log'`))) as Array<{ name: string; def: string | null }>;
  return new Map(rows.map((r) => [r.name, (r.def ?? '').replace(/"/g, '').replace(/\s+/g, ' ').trim()]));
}

/** One audit row, as a log being upgraded has them. */
const insertOneRow = (ds: DataSource, table: string) =>
  ds.query(
    `INSERT INTO ${table} (id, tenant_id, sequence, occurred_at, action, resource, actor_id, result, previous_hash, hash) ` +
      `VALUES ('0190a000-0000-7000-8000-000000000001', 't1', 1, 1000, 'read', 'cred-1', 'user-1', 'success', '${'0'.repeat(64)}', '${'a'.repeat(64)}')`,
  );

// The filter indexes' move to chain order, as an operator meets it: on a log that already has rows, with an
// index built beforehand (CONCURRENTLY, on PostgreSQL), and undone.
describe.each(DATABASE_KINDS)('AuditQueryIndexesInChainOrder on %s', (kind) => {
  const bed = useMigrationDatabase(kind);
  const migrate = (migrations: typeof AUDIT_MIGRATIONS) => bed.migrate(AUDIT_ENTITIES, migrations);
  const schema = bed.schema;
  const table = () => bed.table('cv_audit_log');
  const indexes = (ds: DataSource) => indexesOf(kind, ds, schema());

  it('replaces the time-ordered filter indexes on a log with rows, keeps one built beforehand, and is undone', async () => {
    const before = await migrate(CHAIN_ORDER.slice(0, -1));
    await insertOneRow(before, table());
    expect([...(await indexes(before)).keys()]).toEqual(expect.arrayContaining(BY_TIME));
    // What OPERATIONS.md tells an operator of a large PostgreSQL log to do first (plain CREATE INDEX here: same result).
    await before.query(`CREATE INDEX "IDX_cv_audit_log_tenant_actor_seq" ON ${table()} ("tenant_id", "actor_id", "sequence", "occurred_at")`);
    await before.destroy();

    const after = await migrate(CHAIN_ORDER);
    const now = await indexes(after);
    for (const name of BY_TIME) expect(now.has(name)).toBe(false);
    for (const [name, column] of [
      [BY_SEQUENCE[0], 'resource'],
      [BY_SEQUENCE[1], 'actor_id'],
      [BY_SEQUENCE[2], 'action'],
    ]) {
      expect(now.get(name)).toMatch(new RegExp(`\\(tenant_id, ?${column}, ?sequence, ?occurred_at\\)`));
    }
    expect(await after.query(`SELECT COUNT(*) AS n FROM ${table()}`)).toEqual([{ n: kind === 'postgres' ? '1' : 1 }]);

    await after.undoLastMigration();
    const undone = await indexes(after);
    for (const name of BY_SEQUENCE) expect(undone.has(name)).toBe(false);
    for (const name of BY_TIME) expect(undone.has(name)).toBe(true);
  });
});

// The query indexes leave the request's commit on SQLite (query-index-catch-up.ts), as an operator upgrading a log
// with rows meets it: those rows stay in the indexes (nothing rewritten), new ones wait in the pending index.
describe.each(DATABASE_KINDS)('AuditQueryIndexesOffTheCommit on %s', (kind) => {
  const bed = useMigrationDatabase(kind);
  const table = () => bed.table('cv_audit_log');
  const indexes = (ds: DataSource) => indexesOf(kind, ds, bed.schema());

  it('makes the four query indexes partial on SQLite (PostgreSQL: only the column), keeps the rows indexed, and is undone', async () => {
    const before = await bed.migrate(AUDIT_ENTITIES, AUDIT_MIGRATIONS.slice(0, -1));
    await insertOneRow(before, table());
    const old = await indexes(before);
    await before.destroy();

    const after = await bed.migrate(AUDIT_ENTITIES, AUDIT_MIGRATIONS);
    const now = await indexes(after);
    // The row from before stays in every query index: its flag is NULL, not pending.
    expect(await after.query(`SELECT query_pending FROM ${table()}`)).toEqual([{ query_pending: null }]);
    for (const name of QUERY_INDEXES) {
      if (kind === 'postgres') expect(now.get(name)).toBe(old.get(name));
      else expect(now.get(name)).toBe(`${old.get(name)} WHERE query_pending IS NULL`);
    }
    if (kind === 'postgres') expect(now.has('IDX_cv_audit_log_query_pending')).toBe(false);
    else expect(now.get('IDX_cv_audit_log_query_pending')).toMatch(/\(query_pending\) WHERE query_pending = 1$/);

    await after.undoLastMigration();
    expect(await indexes(after)).toEqual(old);
    await expect(after.query(`SELECT query_pending FROM ${table()}`)).rejects.toThrow(/query_pending/);
    expect(await after.query(`SELECT COUNT(*) AS n FROM ${table()}`)).toEqual([{ n: kind === 'postgres' ? '1' : 1 }]);
  });
});
