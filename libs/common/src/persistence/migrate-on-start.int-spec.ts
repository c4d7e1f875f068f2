import { DataSource } from 'typeorm';
import { createTestDatabase, TestDatabase } from '@app/testing';
import { loadAppConfig } from '../config/app.config';
import { databaseOptions } from './database.options';
import { initializeWithMigrations } from './migrate-on-start';
import { HOST_MIGRATIONS } from './schema';

describe('migrations at start (PostgreSQL, three replicas at once on an empty schema)', () => {
  let db: TestDatabase;
  const sources: DataSource[] = [];
  beforeAll(async () => (db = await createTestDatabase('postgres')));
  afterAll(async () => {
    await Promise.all(sources.map((s) => s.destroy().catch(() => undefined)));
    await db.drop();
  });

  it('applies every migration exactly once, and every replica starts', async () => {
    const schema = (db.options as { schema: string }).schema;
    const options = databaseOptions(loadAppConfig({ DATABASE_TYPE: 'postgres', DATABASE_URL: (db.options as { url: string }).url, DATABASE_SCHEMA: schema }));
    const results = await Promise.allSettled([1, 2, 3].map(() => initializeWithMigrations(options)));
    for (const r of results) if (r.status === 'fulfilled') sources.push(r.value);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'fulfilled']);
    const applied = (await sources[0].query(`SELECT name FROM "${schema}".cv_migrations ORDER BY id`)) as { name: string }[];
    expect(applied).toHaveLength(HOST_MIGRATIONS.length);
    expect(new Set(applied.map((m) => m.name)).size).toBe(HOST_MIGRATIONS.length);
  });
});
