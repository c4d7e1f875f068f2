/**
 * Scale figures on PostgreSQL: credential metadata at 1,000,000 rows over 1,000 tenants (one tenant
 * with 10,000), seeded by the bench itself in SQL (generate_series, one statement), then read through
 * the real lib: the first page of `listExpiring(30)`, `statistics()` of the 10k-credential tenant, the
 * first and a deep page of `list` (keyset), and the rotation jobs' cross-tenant expiry scan over every
 * row (`CredentialExpiryScanner.scanExpiringAcrossTenants`, paged as the expiry monitor pages it). Each
 * query the lib sends is captured and EXPLAINed, to show which index it uses. Also the memory of the
 * in-process credential cache: 100,000 1 KB credentials stored, then each read once through the service,
 * RSS above the same host's with its cache empty (bench/support/cache-memory.ts).
 * Then the audit log at 10,000,000 rows over 1,000 tenants (one with about 1,000,000), with valid
 * hash chains (bench/support/audit-scale.ts): the query `GET /v1/audit` makes (first and last page, an
 * old month), a retention run with nothing due, and `verify` of the big chain and of the whole log. The audit rows live in their own schema,
 * `bench_scale_audit`: dropped at the end, unless `--reuse`, which keeps it and reuses it next time
 * when its marker and row count match (seeding takes minutes). `--audit-rows 0` skips the audit part.
 * Prints one JSON line per figure and writes "## Scale" in docs/BENCHMARKS.md.
 *
 *   npm run bench -- scale [--rows 1000000] [--tenants 1000] [--big 10000] [--samples 30] [--cached 100000]
 *     [--audit-rows 10000000] [--audit-tenants 1000] [--audit-big 1000000] [--reuse] [--skip-verify-all] [--no-write]
 */
import 'reflect-metadata';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Logger, Module } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { Client } from 'pg';
import type { Logger as TypeOrmLogger } from 'typeorm';
import { AuditRetentionService, AuditService } from '@app/audit';
import type { OperationContext } from '@app/common';
import { CredentialExpiryScanner, CredentialsService, CredentialStatus } from '@app/credentials';
import { KeyVaultEmulator } from '@app/keyvault-emulator';
import { credentialsStackImports } from '@app/testing';
import { emitFigure, figure, Figure } from './support/figures';
import { machineLine, median, round, today, writeBenchmarkSection } from './support/measure';
import { BENCH_POSTGRES_URL, dropSchema, freshSchema } from './support/postgres';
import { measureCacheMemory } from './support/cache-memory';
import { auditSeedMatches, AuditSeedResult, measureAuditLog, seedAuditLog } from './support/audit-scale';

const BENCH = 'scale';
const DAY_MS = 86_400_000;
/** A fixed name, so `--reuse` finds the seeded audit log of an earlier run. */
const AUDIT_SCHEMA = 'bench_scale_audit';

/** Records the SQL the lib sends (with parameters), so the bench can EXPLAIN exactly that. */
class CapturingLogger implements TypeOrmLogger {
  last: { sql: string; params: unknown[] } | null = null;
  capture = false;
  logQuery(query: string, parameters?: unknown[]): void {
    if (this.capture && /^\s*SELECT/i.test(query)) this.last = { sql: query, params: parameters ?? [] };
  }
  logQueryError(): void {}
  logQuerySlow(): void {}
  logSchemaBuild(): void {}
  logMigration(): void {}
  log(): void {}
}

