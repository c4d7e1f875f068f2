import { createHash, randomBytes } from 'node:crypto';
import type { DataSource, EntityManager, EntityTarget, ObjectLiteral } from 'typeorm';
import type { ColumnMetadata } from 'typeorm/metadata/ColumnMetadata';
import { sqlState } from '../errors';
import { isAdvisoryLockKey } from '../lock/advisory-lock-key';
import { NamedStatementRefusedError } from './persistence.errors';
import type { SqliteStatement } from './sqlite-write-worker';

/**
 * One row's values as the database stores them (what the columns' transformers write: epoch ms, JSON
 * text), by entity property. Every property is named, so a column added to the entity is a compile
 * error in each mapper; `undefined` takes the column's literal default, else NULL.
 */
export type StoredRow<E> = { [K in keyof E as E[K] extends (...args: never[]) => unknown ? never : K]: unknown };

/** Maps a caller's row to the stored values of one entity row. */
export type PlainRowMapper<R, E> = (row: R) => StoredRow<E>;

/**
 * SQLite rows per statement: full chunks reuse one statement text (and the driver's prepared
 * statement); 64 rows of a 20-column entity stay far below SQLite's bound-parameter limit (32,766).
 */
export const PLAIN_INSERT_SQLITE_CHUNK = 64;

export interface PlainInsertOptions {
  /**
   * PostgreSQL, outside a transaction: transaction-level advisory locks (bigint keys as decimal strings)
   * the INSERT takes itself, in this order, before it inserts any row, and holds until its rows commit —
   * one round trip. Ignored on SQLite (one connection: nothing to lock against).
   */
  postgresLocks?: {
    keys: readonly string[];
    /**
     * A named statement, parsed and planned once per connection (a batch of 16 audit rows: about a
     * quarter less of PostgreSQL's CPU). Off: the locks and the INSERT go as one simple-protocol query
     * with the batch inline, for poolers that cannot keep named statements (PgBouncer in transaction mode
     * before 1.21 or without `max_prepared_statements`).
     */
    prepared: boolean;
  };
}

const POSTGRES = 'postgres';
const SQLITE = new Set(['better-sqlite3', 'sqlite']);
/** Column types whose stored value is the transformer's output as is, on both drivers (no driver conversion). */
const PASS_THROUGH = new Set<unknown>([String, Number, 'varchar', 'character varying', 'text', 'char', 'character', 'uuid', 'integer', 'int', 'smallint', 'bigint', 'numeric', 'decimal', 'real', 'float', 'double precision']);
/** PostgreSQL types whose values cannot travel as JSON text. */
const NOT_JSON_SAFE = /^(bytea|enum|user-defined)$/i;

interface Shape {
  /** The entity's name, for errors. */
  name: string;
  columns: ColumnMetadata[];
  /** Property path of each column (the mapper's keys), in INSERT order. */
  keys: string[];
  /** Value of each column when its property is undefined: its literal default, else NULL. */
  defaults: unknown[];
  postgres: boolean;
  /** `INSERT INTO "schema"."table" ("a","b") ` */
  head: string;
  /** PostgreSQL: the one statement, whose single parameter is the batch as a JSON array of row arrays. */
  json: string;
  /** PostgreSQL: `json` taking the advisory locks of `$2` (bigint[], in order) before any row; its statement name (one per text). */
  locked: { text: string; name: string };
  /** SQLite: statement text per row count (at most `PLAIN_INSERT_SQLITE_CHUNK` of them). */
  byRows: Map<number, string>;
}

const shapes = new WeakMap<DataSource, Map<EntityTarget<ObjectLiteral>, Shape>>();

