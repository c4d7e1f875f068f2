import { performance } from 'node:perf_hooks';
import { randomBytes } from 'node:crypto';
import type { Client } from 'pg';
import { AuditRetentionService, AuditService, computeEntryHash, GENESIS_HASH, HashableEntry } from '@app/audit';
import { figure, Figure } from './figures';
import { round } from './measure';

/**
 * The audit part of the scale bench: seeds `cv_audit_log` with valid hash chains (hashed by the lib's
 * own exported `computeEntryHash`, so `verify` really verifies) and reads it back through
 * `AuditService` — the query the HTTP audit route makes, and `verify`.
 */

/** Bumped when the seeded rows change, so `--reuse` does not pick up an older seed. */
const SEED_VERSION = 1;
const TABLE = 'cv_audit_log';
const BATCH = 10_000;
export const BIG_TENANT = 'tenant-big';

export interface AuditSeedOptions {
  rows: number;
  tenants: number;
  /** Rows of the big tenant (about: tenants are drawn at random in time order). */
  big: number;
  nowMs: number;
}

export interface AuditSeedResult {
  reused: boolean;
  /** Wall time of the seed that made the rows (the earlier run's when reused). */
  seedS: number;
  phases: string;
  /** Rows per tenant, for the tenants the bench reads. */
  bigRows: number;
  smallTenant: string;
  smallRows: number;
}

/** Small deterministic PRNG (mulberry32), so every seed of the same size is the same log. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A UUIDv7-shaped id (time-ordered, as the lib's ids are, so the primary key index has their locality). */
function idAt(ms: number, rnd: Buffer, i: number): string {
  const t = ms.toString(16).padStart(12, '0');
  const r = rnd.toString('hex', (i * 10) % (rnd.length - 10), ((i * 10) % (rnd.length - 10)) + 10);
  return `${t.slice(0, 8)}-${t.slice(8, 12)}-7${r.slice(0, 3)}-a${r.slice(3, 6)}-${r.slice(6, 18).padEnd(12, '0')}`;
}

const ACTIONS = ['read', 'read', 'read', 'read', 'read', 'read', 'read', 'read', 'read', 'read', 'read', 'read', 'store', 'rotate', 'update_metadata', 'refresh', 'access_denied', 'read', 'read', 'delete'];

/** How long the seed took when `schema` holds a finished seed of exactly these parameters (marker row and row count), else null. */
export async function auditSeedMatches(pg: Client, schema: string, o: Omit<AuditSeedOptions, 'nowMs'>): Promise<{ seedS: number; phases: string } | null> {
  const exists = await pg.query(`SELECT 1 FROM pg_tables WHERE schemaname = $1 AND tablename = 'bench_seed'`, [schema]);
  if (!exists.rowCount) return null;
  const m = await pg.query(`SELECT seed_s, phases FROM ${schema}.bench_seed WHERE version = $1 AND rows = $2 AND tenants = $3 AND big = $4`, [SEED_VERSION, o.rows, o.tenants, o.big]);
  if (!m.rowCount) return null;
  const n = await pg.query(`SELECT count(*)::bigint AS n FROM ${schema}.${TABLE}`);
  return Number(n.rows[0].n) === o.rows ? { seedS: Number(m.rows[0].seed_s), phases: String(m.rows[0].phases) } : null;
}

/** The table's indexes as the migrations made them, and the constraints behind some of them. */
async function indexDefinitions(pg: Client, schema: string): Promise<{ indexes: Map<string, string>; constraints: Map<string, string> }> {
  const idx = await pg.query(`SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = $1 AND tablename = $2`, [schema, TABLE]);
  const con = await pg.query(
    `SELECT c.conname, pg_get_constraintdef(c.oid) AS def FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid
     JOIN pg_namespace n ON n.oid = t.relnamespace WHERE n.nspname = $1 AND t.relname = $2 AND c.contype IN ('p', 'u')`,
    [schema, TABLE],
  );
  return {
    indexes: new Map(idx.rows.map((r: { indexname: string; indexdef: string }) => [r.indexname, r.indexdef])),
    constraints: new Map(con.rows.map((r: { conname: string; def: string }) => [r.conname, r.def])),
  };
}

