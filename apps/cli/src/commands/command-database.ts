import { existsSync } from 'node:fs';
import { TypeOrmModule } from '@nestjs/typeorm';
import { DataSource, MigrationExecutor, type DataSourceOptions } from 'typeorm';
import { APP_CONFIG, databaseOptions, type AppConfig } from '@app/api-host';
import { applyPendingMigrations, parsePostgresUrl, unknownMigrations } from '@app/common';

/** A command could not open the host's database: says what it tried (type, host:port or file, the variable), never a password. */
export class CommandDatabaseUnreachableError extends Error {
  override readonly name = 'CommandDatabaseUnreachableError';
}

/** The variables a database comes from: the host's, or `migrate`'s legacy database (`LEGACY_DATABASE_VARIABLES`). */
export interface DatabaseVariables {
  url: string;
  path: string;
}

const HOST_DATABASE_VARIABLES: DatabaseVariables = { url: 'DATABASE_URL', path: 'DATABASE_PATH' };
export const LEGACY_DATABASE_VARIABLES: DatabaseVariables = { url: 'LEGACY_DATABASE_URL', path: 'LEGACY_DATABASE_PATH' };

/** `the postgres database at host:port (DATABASE_URL)` or `the SQLite database file <path> (DATABASE_PATH)`: without the URL's credentials. */
export function databaseLabel(options: DataSourceOptions, variables: DatabaseVariables = HOST_DATABASE_VARIABLES): string {
  if (options.type !== 'postgres') return `the SQLite database file ${String(options.database)} (${variables.path})`;
  const parsed = parsePostgresUrl(options.url ?? '');
  if (!parsed) return `the postgres database of ${variables.url}`;
  // libpq's forms: `?host=/run/postgresql` (a socket directory) and `?port=` override the authority.
  const host = parsed.url.searchParams.get('host') || parsed.hostname || 'localhost';
  const port = parsed.url.searchParams.get('port') || parsed.url.port || '5432';
  return `the postgres database at ${host}:${port} (${variables.url})`;
}

/** What was tried, without the URL's credentials. */
function whatWasTried(options: DataSourceOptions, variables: DatabaseVariables): string {
  return `${options.type === 'postgres' ? 'cannot connect to' : 'cannot open'} ${databaseLabel(options, variables)}`;
}

function passwordOf(options: DataSourceOptions): string | undefined {
  if (options.type !== 'postgres' || !options.url) return undefined;
  try {
    return decodeURIComponent(parsePostgresUrl(options.url)?.url.password ?? '') || undefined;
  } catch {
    return undefined;
  }
}

/** The driver's reason, one line: Node gives `localhost`'s two refused addresses as an AggregateError with no message. */
function reasonOf(e: unknown, password: string | undefined): string {
  const err = e as { message?: unknown; code?: unknown; errors?: unknown } | null | undefined;
  const nested = Array.isArray(err?.errors) ? err.errors.map((x: { message?: unknown }) => String(x?.message ?? '')).filter(Boolean) : [];
  const reason = (typeof err?.message === 'string' && err.message) || nested.join('; ') || (typeof err?.code === 'string' && err.code) || String(e);
  return password ? reason.split(password).join('…') : reason;
}

/**
 * The host's database for a command's application context. One attempt: Nest's TypeORM module otherwise retries 9
 * times, 3 s apart, logging each with a stack (~30 s of noise before the command fails); the host keeps that. A
 * failure to open the connection (refused, unknown host, DATABASE_CONNECT_TIMEOUT_MS without an answer, login
 * refused, a file SQLite cannot open) is one CommandDatabaseUnreachableError naming what was tried; a later failure
 * (a migration) stays as it is. Migrations are applied as the host applies them (`applyPendingMigrations`: on
 * PostgreSQL under the schema's advisory lock, so never beside a replica that is starting; `[Migrations] Applied n
 * migrations: …` on stderr), never by TypeORM's unlocked `migrationsRun`: that is the schema's creation on a database
 * without one, and `migrate`'s upgrade of an older one; a current schema takes no lock. Every other command refuses an older schema before it opens
 * anything (`refuseOlderSchema`).
 */
export function commandDatabaseModule() {
  return TypeOrmModule.forRootAsync({
    inject: [APP_CONFIG],
    useFactory: (config: AppConfig) => ({ ...databaseOptions(config), migrationsRun: false, toRetry: () => false }),
    dataSourceFactory: (options) => initializeWithMigrationsOnce(options!),
  });
}

/**
 * `options` opened with one connection attempt (see initializeOnce), then its pending migrations applied as the host
 * does. A schema already current (all a command other than `migrate` gets past refuseOlderSchema) is left alone: no
 * migrations lock taken, since a replica of a later version holds it for as long as its migrations take (an index
 * built on a large audit log), and the command — an emergency `revoke` — would wait on it without a word, while this
 * version's replicas go on serving that schema.
 */
async function initializeWithMigrationsOnce(options: DataSourceOptions): Promise<DataSource> {
  const dataSource = await initializeOnce(options);
  if (!(await isSchemaCurrent(dataSource))) await applyPendingMigrations(dataSource);
  return dataSource;
}

/** Whether the migrations table is there and records every migration of `dataSource` (read only: nothing created). */
async function isSchemaCurrent(dataSource: DataSource): Promise<boolean> {
  const runner = dataSource.createQueryRunner();
  try {
    if (!(await runner.hasTable(dataSource.options.migrationsTableName ?? 'migrations'))) return false;
  } finally {
    await runner.release();
  }
  return (await new MigrationExecutor(dataSource).getPendingMigrations()).length === 0;
}