function shapeOf(ds: DataSource, entity: EntityTarget<ObjectLiteral>): Shape {
  let perDs = shapes.get(ds);
  if (!perDs) shapes.set(ds, (perDs = new Map()));
  let s = perDs.get(entity);
  if (s) return s;
  const type = ds.options.type;
  const meta = ds.getMetadata(entity);
  if (type !== POSTGRES && !SQLITE.has(type)) throw new Error(`plain insert supports SQLite and PostgreSQL, not ${type}`);
  const postgres = type === POSTGRES;
  const columns = meta.columns.filter((c) => c.isInsert && !c.isVirtual);
  const pgTypes = columns.map((c) => {
    // TypeORM's builder fills these itself (generated keys, timestamps, versions); the plain path would not.
    if (c.isGenerated || c.isCreateDate || c.isUpdateDate || c.isVersion || c.isDeleteDate || c.relationMetadata || c.embeddedMetadata) {
      throw new Error(`plain insert: ${meta.name}.${c.propertyPath} is filled by TypeORM's builder (generated, dated, relation or embedded)`);
    }
    // No length: an explicit cast to varchar(n) would truncate silently; the column's own type checks on assignment.
    const pgType = ds.driver.normalizeType({ type: c.type });
    if (postgres && (c.isArray || c.enum || NOT_JSON_SAFE.test(pgType))) {
      throw new Error(`plain insert: ${meta.name}.${c.propertyPath} (${pgType}) cannot be read from a JSON batch`);
    }
    return pgType;
  });
  const esc = (name: string) => ds.driver.escape(name);
  // Schema-qualified when configured, like TypeORM's own statement.
  const head = `INSERT INTO ${meta.tablePath.split('.').map(esc).join('.')} (${columns.map((c) => esc(c.databaseName)).join(',')}) `;
  // jsonb, not json: `->>` on json re-parses the row's text for every column (measured on PostgreSQL 15:
  // 0.75 of 1.2 ms for a 16-row audit batch, inside the chain's lock); jsonb parses each row once.
  const json = `${head}SELECT ${pgTypes.map((t, i) => `(x->>${i})::${t}`).join(',')} FROM jsonb_array_elements($1::jsonb) AS x`;
  // The locks are an InitPlan behind a one-time filter: taken once, in the array's order, before the
  // first row is inserted. Unique checks see rows committed while we waited, so a collision still fails.
  const locked = `${json} WHERE (SELECT count(*) FROM (SELECT pg_advisory_xact_lock(k) FROM unnest($2::bigint[]) WITH ORDINALITY AS u(k, o) ORDER BY o OFFSET 0) AS l) >= 0`;
  s = {
    name: meta.name,
    columns,
    keys: columns.map((c) => c.propertyPath),
    defaults: columns.map((c) => {
      const d: unknown = c.default;
      return typeof d === 'boolean' ? (postgres ? d : +d) : typeof d === 'number' || typeof d === 'string' ? d : null;
    }),
    postgres,
    head,
    json,
    locked: { text: locked, name: `cv_plain_${createHash('sha256').update(locked).digest('hex').slice(0, 24)}` },
    byRows: new Map(),
  };
  perDs.set(entity, s);
  return s;
}

function sqliteStatement(s: Shape, rows: number): string {
  let sql = s.byRows.get(rows);
  if (sql === undefined) {
    const tuple = `(${s.columns.map(() => '?').join(',')})`;
    s.byRows.set(rows, (sql = `${s.head}VALUES ${new Array<string>(rows).fill(tuple).join(',')}`));
  }
  return sql;
}

/** Appends one row's values to `out` in column order, as the driver takes them. */
type Push<R> = (out: unknown[], row: R) => void;