/**
 * Seeds `rows` audit rows in time order over the last year, each drawn for the big tenant with
 * probability big/rows and otherwise for one of the other tenants at random: each tenant's rows
 * are interleaved with everyone else's in the heap, as a live log's are. Each row is linked to its
 * tenant's previous one and hashed with `computeEntryHash` (the lib's canonical form), so every
 * chain verifies. Inserted in batches of 10,000 (`json_populate_recordset`, one text parameter)
 * with the indexes dropped, then VACUUM ANALYZE and the migrations' exact index definitions
 * rebuilt (checked against the captured ones). Reuses a finished seed of the same size when `reuse`.
 */
export async function seedAuditLog(pg: Client, schema: string, o: AuditSeedOptions, reuse: boolean, log: (s: string) => void): Promise<AuditSeedResult> {
  const table = `${schema}.${TABLE}`;
  const counts = async () => {
    const r = await pg.query(
      `SELECT tenant_id, count(*)::int AS n FROM ${table} WHERE tenant_id = ANY($1) GROUP BY tenant_id`,
      [[BIG_TENANT, 'tenant-1']],
    );
    const by = new Map(r.rows.map((x: { tenant_id: string; n: number }) => [x.tenant_id, x.n]));
    return { bigRows: by.get(BIG_TENANT) ?? 0, smallTenant: 'tenant-1', smallRows: by.get('tenant-1') ?? 0 };
  };
  if (reuse) {
    const earlier = await auditSeedMatches(pg, schema, o);
    if (earlier !== null) {
      log(`reusing the seeded audit log in schema ${schema} (${o.rows} rows)`);
      return { reused: true, ...earlier, ...(await counts()) };
    }
  }
  const existing = await pg.query(`SELECT count(*)::int AS n FROM ${table}`);
  if (existing.rows[0].n !== 0) throw new Error(`${table} is not empty: seed a fresh schema`);

  const t0 = performance.now();
  await pg.query(`SET synchronous_commit = off`);
  await pg.query(`SET maintenance_work_mem = '1GB'`);
  const defs = await indexDefinitions(pg, schema);
  for (const name of defs.constraints.keys()) await pg.query(`ALTER TABLE ${table} DROP CONSTRAINT "${name}"`);
  for (const name of defs.indexes.keys()) if (!defs.constraints.has(name)) await pg.query(`DROP INDEX ${schema}."${name}"`);

  const rnd = prng(15);
  const bytes = randomBytes(1 << 16);
  const seq = new Map<string, number>();
  const prev = new Map<string, string>();
  const spanMs = 365 * 86_400_000;
  const startMs = o.nowMs - spanMs;
  const bigShare = o.big / o.rows;
  let inflight: Promise<unknown> = Promise.resolve();
  let hashMs = 0;
  for (let from = 0; from < o.rows; from += BATCH) {
    const n = Math.min(BATCH, o.rows - from);
    const batch: Record<string, unknown>[] = new Array(n);
    const h0 = performance.now();
    for (let j = 0; j < n; j++) {
      const g = from + j;
      // Let the previous batch's bytes go out while this one is built.
      if (j % 1000 === 999) await new Promise<void>((r) => setImmediate(r));
      const tenantId = rnd() < bigShare ? BIG_TENANT : `tenant-${1 + Math.floor(rnd() * (o.tenants - 1))}`;
      const sequence = (seq.get(tenantId) ?? 0) + 1;
      const previousHash = prev.get(tenantId) ?? GENESIS_HASH;
      const ms = startMs + Math.floor((g * spanMs) / o.rows);
      const action = ACTIONS[g % ACTIONS.length];
      const denied = action === 'access_denied';
      const details = action === 'store' || action === 'rotate' || action === 'update_metadata' ? { integrationId: `int-${g % 20}`, type: 'api_key' } : null;
      const e: HashableEntry = {
        id: idAt(ms, bytes, g),
        tenantId,
        sequence,
        occurredAt: new Date(ms),
        action,
        resource: `cred-${tenantId}-${g % 50}`,
        actorId: `svc-${g % 20}`,
        actorIp: `10.0.${g % 256}.${(g >> 8) % 256}`,
        userAgent: 'cv-client/1.4',
        result: denied ? 'denied' : 'success',
        errorCode: denied ? 'FORBIDDEN' : null,
        durationMs: g % 40,
        correlationId: `req-${g}`,
        details,
        previousHash,
      };
      const hash = computeEntryHash(e);
      seq.set(tenantId, sequence);
      prev.set(tenantId, hash);
      batch[j] = {
        id: e.id,
        tenant_id: tenantId,
        sequence,
        occurred_at: ms,
        action,
        resource: e.resource,
        actor_id: e.actorId,
        actor_ip: e.actorIp,
        user_agent: e.userAgent,
        result: e.result,
        error_code: e.errorCode,
        duration_ms: e.durationMs,
        correlation_id: e.correlationId,
        // Keys already sorted, flat strings: JSON.stringify is the canonical text the lib stores.
        details: details && JSON.stringify(details),
        previous_hash: previousHash,
        hash,
      };
    }
    hashMs += performance.now() - h0;
    const json = JSON.stringify(batch);
    await inflight;
    inflight = pg.query(`INSERT INTO ${table} SELECT * FROM json_populate_recordset(NULL::${table}, $1::json)`, [json]);
    if ((from / BATCH) % 100 === 99) log(`  ${from + n} rows, ${round((performance.now() - t0) / 1000, 0)} s`);
  }
  await inflight;
  const tInserted = performance.now();
  await pg.query(`VACUUM (ANALYZE) ${table}`);
  const tVacuumed = performance.now();
  for (const [name, def] of defs.constraints) await pg.query(`ALTER TABLE ${table} ADD CONSTRAINT "${name}" ${def}`);
  for (const [name, def] of defs.indexes) if (!defs.constraints.has(name)) await pg.query(def);
  const rebuilt = await indexDefinitions(pg, schema);
  for (const [name, def] of defs.indexes) {
    if (rebuilt.indexes.get(name) !== def) throw new Error(`index ${name} was not rebuilt as the migration made it`);
  }
  await pg.query(`ANALYZE ${table}`);
  const seedS = round((performance.now() - t0) / 1000, 1);
  const phases =
    `insert ${round((tInserted - t0) / 1000, 0)} s (of which building and hashing the rows in Node ${round(hashMs / 1000, 0)} s), ` +
    `VACUUM ANALYZE ${round((tVacuumed - tInserted) / 1000, 0)} s, ${defs.indexes.size} indexes rebuilt ${round((performance.now() - tVacuumed) / 1000, 0)} s`;
  await pg.query(`CREATE TABLE ${schema}.bench_seed (version int, rows bigint, tenants int, big int, seed_s real, phases text)`);
  await pg.query(`INSERT INTO ${schema}.bench_seed VALUES ($1, $2, $3, $4, $5, $6)`, [SEED_VERSION, o.rows, o.tenants, o.big, seedS, phases]);
  log(`seeded ${o.rows} audit rows in ${seedS} s (${phases})`);
  return { reused: false, seedS, phases, ...(await counts()) };
}

