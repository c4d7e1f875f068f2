import { Logger } from '@nestjs/common';
import { DataSource, MigrationExecutor, type DataSourceOptions, type Migration } from 'typeorm';
import { withLongQueries } from './postgres-timeouts';

/**
 * A DataSource factory for `TypeOrmModule.forRootAsync({ dataSourceFactory })`: connects, then applies the
 * pending migrations in one transaction — on PostgreSQL while holding a session advisory lock for the
 * schema, so replicas starting together on an empty database apply them once, one after the other.
 * With TypeORM's own `migrationsRun: true` they race: the losers fail on a duplicate table (and Nest's
 * TypeORM module retries every 3 s). A failed migration rolls back and the start fails, leaving the
 * schema as it was. The migrations applied are logged once (`Applied n migrations: …`, oldest first); none, nothing.
 * `migrationsRun` in `options` is ignored.
 */
export async function initializeWithMigrations(options: DataSourceOptions): Promise<DataSource> {
  const dataSource = new DataSource({ ...options, migrationsRun: false } as DataSourceOptions);
  await dataSource.initialize();
  await applyPendingMigrations(dataSource);
  return dataSource;
}

/**
 * What `initializeWithMigrations` does once connected, for a DataSource its caller opened (with `migrationsRun: false`):
 * the pending migrations applied in one transaction, on PostgreSQL under the schema's advisory lock, logged once
 * (`Applied n migrations: …`), then the newer-schema warning. A failure rolls the migrations back, destroys the
 * DataSource and is thrown.
 */
export async function applyPendingMigrations(dataSource: DataSource): Promise<void> {
  try {
    const applied = dataSource.options.type === 'postgres' ? await applyUnderLock(dataSource) : await dataSource.runMigrations({ transaction: 'all' });
    logApplied(applied);
    await warnOfNewerSchema(dataSource);
  } catch (error) {
    await dataSource.destroy().catch(() => undefined);
    throw error;
  }
}

/** The pending migrations applied while holding the schema's advisory lock (PostgreSQL). */
async function applyUnderLock(dataSource: DataSource): Promise<Migration[]> {
  const runner = dataSource.createQueryRunner();
  const client = await runner.connect();
  let applied: Migration[] = [];
  // One lock per schema (each test file, or each tenant database, has its own).
  const lock = "hashtext('credential-vault:migrations:' || current_schema())";
  try {
    // Waiting for another replica's migrations, and a migration itself (an index built on a large table), take
    // as long as they take: no statement timeout and no query deadline on this session, which runs both.
    await runner.query('SET statement_timeout = 0');
    await withLongQueries(client, Number.POSITIVE_INFINITY, async () => {
      await runner.query(`SELECT pg_advisory_lock(${lock})`);
      const migrations = new MigrationExecutor(dataSource, runner);
      migrations.transaction = 'all';
      applied = await migrations.executePendingMigrations();
    });
    // Back to the pool as it came (after a failure the DataSource is destroyed, this session with it).
    await runner.query('RESET statement_timeout');
  } finally {
    await runner.query(`SELECT pg_advisory_unlock(${lock})`).catch(() => undefined);
    await runner.release();
  }
  return applied;
}

/** The start that changed the schema says so (an upgrade's log then shows when and to what), once, after the commit. */
function logApplied(applied: Migration[]): void {
  if (applied.length === 0) return;
  new Logger('Migrations').log(`Applied ${applied.length} migration${applied.length === 1 ? '' : 's'}: ${applied.map((m) => m.name).join(', ')}`);
}

/**
 * What `dataSource`'s migrations table records that its migrations do not name — a later version applied them, or
 * another DataSource sharing the table lists them — oldest first. TypeORM passes over them: the app starts on such a schema.
 */
export async function unknownMigrations(dataSource: DataSource): Promise<string[]> {
  const known = new Set(dataSource.migrations.map((m) => m.name ?? m.constructor.name));
  // Oldest first, as they were applied (TypeORM reads them newest first).
  const executed = (await new MigrationExecutor(dataSource).getExecutedMigrations()).sort((x, y) => x.timestamp - y.timestamp);
  return executed.map((m) => m.name).filter((name) => !known.has(name));
}

/**
 * Older code on a newer schema starts (old replicas during a rolling upgrade, every replica after a rollback): said
 * once at start, since nothing else would tell the operator. The table cannot say which version wrote a row: an app
 * whose services list different libs' migrations on one schema meets rows no later version wrote, hence both causes.
 */
async function warnOfNewerSchema(dataSource: DataSource): Promise<void> {
  // Listing none, the app runs its migrations elsewhere: nothing to compare.
  if (dataSource.migrations.length === 0) return;
  const unknown = await unknownMigrations(dataSource);
  if (unknown.length === 0) return;
  new Logger('Migrations').warn(
    `The database schema may be newer than this version: its migrations table records ${unknown.length} migration${unknown.length === 1 ? '' : 's'} ` +
      `this DataSource does not list (${unknown.join(', ')}). A later version applied them: this one starts (TypeORM passes over them), as old ` +
      "replicas do during a rolling upgrade; after a rollback, check the release notes of the versions in between. Or another app's DataSource " +
      'sharing the table lists them (other libs registered there).',
  );
}

const warned = new WeakSet<DataSource>();

/**
 * Warns once per DataSource (at start, from the first lib module that checks it) when the host let TypeORM
 * run the migrations (`migrationsRun: true`): replicas starting together race on them, which nothing
 * else would tell the host until two replicas start on an empty database.
 */
export function warnOnMigrationsRun(dataSource: DataSource, moduleName: string): void {
  if (!dataSource.options.migrationsRun || warned.has(dataSource)) return;
  warned.add(dataSource);
  new Logger(moduleName).warn(
    "The DataSource has TypeORM's migrationsRun: true: replicas starting together race on the migrations (the losers fail on a duplicate table). " +
      'Use initializeWithMigrations (the common entry: @app/common in this repo, @credential-vault/nest/common from the package) as ' +
      "TypeOrmModule.forRootAsync's dataSourceFactory instead: it applies them once, under a lock on PostgreSQL.",
  );
}
