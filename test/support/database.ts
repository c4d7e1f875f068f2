import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'pg';
import { DataSource, type DataSourceOptions, type MixedList, type EntitySchema } from 'typeorm';
import { ADVISORY_LOCK_NAMESPACES, advisoryLockKey } from '@app/common';
import { endLockSession } from './lock-session';

export type TestDatabaseKind = 'sqlite' | 'postgres';

/** Every database kind the integration suites run against. */
export const DATABASE_KINDS: TestDatabaseKind[] = ['sqlite', 'postgres'];

export const POSTGRES_URL = process.env.TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
export const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

export interface TestDatabase {
  kind: TestDatabaseKind;
  /** TypeORM options for a fresh, empty database (SQLite file or PostgreSQL schema). */
  options: DataSourceOptions;
  /** Drops the schema / removes the file. */
  drop(): Promise<void>;
}

/**
 * A fresh, isolated database for one test file. PostgreSQL gets its own schema (so parallel jest
 * workers never see each other's rows); SQLite gets a file in a temp dir. PostgreSQL being down is
 * a test failure, never a skip: CI must exercise it.
 */
export async function createTestDatabase(kind: TestDatabaseKind): Promise<TestDatabase> {
  if (kind === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), 'cv-sqlite-'));
    return {
      kind,
      // As the host opens it (apps/api database.options): WAL, every commit flushed (FULL, explicit — the
      // driver's own default in WAL mode is NORMAL), so the gate's off-loop flush is what the specs exercise.
      options: {
        type: 'better-sqlite3',
        database: join(dir, 'test.sqlite'),
        enableWAL: true,
        prepareDatabase: (db: { pragma(source: string): unknown }) => void db.pragma('synchronous = FULL'),
      },
      drop: async () => rmSync(dir, { recursive: true, force: true }),
    };
  }
  const schema = `t_${randomBytes(6).toString('hex')}`;
  const admin = new Client({ connectionString: POSTGRES_URL });
  try {
    await admin.connect();
  } catch (e) {
    throw new Error(
      `PostgreSQL is required for this test but is not reachable at ${POSTGRES_URL} (${(e as Error).message}). ` +
        'Start it (see README "Running the tests").',
    );
  }
  await admin.query(`CREATE SCHEMA "${schema}"`);
  await admin.end();
  return {
    kind,
    options: {
      type: 'postgres',
      url: POSTGRES_URL,
      schema,
      extra: { options: `-c search_path=${schema}`, max: 10 },
    },
    drop: async () => {
      const c = new Client({ connectionString: POSTGRES_URL });
      await c.connect();
      await c.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await c.end();
    },
  };
}

/**
 * For specs of migrations as an operator meets them: a fresh database per test, DataSources opened on
 * it with some of the migrations run (closed after the test), table names as raw SQL spells them.
 */
export function useMigrationDatabase(kind: TestDatabaseKind) {
  let db: TestDatabase;
  const open: DataSource[] = [];
  beforeEach(async () => {
    db = await createTestDatabase(kind);
  });
  afterEach(async () => {
    for (const ds of open.splice(0)) if (ds.isInitialized) await ds.destroy();
    await db.drop();
  });
  const schema = () => (db.options as { schema?: string }).schema ?? 'public';
  return {
    schema,
    table: (name: string) => (kind === 'postgres' ? `"${schema()}"."${name}"` : `"${name}"`),
    // eslint-disable-next-line @typescript-eslint/no-unsafe-function-type
    migrate: async (entities: MixedList<Function | string | EntitySchema>, migrations: MixedList<Function | string>) => {
      const ds = await new DataSource({ ...db.options, entities, migrations, migrationsRun: true } as DataSourceOptions).initialize();
      open.push(ds);
      return ds;
    },
  };
}

/**
 * The SQL and parameters of every SELECT (and WITH) `work` sends on `ds`, from its logger: for tests that look at
 * a query's plan (`EXPLAIN`) or its shape.
 */
export async function loggedSelects(ds: DataSource, work: () => Promise<unknown>): Promise<Array<[string, unknown[]]>> {
  const logged = jest.spyOn(ds.logger, 'logQuery');
  try {
    await work();
    return logged.mock.calls.filter(([q]) => /^\s*(SELECT|WITH)/i.test(q)).map(([q, p]) => [q, (p ?? []) as unknown[]]);
  } finally {
    logged.mockRestore();
  }
}

/**
 * PostgreSQL: ends the session holding the `DistributedLock` key `lockKey` of `ds`'s schema (a failover, an operator's
 * pg_terminate_backend) while its holder goes on — `endLockSession` with the advisory id that key has in that schema.
 */
export function endLockSessionOfKey(ds: DataSource, lockKey: string): Promise<void> {
  const schema = (ds.options as { schema?: string }).schema;
  return endLockSession(ds, advisoryLockKey(lockKey, `${ADVISORY_LOCK_NAMESPACES.distributedLock}@${schema}`));
}