export interface AuditMeasureHelpers {
  timeIt(samples: number, fn: () => Promise<unknown>): Promise<number>;
  explain(label: string, fn: () => Promise<unknown>): Promise<void>;
  log(s: string): void;
}

/**
 * The figures: the first page (newest 100 rows, what `GET /v1/audit` returns) of the big and of a
 * small tenant, the big tenant's first page of an old month, the chain's last page reached with the cursor, paging the whole big chain, a retention
 * run with nothing due, and `verify` of the big chain and of the whole log, in rows/s.
 */
export async function measureAuditLog(
  audit: AuditService,
  retention: AuditRetentionService,
  bench: string,
  seed: AuditSeedResult,
  o: { rows: number; tenants: number; samples: number; verifyAll: boolean },
  h: AuditMeasureHelpers,
): Promise<{ figures: Figure[]; notes: string[] }> {
  const figures: Figure[] = [];
  const notes: string[] = [];
  const pageTarget = { on: 'value', op: '<=', limit: 20, unit: 'ms' } as const;

  const bigFirst = await h.timeIt(o.samples, () => audit.query({ tenantId: BIG_TENANT }));
  await h.explain(`audit query, first page, tenant with ${seed.bigRows} rows`, () => audit.query({ tenantId: BIG_TENANT }));
  figures.push(figure(bench, `audit query first page (100 rows) p50 ms (${o.rows} rows, tenant with ${seed.bigRows})`, bigFirst, null, pageTarget));
  const smallFirst = await h.timeIt(o.samples, () => audit.query({ tenantId: seed.smallTenant }));
  figures.push(figure(bench, `audit query first page (100 rows) p50 ms (tenant with ${seed.smallRows})`, smallFirst, null, pageTarget));
  // A month near the start of the seed's year (330 to 300 days back): by (occurredAt, id) from the tenant's time index.
  const monthFrom = new Date(Date.now() - 330 * 86_400_000);
  const oldMonth = { tenantId: BIG_TENANT, from: monthFrom, to: new Date(monthFrom.getTime() + 30 * 86_400_000) };
  const monthPage = await audit.query(oldMonth);
  if (monthPage.items.length !== 100) throw new Error(`the month 330 days back holds ${monthPage.items.length} rows of ${BIG_TENANT}, not a page`);
  const monthMs = await h.timeIt(o.samples, () => audit.query(oldMonth));
  await h.explain(`audit query, the month from 330 days back, first page, tenant with ${seed.bigRows} rows`, () => audit.query(oldMonth));
  figures.push(figure(bench, `audit query of the month from 330 days back, first page (100 rows) p50 ms (tenant with ${seed.bigRows})`, monthMs, null, pageTarget));

  // Walk the big chain to its oldest rows with the cursor (pages of 500, the most the API gives).
  let cursor: string | undefined;
  let walked = 0;
  let pages = 0;
  const w0 = performance.now();
  for (;;) {
    const page = await audit.query({ tenantId: BIG_TENANT, limit: 500, cursor });
    walked += page.items.length;
    pages++;
    if (!page.nextCursor) break;
    cursor = page.nextCursor;
  }
  const walkS = (performance.now() - w0) / 1000;
  // The last cursor of the 500-walk leaves at most 500 rows; step on in pages of 100 to the chain's
  // last FULL page (the very last one may hold a few rows only, which would flatter the comparison).
  let last = cursor;
  for (;;) {
    const page = await audit.query({ tenantId: BIG_TENANT, cursor: last });
    if (!page.nextCursor) break;
    const next = await audit.query({ tenantId: BIG_TENANT, cursor: page.nextCursor });
    if (next.items.length < 100 || !next.nextCursor) {
      if (next.items.length === 100) last = page.nextCursor;
      break;
    }
    last = page.nextCursor;
  }
  const lastMs = await h.timeIt(o.samples, () => audit.query({ tenantId: BIG_TENANT, cursor: last }));
  await h.explain(`audit query, last full page (cursor), tenant with ${seed.bigRows} rows`, () => audit.query({ tenantId: BIG_TENANT, cursor: last }));
  figures.push(figure(bench, `audit query last full page (100 rows, cursor) p50 ms vs the first page (keyset, tenant with ${seed.bigRows})`, lastMs, bigFirst, { on: 'ratio', op: '<=', limit: 1.5 }));
  figures.push(figure(bench, `audit query paging the whole chain of ${walked} rows (pages of 500), rows/s`, round(walked / walkS, 0), null, null));
  notes.push(`Paging the big chain end to end took ${pages} pages of 500 in ${round(walkS, 1)} s.`);

  // Retention with a cutoff older than every row: what a run reads before it deletes anything (the tenants, and
  // in each chain, under its lock, where the prunable prefix ends). It must not change the seed.
  const nothingDue = new Date(Date.now() - 5 * 365 * 86_400_000);
  const retentionMs = await h.timeIt(3, async () => {
    const { deleted } = await retention.prune(nothingDue);
    if (deleted !== 0) throw new Error(`retention deleted ${deleted} seeded rows`);
  });
  figures.push(figure(bench, `retention run with nothing due (${o.rows} rows, ${o.tenants} chains), ms`, retentionMs, null, null));

  const v0 = performance.now();
  const big = await audit.verify({ tenantId: BIG_TENANT });
  const bigS = (performance.now() - v0) / 1000;
  if (!big.valid || big.checked !== seed.bigRows) throw new Error(`verify of ${BIG_TENANT} failed: ${JSON.stringify(big)}`);
  await h.explain(`verify, one page of the chain (tenant with ${seed.smallRows} rows)`, () => audit.verify({ tenantId: seed.smallTenant }));
  figures.push(figure(bench, `verify one chain (${big.checked} rows), rows/s`, round(big.checked / bigS, 0), null, null));
  notes.push(`verify of the big chain: valid, ${big.checked} rows in ${round(bigS, 1)} s.`);

  if (o.verifyAll) {
    const a0 = performance.now();
    const all = await audit.verify();
    const allS = (performance.now() - a0) / 1000;
    if (!all.valid || all.checked !== o.rows) throw new Error(`verify of the whole log failed: ${JSON.stringify({ ...all, expected: o.rows })}`);
    figures.push(figure(bench, `verify the whole log (${all.checked} rows, ${all.chains} chains), rows/s`, round(all.checked / allS, 0), null, null));
    notes.push(`verify of the whole log: valid, ${all.checked} rows in ${all.chains} chains in ${round(allS, 1)} s.`);
  }
  h.log(notes.join(' '));
  return { figures, notes };
}
