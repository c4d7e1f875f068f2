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

  /** What two runs must agree on: totals and each connection's problems (which copy of a duplicate lands first may differ). */
  const comparable = (s: MigrationSummary) => ({
    totals: [s.totalConnections, s.successfulMigrations, s.failedMigrations, s.skipped, s.totalCredentialsMigrated],
    codes: s.errors.map((e) => `${e.code}: ${e.reason}`).sort(),
  });
  let dry: MigrationSummary;

  it('a dry run reports what the run will — totals, each problem, duplicates and conflicts among the legacy rows — and writes nothing', async () => {
    vault.resetStats();
    dry = await runner.run(new SqlLegacySource(legacy.db), { dryRun: true });
    expect(dry).toMatchObject({ dryRun: true, ...expectedTotals({ count: COUNT, anomalies: true }) });
    const codesOf = (slot: number) => new Set(dry.errors.filter((e) => Number(e.legacyId) % 100 === slot + 1).map((e) => e.code));
    // Row 10 repeats row 4's connection and value, row 12 row 1's connection with another value.
    expect([codesOf(4), codesOf(10)]).toEqual([new Set(), new Set(['DUPLICATE'])]);
    expect([codesOf(1), codesOf(12)]).toEqual([new Set(), new Set(['MIGRATION_CONFLICT'])]);
    for (const e of dry.errors.filter((x) => x.code === 'DUPLICATE')) expect(e.reason).toBe(`the connection was already migrated from legacy row ${Number(e.legacyId) - 6} with the same value`);
    expect(await count('SELECT COUNT(*) AS n FROM cv_credentials')).toBe(0);
    expect(await count('SELECT COUNT(*) AS n FROM cv_migration_checkpoints')).toBe(0);
    expect(await count('SELECT COUNT(*) AS n FROM cv_outbox')).toBe(0);
    expect(await count('SELECT COUNT(*) AS n FROM cv_audit_log')).toBe(0);
    expect(vault.stats().total).toBe(0);
    noValueIn(dry);
  });

  it('filters a run by tenant and integration', async () => {
    const s = await runner.run(new SqlLegacySource(legacy.db), { dryRun: true, tenantId: 't2', integrationId: 'stripe' });
    expect(s.totalConnections).toBe(rows.filter((r) => r.tenant_id === 't2' && r.integration_id === 'stripe').length);
    expect(s.totalConnections).toBeGreaterThan(0);
    expect(s.successfulMigrations + s.failedMigrations + s.skipped).toBe(s.totalConnections);
    expect(s.errors.every((e) => e.tenantId === 't2' && e.integrationId === 'stripe')).toBe(true);
  });

  it('migrates the rest with exact totals and reports each problem by connection and field, never a value', async () => {
    const s = await runner.run(new SqlLegacySource(legacy.db), { batchSize: 25 });
    expect(s).toMatchObject(expectedTotals({ count: COUNT, anomalies: true }));
    expect(comparable(s)).toEqual(comparable(dry));
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
    // The dry run reads the checkpoints as the run does.
    const dryAgain = await runner.run(new SqlLegacySource(legacy.db), { dryRun: true });
    const s = await runner.run(new SqlLegacySource(legacy.db));
    expect(s).toMatchObject({ successfulMigrations: 0, totalCredentialsMigrated: 0, failedMigrations: e.failedMigrations, skipped: e.successfulMigrations + e.skipped });
    expect(comparable(dryAgain)).toEqual(comparable(s));
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

  it('a dry run compares with the live credentials as the run does: ours (resumed), DUPLICATE, MIGRATION_CONFLICT — reading only', async () => {
    const dryRows = legacySeedRows({ count: 4, keys, apiKeysOnly: true, tenants: ['dry'] });
    await seedLegacyTable(legacy.db, dryRows, 'legacy_dry');
    const source = new SqlLegacySource(legacy.db, { table: 'legacy_dry' });
    const credentials = app.get(CredentialsService);
    const ctx = { tenantId: 'dry', actor: { id: 'system:migration' } };
    const valueOf = (r: LegacySeedRow) => decryptLegacyField(r.api_key!, keys).value;
    const slotOf = (r: LegacySeedRow) => ({ integrationId: r.integration_id, connectionId: r.connection_id, type: CredentialType.API_KEY });
    // Row 1's slot holds another value; row 2's the same value, stored by hand; row 3's the same, stored by this row before a crash.
    await credentials.store(ctx, { ...slotOf(dryRows[0]), value: 'sk_other_value_0123456789' });
    await credentials.store(ctx, { ...slotOf(dryRows[1]), value: valueOf(dryRows[1]) });
    await credentials.store(ctx, { ...slotOf(dryRows[2]), value: valueOf(dryRows[2]), tags: { [MIGRATION_TAGS.source]: source.name, [MIGRATION_TAGS.legacyId]: '3' } });
    const rowsNow = async () => [await count('SELECT COUNT(*) AS n FROM cv_credentials'), await count('SELECT COUNT(*) AS n FROM cv_audit_log'), await count('SELECT COUNT(*) AS n FROM cv_outbox'), await count('SELECT COUNT(*) AS n FROM cv_migration_checkpoints')];
    const before = await rowsNow();

    vault.resetStats();
    const dryRun = await runner.run(source, { dryRun: true });
    expect(dryRun).toMatchObject({ totalConnections: 4, successfulMigrations: 2, failedMigrations: 1, skipped: 1, totalCredentialsMigrated: 2 });
    expect(dryRun.errors.map((e) => [e.legacyId, e.field, e.code, e.reason])).toEqual([
      ['1', 'api_key', 'MIGRATION_CONFLICT', 'a live credential of this connection and type already holds a different value'],
      ['2', 'api_key', 'DUPLICATE', 'the connection was already migrated from legacy row (not a migration) with the same value'],
    ]);
    // Three values compared (read from the vault), nothing written anywhere.
    expect(vault.stats().byOperation).toEqual({ getSecret: 3 });
    expect(await rowsNow()).toEqual(before);
    noValueIn(dryRun);

    const real = await runner.run(source);
    expect(comparable(real)).toEqual(comparable(dryRun));
    expect(real.errors).toEqual(dryRun.errors);
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

  /** Connections that fail alone: three of a tenant, the first two spoiled (each with its error's code and reason), the third stored. */
  const spoiled: Array<[title: string, tenant: string, spoil: (rows: LegacySeedRow[]) => void, expected: Array<[code: string, reason: RegExp]>]> = [
    [
      "a legacy connection id reserved for the libs' internal credentials fails its connection (RESERVED_CONNECTION_ID), nothing stored",
      'reserved',
      (reserved) => {
        reserved[0].connection_id = 'rotation-pending.00000000-0000-4000-8000-000000000001';
        reserved[1].connection_id = 'whsec-pending.r1';
      },
      [
        ['RESERVED_CONNECTION_ID', /^connectionId must not start with rotation-pending\. or whsec-pending\.: reserved/],
        ['RESERVED_CONNECTION_ID', /^connectionId must not start with/],
      ],
    ],
    [
      'a legacy integration or connection id made only of dots fails its connection alone (INVALID_IDENTIFIER), nothing stored for it',
      'dotted',
      (dotted) => {
        dotted[0].connection_id = '..';
        dotted[1].integration_id = '.';
      },
      [
        ['INVALID_IDENTIFIER', /^connectionId is missing or not an identifier/],
        ['INVALID_IDENTIFIER', /^integrationId is missing or not an identifier/],
      ],
    ],
  ];
  it.each(spoiled)('%s', async (_title, tenant, spoil, expected) => {
    const three = legacySeedRows({ count: 3, keys, tenants: [tenant], apiKeysOnly: true });
    spoil(three);
    await seedLegacyTable(legacy.db, three, `legacy_${tenant}`);
    const s = await runner.run(new SqlLegacySource(legacy.db, { table: `legacy_${tenant}` }));
    expect(s).toMatchObject({ successfulMigrations: 1, failedMigrations: 2 });
    expect(s.errors.map((e) => [e.legacyId, e.field, e.code, e.reason])).toEqual(expected.map(([code, reason], i) => [String(three[i].id), null, code, expect.stringMatching(reason)]));
    expect(await count(`SELECT COUNT(*) AS n FROM cv_credentials WHERE tenant_id = '${tenant}'`)).toBe(1);
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