/** Seeds `rows` credential metadata rows: tenant-big has `big` of them, the rest spread over `tenants - 1` tenants. */
function seedSql(schema: string, rows: number, tenants: number, big: number, nowMs: number): string {
  const types = `(ARRAY['api_key','oauth_access_token','oauth_refresh_token','basic_auth_password'])[1 + g % 4]`;
  // 3% deleted, 2% revoked, the rest active; a fifth without expiry; expiries spread over ±1 year.
  return `INSERT INTO ${schema}.cv_credentials
    (id, tenant_id, integration_id, connection_id, type, value_store, current_version, status, expires_at, rotated_at,
     tags, value_hint, certificate, vault_generation, row_version, created_at, updated_at, deleted_at, created_by, updated_by)
  SELECT gen_random_uuid()::text,
         CASE WHEN g <= ${big} THEN 'tenant-big' ELSE 'tenant-' || (g % ${tenants - 1}) END,
         'int-' || (g % 20), 'c' || g, ${types}, 'vault', 1,
         CASE WHEN g % 100 < 3 THEN 'deleted' WHEN g % 100 < 5 THEN 'revoked' ELSE 'active' END,
         CASE WHEN g % 5 = 0 THEN NULL ELSE ${nowMs} + ((g::bigint * 7919) % 730 - 365) * ${DAY_MS} + (g % 86400000) END,
         NULL, '{}', 'sk_…abcd', NULL, 0, 1,
         ${nowMs} - (${rows} - g)::bigint * 1000, ${nowMs} - (${rows} - g)::bigint * 1000,
         CASE WHEN g % 100 < 3 THEN ${nowMs} ELSE NULL END, 'bench', 'bench'
  FROM generate_series(1, ${rows}) AS g`;
}