function pusher<R, E extends ObjectLiteral>(ds: DataSource, s: Shape, toStored: PlainRowMapper<R, E> | undefined): Push<R> {
  const { columns, keys } = s;
  const n = columns.length;
  if (!toStored) {
    // As TypeORM's builder stores it: the column's transformer, then the driver's conversion. The
    // driver's generic path cost ~15 µs a row (80 ms per 5,000), so plain scalar columns call the
    // transformer directly; other types still go through the driver.
    const stores = columns.map((c): ((row: ObjectLiteral) => unknown) => {
      const t = c.transformer;
      if (!PASS_THROUGH.has(c.type) || Array.isArray(t) || c.embeddedMetadata) return (row) => ds.driver.preparePersistentValue(c.getEntityValue(row), c);
      const key = c.propertyName;
      return t ? (row) => t.to(row[key]) : (row) => row[key];
    });
    return (out, row) => {
      for (let c = 0; c < n; c++) out.push(param(s, c, stores[c](row as ObjectLiteral)));
    };
  }
  return (out, row) => {
    const stored = toStored(row) as Record<string, unknown>;
    for (let c = 0; c < n; c++) out.push(param(s, c, stored[keys[c]]));
  };
}

/** A stored value as the driver takes it. */
function param(s: Shape, c: number, v: unknown): unknown {
  switch (typeof v) {
    case 'undefined':
      return s.defaults[c];
    case 'bigint': // JSON has no bigint
      return s.postgres ? String(v) : v;
    case 'boolean': // SQLite binds no boolean (TypeORM stores 1/0)
      return s.postgres ? v : +v;
    case 'number':
      // JSON would turn NaN/Infinity into NULL where a bound parameter is refused.
      if (s.postgres && !Number.isFinite(v)) throw new Error(`plain insert: ${s.name}.${s.keys[c]} is ${v}, not a finite number`);
      return v;
    default:
      return v;
  }
}

/**
 * Inserts complete new rows of `entity` with plain SQL in `m`'s transaction, bypassing TypeORM's
 * insert builder, whose statement building and parameter naming cost more CPU than the database's
 * own work for batches. Table, columns and PostgreSQL types come from the entity metadata (quoted by
 * the driver, schema-qualified); statement texts are cached per DataSource, entity and row count.
 * Values come from `toStored` (already in stored form), else from the entity through its columns'
 * transformers. Nothing is read back.
 *
 * - SQLite: multi-row INSERTs of `PLAIN_INSERT_SQLITE_CHUNK` rows (bind parameters are cheap in-process).
 * - PostgreSQL: ONE statement per batch whose single parameter is the batch as JSON (an array per row)
 *   unpacked by `jsonb_array_elements` and cast per column: serialising thousands of bind parameters
 *   cost more in Node than the insert.
 */
export function insertPlainRows<E extends ObjectLiteral>(m: EntityManager, entity: EntityTarget<E>, rows: readonly E[]): Promise<void>;
export function insertPlainRows<E extends ObjectLiteral, R>(
  m: EntityManager,
  entity: EntityTarget<E>,
  rows: readonly R[],
  toStored: PlainRowMapper<R, E>,
  options?: PlainInsertOptions,
): Promise<void>;
export async function insertPlainRows<E extends ObjectLiteral, R>(
  m: EntityManager,
  entity: EntityTarget<E>,
  rows: readonly R[],
  toStored?: PlainRowMapper<R, E>,
  options: PlainInsertOptions = {},
): Promise<void> {
  const ds = m.connection;
  const s = shapeOf(ds, entity as EntityTarget<ObjectLiteral>);
  if (rows.length === 0) return;
  const push = pusher(ds, s, toStored);
  if (s.postgres) {
    // Rows as JSON arrays, not objects: one flat array per row is the cheapest thing to build and stringify.
    const batch: unknown[][] = new Array(rows.length);
    for (let i = 0; i < rows.length; i++) push((batch[i] = []), rows[i]);
    const json = JSON.stringify(batch);
    const locks = options.postgresLocks;
    if (locks === undefined) {
      await m.query(s.json, [json]);
      return;
    }
    for (const k of locks.keys) if (!isAdvisoryLockKey(k)) throw new Error('plain insert: an advisory lock key is not an integer');
    if (m.queryRunner?.isTransactionActive) throw new Error('plain insert: postgresLocks hold until the INSERT commits, so not inside a transaction');
    if (locks.prepared) {
      await namedQuery(m, s.locked, [json, locks.keys]);
      return;
    }
    // Locks and INSERT in ONE simple-protocol round trip (one implicit transaction: the locks stay held
    // until the INSERT commits). No bind parameters there, so the batch goes inline, dollar-quoted with a
    // tag it does not contain: no escaping, whatever the server's string settings.
    let tag = '$cvj$';
    while (json.includes(tag)) tag = `$cvj${randomBytes(6).toString('hex')}$`;
    const prefix = locks.keys.map((k) => `SELECT pg_advisory_xact_lock('${k}'::bigint); `).join('');
    // A replacer function: a replacement string would expand `$&`, `$'`… found in the data.
    await m.query(`${prefix}${s.json.replace('$1::jsonb', () => `${tag}${json}${tag}::jsonb`)}`);
    return;
  }
  for (const { sql, params } of sqliteChunks(s, push, rows)) await m.query(sql, params);
}

