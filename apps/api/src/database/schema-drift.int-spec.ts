import { DataSource, type DataSourceOptions } from 'typeorm';
import { AUDIT_ENTITIES, AUDIT_MIGRATIONS } from '@app/audit';
import { OUTBOX_ENTITIES, OUTBOX_MIGRATIONS } from '@app/common';
import { CREDENTIALS_ENTITIES, CREDENTIALS_MIGRATIONS } from '@app/credentials';
import { MIGRATION_ENTITIES, MIGRATION_MIGRATIONS } from '@app/migration';
import { ROTATION_ENTITIES, ROTATION_MIGRATIONS } from '@app/rotation';
import { createTestDatabase, DATABASE_KINDS, type TestDatabase } from '@app/testing';

// As an embedding app meets the libs: its own DataSource with every lib's entities and migrations. After the
// migrations, the entities must describe the same schema, or `migration:generate` / `synchronize` would
// change it (drop a foreign key, rebuild an index the migrations shaped on purpose).
describe.each(DATABASE_KINDS)('entities against the migrated schema on %s', (kind) => {
  let db: TestDatabase;
  let ds: DataSource | undefined;
  beforeAll(async () => (db = await createTestDatabase(kind)));
  afterAll(async () => {
    if (ds?.isInitialized) await ds.destroy();
    await db.drop();
  });

  it('leaves TypeORM nothing to change', async () => {
    ds = await new DataSource({
      ...db.options,
      entities: [...OUTBOX_ENTITIES, ...AUDIT_ENTITIES, ...CREDENTIALS_ENTITIES, ...ROTATION_ENTITIES, ...MIGRATION_ENTITIES],
      migrations: [...OUTBOX_MIGRATIONS, ...AUDIT_MIGRATIONS, ...CREDENTIALS_MIGRATIONS, ...ROTATION_MIGRATIONS, ...MIGRATION_MIGRATIONS],
      migrationsRun: true,
    } as DataSourceOptions).initialize();
    const { upQueries } = await ds.driver.createSchemaBuilder().log();
    // The queries themselves in the failure message: they name each difference.
    expect(upQueries.map((q) => q.query)).toEqual([]);
  });
});
