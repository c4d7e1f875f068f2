import { Logger } from '@nestjs/common';
import { DataSource, type DataSourceOptions, type MigrationInterface, type QueryRunner } from 'typeorm';
import { createTestDatabase, TestDatabase } from '@app/testing';
import { OUTBOX_ENTITIES, OUTBOX_MIGRATIONS } from '../outbox';
import { initializeWithMigrations, unknownMigrations } from './migrate-on-start';

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

describe('initializeWithMigrations on a schema a later version migrated', () => {
  afterEach(() => jest.restoreAllMocks());

  // What a rolled-back release or an old replica meets: TypeORM passes over migrations it does not know and the app
  // starts, so the warning is the one place an operator learns it runs older code on a newer schema.
  it.each(['sqlite', 'postgres'] as const)('%s: starts, and warns once naming the migrations it does not know, oldest first', async (type) => {
    const db = await createTestDatabase(type);
    const options = { ...db.options, entities: OUTBOX_ENTITIES, migrations: OUTBOX_MIGRATIONS, migrationsTableName: 'cv_migrations' } as DataSourceOptions;
    let ds = await initializeWithMigrations(options);
    try {
      const warn = jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
      await ds.destroy();
      ds = await initializeWithMigrations(options);
      expect(warn).not.toHaveBeenCalled(); // its own schema: nothing to say
      for (const [i, name] of ['LaterColumn4102444800000', 'LaterIndex4102444800001'].entries()) {
        await ds.query(`INSERT INTO cv_migrations (timestamp, name) VALUES (${4102444800000 + i}, '${name}')`);
      }
      await ds.destroy();
      ds = await initializeWithMigrations(options);
      expect(warn).toHaveBeenCalledTimes(1);
      expect(warn.mock.calls[0][0]).toContain('records 2 migrations this DataSource does not list (LaterColumn4102444800000, LaterIndex4102444800001)');
      expect(warn.mock.calls[0][0]).toContain('A later version applied them');
      expect(await unknownMigrations(ds)).toEqual(['LaterColumn4102444800000', 'LaterIndex4102444800001']);
    } finally {
      await ds.destroy().catch(() => undefined);
      await db.drop();
    }
  });
});

/** Another lib's migration: what an app lists beside the common ones when it registers that lib. */
class OtherLibTable1850000000000 implements MigrationInterface {
  name = 'OtherLibTable1850000000000';
  async up(q: QueryRunner): Promise<void> {
    await q.query('CREATE TABLE other_lib_rows (id varchar(36) PRIMARY KEY)');
  }
  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE other_lib_rows');
  }
}

describe('initializeWithMigrations beside another DataSource on the same migrations table', () => {
  afterEach(() => jest.restoreAllMocks());

  // An embedder's services on one schema, each listing the migrations of the libs it registers (one with Rotation, one
  // without), or an app that runs its migrations elsewhere: the table holds migrations this DataSource does not list
  // without any later version. The warning must not say the schema is newer as a fact.
  it.each(['sqlite', 'postgres'] as const)('%s: a DataSource listing fewer migrations names the other cause; one listing none says nothing', async (type) => {
    const db = await createTestDatabase(type);
    const base = { ...db.options, entities: OUTBOX_ENTITIES, migrationsTableName: 'cv_migrations' } as DataSourceOptions;
    let ds = await initializeWithMigrations({ ...base, migrations: [...OUTBOX_MIGRATIONS, OtherLibTable1850000000000] } as DataSourceOptions);
    try {
      await ds.destroy();
      const warn = jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
      ds = await initializeWithMigrations({ ...base, migrations: OUTBOX_MIGRATIONS } as DataSourceOptions);
      expect(warn).toHaveBeenCalledTimes(1);
      expect(warn.mock.calls[0][0]).toContain('records 1 migration this DataSource does not list (OtherLibTable1850000000000)');
      expect(warn.mock.calls[0][0]).toContain("Or another app's DataSource sharing the table lists them");
      expect(warn.mock.calls[0][0]).not.toMatch(/schema is newer than this version/);
      await ds.destroy();
      warn.mockClear();
      ds = await initializeWithMigrations({ ...base, migrations: [] } as DataSourceOptions);
      expect(warn).not.toHaveBeenCalled();
    } finally {
      await ds.destroy().catch(() => undefined);
      await db.drop();
    }
  });
});

// An upgrade as an operator runs it: the start that applies a new version's migrations says which, so the log shows
// when the schema changed and to what; a start with none pending says nothing.
describe('initializeWithMigrations applying the migrations a new version brings', () => {
  afterEach(() => jest.restoreAllMocks());

  it.each(['sqlite', 'postgres'] as const)('%s: logs once the migrations it applied, oldest first, and nothing when none were pending', async (type) => {
    const db = await createTestDatabase(type);
    const options = (migrations: DataSourceOptions['migrations']) =>
      ({ ...db.options, entities: OUTBOX_ENTITIES, migrations, migrationsTableName: 'cv_migrations' }) as DataSourceOptions;
    const log = jest.spyOn(Logger.prototype, 'log').mockImplementation(() => undefined);
    const applied = () => log.mock.calls.map(([m]) => String(m)).filter((m) => m.startsWith('Applied'));
    let ds = await initializeWithMigrations(options(OUTBOX_MIGRATIONS));
    try {
      expect(applied()).toEqual([`Applied ${OUTBOX_MIGRATIONS.length} migration${OUTBOX_MIGRATIONS.length === 1 ? '' : 's'}: ${OUTBOX_MIGRATIONS.map((m) => m.name).join(', ')}`]);
      await ds.destroy();
      log.mockClear();
      ds = await initializeWithMigrations(options([...OUTBOX_MIGRATIONS, OtherLibTable1850000000000]));
      expect(applied()).toEqual(['Applied 1 migration: OtherLibTable1850000000000']);
      await ds.destroy();
      log.mockClear();
      ds = await initializeWithMigrations(options([...OUTBOX_MIGRATIONS, OtherLibTable1850000000000]));
      expect(applied()).toEqual([]);
    } finally {
      await ds.destroy().catch(() => undefined);
      await db.drop();
    }
  });
});