async function timeIt(samples: number, fn: () => Promise<unknown>): Promise<number> {
  await fn(); // plans and buffers warm
  const ms: number[] = [];
  for (let i = 0; i < samples; i++) {
    const t0 = performance.now();
    await fn();
    ms.push(performance.now() - t0);
  }
  return round(median(ms), 2);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      rows: { type: 'string', default: '1000000' },
      tenants: { type: 'string', default: '1000' },
      big: { type: 'string', default: '10000' },
      samples: { type: 'string', default: '30' },
      cached: { type: 'string', default: '100000' },
      'audit-rows': { type: 'string', default: '10000000' },
      'audit-tenants': { type: 'string', default: '1000' },
      'audit-big': { type: 'string', default: '1000000' },
      reuse: { type: 'boolean' },
      'skip-verify-all': { type: 'boolean' },
      'no-write': { type: 'boolean' },
    },
  });
  const rows = Number(values.rows);
  const tenants = Number(values.tenants);
  const big = Number(values.big);
  const samples = Number(values.samples);
  const auditRows = Number(values['audit-rows']);
  const auditTenants = Number(values['audit-tenants']);
  const auditBig = Number(values['audit-big']);
  const started = performance.now();
  Logger.overrideLogger(['error']);
  const dir = mkdtempSync(join(tmpdir(), 'cv-bench-scale-'));
  const vault = await KeyVaultEmulator.start({ dataDir: join(dir, 'vault'), throttle: false, quiet: true });
  const schema = await freshSchema(`bench_scale_${process.pid}`);
  const sqlLog = new CapturingLogger();
  const figures: Figure[] = [];
  const plans: string[] = [];
  const auditPlans: string[] = [];
  const pg = new Client({ connectionString: BENCH_POSTGRES_URL });
  await pg.connect();
  /** EXPLAIN ANALYZEs the last SELECT `fn` sent (captured by `logger`) in `schema`; adds the plan to `into`. */
  const explainIn = (logger: CapturingLogger, inSchema: string, into: string[]) => async (label: string, fn: () => Promise<unknown>): Promise<void> => {
    logger.capture = true;
    await fn();
    logger.capture = false;
    const q = logger.last!;
    await pg.query(`SET search_path TO ${inSchema}`);
    const res = await pg.query(`EXPLAIN ANALYZE ${q.sql}`, q.params);
    await pg.query('RESET search_path');
    const plan = res.rows.map((r: Record<string, string>) => r['QUERY PLAN']);
    into.push(`${label}:\n${plan.map((l) => `    ${l}`).join('\n')}`);
  };
  let auditSchemaUsed = false;
  try {
    @Module({ imports: credentialsStackImports({ database: { type: 'postgres', url: BENCH_POSTGRES_URL, schema, logger: sqlLog } as never, vault }) })
    class ScaleModule {}
    const app = await Test.createTestingModule({ imports: [ScaleModule] }).compile();
    await app.init();
    const nowMs = Date.now();
    const t0 = performance.now();
    await pg.query(seedSql(schema, rows, tenants, big, nowMs));
    // VACUUM as autovacuum would on a settled table: the visibility map lets index-only scans skip the heap.
    await pg.query(`VACUUM ANALYZE ${schema}.cv_credentials`);
    const seedS = round((performance.now() - t0) / 1000, 1);
    process.stderr.write(`seeded ${rows} rows in ${seedS} s\n`);

    const service = app.get(CredentialsService);
    const scanner = app.get(CredentialExpiryScanner);
    const ctx: OperationContext = { tenantId: 'tenant-big', actor: { id: 'bench' } };
    const explain = explainIn(sqlLog, schema, plans);

    const expiringMs = await timeIt(samples, () => service.listExpiring(ctx, 30));
    await explain('listExpiring(30), tenant with 10k', () => service.listExpiring(ctx, 30));
    figures.push(figure(BENCH, `listExpiring(30) first page (500 rows, the default) p50 ms (${rows} rows, tenant with ${big})`, expiringMs, null, { on: 'value', op: '<=', limit: 20, unit: 'ms' }));
    const expiring50Ms = await timeIt(samples, () => service.listExpiring(ctx, 30, 50));
    figures.push(figure(BENCH, `listExpiring(30) first page of 50 p50 ms (tenant with ${big})`, expiring50Ms, null, { on: 'value', op: '<=', limit: 20, unit: 'ms' }));

    const statsMs = await timeIt(samples, () => service.statistics(ctx));
    await explain('statistics(), tenant with 10k (the last of its four GROUP BYs)', () => service.statistics(ctx));
    figures.push(figure(BENCH, `statistics() p50 ms (tenant with ${big})`, statsMs, null, { on: 'value', op: '<=', limit: 200, unit: 'ms' }));

    // The deepest page the tenant has (pages of 100): walk there once, then time it against the first.
    let cursor: string | undefined;
    let depth = 0;
    for (;;) {
      const page = await service.list(ctx, { limit: 100, cursor });
      if (!page.nextCursor) break;
      const next = await service.list(ctx, { limit: 100, cursor: page.nextCursor });
      if (!next.nextCursor) break;
      cursor = page.nextCursor;
      depth++;
    }
    const firstMs = await timeIt(samples, () => service.list(ctx, { limit: 100 }));
    const deepMs = await timeIt(samples, () => service.list(ctx, { limit: 100, cursor }));
    await explain(`list, page ${depth + 1} (keyset)`, () => service.list(ctx, { limit: 100, cursor }));
    figures.push(figure(BENCH, `list: page ${depth + 1} p50 ms vs the first page (keyset)`, deepMs, firstMs, { on: 'ratio', op: '<=', limit: 1.5 }));

    // The expiry monitor's scan: every live row expiring before now+30 days, from 30 days back, pages of 200.
    const scanAll = async () => {
      let after: { expiresAt: Date; id: string } | undefined = { expiresAt: new Date(nowMs - 30 * DAY_MS), id: '' };
      let n = 0;
      for (;;) {
        const page = await scanner.scanExpiringAcrossTenants({
          before: new Date(nowMs + 30 * DAY_MS),
          statuses: [CredentialStatus.ACTIVE, CredentialStatus.EXPIRED, CredentialStatus.NEEDS_REAUTH],
          limit: 200,
          after,
        });
        n += page.length;
        if (page.length < 200) return n;
        after = { expiresAt: page[page.length - 1].expiresAt, id: page[page.length - 1].id };
      }
    };
    const t1 = performance.now();
    const scanned = await scanAll();
    const scanMs = round(performance.now() - t1, 0);
    await explain('cross-tenant expiry scan (one page)', () =>
      scanner.scanExpiringAcrossTenants({ before: new Date(nowMs + 30 * DAY_MS), statuses: [CredentialStatus.ACTIVE], limit: 200, after: { expiresAt: new Date(nowMs), id: '' } }),
    );
    figures.push(figure(BENCH, `cross-tenant expiry scan, whole run ms (${scanned} of ${rows} rows due)`, scanMs, null, { on: 'value', op: '<=', limit: 2000, unit: 'ms' }));
    await app.close();

    const mem = await measureCacheMemory(Number(values.cached), 1024);
    // The baseline column holds the host's RSS with its cache empty; a ratio of the two would mean nothing.
    const memFigure = figure(BENCH, `RSS of ${mem.entries} cached 1 KB credentials above the same host's with its cache empty, MB`, mem.aboveIdleMb, mem.idleHostMb, { on: 'value', op: '<=', limit: 150, unit: 'MB' });
    figures.push({ ...memFigure, ratio: null });
    const credentialFigures = figures.length;

    // The audit log, in its own schema and Nest app (the same stack, so the lib's migrations make the table).
    let audit: { seed: AuditSeedResult; notes: string[] } | undefined;
    if (auditRows > 0) {
      auditSchemaUsed = true;
      const log = (s: string) => process.stderr.write(`${s}\n`);
      const size = { rows: auditRows, tenants: auditTenants, big: auditBig };
      // Anything else in the schema (a crashed seed, another size) is dropped and seeded again.
      const reusable = !!values.reuse && (await auditSeedMatches(pg, AUDIT_SCHEMA, size)) !== null;
      if (!reusable) await freshSchema(AUDIT_SCHEMA);
      const auditLog = new CapturingLogger();
      @Module({ imports: credentialsStackImports({ database: { type: 'postgres', url: BENCH_POSTGRES_URL, schema: AUDIT_SCHEMA, logger: auditLog } as never, vault }) })
      class AuditScaleModule {}
      const auditApp = await Test.createTestingModule({ imports: [AuditScaleModule] }).compile();
      await auditApp.init();
      try {
        const seed = await seedAuditLog(pg, AUDIT_SCHEMA, { ...size, nowMs: Date.now() }, reusable, log);
        const measured = await measureAuditLog(
          auditApp.get(AuditService),
          auditApp.get(AuditRetentionService),
          BENCH,
          seed,
          { rows: auditRows, tenants: auditTenants, samples, verifyAll: !values['skip-verify-all'] },
          { timeIt, explain: explainIn(auditLog, AUDIT_SCHEMA, auditPlans), log },
        );
        figures.push(...measured.figures);
        audit = { seed, notes: measured.notes };
      } finally {
        await auditApp.close();
      }
    }
    const totalS = round((performance.now() - started) / 1000, 0);
    const row = (f: Figure) => `| ${f.figure} | ${f.value}${f.ratio !== null ? ` (ratio ${f.ratio}, baseline ${f.baseline})` : ''} | ${f.target ?? '—'} | ${f.met === null ? '—' : f.met ? 'yes' : 'no'} |`;

    for (const f of figures) emitFigure(f);
    if (!values['no-write']) {
      writeBenchmarkSection(
        'Scale',
        `Measured ${today()} with \`npm run bench -- scale\` (bench/scale.bench.ts). Machine: ${machineLine()}; PostgreSQL on the
same machine. The bench seeds ${rows} credential metadata rows over ${tenants} tenants (one with ${big}) in one
\`INSERT … SELECT FROM generate_series\` (${seedS} s; 3% deleted, 2% revoked, a fifth without expiry, expiries over
±1 year), runs VACUUM ANALYZE (as autovacuum would on a settled table), then reads through the real lib (CredentialsService, CredentialExpiryScanner); each time is the
median of ${samples} calls after one warm-up. The machine was shared with other sessions' work while this ran, so
every time here is an upper bound of a quiet machine's. The whole run took ${totalS} s. The plans (EXPLAIN ANALYZE) are of the exact SQL the lib sent (captured):
their "Execution Time" is the database's share, the rest of a figure is the round trip, the driver's row parsing
and the lib's mapping of rows to views (the per-request reads are raw statements, no entity hydration).

| figure | now | target | met |
|---|---|---|---|
${figures.slice(0, credentialFigures).map(row).join('\n')}

Cache memory: ${mem.method} Baseline RSS (the host with the credentials stored, its cache empty) ${mem.idleHostMb} MB; ${mem.entries} entries add ${mem.aboveIdleMb} MB
(**${mem.perEntryBytes} bytes per entry**, ${mem.valueBytes}-byte values), of which V8's live heap ${mem.heapPerEntryBytes} bytes per entry.
Of the ${mem.aboveIdleMb} MB: V8's live heap ${mem.aboveIdleParts.liveHeapMb} MB, the heap's room to grow (its size after the GCs less the live heap)
${mem.aboveIdleParts.heapRoomMb} MB, and ${mem.aboveIdleParts.nativeMb} MB outside V8's heap (the cache's slabs, the allocator's, threads). The cached reads are
packed (values and rows) into the cache's slabs: ${mem.aboveIdleParts.slabsMb} MB of them, in a WebAssembly memory of their own (and ${mem.aboveIdleParts.buffersMb} MB of
ArrayBuffers added). RSS can grow by less than the live heap and slabs together where the heap reuses room the process already had from
storing the credentials.

Plans:

\`\`\`
${plans.join('\n\n')}
\`\`\`
${audit ? auditSection(audit.seed, audit.notes, figures.slice(credentialFigures).map(row), auditPlans, { rows: auditRows, tenants: auditTenants, samples, reuse: !!values.reuse }) : ''}`,
      );
    }
  } finally {
    await pg.end();
    await vault.stop();
    await dropSchema(schema);
    if (auditSchemaUsed && !values.reuse) await dropSchema(AUDIT_SCHEMA);
    rmSync(dir, { recursive: true, force: true });
  }
}

