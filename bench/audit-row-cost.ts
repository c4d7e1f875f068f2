/**
 * What one audit row costs SQLite where the host's audited reads are committed: the write worker's loop
 * (`BEGIN IMMEDIATE`, the app's own multi-row INSERT from `plainInsertSqliteStatements`, `COMMIT` with
 * `synchronous = FULL`) on a connection of its own to a file made by the audit migrations, after a seed of
 * `--seed` rows. Varies the rows per commit (the read buffer's batches: about half the concurrent reads),
 * how many credentials the reads spread over (each credential is its own spot in the (tenant, resource)
 * index), and the index set (`INDEX_SETS`): `all` (the migrations': on SQLite the four query indexes partial, rows
 * inserted pending and caught up as the host does — `AUDIT_CATCH_UP_CHUNK_SQL` after every `AUDIT_CATCH_UP_CHUNK_ROWS`
 * rows, timed with the commit that triggers it), `inline` (SQLite: the four on every commit, as before the catch-up),
 * `chain` (only the primary key and the chain's unique index, the four query indexes dropped), one query index
 * dropped, or the action index partial. Not a figure: the numbers decide what an audit row may cost, e.g. which query
 * indexes the log keeps and how (docs/BENCHMARKS.md, "Ninth round", "Thirteenth round").
 *
 * `--databases postgres`: the same rows as the writer's optimistic append sends them — one autocommit
 * INSERT per batch taking an advisory lock, as a named statement (`insertPlainRows` with `postgresLocks`) —
 * into a fresh schema of BENCH_POSTGRES_URL over one connection; `cpuUsPerRow` is that connection's backend's
 * (from /proc: PostgreSQL on this machine, else null), `nodeCpuUsPerRow` this process's, and the WAL the LSN's
 * advance.
 *
 *   npm run build && node dist/bench/audit-row-cost.js [--databases sqlite,postgres] [--batches 1500]
 *     [--rows 8,16,32,64] [--resources 1,1000] [--indexes all,chain,no-time,…] [--seed 50000]
 *     [--autocheckpoint 1000,4000] (SQLite: the WAL pages a checkpoint waits for; the host's default is SQLite's 1000)
 */
import 'reflect-metadata';
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { DataSource } from 'typeorm';
import { AUDIT_CATCH_UP_CHUNK_ROWS, AUDIT_CATCH_UP_CHUNK_SQL, AUDIT_ENTITIES, AUDIT_MIGRATIONS, AuditLogEntry } from '@app/audit';
import { insertPlainRows, plainInsertSqliteStatements, type SqliteStatement, type StoredRow } from '@app/common';
import { INDEX_SETS, type IndexSet, indexChanges, isIndexSet } from './support/audit-index-sets';
import { machineLine, median, percentile, round } from './support/measure';
import { BENCH_POSTGRES_URL, dropSchema, freshSchema } from './support/postgres';

/** What we use of a better-sqlite3 `Database` (the package ships no types). */
interface SqliteStatementHandle {
  run(params?: readonly unknown[]): unknown;
}
interface SqliteDatabase {
  prepare(sql: string): SqliteStatementHandle;
  pragma(source: string, options?: { simple: true }): unknown;
  exec(source: string): unknown;
  close(): void;
}

/** Commits whose WAL frames are counted (before the timed ones). */
const FRAME_SAMPLE = 40;

type Row = StoredRow<AuditLogEntry>;

