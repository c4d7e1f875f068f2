import { randomBytes } from 'node:crypto';
import { DataSource } from 'typeorm';
import { CredentialCache, CredentialsService, CredentialType, DataKeyService, ValueStoreKind } from '@app/credentials';
import { KeyVaultKeysProvider } from '@app/key-vault';
import { DATABASE_KINDS } from '@app/testing';
import { decryptLegacyField } from './legacy/legacy-cipher';
import { legacySeedRows, seedLegacyTable } from './legacy/legacy-seed';
import { MIGRATION_TAGS } from './runner/connection-migrator';
import { MigrationRunner } from './runner/migration.runner';
import { SqlLegacySource } from './sources/sql-legacy-source';
import { migrationStackImports, useMigrationStack } from './testing/migration-stack';

/**
 * Integration: a dry run compares legacy values with live envelope-stored credentials whose data key is wrapped by a
 * vault key (`envelope.keyEncryptionKey`). After that key rotated, or the tenant's data key did, reading a value
 * re-wraps the data key or re-encrypts the value lazily — a write the dry run must not make.
 */
describe.each(DATABASE_KINDS)('a dry run over envelope credentials after a key rotation (%s)', (kind) => {
  const keys = [randomBytes(32)];
  const run = randomBytes(3).toString('hex');
  const kek = `cv-mig-kek-${run}`;
  const tenant = `envdry-${run}`;
  const stack = useMigrationStack(kind, ({ db, vault }) =>
    migrationStackImports(
      { database: db.options, vault, credentials: { envelope: { keyEncryptionKey: kek } } },
      { keys: keys.map((k) => k.toString('hex')), valueStore: ValueStoreKind.ENVELOPE },
    ),
  );
  beforeAll(async () => {
    await stack.app.get(KeyVaultKeysProvider).createKey(kek, { keyType: 'RSA', keySize: 2048, keyOps: ['wrapKey', 'unwrapKey'] });
  });

  const query = (sql: string) => stack.app.get(DataSource).query(sql) as Promise<Record<string, unknown>[]>;
  /** Every row a read could rewrite, and every row a write would add. */
  const snapshot = async () => ({
    dataKeys: await query(`SELECT id, version, kek_name, kek_version, wrapped_key, updated_at FROM cv_wrapped_data_keys WHERE tenant_id = '${tenant}' ORDER BY id`),
    values: await query(`SELECT * FROM cv_envelope_values WHERE tenant_id = '${tenant}' ORDER BY id`),
    counts: await query(`SELECT (SELECT COUNT(*) FROM cv_credentials) AS credentials, (SELECT COUNT(*) FROM cv_audit_log) AS audit, (SELECT COUNT(*) FROM cv_outbox) AS outbox, (SELECT COUNT(*) FROM cv_migration_checkpoints) AS checkpoints`),
  });
  /** A new process: nothing cached (values, unwrapped data keys, the vault key's latest version). */
  const coldStart = () => {
    stack.app.get(CredentialCache).clear();
    stack.app.get(DataKeyService).clear();
  };

  it('compares with the live credentials (ours, DUPLICATE, MIGRATION_CONFLICT) and writes nothing: no data key re-wrapped, no value re-encrypted', async () => {
    const rows = legacySeedRows({ count: 3, keys, apiKeysOnly: true, tenants: [tenant] });
    await seedLegacyTable(stack.legacy.db, rows);
    const source = new SqlLegacySource(stack.legacy.db);
    const svc = stack.app.get(CredentialsService);
    const ctx = { tenantId: tenant, actor: { id: 'system:migration' } };
    const valueOf = (i: number) => decryptLegacyField(rows[i].api_key!, keys).value;
    const slotOf = (i: number) => ({ integrationId: rows[i].integration_id, connectionId: rows[i].connection_id, type: CredentialType.API_KEY, valueStore: ValueStoreKind.ENVELOPE });
    // Row 1's slot holds its value, stored by row 1 before a crash; row 2's another value; row 3's the same, by hand.
    const ours = await svc.store(ctx, { ...slotOf(0), value: valueOf(0), tags: { [MIGRATION_TAGS.source]: source.name, [MIGRATION_TAGS.legacyId]: '1' } });
    await svc.store(ctx, { ...slotOf(1), value: `sk_other_${randomBytes(12).toString('hex')}` });
    await svc.store(ctx, { ...slotOf(2), value: valueOf(2) });

    // The vault key rotates, and so does the tenant's data key: every stored value is now stale both ways.
    const vaultKeys = stack.app.get(KeyVaultKeysProvider);
    const kekV2 = (await vaultKeys.rotateKey(kek)).properties.version;
    coldStart(); // learns the vault key's new version
    await stack.app.get(DataKeyService).rotate(tenant);
    coldStart();
    const before = await snapshot();
    expect(before.dataKeys).toHaveLength(2);
    expect(before.dataKeys.filter((k) => k.kek_version === kekV2)).toHaveLength(1); // the new data key; the old one under v1
    stack.vault.resetStats();

    const dry = await stack.app.get(MigrationRunner).run(source, { dryRun: true });
    expect(dry).toMatchObject({ totalConnections: 3, successfulMigrations: 1, failedMigrations: 1, skipped: 1 });
    expect(dry.errors.map((e) => [e.legacyId, e.code])).toEqual([['2', 'MIGRATION_CONFLICT'], ['3', 'DUPLICATE']]);
    expect(await snapshot()).toEqual(before);
    expect(stack.vault.stats().byOperation.wrapKey ?? 0).toBe(0);

    // An ordinary read afterwards still re-wraps and re-encrypts lazily.
    expect((await svc.get(ctx, ours.id)).value).toBe(valueOf(0));
    const after = await snapshot();
    expect(after.dataKeys.map((k) => k.kek_version)).toEqual([kekV2, kekV2]);
    expect(after.values).not.toEqual(before.values);
  }, 60_000);
});