function auditSection(seed: AuditSeedResult, notes: string[], rows: string[], plans: string[], o: { rows: number; tenants: number; samples: number; reuse: boolean }): string {
  return `
### Audit log at ${o.rows} rows

Issue #15. The bench seeds ${o.rows} audit rows over ${o.tenants} tenants in its own schema (\`bench_scale_audit\`,
tables made by the lib's migrations): rows in time order over the last year, each drawn for the big tenant
(${seed.bigRows} rows) or one of the others at random (the small tenant read here has ${seed.smallRows}), so a tenant's
rows are spread through the heap as in a live log. Every row is linked to its tenant's previous one and hashed with
the lib's exported \`computeEntryHash\` (its canonical form), so the chains are valid and \`verify\` checks every row.
Inserted from Node in batches of 10,000 (\`INSERT … SELECT FROM json_populate_recordset\`, the next batch hashed while
one is written) with the table's indexes dropped, then VACUUM ANALYZE, then the indexes rebuilt from the exact
definitions the migration made (the bench checks them against the captured ones): the figures are measured with
the real indexes. Seeding took **${seed.seedS} s** (${seed.phases})${seed.reused ? ', in the earlier run that seeded the schema this run reused (`--reuse`)' : ''}.
The page query is \`AuditService.query({ tenantId })\`, exactly what \`GET /v1/audit\` calls (100 rows, newest
first, by the chain's sequence), median of ${o.samples} calls after one warm-up; the last full page (100 rows, next to the oldest) is reached by walking the
chain with the cursor. The old month's page is \`AuditService.query({ tenantId, from, to })\` for the 30 days from 330 days back
(by \`(occurredAt, id)\`, from the tenant's time index). The retention run is \`AuditRetentionService.prune\` (what the job runs under its lock) with a
cutoff older than every row, so it deletes nothing: it lists the tenants and, in each chain under its lock, finds
where the prunable prefix ends; median of 3 after one warm-up. \`verify\` is \`AuditService.verify\` (what
\`POST /v1/audit/verify\` and the CLI call), timed once.
The issue sets no target for verify or retention; the page query's is the same as listExpiring's.

| figure | now | target | met |
|---|---|---|---|
${rows.join('\n')}

${notes.join(' ')}

Plans:

\`\`\`
${plans.join('\n\n')}
\`\`\``;
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
