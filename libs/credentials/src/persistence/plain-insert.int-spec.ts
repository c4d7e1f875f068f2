import { PLAIN_INSERT_SQLITE_CHUNK, TransactionRunner } from '@app/common';
import { createTestDatabase, DATABASE_KINDS, TestDatabase } from '@app/testing';
import { DataSource, type EntityTarget, type ObjectLiteral } from 'typeorm';
import { at, credentialRow, openRepositoryDataSource, tenant, versionRow } from '../../test/repository-fixtures';
import { ValueStoreKind } from '../credential-type';
import { CredentialVersionEntity } from '../entities/credential-version.entity';
import { CredentialEntity } from '../entities/credential.entity';
import { CredentialVersionRepository } from './credential-version.repository';
import { CredentialRepository } from './credential.repository';
import { everyFieldSetCredential, TEST_CERTIFICATE } from '../testing/credential-fixtures';

// The batch inserts run fixed SQL; what TypeORM's insert writes is the reference, column by column.
describe.each(DATABASE_KINDS)('plain multi-row inserts on %s', (kind) => {
  let db: TestDatabase;
  let ds: DataSource;
  let runner: TransactionRunner;

  beforeAll(async () => {
    db = await createTestDatabase(kind);
    ({ ds, runner } = await openRepositoryDataSource(db));
  });
  afterAll(async () => {
    if (ds?.isInitialized) await ds.destroy();
    await db?.drop();
  });

  /** The stored row as the database returns it, every column, without the primary key and `skip`ped ones. */
  async function stored(entity: EntityTarget<ObjectLiteral>, id: string, skip: string[] = []): Promise<Record<string, unknown>> {
    const meta = ds.getMetadata(entity);
    const table = meta.tablePath.split('.').map((n) => ds.driver.escape(n)).join('.');
    const [row] = (await ds.query(`SELECT * FROM ${table} WHERE ${ds.driver.escape('id')} = ${kind === 'postgres' ? '$1' : '?'}`, [id])) as Record<string, unknown>[];
    expect(Object.keys(row).sort()).toEqual(meta.columns.map((c) => c.databaseName).sort());
    for (const k of ['id', ...skip]) delete row[k];
    return row;
  }

  function variants(t: string): CredentialEntity[] {
    return [
      everyFieldSetCredential(t),
      credentialRow(t, { connectionId: 'nulls', expiresAt: null, rotatedAt: null, valueHint: null, certificate: null, tags: {}, deletedAt: null }),
      // A property left out takes the column's default, as TypeORM writes it.
      credentialRow(t, { connectionId: 'defaulted', vaultGeneration: undefined as unknown as number }),
    ];
  }

  it('cv_credentials: every column as TypeORM writes it — strings, nulls, epoch-ms dates, JSON, integers', async () => {
    const repo = new CredentialRepository(runner);
    const tRef = tenant('ref');
    const tMine = tenant('mine');
    const reference = variants(tRef);
    const mine = variants(tMine);
    for (const r of reference) await ds.manager.insert(CredentialEntity, r);
    await repo.insertMany(mine);
    for (let i = 0; i < mine.length; i++) {
      const a = await stored(CredentialEntity, reference[i].id, ['tenant_id']);
      const b = await stored(CredentialEntity, mine[i].id, ['tenant_id']);
      expect(b).toStrictEqual(a);
    }
    // And TypeORM reads them back as the entities that were written.
    for (const r of mine) expect(await ds.manager.findOneBy(CredentialEntity, { id: r.id })).toEqual({ ...r, vaultGeneration: r.vaultGeneration ?? 0 });
  });

  it('cv_credential_versions: every column as TypeORM writes it', async () => {
    const versions = new CredentialVersionRepository(runner);
    const [full, sparse] = variants(tenant('v'));
    await ds.manager.insert(CredentialEntity, [full, sparse]);
    const rows = (version: number) => [
      versionRow(full, version, { valueStore: ValueStoreKind.ENVELOPE, vaultSecretName: null, vaultSecretVersion: null, envelopeValueId: 'env-1', sourceVersion: 2, valueHint: 'abc', expiresAt: at(9), certificate: TEST_CERTIFICATE, createdAt: at(4), createdBy: 'user-ü' }),
      versionRow(sparse, version, { vaultSecretVersion: 'v-1', createdAt: at(5), sourceVersion: null, valueHint: null, expiresAt: null, certificate: null }),
    ];
    const reference = rows(1);
    const mine = rows(2);
    for (const r of reference) await ds.manager.insert(CredentialVersionEntity, r);
    await versions.insertMany(mine);
    for (let i = 0; i < mine.length; i++) {
      expect(await stored(CredentialVersionEntity, mine[i].id, ['version'])).toStrictEqual(await stored(CredentialVersionEntity, reference[i].id, ['version']));
      expect(await ds.manager.findOneBy(CredentialVersionEntity, { id: mine[i].id })).toEqual(mine[i]);
    }
  });

  it('a batch larger than one statement is written whole, in the caller’s transaction (all or nothing)', async () => {
    const repo = new CredentialRepository(runner);
    const t = tenant('many');
    const many = Array.from({ length: 2 * PLAIN_INSERT_SQLITE_CHUNK + 7 }, (_, i) => credentialRow(t, { connectionId: `c-${i}` }));
    await runner.run(() => repo.insertMany(many));
    expect(await ds.manager.countBy(CredentialEntity, { tenantId: t })).toBe(many.length);

    const t2 = tenant('rollback');
    const doomed = Array.from({ length: PLAIN_INSERT_SQLITE_CHUNK + 1 }, (_, i) => credentialRow(t2, { connectionId: `c-${i}` }));
    await expect(
      runner.run(async () => {
        await repo.insertMany(doomed);
        throw new Error('abort');
      }),
    ).rejects.toThrow('abort');
    expect(await ds.manager.countBy(CredentialEntity, { tenantId: t2 })).toBe(0);
  });
});
