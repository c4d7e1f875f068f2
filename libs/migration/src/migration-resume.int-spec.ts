import { randomBytes } from 'node:crypto';
import { DataSource } from 'typeorm';
import { AuditService } from '@app/audit';
import { credentialSecretName, CredentialsService, CredentialType } from '@app/credentials';
import { KeyVaultProvider } from '@app/key-vault';
import { DATABASE_KINDS } from '@app/testing';
import { decryptLegacyField, encryptLegacyField } from './legacy/legacy-cipher';
import { legacySeedKind, legacySeedRows, seedLegacyTable } from './legacy/legacy-seed';
import { MIGRATION_ACTOR } from './migration.constants';
import { MigrationRunner } from './runner/migration.runner';
import { SqlLegacySource } from './sources/sql-legacy-source';
import { migrationStackImports, useMigrationStack } from './testing/migration-stack';

/**
 * Integration: a run that dies part-way through a connection — one field's value write failed after
 * its sibling's succeeded (as a kill between them leaves it: a value in the vault, nothing committed)
 * — then a resume: exact totals, no duplicate, one MIGRATE audit row per credential, the chain verifies.
 */
describe.each(DATABASE_KINDS)('a migration resumed after a connection failed part-way (%s)', (kind) => {
  const COUNT = 6;
  const keys = [randomBytes(32)];
  const tenant = `part-${randomBytes(3).toString('hex')}`;
  const stack = useMigrationStack(
    kind,
    // No client retry, nor the run's own for a throttled write: the injected 429 reaches the migration as a failure. (A
    // 5xx would not do: the run waits out a vault that fails so, and retries the write — migration-vault-unavailable.)
    ({ db, vault }) =>
      migrationStackImports({ database: db.options, vault, keyVault: { resilience: { maxAttempts: 1 } } }, { keys: keys.map((k) => k.toString('hex')), concurrency: { initial: 8, max: 8 }, maxThrottleRetries: 0 }),
    (legacy) => seedLegacyTable(legacy, legacySeedRows({ count: COUNT, keys, tenants: [tenant] })),
  );

  const count = async (sql: string) => Number((await stack.app.get(DataSource).query(sql))[0].n);
  const credentials = () => count(`SELECT COUNT(*) AS n FROM cv_credentials WHERE tenant_id = '${tenant}' AND status <> 'deleted'`);
  const migrateRows = () => count(`SELECT COUNT(*) AS n FROM cv_audit_log WHERE tenant_id = '${tenant}' AND action = 'migrate'`);
  const credentialsWithOneMigrateRow = (t = tenant) =>
    count(`SELECT COUNT(*) AS n FROM cv_credentials c WHERE c.tenant_id = '${t}' AND (SELECT COUNT(*) FROM cv_audit_log a WHERE a.tenant_id = c.tenant_id AND a.action = 'migrate' AND a.resource = c.id) = 1`);

  it('commits no field of the failed connection, then the resume completes it with exact totals and one MIGRATE row per credential', async () => {
    let expected = 0;
    for (let i = 0; i < COUNT; i++) expected += legacySeedKind(i, {}) === 1 ? 1 : 2;
    const source = new SqlLegacySource(stack.legacy.db);

    // Row 1 holds two fields (OAuth tokens); its first value write is the run's first vault call.
    stack.vault.injectFault({ kind: 'status', status: 429, retryAfterSeconds: 0, count: 1, operations: ['setSecret'] });
    const first = await stack.app.get(MigrationRunner).run(source);
    stack.vault.clearFaults();
    expect(first).toMatchObject({ totalConnections: COUNT, successfulMigrations: COUNT - 1, failedMigrations: 1 });
    expect(first.errors).toHaveLength(2); // both fields of the failed connection, neither committed
    expect(new Set(first.errors.map((e) => e.legacyId))).toEqual(new Set(['1']));
    expect(await credentials()).toBe(expected - 2);
    expect(await migrateRows()).toBe(expected - 2);

    const resumed = await stack.app.get(MigrationRunner).run(source);
    expect(resumed).toMatchObject({ successfulMigrations: 1, failedMigrations: 0, skipped: COUNT - 1, totalCredentialsMigrated: 2, errors: [] });
    expect(await credentials()).toBe(expected);
    expect(await count(`SELECT COUNT(*) AS n FROM (SELECT DISTINCT integration_id, connection_id, type FROM cv_credentials WHERE tenant_id = '${tenant}' AND status <> 'deleted') d`)).toBe(expected);
    expect(await migrateRows()).toBe(expected);
    expect(await credentialsWithOneMigrateRow()).toBe(expected);
    expect(await stack.app.get(AuditService).verify({ tenantId: tenant })).toMatchObject({ valid: true });
  }, 60_000);

  it('a connection with one field in conflict and another new commits neither; once the operator resolves it, a re-run stores both once, each with one MIGRATE row', async () => {
    const t = `${tenant}-c`;
    const rows = legacySeedRows({ count: 3, keys, tenants: [t] }); // row 1: OAuth access + refresh token; 2: API key; 3: basic pair
    await seedLegacyTable(stack.legacy.db, rows, 'legacy_conflict');
    const source = new SqlLegacySource(stack.legacy.db, { table: 'legacy_conflict' });
    const svc = stack.app.get(CredentialsService);
    const ctx = { tenantId: t, actor: { id: 'user:operator' } };
    const slot = (type: CredentialType) => ({ integrationId: rows[0].integration_id, connectionId: rows[0].connection_id, type });
    // The refresh token's slot already holds another value; the access token's is free.
    const other = await svc.store(ctx, { ...slot(CredentialType.OAUTH_REFRESH_TOKEN), value: `1//${randomBytes(24).toString('hex')}` });
    const live = () => count(`SELECT COUNT(*) AS n FROM cv_credentials WHERE tenant_id = '${t}' AND status <> 'deleted'`);
    const migrateRowsOf = () => count(`SELECT COUNT(*) AS n FROM cv_audit_log WHERE tenant_id = '${t}' AND action = 'migrate'`);
    const checkpointOf = (legacyId: string) => count(`SELECT COUNT(*) AS n FROM cv_migration_checkpoints WHERE source = '${source.name}' AND legacy_id = '${legacyId}'`);
    // Every credential the migration stored (tagged with its legacy row) has exactly one MIGRATE row.
    const migratedWithoutOneMigrateRow = () =>
      count(`SELECT COUNT(*) AS n FROM cv_credentials c WHERE c.tenant_id = '${t}' AND c.status <> 'deleted' AND c.id <> '${other.id}' AND (SELECT COUNT(*) FROM cv_audit_log a WHERE a.tenant_id = c.tenant_id AND a.action = 'migrate' AND a.resource = c.id) <> 1`);

    const dry = await stack.app.get(MigrationRunner).run(source, { dryRun: true });
    const first = await stack.app.get(MigrationRunner).run(source);
    expect(first).toMatchObject({ totalConnections: 3, successfulMigrations: 2, failedMigrations: 1, totalCredentialsMigrated: 3 });
    expect(first.errors).toEqual(dry.errors);
    expect(first.errors.map((e) => [e.legacyId, e.field, e.code])).toEqual([['1', 'refresh_token', 'MIGRATION_CONFLICT']]);
    // Nothing of row 1 committed: no access token without its MIGRATE row and checkpoint.
    expect((await svc.list(ctx, { integrationId: rows[0].integration_id, connectionId: rows[0].connection_id })).items.map((c) => c.id)).toEqual([other.id]);
    expect(await live()).toBe(1 + 3);
    expect(await migrateRowsOf()).toBe(3);
    expect(await checkpointOf('1')).toBe(0);
    expect(await migratedWithoutOneMigrateRow()).toBe(0);

    // The operator resolves the conflict (the slot's credential deleted), then runs again.
    await svc.delete(ctx, other.id);
    const second = await stack.app.get(MigrationRunner).run(source);
    expect(second).toMatchObject({ successfulMigrations: 1, failedMigrations: 0, skipped: 2, totalCredentialsMigrated: 2, errors: [] });
    expect(await live()).toBe(5);
    expect(await migrateRowsOf()).toBe(5);
    expect(await migratedWithoutOneMigrateRow()).toBe(0);
    expect(await checkpointOf('1')).toBe(1);
    // Stored by this run, not found from an earlier one.
    const resumed = await stack.app.get(DataSource).query(`SELECT details FROM cv_audit_log WHERE tenant_id = '${t}' AND action = 'migrate'`);
    expect(resumed.map((r: { details: unknown }) => (typeof r.details === 'string' ? JSON.parse(r.details) : r.details).resumed)).toEqual([false, false, false, false, false]);
    const served = await svc.list(ctx, { integrationId: rows[0].integration_id, connectionId: rows[0].connection_id });
    const values = await Promise.all(served.items.map(async (c) => [c.type, (await svc.get(ctx, c.id)).value]));
    expect(Object.fromEntries(values)).toEqual({
      [CredentialType.OAUTH_ACCESS_TOKEN]: decryptLegacyField(rows[0].access_token!, keys).value,
      [CredentialType.OAUTH_REFRESH_TOKEN]: decryptLegacyField(rows[0].refresh_token!, keys).value,
    });

    const third = await stack.app.get(MigrationRunner).run(source);
    expect(third).toMatchObject({ successfulMigrations: 0, skipped: 3, totalCredentialsMigrated: 0, errors: [] });
    expect(await live()).toBe(5);
    expect(await stack.app.get(AuditService).verify({ tenantId: t })).toMatchObject({ valid: true });
  }, 60_000);

  it('a dry run foresees that a connection failed by a conflict stores none of its fields: a later legacy row of it stores its own value', async () => {
    const t = `${tenant}-d`;
    const rows = legacySeedRows({ count: 2, keys, tenants: [t] });
    // Row 2 repeats row 1's connection with another access token only; row 1's refresh token slot holds another value.
    Object.assign(rows[1], { tenant_id: rows[0].tenant_id, integration_id: rows[0].integration_id, connection_id: rows[0].connection_id, api_key: null, access_token: encryptLegacyField(`ya29.${randomBytes(24).toString('hex')}`, keys[0], 'hex') });
    await seedLegacyTable(stack.legacy.db, rows, 'legacy_conflict_later');
    const source = new SqlLegacySource(stack.legacy.db, { table: 'legacy_conflict_later' });
    const ctx = { tenantId: t, actor: { id: 'user:operator' } };
    await stack.app.get(CredentialsService).store(ctx, { integrationId: rows[0].integration_id, connectionId: rows[0].connection_id, type: CredentialType.OAUTH_REFRESH_TOKEN, value: `1//${randomBytes(24).toString('hex')}` });

    const dry = await stack.app.get(MigrationRunner).run(source, { dryRun: true });
    const real = await stack.app.get(MigrationRunner).run(source);
    expect(real).toMatchObject({ successfulMigrations: 1, failedMigrations: 1, totalCredentialsMigrated: 1 });
    expect(real.errors.map((e) => [e.legacyId, e.field, e.code])).toEqual([['1', 'refresh_token', 'MIGRATION_CONFLICT']]);
    expect(dry).toMatchObject({ successfulMigrations: 1, failedMigrations: 1, totalCredentialsMigrated: 1, errors: real.errors });
  }, 60_000);

  it('a kill after the value writes and before the commit (vault versions, no rows): the resume stores every value once and serves the legacy one', async () => {
    const orphanTenant = `${tenant}-o`;
    const rows = legacySeedRows({ count: 4, keys, apiKeysOnly: true, tenants: [orphanTenant] });
    await seedLegacyTable(stack.legacy.db, rows, 'legacy_orphans');
    const vaultClient = stack.app.get(KeyVaultProvider);
    const names = rows.map((r) => credentialSecretName({ tenantId: orphanTenant, integrationId: r.integration_id, connectionId: r.connection_id, type: CredentialType.API_KEY }, 0));
    for (const name of names) await vaultClient.setSecret(name, `sk_live_orphan_${randomBytes(8).toString('hex')}`);
    const s = await stack.app.get(MigrationRunner).run(new SqlLegacySource(stack.legacy.db, { table: 'legacy_orphans' }));
    expect(s).toMatchObject({ successfulMigrations: 4, failedMigrations: 0, totalCredentialsMigrated: 4, errors: [] });
    const ctx = { tenantId: orphanTenant, actor: { id: MIGRATION_ACTOR } };
    const page = await stack.app.get(CredentialsService).list(ctx, { limit: 50 });
    expect(page.items).toHaveLength(4);
    const served = await Promise.all(page.items.map(async (c) => (await stack.app.get(CredentialsService).get(ctx, c.id)).value));
    expect(served.sort()).toEqual(rows.map((r) => decryptLegacyField(r.api_key!, keys).value).sort());
    // The resume wrote a new version beside each orphan, and serves that one.
    for (const name of names) expect((await vaultClient.listSecretVersions(name)).items).toHaveLength(2);
    expect(await credentialsWithOneMigrateRow(orphanTenant)).toBe(4);
    expect(await stack.app.get(AuditService).verify({ tenantId: orphanTenant })).toMatchObject({ valid: true });
  }, 60_000);
});