/** SQLite: the INSERT statements of `rows` in chunks of `PLAIN_INSERT_SQLITE_CHUNK`, as `insertPlainRows` runs them. */
function sqliteChunks<R>(s: Shape, push: Push<R>, rows: readonly R[]): SqliteStatement[] {
  const out: SqliteStatement[] = [];
  for (let start = 0; start < rows.length; start += PLAIN_INSERT_SQLITE_CHUNK) {
    const end = Math.min(start + PLAIN_INSERT_SQLITE_CHUNK, rows.length);
    const params: unknown[] = [];
    for (let i = start; i < end; i++) push(params, rows[i]);
    out.push({ sql: sqliteStatement(s, end - start), params });
  }
  return out;
}

/**
 * The statements `insertPlainRows` would run on SQLite for `rows`, without running them: for a
 * connection other than the DataSource's own (`SqliteWriteWorker`). Same texts, same values.
 */
export function plainInsertSqliteStatements<E extends ObjectLiteral, R>(
  ds: DataSource,
  entity: EntityTarget<E>,
  rows: readonly R[],
  toStored: PlainRowMapper<R, E>,
): SqliteStatement[] {
  const s = shapeOf(ds, entity as EntityTarget<ObjectLiteral>);
  if (s.postgres) throw new Error('plainInsertSqliteStatements is for SQLite');
  return sqliteChunks(s, pusher(ds, s, toStored), rows);
}

/** SQLSTATEs of a named statement the server does not hold (26000) or holds already (42P05). */
const POOLED_AWAY = new Set<string | undefined>(['26000', '42P05']);

/** What we use of node-postgres' client (TypeORM's PostgreSQL connection). */
interface PgClient {
  query(config: { name: string; text: string; values: unknown[] }): Promise<unknown>;
}

/**
 * Runs `text` as a named statement on a pooled connection: node-postgres parses it once per connection
 * and then only binds and executes it. TypeORM's `query` has no way to name a statement, so this takes
 * the connection from a query runner of `m`'s DataSource, gives it back after, and tells the
 * DataSource's logger what TypeORM's `query` would (the statement, a failure, a slow run).
 */
async function namedQuery(m: EntityManager, { name, text }: { name: string; text: string }, values: unknown[]): Promise<void> {
  const { logger, options } = m.connection;
  const runner = m.connection.createQueryRunner('master');
  try {
    const client = (await runner.connect()) as PgClient;
    logger.logQuery(text, values, runner);
    const start = Date.now();
    try {
      await client.query({ name, text, values });
    } catch (e) {
      logger.logQueryError(e instanceof Error ? e : String(e), text, values, runner);
      throw POOLED_AWAY.has(sqlState(e)) ? new NamedStatementRefusedError({ cause: e }) : e;
    }
    const took = Date.now() - start;
    if (options.maxQueryExecutionTime && took > options.maxQueryExecutionTime) logger.logQuerySlow(took, text, values, runner);
  } finally {
    await runner.release();
  }
}