/** An operational command on a host database whose schema is older than this version: it applies no migration. */
export class CommandSchemaOutdatedError extends Error {
  override readonly name = 'CommandSchemaOutdatedError';
}

/**
 * Before a command opens the host's database (or the embedded vault): a schema older than this version is refused,
 * naming the pending migrations. Applying them is an upgrade, which docs/OPERATIONS.md ("Upgrading") has the host's
 * start do, after a database backup and under the schema's lock — not an operational command run against the database
 * on the way. A database without the schema, or with a newer one (TypeORM passes over a later version's migrations),
 * goes on as the host would; a newer one is named in a warning on stderr, as the host's start logs it.
 */
export async function refuseOlderSchema(config: AppConfig): Promise<void> {
  const { present, pending, unknown, label } = await hostSchemaState(config);
  warnOfNewerSchema(unknown, label);
  if (!present || pending.length === 0) return;
  throw new CommandSchemaOutdatedError(
    `${label} has a Credential Vault schema older than this version: ${pending.length} migration${pending.length === 1 ? '' : 's'} pending ` +
      `(${pending.join(', ')}). This command applies none: nothing was changed. Upgrade the schema first — start the host of this version ` +
      '(docs/OPERATIONS.md, "Upgrading"; migrate without --dry-run also applies them) — then run the command again.',
  );
}

/** `options` opened with one connection attempt; a failure to connect is a CommandDatabaseUnreachableError naming `variables`. */
export function initializeOnce(options: DataSourceOptions, variables: DatabaseVariables = HOST_DATABASE_VARIABLES): Promise<DataSource> {
  const dataSource = new DataSource(options);
  // Only the driver's connect opens connections (TypeORM's initialize then builds metadata).
  const connect = dataSource.driver.connect.bind(dataSource.driver);
  dataSource.driver.connect = async () => {
    try {
      await connect();
    } catch (e) {
      throw new CommandDatabaseUnreachableError(`${whatWasTried(options, variables)}: ${reasonOf(e, passwordOf(options))}`, { cause: e });
    }
  };
  return dataSource.initialize();
}

/** The host's schema as a database holds it: whether it is there at all, and the host's migrations it lacks (by name). */
export interface HostSchemaState {
  present: boolean;
  /** This version's migrations the database has not applied (empty: the schema is current, or not there). */
  pending: string[];
  /**
   * Migrations the database records that this version does not have (a later version applied them). TypeORM passes over
   * them as it opens the database: the host and the commands start on such a schema as on their own.
   */
  unknown: string[];
  /** The database, named as the command's other messages do. */
  label: string;
}

/**
 * The host's database schema looked at without creating or changing anything: no SQLite database or directory made, no
 * migration run, a SQLite file only read. Not opened `readonly`: of a WAL-mode file a read-only connection makes the
 * `-wal`/`-shm` files and cannot remove them, so a refused command left them beside a file no host held; a connection
 * that may write removes them as the last one closes (an empty WAL: nothing is written to the database file), as the
 * host's does. Present when its migrations table (`cv_migrations`) is.
 */
export async function hostSchemaState(config: AppConfig): Promise<HostSchemaState> {
  const db = config.database;
  if (db.type === 'sqlite') {
    const label = databaseLabel({ type: 'better-sqlite3', database: db.path });
    // An in-memory database is new at every start; a file not there yet would be created by the command.
    if (db.path === ':memory:' || !existsSync(db.path)) return { present: false, pending: [], unknown: [], label };
    // The host's list of migrations and their table; the file opened as it is (no WAL switch: that is a write), never made.
    const { migrations, migrationsTableName } = databaseOptions(config);
    const options: DataSourceOptions = { type: 'better-sqlite3', database: db.path, fileMustExist: true, migrations, migrationsTableName };
    return { ...(await schemaState(options, "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = 'cv_migrations'")), label };
  }
  // The host's options (its search_path for DATABASE_SCHEMA), with no entity to build and no migration to run.
  const options: DataSourceOptions = { ...databaseOptions(config), entities: [], migrationsRun: false } as DataSourceOptions;
  return { ...(await schemaState(options, "SELECT COUNT(*) AS n FROM (SELECT to_regclass('cv_migrations') AS t) r WHERE r.t IS NOT NULL")), label: databaseLabel(options) };
}

/**
 * `presentSql` counts the migrations table; once it is there, TypeORM's own reckoning of what it would apply, and what
 * the table records that this version's migrations do not name (read only).
 */
async function schemaState(options: DataSourceOptions, presentSql: string): Promise<Omit<HostSchemaState, 'label'>> {
  const dataSource = await initializeOnce(options);
  try {
    if (Number((await dataSource.query(presentSql))[0].n) === 0) return { present: false, pending: [], unknown: [] };
    const executor = new MigrationExecutor(dataSource);
    return { present: true, pending: (await executor.getPendingMigrations()).map((m) => m.name), unknown: await unknownMigrations(dataSource) };
  } finally {
    await dataSource.destroy();
  }
}

/** On stderr (stdout and `--report` stay the run's): the migrations a later version applied, which this one passes over. */
export function warnOfNewerSchema(unknown: string[], label: string): void {
  if (unknown.length === 0) return;
  process.stderr.write(
    `warning: ${label} has a Credential Vault schema newer than this version: ${unknown.length} migration${unknown.length === 1 ? '' : 's'} it does not know ` +
      `(${unknown.join(', ')}). This version goes on as the host does (it passes over them); where the later version is at hand, running the command with it is safer.\n`,
  );
}
