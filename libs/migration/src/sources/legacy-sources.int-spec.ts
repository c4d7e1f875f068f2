import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createTestDatabase, type TestDatabase } from '@app/testing';
import { DataSource } from 'typeorm';
import { CredentialType } from '@app/credentials';
import { LegacySourceError } from '../errors/migration.errors';
import { legacyJsonl, legacySeedRows, seedLegacyTable, type LegacySeedRow } from '../legacy/legacy-seed';
import { openLegacySqlite } from '../testing/legacy-fixture';
import { JsonlLegacySource } from './jsonl-legacy-source';
import type { LegacyCredentialSource, LegacyFilter } from './legacy-source';
import { SqlLegacySource } from './sql-legacy-source';

/** Both sources over the same 50 rows: filters, keyset pages in id order, the mapping, clearFields. */
describe('legacy sources', () => {
  let legacy: Awaited<ReturnType<typeof openLegacySqlite>>;
  let rows: LegacySeedRow[];
  let sources: [string, LegacyCredentialSource][];

  beforeAll(async () => {
    legacy = await openLegacySqlite();
    rows = legacySeedRows({ count: 50, keys: [randomBytes(32)] });
    await seedLegacyTable(legacy.db, rows);
    const file = join(legacy.path, '..', 'legacy.jsonl');
    writeFileSync(file, legacyJsonl(rows));
    sources = [
      ['sql', new SqlLegacySource(legacy.db)],
      ['jsonl', new JsonlLegacySource(file)],
    ];
  });

  afterAll(() => legacy?.dispose());

  const all = async (s: LegacyCredentialSource, f: LegacyFilter, size: number) => {
    const out: string[] = [];
    for (let after: string | undefined; ; ) {
      const page = await s.page(f, after, size);
      if (!page.length) return out;
      out.push(...page.map((r) => r.legacyId));
      after = page[page.length - 1].legacyId;
    }
  };

  it.each([
    [{}],
    [{ tenantId: 't2' }],
    [{ tenantId: 't1', integrationId: 'stripe' }],
    [{ integrationId: 'nope' }],
  ] as [LegacyFilter][])('counts and pages %j the same way in both sources', async (f) => {
    const want = rows.filter((r) => (!f.tenantId || r.tenant_id === f.tenantId) && (!f.integrationId || r.integration_id === f.integrationId)).map((r) => String(r.id));
    for (const [, s] of sources) {
      expect(await s.count(f)).toBe(want.length);
      expect(await all(s, f, 7)).toEqual(want);
    }
  });

  it('maps columns to credential types and keeps the legacy dates', async () => {
    for (const [, s] of sources) {
      const [r] = await s.page({}, undefined, 1);
      expect(r).toMatchObject({ legacyId: '1', tenantId: 't1', integrationId: 'github', connectionId: 'conn-000000' });
      expect(r.fields[CredentialType.OAUTH_ACCESS_TOKEN]).toBe(rows[0].access_token);
      expect(r.createdAt?.toISOString()).toBe(rows[0].created_at);
      expect(r.expiresAt?.toISOString()).toBe(rows[0].expires_at);
    }
  });

  it('clears fields in the SQL source only', async () => {
    const [, sql] = sources[0];
    const [, jsonl] = sources[1];
    const [r] = await sql.page({}, '1', 1);
    await sql.clearFields(r, [CredentialType.API_KEY]);
    const [after] = await sql.page({}, '1', 1);
    expect(after.fields[CredentialType.API_KEY]).toBeNull();
    await expect(jsonl.clearFields(r, [CredentialType.API_KEY])).rejects.toBeInstanceOf(LegacySourceError);
  });

  it('reports a missing table as a SOURCE error naming no row', async () => {
    await expect(new SqlLegacySource(legacy.db, { table: 'missing' }).count({})).rejects.toMatchObject({ codeName: 'LEGACY_SOURCE' });
  });
});

