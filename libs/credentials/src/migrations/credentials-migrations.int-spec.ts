import type { DataSource } from 'typeorm';
import { DATABASE_KINDS, useMigrationDatabase } from '@app/testing';
import { CREDENTIALS_ENTITIES, CREDENTIALS_MIGRATIONS } from '@app/credentials';
import { CredentialLastChangeIndex1970000000000, CredentialTypeConnectionIndex1920000000000, CredentialVersionRevokedAt1880000000000 } from './index';

/** The lib's migrations before `migration` (`through`: and it). */
const upTo = (migration: (typeof CREDENTIALS_MIGRATIONS)[number], through = false) => CREDENTIALS_MIGRATIONS.slice(0, CREDENTIALS_MIGRATIONS.indexOf(migration) + (through ? 1 : 0));

// The per-version revoke mark, as an operator upgrading meets it: on tables with rows, a credential revoked
// before the upgrade has its versions marked (so a later rotation cannot serve them again); undone cleanly.
describe.each(DATABASE_KINDS)('CredentialVersionRevokedAt on %s', (kind) => {
  const bed = useMigrationDatabase(kind);
  const migrate = (migrations: typeof CREDENTIALS_MIGRATIONS) => bed.migrate(CREDENTIALS_ENTITIES, migrations);
  const { schema, table } = bed;
  const credential = (id: string, status: string) =>
    `INSERT INTO ${table('cv_credentials')} (id, tenant_id, integration_id, connection_id, type, value_store, current_version, status, tags, row_version, created_at, updated_at, created_by, updated_by) ` +
    `VALUES ('${id}', 't1', 'acme', '${id}', 'api_key', 'envelope', 2, '${status}', '{}', 1, 1000, 1000, 'u', 'u')`;
  const version = (credentialId: string, n: number, idPrefix = `${n}`) =>
    `INSERT INTO ${table('cv_credential_versions')} (id, credential_id, tenant_id, version, value_store, created_at, created_by) ` +
    `VALUES ('${idPrefix}${credentialId.slice(1)}', '${credentialId}', 't1', ${n}, 'envelope', 1000, 'u')`;
  const REVOKED = '00000000-0000-4000-8000-000000000001';
  const ACTIVE = '00000000-0000-4000-8000-000000000002';

  it('marks the versions of credentials revoked before the upgrade, leaves the others, and is undone', async () => {
    const before = await migrate(upTo(CredentialVersionRevokedAt1880000000000));
    for (const [id, status] of [[REVOKED, 'revoked'], [ACTIVE, 'active']]) {
      await before.query(credential(id, status));
      for (const n of [1, 2]) await before.query(version(id, n));
    }
    await before.destroy();

    const started = Date.now();
    const after = await migrate(upTo(CredentialVersionRevokedAt1880000000000, true));
    const rows = (await after.query(`SELECT credential_id AS id, version, revoked_at AS at FROM ${table('cv_credential_versions')} ORDER BY credential_id, version`)) as Array<{ id: string; version: number; at: string | number | null }>;
    expect(rows.map((r) => [r.id, Number(r.version), r.at === null ? null : Number(r.at) >= started])).toEqual([
      [REVOKED, 1, true],
      [REVOKED, 2, true],
      [ACTIVE, 1, null],
      [ACTIVE, 2, null],
    ]);
    // The table kept its unique index and its cascade (SQLite rebuilds a table to add a column).
    await expect(after.query(version(ACTIVE, 2, '9'))).rejects.toThrow();
    await after.query(`DELETE FROM ${table('cv_credentials')} WHERE id = '${ACTIVE}'`);
    expect(Number((await after.query(`SELECT COUNT(*) AS n FROM ${table('cv_credential_versions')}`))[0].n)).toBe(2);

    await after.undoLastMigration();
    const columns = kind === 'postgres'
      ? ((await after.query(`SELECT column_name AS name FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'cv_credential_versions'`, [schema()])) as Array<{ name: string }>)
      : ((await after.query(`PRAGMA table_info("cv_credential_versions")`)) as Array<{ name: string }>);
    expect(columns.map((c) => c.name)).not.toContain('revoked_at');
    expect(Number((await after.query(`SELECT COUNT(*) AS n FROM ${table('cv_credential_versions')}`))[0].n)).toBe(2);
  });
});

