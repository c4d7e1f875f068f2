import { randomBytes } from 'node:crypto';
import { DataSource } from 'typeorm';
import { rejection } from '@app/testing';
import { legacySeedRows, seedLegacyTable } from './legacy/legacy-seed';
import { MigrationErrorCode, MigrationVaultRefusedError } from './errors/migration.errors';
import { MigrationRunner } from './runner/migration.runner';
import { SqlLegacySource } from './sources/sql-legacy-source';
import { migrationStackImports, useMigrationStack } from './testing/migration-stack';

/**
 * Integration: the host's vault identity lacks `set` (403 FORBIDDEN) — every further write would fail the same way.
 * The run stops after the writes already in flight with one typed error naming the permission, marks nothing, and
 * a run after the grant migrates everything (real SDK against the local vault, real SQLite).
 */
describe('a migration whose vault writes are denied (sqlite)', () => {
  const COUNT = 300;
  const keys = [randomBytes(32)];
  const tenant = `deny-${randomBytes(3).toString('hex')}`;
  const stack = useMigrationStack(
    'sqlite',
    ({ db, vault }) => migrationStackImports({ database: db.options, vault }, { keys: keys.map((k) => k.toString('hex')), concurrency: { initial: 4, max: 4 }, group: { maxConnections: 10 } }),
    (legacy) => seedLegacyTable(legacy, legacySeedRows({ count: COUNT, keys, tenants: [tenant] })),
  );

  const count = async (sql: string) => Number((await stack.app.get(DataSource).query(sql))[0].n);

  it('stops early with MIGRATION_VAULT_REFUSED, changes nothing, and resumes completely once the permission is granted', async () => {
    const source = new SqlLegacySource(stack.legacy.db);
    stack.vault.deny({ operations: ['setSecret'] });
    stack.vault.resetStats();
    const e = (await rejection(stack.app.get(MigrationRunner).run(source))) as MigrationVaultRefusedError;
    expect(e).toBeInstanceOf(MigrationVaultRefusedError);
    expect(e.code).toBe(MigrationErrorCode.VAULT_REFUSED);
    expect(e.message).toMatch(/FORBIDDEN/);
    expect(e.message).toMatch(/permission/);
    expect(e.message).not.toContain(tenant);
    // What it did up to the stop: nothing, and the refused connections are not reported (the next run takes them).
    expect(e.summary).toMatchObject({ totalConnections: COUNT, successfulMigrations: 0, failedMigrations: 0, errors: [], stopped: { code: 'MIGRATION_VAULT_REFUSED', reason: e.message } });
    // Only the writes already in flight when the first 403 came back: not one per connection.
    expect(stack.vault.stats().byOperationAndStatus['setSecret:403']).toBeLessThanOrEqual(60);
    expect(await count(`SELECT COUNT(*) AS n FROM cv_credentials WHERE tenant_id = '${tenant}'`)).toBe(0);
    expect(await count(`SELECT COUNT(*) AS n FROM cv_migration_checkpoints`)).toBe(0);

    stack.vault.clearDenials();
    const resumed = await stack.app.get(MigrationRunner).run(source);
    expect(resumed).toMatchObject({ totalConnections: COUNT, successfulMigrations: COUNT, failedMigrations: 0, skipped: 0, errors: [] });
  }, 60_000);
});
