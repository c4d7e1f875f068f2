/**
 * Audit overhead on the warm read path: `CredentialsService.get` (cache hit) with the real AuditModule
 * vs the same stack with a no-op audit, in one run. Two audited variants: the default (the first read of
 * one actor+credential written at once, its repeats within `readAudit.coalesceWindowMs` folded into one
 * row with a count), and one hash-chained row per read (`coalesceWindowMs: 0`). Target: overhead ≤ 10%.
 * Prints one JSON line per figure and writes "## Audit overhead" in docs/BENCHMARKS.md.
 *
 *   npm run bench:audit -- [--ops 100000] [--concurrency 16] [--rounds 5] [--database sqlite|postgres] [--no-write]
 */
import 'reflect-metadata';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Logger, Module } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import type { DataSourceOptions } from 'typeorm';
import { AuditService } from '@app/audit';
import type { OperationContext } from '@app/common';
import { CredentialsService, CredentialType, ReadAuditCoalescer } from '@app/credentials';
import { KeyVaultEmulator } from '@app/keyvault-emulator';
import { credentialsStackImports } from '@app/testing';
import { emitFigure, figure } from './support/figures';
import { LoadResult, machineLine, median, medianRun, percent, runLoad, today, writeBenchmarkSection } from './support/measure';
import { noopAudit, noopReadAudit } from './support/noop-audit';
import { BENCH_POSTGRES_URL, dropSchema, freshSchema } from './support/postgres';

type DatabaseKind = 'sqlite' | 'postgres';
type Mode = 'no audit (baseline)' | 'audited, folded reads (default)' | 'audited, one row per read';

type ModeResult = LoadResult & { cpuUsPerOp: number };

async function measureMode(mode: Mode, vault: KeyVaultEmulator, database: DataSourceOptions, ops: number, concurrency: number): Promise<ModeResult> {
  @Module({
    imports: credentialsStackImports({
      database,
      vault,
      credentials: { readAudit: { coalesceWindowMs: mode === 'audited, one row per read' ? 0 : 1000 } },
    }),
  })
  class BenchModule {}

  let builder = Test.createTestingModule({ imports: [BenchModule] });
  if (mode === 'no audit (baseline)') {
    // Both the audit log and the credentials lib's read folding go: the baseline does no audit work at all.
    builder = builder.overrideProvider(AuditService).useValue(noopAudit).overrideProvider(ReadAuditCoalescer).useValue(noopReadAudit);
  }
  const app = await builder.compile();
  await app.init();
  try {
    const service = app.get(CredentialsService);
    const ctx: OperationContext = { tenantId: 'bench', actor: { id: 'bench' } };
    const { id } = await service.store(ctx, { integrationId: 'bench', connectionId: 'hot', type: CredentialType.API_KEY, value: `sk_${'v'.repeat(61)}` });
    await runLoad(5000, concurrency, () => service.get(ctx, id));
    await app.get(AuditService).flush();
    // This process's CPU per read, the rows' flush included: steadier than reads/s on a shared machine.
    const cpu0 = process.cpuUsage();
    const result = await runLoad(ops, concurrency, () => service.get(ctx, id));
    await app.get(AuditService).flush();
    const cpu = process.cpuUsage(cpu0);
    return { ...result, cpuUsPerOp: Math.round(((cpu.user + cpu.system) / ops) * 10) / 10 };
  } finally {
    await app.close();
  }
}

const MODES: Mode[] = ['no audit (baseline)', 'audited, folded reads (default)', 'audited, one row per read'];

