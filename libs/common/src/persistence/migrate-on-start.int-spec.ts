import { DataSource, type DataSourceOptions } from 'typeorm';
import { createTestDatabase, TestDatabase } from '@app/testing';
import { OUTBOX_ENTITIES, OUTBOX_MIGRATIONS } from '../outbox';
import { initializeWithMigrations } from './migrate-on-start';

describe('initializeWithMigrations (PostgreSQL, three replicas at once on an empty schema)', () => {
  let db: TestDatabase;
  const sources: DataSource[] = [];
  beforeAll(async () => (db = await createTestDatabase('postgres')));
  afterAll(async () => {
    await Promise.all(sources.map((s) => s.destroy().catch(() => undefined)));
    await db.drop();
  });

  it('applies every migration exactly once, and every replica starts', async () => {
    const schema = (db.options as { schema: string }).schema;
    const options = { ...db.options, entities: OUTBOX_ENTITIES, migrations: OUTBOX_MIGRATIONS, migrationsTableName: 'cv_migrations', migrationsRun: true } as DataSourceOptions;
    const results = await Promise.allSettled([1, 2, 3].map(() => initializeWithMigrations(options)));
    for (const r of results) if (r.status === 'fulfilled') sources.push(r.value);
    expect(results.map((r) => (r.status === 'rejected' ? String(r.reason) : r.status))).toEqual(['fulfilled', 'fulfilled', 'fulfilled']);
    const applied = (await sources[0].query(`SELECT name FROM "${schema}".cv_migrations ORDER BY id`)) as { name: string }[];
    expect(applied.map((m) => m.name)).toEqual(OUTBOX_MIGRATIONS.map((m) => m.name));
  });
});
