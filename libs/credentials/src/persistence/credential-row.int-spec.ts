import { TransactionRunner } from '@app/common';
import { createTestDatabase, DATABASE_KINDS, TestDatabase } from '@app/testing';
import { DataSource, type FindManyOptions, Not } from 'typeorm';
import { at, BASE_MS, credentialRow, openRepositoryDataSource, tenant } from '../../test/repository-fixtures';
import { CredentialStatus, CredentialType } from '../credential-type';
import { CredentialEntity } from '../entities/credential.entity';
import { toMetadata, toMetadataOfFresh } from '../internal/credential-view';
import { everyFieldSetCredential } from '../testing/credential-fixtures';
import { CredentialListRepository } from './credential-list.repository';
import { CredentialRepository } from './credential.repository';

const DAY = 86_400_000;

// The hot reads map raw rows by hand; TypeORM's entity hydration (the transformers) is the reference.
describe.each(DATABASE_KINDS)('credential rows mapped by hand on %s', (kind) => {
  let db: TestDatabase;
  let ds: DataSource;
  let runner: TransactionRunner;
  let repo: CredentialRepository;
  let lists: CredentialListRepository;
  const t = tenant('map');
  const now = BASE_MS + 100 * DAY;

  const everyFieldSet = everyFieldSetCredential(t);
  const nullsEverywhere = credentialRow(t, { connectionId: 'nulls', createdAt: at(2), expiresAt: null, rotatedAt: null, valueHint: null, certificate: null, tags: {} });
  const expiredActive = credentialRow(t, { connectionId: 'expired', createdAt: at(3), expiresAt: at(50 * DAY) });
  const expiringSoon = credentialRow(t, { connectionId: 'soon', createdAt: at(3), expiresAt: at(101 * DAY), type: CredentialType.OAUTH_ACCESS_TOKEN });
  const deleted = credentialRow(t, { connectionId: 'gone', createdAt: at(4), status: CredentialStatus.DELETED, deletedAt: at(5), expiresAt: at(101 * DAY) });
  const revoked = credentialRow(t, { connectionId: 'revoked', createdAt: at(5), status: CredentialStatus.REVOKED, expiresAt: at(102 * DAY) });
  const all = [everyFieldSet, nullsEverywhere, expiredActive, expiringSoon, deleted, revoked];

  beforeAll(async () => {
    db = await createTestDatabase(kind);
    ({ ds, runner } = await openRepositoryDataSource(db));
    repo = new CredentialRepository(runner);
    lists = new CredentialListRepository(runner);
    for (const r of all) await repo.insert(r);
  });
  afterAll(async () => {
    if (ds?.isInitialized) await ds.destroy();
    await db?.drop();
  });

  const hydrated = (options: FindManyOptions<CredentialEntity>) => ds.manager.find(CredentialEntity, options);

  it('findById: the same entity as TypeORM hydrates — every column, nulls, dates, JSON — and the same view', async () => {
    for (const row of all) {
      const mine = await repo.findById(t, row.id);
      const reference = await ds.manager.findOneBy(CredentialEntity, { id: row.id, tenantId: t });
      expect(mine).toStrictEqual(reference);
      expect(mine).toEqual(row);
      expect(mine).toBeInstanceOf(CredentialEntity);
      // The view of a fresh row (what getMetadata and pages return) is the cached-row view, key order included.
      const view = toMetadata(reference!, now);
      expect(toMetadataOfFresh(mine!, now)).toStrictEqual(view);
      expect(JSON.stringify(toMetadataOfFresh(mine!, now))).toBe(JSON.stringify(view));
      // A shared row's view is a copy: changing it leaves the row as read.
      view.createdAt.setTime(0);
      view.tags.added = 'x';
      expect(reference).toEqual(row);
    }
    expect(await repo.findById(tenant('other'), everyFieldSet.id)).toBeNull();
  });

  it('page, expiring and the connection rows: the same entities, in the same order, as the query builder reads', async () => {
    const live = await hydrated({ where: { tenantId: t, status: Not(CredentialStatus.DELETED) }, order: { createdAt: 'ASC', id: 'ASC' } });
    expect(live).toHaveLength(5);
    expect(await lists.page(t, { nowMs: now, limit: 10 })).toStrictEqual(live);
    const after = { createdAtMs: live[1].createdAt.getTime(), id: live[1].id };
    expect(await lists.page(t, { nowMs: now, limit: 2, after })).toStrictEqual(live.slice(2, 4));

    const expiring = live
      .filter((r) => r.expiresAt && r.expiresAt.getTime() <= now + 30 * DAY && r.status !== CredentialStatus.REVOKED)
      .sort((a, b) => a.expiresAt!.getTime() - b.expiresAt!.getTime() || a.id.localeCompare(b.id));
    expect(expiring.map((r) => r.id)).toEqual([expiredActive.id, expiringSoon.id, everyFieldSet.id]);
    expect(await lists.expiring(t, now + 30 * DAY, 10)).toStrictEqual(expiring);

    const screen = await hydrated({ where: { tenantId: t, status: Not(CredentialStatus.DELETED) }, order: { integrationId: 'ASC', connectionId: 'ASC', type: 'ASC' } });
    expect(await lists.connectionRows(t)).toStrictEqual(screen);
  });

  it('reads inside a transaction see its uncommitted row through the same statements', async () => {
    const row = credentialRow(t, { connectionId: 'in-tx', createdAt: at(6), expiresAt: at(100 * DAY + 1) });
    await expect(
      runner.run(async () => {
        await repo.insert(row);
        expect(await repo.findById(t, row.id)).toEqual(row);
        expect((await lists.expiring(t, now + DAY, 10)).map((r) => r.id)).toContain(row.id);
        expect((await lists.page(t, { nowMs: now, limit: 10 })).map((r) => r.id)).toContain(row.id);
        throw new Error('roll back');
      }),
    ).rejects.toThrow('roll back');
    expect(await repo.findById(t, row.id)).toBeNull();
  });
});
