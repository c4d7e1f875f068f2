import { DynamicModule, Module } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import type { DataSourceOptions } from 'typeorm';
import { CapturingLogger, createTestDatabase, DATABASE_KINDS, TestDatabase } from '@app/testing';
import { OUTBOX_ENTITIES, OUTBOX_MIGRATIONS } from '../outbox';
import { provideEntityCheck } from './entity-check';
import { initializeWithMigrations } from './migrate-on-start';
import { PersistenceModule } from './persistence.module';

/** A second lib module checking the same DataSource (as CredentialsModule, AuditModule… do). */
@Module({ providers: [provideEntityCheck(Symbol('OTHER_LIB_CHECKED'), 'OtherLibModule', OUTBOX_ENTITIES, { entities: 'E', migrations: 'M' }, (m) => new Error(m))] })
class OtherLibModule {}

// A file of its own: a bootstrap that failed in another spec of the file can still be building providers, and log into this one's logger.
describe.each(DATABASE_KINDS)("TypeORM's migrationsRun on %s", (kind) => {
  let db: TestDatabase;

  beforeAll(async () => {
    db = await createTestDatabase(kind);
  });

  afterAll(async () => {
    await db?.drop();
  });

  const options = () => ({ ...db.options, entities: OUTBOX_ENTITIES, migrations: OUTBOX_MIGRATIONS, migrationsRun: true }) as DataSourceOptions;

  /** The warnings about migrationsRun of an app started with `typeorm`, PersistenceModule and another lib module. */
  async function migrationsRunWarnings(typeorm: DynamicModule): Promise<string[]> {
    const logger = new CapturingLogger();
    const app = await Test.createTestingModule({ imports: [typeorm, PersistenceModule.forRoot({ outbox: { dispatch: false } }), OtherLibModule] })
      .setLogger(logger)
      .compile();
    await app.close();
    return logger.lines.filter((l) => l.startsWith('warn ') && l.includes('migrationsRun'));
  }

  it('warns once at start, naming initializeWithMigrations, when the DataSource has migrationsRun: true (replicas starting together race on it)', async () => {
    const warnings = await migrationsRunWarnings(TypeOrmModule.forRoot(options()));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/migrationsRun: true: replicas starting together race on the migrations/);
    expect(warnings[0]).toMatch(
      /Use initializeWithMigrations \(the common entry: @app\/common in this repo, @credential-vault\/nest\/common from the package\) as TypeOrmModule\.forRootAsync's dataSourceFactory instead/,
    );
  });

  it('does not warn with initializeWithMigrations as the dataSourceFactory (it migrates under its lock and ignores migrationsRun)', async () => {
    expect(await migrationsRunWarnings(TypeOrmModule.forRootAsync({ useFactory: options, dataSourceFactory: (o) => initializeWithMigrations(o!) }))).toEqual([]);
  });
});
