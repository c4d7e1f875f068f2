import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Test, type TestingModule } from '@nestjs/testing';
import { DataSource } from 'typeorm';
import { CredentialsService, CredentialType } from '@app/credentials';
import { KeyVaultEmulator } from '@app/keyvault-emulator';
import { createTestDatabase, DATABASE_KINDS, type TestDatabase } from '@app/testing';
import { decryptLegacyField } from './legacy/legacy-cipher';
import { legacySeedRows, seedLegacyTable, type LegacySeedRow } from './legacy/legacy-seed';
import { MIGRATION_TAGS } from './runner/connection-migrator';
import { MigrationRunner } from './runner/migration.runner';
import type { MigrationSummary } from './runner/migration.types';
import { SqlLegacySource } from './sources/sql-legacy-source';
import { expectedTotals, openLegacySqlite } from './testing/legacy-fixture';
import { migrationStackImports } from './testing/migration-stack';

const PLAINTEXT_MARKERS = ['sk_live_', 'ya29.', '1//', 'pw-', 'user-'];
const noValueIn = (s: MigrationSummary) => PLAINTEXT_MARKERS.forEach((m) => expect(JSON.stringify(s)).not.toContain(m));

describe.each(DATABASE_KINDS)('MigrationRunner (checkpoints on %s, legacy SQLite, local vault)', (kind) => {
  const COUNT = kind === 'sqlite' ? 1000 : 100;
  const keys = [randomBytes(32), randomBytes(32)];
  let vault: KeyVaultEmulator;
  let vaultDir: string;
  let db: TestDatabase;
  let legacy: Awaited<ReturnType<typeof openLegacySqlite>>;
  let app: TestingModule;
  let runner: MigrationRunner;
  let rows: LegacySeedRow[];
  let ds: DataSource;
  const count = async (sql: string, params: unknown[] = []) => Number((await ds.query(sql, params))[0].n);

  beforeAll(async () => {
    vaultDir = mkdtempSync(join(tmpdir(), 'cv-mig-vault-'));
    vault = await KeyVaultEmulator.start({ dataDir: vaultDir, port: 0, quiet: true, throttle: false });
    db = await createTestDatabase(kind);
    legacy = await openLegacySqlite();
    rows = legacySeedRows({ count: COUNT, keys, anomalies: true });
    await seedLegacyTable(legacy.db, rows);
    app = await Test.createTestingModule({
      imports: migrationStackImports({ database: kind === 'sqlite' ? { ...db.options, enableWAL: true } as typeof db.options : db.options, vault }, { keys: keys.map((k) => k.toString('hex')), concurrency: { initial: 8, max: 32 } }),
    }).compile();
    await app.init();
    runner = app.get(MigrationRunner);
    ds = app.get(DataSource);
  });

  afterAll(async () => {
    await app?.close();
    await legacy?.dispose();
    await db?.drop();
    await vault?.stop();
    rmSync(vaultDir, { recursive: true, force: true });
  });

  it('a dry run decrypts and validates everything, reports the totals and writes nothing', async () => {
    const s = await runner.run(new SqlLegacySource(legacy.db), { dryRun: true });
    const e = expectedTotals({ count: COUNT, anomalies: true });
    // Duplicates are only found against the vault: a dry run counts both copies as migratable.
    expect(s).toMatchObject({ dryRun: true, totalConnections: COUNT, failedMigrations: e.failedMigrations - COUNT / 100, skipped: 0 });
    expect(await count('SELECT COUNT(*) AS n FROM cv_credentials')).toBe(0);
    expect(await count('SELECT COUNT(*) AS n FROM cv_migration_checkpoints')).toBe(0);
    expect(await count('SELECT COUNT(*) AS n FROM cv_outbox')).toBe(0);
    noValueIn(s);
  });

  it('filters a run by tenant and integration', async () => {
    const s = await runner.run(new SqlLegacySource(legacy.db), { dryRun: true, tenantId: 't2', integrationId: 'stripe' });
    expect(s.totalConnections).toBe(rows.filter((r) => r.tenant_id === 't2' && r.integration_id === 'stripe').length);
    expect(s.totalConnections).toBeGreaterThan(0);
    expect(s.successfulMigrations + s.failedMigrations).toBe(s.totalConnections);
    expect(s.errors.every((e) => e.tenantId === 't2' && e.integrationId === 'stripe')).toBe(true);
  });

  it('migrates the rest with exact totals and reports each problem by connection and field, never a value', async () => {
    const s = await runner.run(new SqlLegacySource(legacy.db), { batchSize: 25 });
    expect(s).toMatchObject(expectedTotals({ count: COUNT, anomalies: true }));
    expect(s.rowsByKeyIndex['1']).toBe(COUNT / 100);
    const codesOf = (slot: number) => new Set(s.errors.filter((e) => Number(e.legacyId) % 100 === slot + 1).map((e) => e.code));
    expect(codesOf(5)).toEqual(new Set(['LEGACY_AUTH_TAG']));
    expect(codesOf(7)).toEqual(new Set(['LEGACY_AUTH_TAG']));
    expect(codesOf(8)).toEqual(new Set(['NO_FIELDS']));
    expect(codesOf(9)).toEqual(new Set(['NO_FIELDS']));
    // Which copy of a duplicated connection lands first depends on concurrency; the other is reported.
    expect(new Set([...codesOf(4), ...codesOf(10)])).toEqual(new Set(['DUPLICATE']));
    expect(new Set([...codesOf(1), ...codesOf(12)])).toEqual(new Set(['MIGRATION_CONFLICT']));
    expect(s.errors.find((e) => e.code === 'LEGACY_AUTH_TAG')).toMatchObject({ field: expect.any(String), tenantId: expect.any(String), connectionId: expect.any(String) });
    noValueIn(s);

    expect(await count('SELECT COUNT(*) AS n FROM cv_credentials')).toBe(s.totalCredentialsMigrated);
    expect(await count(`SELECT COUNT(*) AS n FROM cv_audit_log WHERE action = 'migrate'`)).toBe(s.totalCredentialsMigrated);
    expect(await count('SELECT COUNT(*) AS n FROM cv_migration_checkpoints')).toBe(s.successfulMigrations);
    expect(await count(`SELECT COUNT(*) AS n FROM cv_outbox WHERE name = 'credential.migration.completed'`)).toBe(1);
  });

  it('keeps the legacy createdAt and expiresAt, and the value is the legacy plaintext', async () => {
    const row = rows[3]; // OAuth tokens (3 % 3 = 0)
    const credentials = app.get(CredentialsService);
    const ctx = { tenantId: row.tenant_id, actor: { id: 'test' } };
    const page = await credentials.list(ctx, { integrationId: row.integration_id, connectionId: row.connection_id });
    const access = page.items.find((c) => c.type === CredentialType.OAUTH_ACCESS_TOKEN)!;
    expect(access.createdAt.toISOString()).toBe(row.created_at);
    expect(access.tags[MIGRATION_TAGS.legacyId]).toBe(String(row.id));
    expect(access.expiresAt?.toISOString()).toBe(row.expires_at);
    expect((await credentials.get(ctx, access.id)).value).toBe(decryptLegacyField(row.access_token!, keys).value);
  });

  it('a re-run skips every checkpointed connection and writes no credential', async () => {
    const before = await count('SELECT COUNT(*) AS n FROM cv_credentials');
    const e = expectedTotals({ count: COUNT, anomalies: true });
    const s = await runner.run(new SqlLegacySource(legacy.db));
    expect(s).toMatchObject({ successfulMigrations: 0, totalCredentialsMigrated: 0, failedMigrations: e.failedMigrations, skipped: e.successfulMigrations + e.skipped });
    expect(await count('SELECT COUNT(*) AS n FROM cv_credentials')).toBe(before);
  });

  it('resumes a connection stored before a crash (credential written, no checkpoint): counted once, no duplicate', async () => {
    const resumeRows = legacySeedRows({ count: 6, keys, apiKeysOnly: true, tenants: ['resume'] });
    await seedLegacyTable(legacy.db, resumeRows, 'legacy_resume');
    const source = new SqlLegacySource(legacy.db, { table: 'legacy_resume' });
    // The crash window: the first attempt stored row 3's key, then died before its checkpoint commit.
    await app.get(CredentialsService).store({ tenantId: 'resume', actor: { id: 'system:migration' } }, {
      integrationId: resumeRows[2].integration_id, connectionId: resumeRows[2].connection_id, type: CredentialType.API_KEY,
      value: decryptLegacyField(resumeRows[2].api_key!, keys).value,
      tags: { [MIGRATION_TAGS.source]: source.name, [MIGRATION_TAGS.legacyId]: '3' },
    });
    const s = await runner.run(source);
    expect(s).toMatchObject({ totalConnections: 6, successfulMigrations: 6, failedMigrations: 0, skipped: 0, totalCredentialsMigrated: 6, errors: [] });
    expect(await count(`SELECT COUNT(*) AS n FROM cv_credentials WHERE tenant_id = 'resume'`)).toBe(6);
  });

  it('deleteAfterMigration clears the legacy fields only after reading the values back', async () => {
    const delRows = legacySeedRows({ count: 6, keys, tenants: ['cleared'] });
    await seedLegacyTable(legacy.db, delRows, 'legacy_delete');
    const s = await runner.run(new SqlLegacySource(legacy.db, { table: 'legacy_delete' }), { deleteAfterMigration: true });
    expect(s).toMatchObject({ successfulMigrations: 6, failedMigrations: 0 });
    const left = await legacy.db.query('SELECT COUNT(*) AS n FROM legacy_delete WHERE access_token IS NOT NULL OR refresh_token IS NOT NULL OR api_key IS NOT NULL OR basic_username IS NOT NULL OR basic_password IS NOT NULL');
    expect(Number(left[0].n)).toBe(0);
    expect(await count(`SELECT COUNT(*) AS n FROM cv_migration_checkpoints WHERE source = 'sql:legacy_delete' AND status = 'cleared'`)).toBe(6);
  });

  it('a legacy date that is not one fails its connection (LEGACY_FORMAT) instead of migrating a credential that never expires', async () => {
    const dated = legacySeedRows({ count: 4, keys, tenants: ['dates'], apiKeysOnly: true });
    dated[0].expires_at = 'also-not-a-date';
    dated[1].expires_at = '2030-02-30T00:00:00Z';
    dated[2].created_at = 'yesterday';
    dated[3].expires_at = '2030-02-28T12:00:00.000Z';
    await seedLegacyTable(legacy.db, dated, 'legacy_dates');
    const s = await runner.run(new SqlLegacySource(legacy.db, { table: 'legacy_dates' }));
    expect(s).toMatchObject({ successfulMigrations: 1, failedMigrations: 3 });
    expect(s.errors.map((e) => [e.legacyId, e.code, e.reason.replace(/ \(.*$/, '')])).toEqual([
      [String(dated[0].id), 'LEGACY_FORMAT', 'expiresAt is not a date'],
      [String(dated[1].id), 'LEGACY_FORMAT', 'expiresAt is not a date'],
      [String(dated[2].id), 'LEGACY_FORMAT', 'createdAt is not a date'],
    ]);
    expect(await count(`SELECT COUNT(*) AS n FROM cv_credentials WHERE tenant_id = 'dates' AND expires_at = ${Date.parse('2030-02-28T12:00:00.000Z')}`)).toBe(1);
  });

  it("a legacy connection id reserved for the libs' internal credentials fails its connection (RESERVED_CONNECTION_ID), nothing stored", async () => {
    const reserved = legacySeedRows({ count: 3, keys, tenants: ['reserved'], apiKeysOnly: true });
    reserved[0].connection_id = 'rotation-pending.00000000-0000-4000-8000-000000000001';
    reserved[1].connection_id = 'whsec-pending.r1';
    await seedLegacyTable(legacy.db, reserved, 'legacy_reserved');
    const s = await runner.run(new SqlLegacySource(legacy.db, { table: 'legacy_reserved' }));
    expect(s).toMatchObject({ successfulMigrations: 1, failedMigrations: 2 });
    expect(s.errors.map((e) => [e.legacyId, e.field, e.code, e.reason])).toEqual([
      [String(reserved[0].id), null, 'RESERVED_CONNECTION_ID', expect.stringMatching(/^connectionId must not start with rotation-pending\. or whsec-pending\.: reserved/)],
      [String(reserved[1].id), null, 'RESERVED_CONNECTION_ID', expect.stringMatching(/^connectionId must not start with/)],
    ]);
    expect(await count(`SELECT COUNT(*) AS n FROM cv_credentials WHERE tenant_id = 'reserved'`)).toBe(1);
  });

  it('deleteAfterMigration with duplicates and conflicts among concurrent groups: exact totals, no spurious failure', async () => {
    // A duplicate is settled inside its group's transaction while other groups read values back to clear
    // them: neither may wait on the other (on SQLite that was a cycle through the transaction gate).
    const n = 300;
    const dupRows = legacySeedRows({ count: n, keys, anomalies: true, tenants: ['dd-1', 'dd-2', 'dd-3'] });
    await seedLegacyTable(legacy.db, dupRows, 'legacy_delete_dup');
    const s = await runner.run(new SqlLegacySource(legacy.db, { table: 'legacy_delete_dup' }), { deleteAfterMigration: true, batchSize: 20 });
    expect(s).toMatchObject(expectedTotals({ count: n, anomalies: true }));
    expect(new Set(s.errors.map((e) => e.code))).toEqual(new Set(['LEGACY_AUTH_TAG', 'NO_FIELDS', 'DUPLICATE', 'MIGRATION_CONFLICT']));
  });
});
