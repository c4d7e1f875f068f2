import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
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