/** Time-ordered ids (UUIDv7, as the audit log makes them): each insert lands at the primary key's end. */
function uuidV7(ms: number): string {
  const b = randomBytes(16);
  b.writeUIntBE(ms, 0, 6);
  b[6] = 0x70 | (b[6] & 0x0f);
  b[8] = 0x80 | (b[8] & 0x3f);
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** Rows as a value read stores them: one tenant, one API key, `resources` credentials drawn at random. */
function rowMaker(resources: number, queryPending: 1 | null): () => Row {
  const credentials = Array.from({ length: resources }, () => `credential:${randomUUID()}`);
  let sequence = 0;
  let previousHash = '0'.repeat(64);
  return () => {
    const hash = randomBytes(32).toString('hex');
    const now = Date.now();
    const row: Row = {
      id: uuidV7(now),
      tenantId: 'tenant-bench',
      sequence: ++sequence,
      occurredAt: now,
      action: 'read', // AuditAction.READ, as a value read records it
      resource: credentials[Math.floor(Math.random() * resources)],
      actorId: 'api-key:bench',
      actorIp: '127.0.0.1',
      userAgent: 'autocannon',
      result: 'success',
      errorCode: null,
      durationMs: 2,
      correlationId: randomUUID(),
      details: '{"cache":"hit"}',
      previousHash,
      hash,
      queryPending,
    };
    previousHash = hash;
    return row;
  };
}

interface Variant {
  rows: number;
  resources: number;
  indexes: IndexSet;
  /** SQLite: the worker connection's `wal_autocheckpoint` (pages; the host's DATABASE_SQLITE_WAL_AUTOCHECKPOINT). */
  autocheckpoint?: number;
}

/** Commit times and CPU of `batches` timed commits, as one JSON object. */
function summary(database: string, v: Variant, times: number[], wallMs: number, cpuUs: number | null, extra: Record<string, unknown>) {
  const rows = times.length * v.rows;
  const sorted = [...times].sort((a, b) => a - b);
  return {
    bench: 'audit-row-cost',
    database,
    ...v,
    commitP50Ms: round(median(sorted), 3),
    commitP99Ms: round(percentile(sorted, 99), 3),
    wallUsPerRow: round((wallMs * 1000) / rows, 1),
    cpuUsPerRow: cpuUs === null ? null : round(cpuUs / rows, 1),
    ...extra,
  };
}

/** Times `run` over `work`, one commit each. */
async function timed<T>(work: T[], run: (w: T) => unknown): Promise<{ times: number[]; wallMs: number }> {
  const times: number[] = [];
  const t0 = performance.now();
  for (const w of work) {
    const s = performance.now();
    await run(w);
    times.push(performance.now() - s);
  }
  return { times, wallMs: performance.now() - t0 };
}

async function measureSqlite(v: Variant, batches: number, seed: number): Promise<Record<string, unknown>> {
  const dir = mkdtempSync(join(tmpdir(), 'cv-audit-row-cost-'));
  const file = join(dir, 'audit.sqlite');
  const ds = await new DataSource({
    type: 'better-sqlite3',
    database: file,
    enableWAL: true,
    entities: AUDIT_ENTITIES,
    migrations: AUDIT_MIGRATIONS,
    migrationsRun: true,
  }).initialize();
  // A connection of its own, as the write worker has.
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- better-sqlite3 ships no types
  const Database = require('better-sqlite3') as new (file: string, options: { fileMustExist: boolean }) => SqliteDatabase;
  const db = new Database(file, { fileMustExist: true });
  try {
    for (const sql of indexChanges(v.indexes, (n) => `"${n}"`, 'sqlite')) db.exec(sql);
    // Rows pending for the query indexes, as the host inserts them; but for `inline`, caught up as the host does.
    const next = rowMaker(v.resources, 1);
    const catchUp = v.indexes !== 'inline';
    const statementsOf = (rows: Row[]): SqliteStatement[] => plainInsertSqliteStatements(ds, AuditLogEntry, rows, (r) => r);
    // Prepared once per text and kept, as the worker does.
    const prepared = new Map<string, SqliteStatementHandle>();
    const statement = (sql: string) => prepared.get(sql) ?? prepared.set(sql, db.prepare(sql)).get(sql)!;
    let pending = 0;
    const run = (statements: SqliteStatement[], rows = 0) => {
      statement('BEGIN IMMEDIATE').run();
      for (const s of statements) statement(s.sql).run(s.params);
      statement('COMMIT').run();
      // The host's background catch-up (its own transaction on the worker's connection), in the commit's time.
      if (catchUp && (pending += rows) >= AUDIT_CATCH_UP_CHUNK_ROWS) {
        pending = 0;
        run([{ sql: AUDIT_CATCH_UP_CHUNK_SQL, params: [AUDIT_CATCH_UP_CHUNK_ROWS] }]);
      }
    };
    // The seed: a log that is not empty (deeper B-trees), written fast — not measured.
    db.pragma('synchronous = OFF');
    for (let done = 0; done < seed; done += 500) run(statementsOf(Array.from({ length: 500 }, next)));
    if (catchUp) db.exec(`UPDATE "cv_audit_log" SET "query_pending" = NULL WHERE "query_pending" = 1`);
    db.pragma('wal_checkpoint(TRUNCATE)');
    db.pragma('synchronous = FULL');
    // Rows made and statements built before the clock starts: only the database's work is timed.
    const batchOf = () => statementsOf(Array.from({ length: v.rows }, next));
    // Pages written per commit: a few commits with the auto-checkpoint off, counted in the WAL's growth (with
    // the catch-ups' share: whole chunks of them).
    const frameSample = Math.max(FRAME_SAMPLE, Math.ceil((4 * AUDIT_CATCH_UP_CHUNK_ROWS) / v.rows));
    const pageSize = Number(db.pragma('page_size', { simple: true }));
    db.pragma('wal_autocheckpoint = 0');
    const walBefore = statSync(`${file}-wal`).size;
    for (let i = 0; i < frameSample; i++) run(batchOf(), v.rows);
    const framesPerCommit = (statSync(`${file}-wal`).size - walBefore) / (pageSize + 24) / frameSample;
    db.pragma('wal_checkpoint(TRUNCATE)');
    db.pragma(`wal_autocheckpoint = ${v.autocheckpoint ?? 1000}`);
    const work = Array.from({ length: batches }, batchOf);
    const cpu0 = process.cpuUsage();
    const { times, wallMs } = await timed(work, (statements) => run(statements, v.rows));
    const cpu = process.cpuUsage(cpu0);
    return summary('sqlite', v, times, wallMs, cpu.user + cpu.system, {
      systemShare: round(cpu.system / (cpu.user + cpu.system), 2),
      walFramesPerCommit: round(framesPerCommit, 1),
    });
  } finally {
    db.close();
    await ds.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A local backend's user + system CPU in µs, from /proc (null when PostgreSQL runs elsewhere). */
function backendCpuUs(pid: number): number | null {
  const stat = `/proc/${pid}/stat`;
  if (!existsSync(stat)) return null;
  // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th, in ticks of 10 ms.
  const fields = readFileSync(stat, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10_000;
}

async function measurePostgres(v: Variant, batches: number, seed: number): Promise<Record<string, unknown>> {
  const schema = await freshSchema(`bench_audit_row_cost_${process.pid}`);
  const ds = await new DataSource({
    type: 'postgres',
    url: BENCH_POSTGRES_URL,
    schema,
    entities: AUDIT_ENTITIES,
    migrations: AUDIT_MIGRATIONS,
    migrationsRun: true,
    extra: { max: 1 },
  }).initialize();
  try {
    for (const sql of indexChanges(v.indexes, (n) => `"${schema}"."${n}"`, 'postgres')) await ds.query(sql);
    const next = rowMaker(v.resources, null);
    const insert = (rows: Row[], locks: boolean) =>
      insertPlainRows(ds.manager, AuditLogEntry, rows, (r) => r, locks ? { postgresLocks: { keys: ['4242'], prepared: true } } : {});
    for (let done = 0; done < seed; done += 500) await insert(Array.from({ length: 500 }, next), false);
    const [{ pid }] = (await ds.query('SELECT pg_backend_pid() AS pid')) as Array<{ pid: number }>;
    const lsn = async () => ((await ds.query('SELECT pg_current_wal_lsn()::text AS lsn')) as Array<{ lsn: string }>)[0].lsn;
    const work = Array.from({ length: batches }, () => Array.from({ length: v.rows }, next));
    const lsn0 = await lsn();
    const cpu0 = backendCpuUs(pid);
    const node0 = process.cpuUsage();
    const { times, wallMs } = await timed(work, (rows) => insert(rows, true));
    const node = process.cpuUsage(node0);
    const cpu1 = backendCpuUs(pid);
    const [{ bytes }] = (await ds.query('SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn)::float8 AS bytes', [lsn0])) as Array<{ bytes: number }>;
    return summary('postgres', v, times, wallMs, cpu0 === null || cpu1 === null ? null : cpu1 - cpu0, {
      // This process's own (the driver, the statement's parameters): the host's side of the same commit.
      nodeCpuUsPerRow: round((node.user + node.system) / (batches * v.rows), 1),
      walBytesPerRow: round(bytes / (batches * v.rows), 0),
    });
  } finally {
    await ds.destroy();
    await dropSchema(schema);
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      databases: { type: 'string', default: 'sqlite' },
      batches: { type: 'string', default: '1500' },
      rows: { type: 'string', default: '8,16,32,64' },
      resources: { type: 'string', default: '1,1000' },
      indexes: { type: 'string', default: 'all,chain' },
      seed: { type: 'string', default: '50000' },
      autocheckpoint: { type: 'string', default: '1000' },
    },
  });
  const list = (s: string) => s.split(',').map((x) => x.trim());
  const indexes = list(values.indexes);
  const unknown = indexes.filter((i) => !isIndexSet(i));
  if (unknown.length) throw new Error(`--indexes takes ${INDEX_SETS.join(', ')}, not ${unknown.join(', ')}`);
  const databases = list(values.databases);
  const unknownDb = databases.filter((d) => d !== 'sqlite' && d !== 'postgres');
  if (unknownDb.length) throw new Error(`--databases takes sqlite and/or postgres, not ${unknownDb.join(', ')}`);
  process.stderr.write(`audit-row-cost on ${machineLine()}\n`);
  for (const database of databases) {
    const measure = database === 'postgres' ? measurePostgres : measureSqlite;
    for (const set of indexes as Variant['indexes'][]) {
      for (const resources of list(values.resources).map(Number)) {
        for (const rows of list(values.rows).map(Number)) {
          for (const autocheckpoint of database === 'sqlite' ? list(values.autocheckpoint).map(Number) : [undefined]) {
            const v: Variant = { rows, resources, indexes: set, ...(autocheckpoint === undefined ? {} : { autocheckpoint }) };
            process.stdout.write(`${JSON.stringify(await measure(v, Number(values.batches), Number(values.seed)))}\n`);
          }
        }
      }
    }
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
