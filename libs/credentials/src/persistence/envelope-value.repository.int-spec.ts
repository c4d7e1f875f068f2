import { randomUUID } from 'node:crypto';
import { TransactionRunner } from '@app/common';
import { createTestDatabase, DATABASE_KINDS, TestDatabase } from '@app/testing';
import { DataSource } from 'typeorm';
import { at, envelopeRow, openRepositoryDataSource, tenant } from '../../test/repository-fixtures';
import { EnvelopeValueRepository } from './envelope-value.repository';

describe.each(DATABASE_KINDS)('EnvelopeValueRepository on %s', (kind) => {
  let db: TestDatabase;
  let ds: DataSource;
  let runner: TransactionRunner;
  let repo: EnvelopeValueRepository;

  beforeAll(async () => {
    db = await createTestDatabase(kind);
    ({ ds, runner } = await openRepositoryDataSource(db));
    repo = new EnvelopeValueRepository(runner);
  });
  afterAll(async () => {
    if (ds?.isInitialized) await ds.destroy();
    await db?.drop();
  });

  it('inserts ciphertext rows and finds one of the tenant only', async () => {
    const t = tenant();
    const row = envelopeRow(t, randomUUID(), { version: 3 });
    await repo.insert(row);
    expect(await repo.find(t, row.id)).toEqual(row);
    expect(await repo.find(tenant(), row.id)).toBeNull();
  });

  it("pages a tenant's rows by id without loading them all", async () => {
    const t = tenant();
    const rows = Array.from({ length: 5 }, () => envelopeRow(t, randomUUID()));
    for (const r of rows) await repo.insert(r);
    await repo.insert(envelopeRow(tenant(), randomUUID()));
    const seen: string[] = [];
    for (let after = ''; ; ) {
      const page = await repo.pageOfTenant(t, after, 2);
      if (page.length === 0) break;
      expect(page.length).toBeLessThanOrEqual(2);
      seen.push(...page.map((r) => r.id));
      after = page[page.length - 1].id;
    }
    expect(seen).toEqual(rows.map((r) => r.id).sort());
  });

  it('reseals only a row still under the key version it was read with (compare-and-set)', async () => {
    const row = envelopeRow(tenant(), randomUUID(), { dataKeyVersion: 'k1' });
    await repo.insert(row);
    const sealed = { iv: 'bmV3', authTag: 'bmV3dGFn', ciphertext: 'bmV3Y2lwaGVy', dataKeyName: row.dataKeyName, dataKeyVersion: 'k2', updatedAt: at(60_000) };
    await expect(repo.reseal(row.id, 'k1', sealed)).resolves.toBe(true);
    await expect(repo.reseal(row.id, 'k1', { ...sealed, dataKeyVersion: 'k3' })).resolves.toBe(false);
    expect(await repo.find(row.tenantId, row.id)).toEqual({ ...row, ...sealed });
  });

  it("deletes a credential's ciphertexts in the ambient transaction: a rollback keeps them", async () => {
    const t = tenant();
    const credentialId = randomUUID();
    const [a, b] = [envelopeRow(t, credentialId, { version: 1 }), envelopeRow(t, credentialId, { version: 2 })];
    const other = envelopeRow(t, randomUUID());
    for (const r of [a, b, other]) await repo.insert(r);
    await expect(
      runner.run(async () => {
        await repo.deleteOfCredential(t, credentialId);
        throw new Error('roll back');
      }),
    ).rejects.toThrow('roll back');
    expect(await repo.find(t, a.id)).not.toBeNull();
    await repo.deleteOfCredential(tenant(), credentialId); // another tenant: nothing
    expect(await repo.find(t, b.id)).not.toBeNull();
    await repo.deleteOfCredential(t, credentialId);
    expect([await repo.find(t, a.id), await repo.find(t, b.id)]).toEqual([null, null]);
    expect(await repo.find(t, other.id)).toEqual(other);
  });
});
