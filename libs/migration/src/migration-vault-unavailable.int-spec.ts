import { randomBytes } from 'node:crypto';
import { DataSource } from 'typeorm';
import { DATABASE_KINDS, rejection } from '@app/testing';
import { legacySeedRows, seedLegacyTable } from './legacy/legacy-seed';
import { MigrationErrorCode, MigrationVaultUnavailableError } from './errors/migration.errors';
import { MigrationRunner } from './runner/migration.runner';
import { SqlLegacySource } from './sources/sql-legacy-source';
import { migrationStackImports, useMigrationStack } from './testing/migration-stack';

/**
 * Integration: the vault starts failing (500) mid-run until the vault client's circuit breaker opens — every further
 * write would fail fast alike. The run stops after the writes in flight with one typed error instead of reporting every
 * connection left as failed; what committed has its checkpoint, and a run once the vault is back migrates exactly the
 * rest (real SDK against the local vault, checkpoints on SQLite and PostgreSQL).
 */
describe.each(DATABASE_KINDS)('a migration whose vault fails mid-run (%s)', (kind) => {
  const COUNT = 300;
  const keys = [randomBytes(32)];
  const stack = useMigrationStack(
    kind,
    ({ db, vault }) =>
      migrationStackImports(
        { database: db.options, vault, keyVault: { resilience: { maxAttempts: 3, initialDelayMs: 5, maxDelayMs: 50, breaker: { consecutiveFailures: 3, halfOpenAfterMs: 300 } } } },
        { keys: keys.map((k) => k.toString('hex')), concurrency: { initial: 4, max: 4 }, group: { maxConnections: 10 } },
      ),
    (legacy) => seedLegacyTable(legacy, legacySeedRows({ count: COUNT, keys })),
  );

  const count = async (sql: string) => Number((await stack.app.get(DataSource).query(sql))[0].n);

  it('stops with MIGRATION_VAULT_UNAVAILABLE once the breaker opens, and a run after the vault recovers migrates exactly the rest', async () => {
    const source = new SqlLegacySource(stack.legacy.db);
    let failing = false;
    const e = (await rejection(
      stack.app.get(MigrationRunner).run(source, {
        onProgress: (p) => {
          if (failing || p.done < 50) return;
          failing = true;
          stack.vault.injectFault({ kind: 'status', status: 500, operations: ['setSecret'] });
        },
      }),
    )) as MigrationVaultUnavailableError;
    expect(e).toBeInstanceOf(MigrationVaultUnavailableError);
    expect(e.code).toBe(MigrationErrorCode.VAULT_UNAVAILABLE);
    expect(e.message).toMatch(/CIRCUIT_OPEN/);
    // Stopped after the groups in flight: most connections were neither migrated nor reported.
    const checkpointed = await count('SELECT COUNT(*) AS n FROM cv_migration_checkpoints');
    expect(checkpointed).toBeGreaterThanOrEqual(50);
    expect(checkpointed).toBeLessThan(150);
    // Nothing half-written: every credential committed has its MIGRATE row and its connection's checkpoint.
    const credentials = await count('SELECT COUNT(*) AS n FROM cv_credentials');
    expect(await count(`SELECT COUNT(*) AS n FROM cv_audit_log WHERE action = 'migrate'`)).toBe(credentials);
    expect(await count('SELECT SUM(credentials) AS n FROM cv_migration_checkpoints')).toBe(credentials);

    stack.vault.clearFaults();
    // The breaker half-opens after 300 ms: the next run's first write is its trial, and closes it.
    await new Promise((r) => setTimeout(r, 400));
    const resumed = await stack.app.get(MigrationRunner).run(source);
    expect(resumed).toMatchObject({ totalConnections: COUNT, successfulMigrations: COUNT - checkpointed, failedMigrations: 0, skipped: checkpointed, errors: [] });
    const total = await count('SELECT COUNT(*) AS n FROM cv_credentials');
    expect(total).toBe(credentials + resumed.totalCredentialsMigrated);
    expect(await count(`SELECT COUNT(*) AS n FROM cv_audit_log WHERE action = 'migrate'`)).toBe(total);
  }, 120_000);
});
