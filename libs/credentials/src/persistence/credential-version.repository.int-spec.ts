import { TransactionRunner } from '@app/common';
import { createTestDatabase, DATABASE_KINDS, TestDatabase } from '@app/testing';
import { DataSource } from 'typeorm';
import { at, credentialRow, openRepositoryDataSource, tenant, versionRow } from '../../test/repository-fixtures';
import { ValueStoreKind } from '../credential-type';
import type { CredentialEntity } from '../entities/credential.entity';
import { CredentialRepository } from './credential.repository';
import { CredentialVersionRepository } from './credential-version.repository';

describe.each(DATABASE_KINDS)('CredentialVersionRepository on %s', (kind) => {
  let db: TestDatabase;
  let ds: DataSource;
  let runner: TransactionRunner;
  let repo: CredentialVersionRepository;
  /** A stored credential of a fresh tenant (versions reference it). */
  let credential: () => Promise<CredentialEntity>;

  beforeAll(async () => {
    db = await createTestDatabase(kind);
    ({ ds, runner } = await openRepositoryDataSource(db));
    repo = new CredentialVersionRepository(runner);
    const credentials = new CredentialRepository(runner);
    credential = async () => {
      const row = credentialRow(tenant());
      await credentials.insert(row);
      return row;
    };
  });
  afterAll(async () => {
    if (ds?.isInitialized) await ds.destroy();
    await db?.drop();
  });

  it('inserts versions and reads one, or all newest first, of the tenant only', async () => {
    const cred = await credential();
    const t = cred.tenantId;
    const v1 = versionRow(cred, 1, { valueHint: 'abc', expiresAt: at(5), certificate: { subject: 'CN=x', issuer: 'CN=x', serialNumber: '0a', fingerprint256: 'ff', validFrom: at(0).toISOString(), validTo: at(9).toISOString() } });
    const v2 = versionRow(cred, 2, { valueStore: ValueStoreKind.ENVELOPE, vaultSecretName: null, vaultSecretVersion: null, envelopeValueId: 'e-1' });
    const v3 = versionRow(cred, 3, { sourceVersion: 1 });
    for (const v of [v1, v3, v2]) await repo.insert(v);
    expect(await repo.find(t, cred.id, 1)).toEqual(v1);
    expect(await repo.find(t, cred.id, 4)).toBeNull();
    expect(await repo.find(tenant(), cred.id, 1)).toBeNull();
    expect((await repo.list(t, cred.id)).map((v) => v.version)).toEqual([3, 2, 1]);
    expect(await repo.list(tenant(), cred.id)).toEqual([]);
    await expect(repo.insert(versionRow(cred, 2))).rejects.toThrow(); // (credential, version) is unique
  });

  it('counts the versions written to one secret name: rollbacks and other generations do not count', async () => {
    const cred = await credential();
    await repo.insert(versionRow(cred, 1, { vaultSecretName: 'cv--a--g0' }));
    await repo.insert(versionRow(cred, 2, { vaultSecretName: 'cv--a--g0' }));
    await repo.insert(versionRow(cred, 3, { vaultSecretName: 'cv--a--g0', sourceVersion: 1 }));
    await repo.insert(versionRow(cred, 4, { vaultSecretName: 'cv--a--g1' }));
    expect(await repo.countWrittenTo(cred.id, 'cv--a--g0')).toBe(2);
    expect(await repo.countWrittenTo(cred.id, 'cv--a--g1')).toBe(1);
    expect(await repo.countWrittenTo(credentialRow('other').id, 'cv--a--g0')).toBe(0);
  });

  it('inserts join the ambient transaction', async () => {
    const cred = await credential();
    await expect(
      runner.run(async () => {
        await repo.insert(versionRow(cred, 1));
        throw new Error('roll back');
      }),
    ).rejects.toThrow('roll back');
    expect(await repo.list(cred.tenantId, cred.id)).toEqual([]);
  });
});