// The live (type, connection_id) index, as an operator upgrading meets it: built on a table with rows (deleted ones left
// out of it), collated "C" on PostgreSQL, used by a prefix count; undone cleanly.
describe.each(DATABASE_KINDS)('CredentialTypeConnectionIndex on %s', (kind) => {
  const bed = useMigrationDatabase(kind);
  const migrate = (migrations: typeof CREDENTIALS_MIGRATIONS) => bed.migrate(CREDENTIALS_ENTITIES, migrations);
  const { schema, table } = bed;
  const credential = (id: string, connectionId: string, status: string) =>
    `INSERT INTO ${table('cv_credentials')} (id, tenant_id, integration_id, connection_id, type, value_store, current_version, status, tags, row_version, created_at, updated_at, created_by, updated_by) ` +
    `VALUES ('${id}', 't1', 'acme', '${connectionId}', 'custom_secret', 'envelope', 1, '${status}', '{}', 1, 1000, 1000, 'u', 'u')`;
  const definition = async (ds: DataSource): Promise<string | undefined> => {
    const rows = (await (kind === 'postgres'
      ? ds.query(`SELECT indexdef AS def FROM pg_indexes WHERE tablename = 'cv_credentials' AND indexname = 'IDX_cv_credentials_type_connection' AND schemaname = $1`, [schema()])
      : ds.query(`SELECT sql AS def FROM sqlite_master WHERE type = 'index' AND name = 'IDX_cv_credentials_type_connection'`))) as Array<{ def: string }>;
    return rows[0]?.def.replace(/"/g, '');
  };

  it('is built on a table with rows, serves a prefix count, and is undone', async () => {
    const before = await migrate(upTo(CredentialTypeConnectionIndex1920000000000));
    await before.query(credential('00000000-0000-4000-8000-000000000001', 'rotation-pending.a', 'active'));
    await before.query(credential('00000000-0000-4000-8000-000000000002', 'rotation-pending.b', 'deleted'));
    await before.query(credential('00000000-0000-4000-8000-000000000003', 'conn-1', 'active'));
    await before.destroy();

    const after = await migrate(upTo(CredentialTypeConnectionIndex1920000000000, true));
    expect(await definition(after)).toMatch(kind === 'postgres' ? /\(type, connection_id COLLATE C\) WHERE \(\(status\)::text <> 'deleted'::text\)$/ : /\(type, connection_id\) WHERE status <> 'deleted'$/);
    const count = `SELECT COUNT(*) AS n FROM ${table('cv_credentials')} WHERE status <> 'deleted' AND type = 'custom_secret' AND connection_id${kind === 'postgres' ? ' COLLATE "C"' : ''} >= 'rotation-pending.' AND connection_id${kind === 'postgres' ? ' COLLATE "C"' : ''} < 'rotation-pending/'`;
    expect(Number((await after.query(count))[0].n)).toBe(1);

    await after.undoLastMigration();
    expect(await definition(after)).toBeUndefined();
    expect(Number((await after.query(`SELECT COUNT(*) AS n FROM ${table('cv_credentials')}`))[0].n)).toBe(3);
  });

  // What OPERATIONS.md tells an operator of a large PostgreSQL table to do first (SQLite: a plain CREATE INDEX, same name).
  const prebuild = (ds: DataSource) =>
    ds.query(
      kind === 'postgres'
        ? `CREATE INDEX CONCURRENTLY "IDX_cv_credentials_type_connection" ON ${table('cv_credentials')} ("type", "connection_id" COLLATE "C") WHERE "status" <> 'deleted'`
        : `CREATE INDEX "IDX_cv_credentials_type_connection" ON ${table('cv_credentials')} ("type", "connection_id") WHERE "status" <> 'deleted'`,
    );

  it('keeps the index an operator built beforehand under its name', async () => {
    const before = await migrate(upTo(CredentialTypeConnectionIndex1920000000000));
    await before.query(credential('00000000-0000-4000-8000-000000000001', 'rotation-pending.a', 'active'));
    await prebuild(before);
    const built = await definition(before);
    await before.destroy();

    const after = await migrate(CREDENTIALS_MIGRATIONS); // ran: it throws when a migration fails
    expect(built).toBeDefined();
    expect(await definition(after)).toBe(built);
  });

  if (kind === 'postgres') {
    it('rebuilds an index a failed CREATE INDEX CONCURRENTLY left invalid', async () => {
      const before = await migrate(upTo(CredentialTypeConnectionIndex1920000000000));
      await prebuild(before);
      // What a CONCURRENTLY build that failed (cancelled, a deadlock) leaves: the index, marked invalid, never used.
      const valid = (ds: DataSource) => ds.query(`SELECT indisvalid AS valid FROM pg_index WHERE indexrelid = to_regclass($1)`, [`"${schema()}"."IDX_cv_credentials_type_connection"`]);
      await before.query(`UPDATE pg_index SET indisvalid = false WHERE indexrelid = to_regclass($1)`, [`"${schema()}"."IDX_cv_credentials_type_connection"`]);
      expect(await valid(before)).toEqual([{ valid: false }]);
      await before.destroy();

      const after = await migrate(CREDENTIALS_MIGRATIONS);
      expect(await valid(after)).toEqual([{ valid: true }]);
      expect(await definition(after)).toMatch(/\(type, connection_id COLLATE C\) WHERE/);
    });
  }
});

// The index of active credentials by (tenant, type, last change) the rotation lib's due list reads: built on a table with
// rows, chosen by the planner for the due query's shape, undone cleanly.
describe.each(DATABASE_KINDS)('CredentialLastChangeIndex on %s', (kind) => {
  const bed = useMigrationDatabase(kind);
  const migrate = (migrations: typeof CREDENTIALS_MIGRATIONS) => bed.migrate(CREDENTIALS_ENTITIES, migrations);
  const { schema, table } = bed;
  const NAME = 'IDX_cv_credentials_tenant_type_changed';
  const definition = async (ds: DataSource): Promise<string | undefined> => {
    const rows = (await (kind === 'postgres'
      ? ds.query(`SELECT indexdef AS def FROM pg_indexes WHERE tablename = 'cv_credentials' AND indexname = $1 AND schemaname = $2`, [NAME, schema()])
      : ds.query(`SELECT sql AS def FROM sqlite_master WHERE type = 'index' AND name = ?`, [NAME]))) as Array<{ def: string }>;
    return rows[0]?.def.replace(/"/g, '');
  };

  it('is built on a table with rows, serves the due query, and is undone', async () => {
    const before = await migrate(upTo(CredentialLastChangeIndex1970000000000));
    const values = Array.from({ length: 300 }, (_, i) => {
      const id = `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`;
      const status = i % 10 === 0 ? 'deleted' : 'active';
      return `('${id}', 't${i % 3}', 'acme', 'c${i}', '${i % 2 ? 'api_key' : 'webhook_secret'}', 'envelope', 1, '${status}', '{}', 1, ${1000 + i}, ${i % 4 ? 'NULL' : 5000 + i}, ${1000 + i}, 'u', 'u')`;
    });
    await before.query(
      `INSERT INTO ${table('cv_credentials')} (id, tenant_id, integration_id, connection_id, type, value_store, current_version, status, tags, row_version, created_at, rotated_at, updated_at, created_by, updated_by) VALUES ${values.join(', ')}`,
    );
    await before.destroy();

    const after = await migrate(upTo(CredentialLastChangeIndex1970000000000, true));
    expect(await definition(after)).toMatch(
      kind === 'postgres' ? /\(tenant_id, type, COALESCE\(rotated_at, created_at\), created_at, id\) WHERE \(\(status\)::text = 'active'::text\)$/ : /\(tenant_id, type, \(COALESCE\(rotated_at, created_at\)\), created_at, id\) WHERE status = 'active'$/,
    );
    // The due query's shape (CredentialListRepository.pageByLastChange): the planner takes this index for it.
    const due = `SELECT id FROM ${table('cv_credentials')} WHERE tenant_id = 't1' AND status = 'active' AND type = 'api_key' AND COALESCE(rotated_at, created_at) <= 1200 ORDER BY COALESCE(rotated_at, created_at) ASC, created_at ASC, id ASC LIMIT 10`;
    const plan = kind === 'postgres'
      ? ((await after.transaction(async (m) => {
          await m.query('SET LOCAL enable_seqscan = off'); // a 300-row table is read whole otherwise, whatever its indexes
          return m.query(`EXPLAIN ${due}`);
        })) as Array<{ 'QUERY PLAN': string }>).map((r) => r['QUERY PLAN']).join('\n')
      : ((await after.query(`EXPLAIN QUERY PLAN ${due}`)) as Array<{ detail: string }>).map((r) => r.detail).join('\n');
    expect(plan).toContain(NAME);

    await after.undoLastMigration();
    expect(await definition(after)).toBeUndefined();
    expect(Number((await after.query(`SELECT COUNT(*) AS n FROM ${table('cv_credentials')}`))[0].n)).toBe(300);
  });
});
