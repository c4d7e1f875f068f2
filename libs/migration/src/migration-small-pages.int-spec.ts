import { randomBytes } from 'node:crypto';
import { CredentialsService, CredentialType } from '@app/credentials';
import { DATABASE_KINDS } from '@app/testing';
import { decryptLegacyField } from './legacy/legacy-cipher';
import { legacySeedRows, seedLegacyTable } from './legacy/legacy-seed';
import { MIGRATION_TAGS } from './runner/connection-migrator';
import { MigrationRunner } from './runner/migration.runner';
import { SqlLegacySource } from './sources/sql-legacy-source';
import { migrationStackImports, useMigrationStack } from './testing/migration-stack';

/**
 * Integration: an embedding app whose credentials `maxPageSize` is 1 — below the fields one connection can hold.
 * The migration lists a connection's live credentials (the dry run's comparison, `deleteAfterMigration` after an
 * earlier run) page by page, so it sees every one of them, whatever page size the host allows.
 */
describe.each(DATABASE_KINDS)('a migration under a credentials maxPageSize of 1 (%s)', (kind) => {
  const keys = [randomBytes(32)];
  const tenant = `pages-${randomBytes(3).toString('hex')}`;
  const stack = useMigrationStack(kind, ({ db, vault }) =>
    migrationStackImports({ database: db.options, vault, credentials: { defaultPageSize: 1, maxPageSize: 1 } }, { keys: keys.map((k) => k.toString('hex')) }),
  );

  it('the dry run compares with every live credential of a connection, and deleteAfterMigration finds every field it migrated', async () => {
    // Row 1: OAuth access + refresh token; row 2: an API key; row 3: a basic-auth pair.
    const rows = legacySeedRows({ count: 3, keys, tenants: [tenant] });
    await seedLegacyTable(stack.legacy.db, rows);
    const source = new SqlLegacySource(stack.legacy.db);
    const svc = stack.app.get(CredentialsService);
    const ctx = { tenantId: tenant, actor: { id: 'system:migration' } };
    const slot = { integrationId: rows[0].integration_id, connectionId: rows[0].connection_id };
    // Row 1's access token was stored by an interrupted run (first page); its refresh token's slot holds another value (second page).
    await svc.store(ctx, {
      ...slot, type: CredentialType.OAUTH_ACCESS_TOKEN, value: decryptLegacyField(rows[0].access_token!, keys).value, createdAt: new Date(Date.UTC(2021, 0, 1)),
      tags: { [MIGRATION_TAGS.source]: source.name, [MIGRATION_TAGS.legacyId]: '1' },
    });
    await svc.store(ctx, { ...slot, type: CredentialType.OAUTH_REFRESH_TOKEN, value: `1//other-${randomBytes(12).toString('hex')}`, createdAt: new Date(Date.UTC(2022, 0, 1)) });
    const runner = stack.app.get(MigrationRunner);
    const expected = { totalConnections: 3, successfulMigrations: 2, failedMigrations: 1, skipped: 0 };
    const problems = (s: { errors: { legacyId: string; field: string | null; code: string }[] }) => s.errors.map((e) => [e.legacyId, e.field, e.code]);

    const dry = await runner.run(source, { dryRun: true });
    expect(dry).toMatchObject(expected);
    expect(problems(dry)).toEqual([['1', 'refresh_token', 'MIGRATION_CONFLICT']]);

    const real = await runner.run(source);
    expect(real).toMatchObject(expected);
    expect(problems(real)).toEqual(problems(dry));

    // Rows 2 and 3 are checkpointed `migrated`: this run finds their credentials by their tags, verifies and clears them.
    const cleared = await runner.run(source, { deleteAfterMigration: true });
    expect(problems(cleared)).toEqual([['1', 'refresh_token', 'MIGRATION_CONFLICT']]);
    const left = await stack.legacy.db.query('SELECT id FROM legacy_connections WHERE api_key IS NOT NULL OR basic_username IS NOT NULL OR basic_password IS NOT NULL ORDER BY id');
    expect(left).toEqual([]);
  }, 60_000);
});