/** One measurement in this process (a child): a fresh vault, database and module stack. */
async function child(mode: Mode, kind: DatabaseKind, ops: number, concurrency: number): Promise<void> {
  Logger.overrideLogger(['error']);
  const dir = mkdtempSync(join(tmpdir(), 'cv-bench-audit-'));
  const vault = await KeyVaultEmulator.start({ dataDir: join(dir, 'vault'), throttle: false, quiet: true });
  const schema = kind === 'postgres' ? await freshSchema(`bench_audit_${process.pid}`) : undefined;
  const database: DataSourceOptions = schema
    ? { type: 'postgres', url: BENCH_POSTGRES_URL, schema }
    : { type: 'better-sqlite3', database: join(dir, 'bench.sqlite'), enableWAL: true };
  try {
    const result = await measureMode(mode, vault, database, ops, concurrency);
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    await vault.stop();
    if (schema) await dropSchema(schema);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Runs one mode in a fresh Node process: no JIT state or heap left over from another mode's stack. */
function measureInChild(mode: Mode, kind: DatabaseKind, ops: number, concurrency: number): ModeResult {
  const args = [__filename, '--child', mode, '--database', kind, '--ops', String(ops), '--concurrency', String(concurrency)];
  const out = execFileSync(process.execPath, args, {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return JSON.parse(out.trim().split('\n').pop()!) as ModeResult;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      ops: { type: 'string', default: '100000' },
      concurrency: { type: 'string', default: '16' },
      rounds: { type: 'string', default: '5' },
      child: { type: 'string' },
      database: { type: 'string', default: 'sqlite' },
      'no-write': { type: 'boolean' },
    },
  });
  const ops = Number(values.ops);
  const concurrency = Number(values.concurrency);
  const rounds = Number(values.rounds);
  const kind = values.database as DatabaseKind;
  if (kind !== 'sqlite' && kind !== 'postgres') throw new Error('--database must be sqlite or postgres');
  if (values.child) return child(values.child as Mode, kind, ops, concurrency);

  // Rounds interleave the modes, and each round's overhead compares it with that round's baseline,
  // so a noisy neighbour during one round moves both sides of the comparison. The median is reported.
  const results = new Map<Mode, ModeResult[]>(MODES.map((m) => [m, []]));
  for (let r = 0; r < rounds; r++) {
    for (const mode of MODES) {
      const res = measureInChild(mode, kind, mode === 'audited, one row per read' ? Math.min(ops, 50_000) : ops, concurrency);
      results.get(mode)!.push(res);
      process.stderr.write(`round ${r + 1}/${rounds} ${mode}: ${res.opsPerSec} reads/s, ${res.cpuUsPerOp} CPU µs/read\n`);
    }
  }
  const base = results.get(MODES[0])!;
  const summary = MODES.map((mode) => {
    const runs = results.get(mode)!;
    const overheads = runs.map((res, i) => 1 - res.opsPerSec / base[i].opsPerSec);
    const mid = medianRun(runs);
    return {
      mode,
      ops: mid.ops,
      medianOpsPerSec: Math.round(median(runs.map((x) => x.opsPerSec))),
      cpuUsPerOp: median(runs.map((x) => x.cpuUsPerOp)),
      p50Ms: mid.p50Ms,
      p99Ms: mid.p99Ms,
      overheadPct: percent(median(overheads)),
      overheadRangePct: [percent(Math.min(...overheads)), percent(Math.max(...overheads))],
    };
  });
  for (const s of summary) process.stdout.write(`${JSON.stringify({ bench: 'audit-overhead', rounds, ...s })}\n`);
  for (const s of summary.slice(1)) {
    const f = figure('audit-overhead', `in-process warm read audit overhead, % of throughput: ${s.mode} (${kind})`, s.overheadPct, null, { on: 'value', op: '<=', limit: 10, unit: '%' });
    emitFigure({ ...f, baseline: summary[0].medianOpsPerSec });
  }
  if (!values['no-write']) {
    const rows = summary.map(
      (s, i) =>
        `| ${s.mode} | ${s.ops} | ${s.medianOpsPerSec} | ${s.cpuUsPerOp} | ${s.p50Ms} | ${s.p99Ms} | ${i === 0 ? '—' : `${s.overheadPct}% (${s.overheadRangePct[0]}% … ${s.overheadRangePct[1]}%)`} |`,
    );
    writeBenchmarkSection(
      kind === 'postgres' ? 'Audit overhead on PostgreSQL' : 'Audit overhead',
      `Measured ${today()} with \`npm run bench:audit${kind === 'postgres' ? ' -- --database postgres' : ''}\` (bench/audit-overhead.bench.ts): warm \`CredentialsService.get\`
(cache hits) of one credential at concurrency ${concurrency}, through the real module stack on ${kind === 'postgres' ? 'PostgreSQL (local server, same machine)' : 'SQLite'}, with the real
AuditModule or with a no-op audit in its place (baseline). Every measurement runs in a fresh Node process (its own
vault, database and module stack); ${rounds} rounds interleave the modes, each round's overhead is taken against that
round's baseline, and the table gives the median (and the range) over the rounds. "CPU µs per read" is the
benchmark process's user+system time over the measured reads and the final flush of their rows (the database
server's own CPU is not in it on PostgreSQL).

Machine: ${machineLine()}.

| mode | reads | reads/s (median) | CPU µs per read (median) | p50 ms | p99 ms | overhead vs baseline: median (min … max) |
|---|---|---|---|---|---|---|
${rows.join('\n')}

Target: ≤ 10% on the warm read path. By default the first read of a key (tenant, actor, correlation id,
credential, version) is written at once and its repeats within 1 s are folded into one hash-chained row with
\`details.reads\`; over HTTP every request has its own correlation id, so every request gets its own row (see
"HTTP read path"). With one row per read the cost is the audit log's hash-chained inserts (each read waits for
buffer space when the writer falls behind: back-pressure, never a drop).`,
    );
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