/**
 * A mapping that names a column the legacy table lacks (the defaults `created_at` / `expires_at` of a table
 * that has no dates): the error names the column and the mapping option to set, never a row.
 */
describe.each(['sqlite', 'postgres'] as const)('a legacy table the mapping does not fit (%s)', (kind) => {
  let db: TestDatabase;
  let legacy: DataSource;

  beforeAll(async () => {
    db = await createTestDatabase(kind);
    legacy = await new DataSource(db.options).initialize();
    await legacy.query('CREATE TABLE integrations (id INTEGER PRIMARY KEY, org_id TEXT, provider TEXT, account TEXT, api_key_enc TEXT)');
    await legacy.query("INSERT INTO integrations VALUES (1, 'acme', 'sendgrid', 'acct-1', 'SG.row-value-never-quoted')");
  });

  afterAll(async () => {
    if (legacy?.isInitialized) await legacy.destroy();
    await db?.drop();
  });

  const mapping = { table: 'integrations', tenantColumn: 'org_id', integrationColumn: 'provider', connectionColumn: 'account', fields: { api_key: 'api_key_enc' } };

  it('names the default date columns it lacks and the options that change them', async () => {
    const source = new SqlLegacySource(legacy, mapping);
    expect(await source.count({})).toBe(1);
    const err = (await source.page({}, undefined, 10).catch((e: unknown) => e)) as LegacySourceError;
    expect(err).toBeInstanceOf(LegacySourceError);
    expect(err.message).toMatch(/integrations has no column created_at \(mapping\.createdAtColumn\), expires_at \(mapping\.expiresAtColumn\)/);
    expect(err.message).toMatch(/null when the table has none/);
    expect(err.message).not.toContain('SG.row-value');
    // Set as the message says, the same table reads.
    const fitted = new SqlLegacySource(legacy, { ...mapping, createdAtColumn: null, expiresAtColumn: null });
    expect(await fitted.page({}, undefined, 10)).toMatchObject([{ legacyId: '1', tenantId: 'acme', createdAt: null, expiresAt: null }]);
  });

  it('names a missing table and a missing field column', async () => {
    await expect(new SqlLegacySource(legacy, { ...mapping, table: 'missing' }).count({})).rejects.toMatchObject({
      codeName: 'LEGACY_SOURCE',
      message: expect.stringMatching(/the legacy table missing cannot be read \(\w+\): does it exist, and is the database reachable\? \(mapping\.table\)/),
    });
    const err = (await new SqlLegacySource(legacy, { ...mapping, createdAtColumn: null, expiresAtColumn: null, fields: { api_key: 'api_key', oauth_access_token: 'token_enc' } })
      .page({}, undefined, 10)
      .catch((e: unknown) => e)) as LegacySourceError;
    expect(err.message).toMatch(/no column api_key \(mapping\.fields\.api_key\), token_enc \(mapping\.fields\.oauth_access_token\)/);
  });

  it('a lost connection fails the diagnosing queries too: the message asks whether the database is reachable, not only whether the table exists', async () => {
    const lost = await new DataSource(db.options).initialize();
    await lost.destroy();
    const err = (await new SqlLegacySource(lost, mapping).count({}).catch((e: unknown) => e)) as LegacySourceError;
    expect(err).toBeInstanceOf(LegacySourceError);
    expect(err.message).toMatch(/^the legacy table integrations cannot be read \(\w+\): does it exist, and is the database reachable\?/);
  });

  it("resolves the table as its queries do (the connection's search_path), whatever the DataSource's schema option", async () => {
    // An app's DataSource whose `schema` option is not where the legacy table is (TypeORM's hasTable looks there).
    const other = await new DataSource({ ...db.options, ...(kind === 'postgres' ? { schema: 'public' } : {}) } as typeof db.options).initialize();
    try {
      await expect(new SqlLegacySource(other, mapping).page({}, undefined, 10)).rejects.toThrow(/integrations has no column created_at \(mapping\.createdAtColumn\)/);
    } finally {
      await other.destroy();
    }
  });
});
