/**
 * Audit overhead on the warm read path: `CredentialsService.get` (cache hit) with the real AuditModule
 * vs the same stack with a no-op audit, in one run. Two audited variants: the default (identical reads
 * of one actor+credential within `readAudit.coalesceWindowMs` folded into one row with a count), and
 * one hash-chained row per read (`coalesceWindowMs: 0`). Target: overhead ≤ 10%.
 * Prints one JSON line per figure and writes "## Audit overhead" in docs/BENCHMARKS.md.
 *
 *   npm run bench:audit -- [--ops 50000] [--concurrency 16] [--rounds 3] [--no-write]
 */
import 'reflect-metadata';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Logger, Module } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { AuditService } from '@app/audit';
import type { OperationContext } from '@app/common';
import { CredentialsService, CredentialType, ReadAuditCoalescer } from '@app/credentials';
import { KeyVaultEmulator } from '@app/keyvault-emulator';
import { credentialsStackImports } from '@app/testing';
import { LoadResult, machineLine, runLoad, today, writeBenchmarkSection } from './support/measure';

type Mode = 'no audit (baseline)' | 'audited, folded reads (default)' | 'audited, one row per read';

/** Stands in for AuditService in the baseline only: accepts everything, writes nothing. */
const noopAudit = {
  healthy: true,
  bufferDepth: 0,
  stats: { healthy: true, bufferDepth: 0 },
  record: async () => ({}),
  recordRead: async () => undefined,
  flush: async () => undefined,
};

const noopFolding = { record: () => Promise.resolve(), flush: async () => undefined, pendingEvents: 0 };

async function measureMode(mode: Mode, vault: KeyVaultEmulator, dir: string, ops: number, concurrency: number): Promise<LoadResult> {
  const db = join(dir, `${mode.replace(/\W+/g, '-')}-${Date.now()}.sqlite`);
  @Module({
    imports: credentialsStackImports({
      database: { type: 'better-sqlite3', database: db, enableWAL: true },
      vault,
      credentials: { readAudit: { coalesceWindowMs: mode === 'audited, one row per read' ? 0 : 1000 } },
    }),
  })
  class BenchModule {}

  let builder = Test.createTestingModule({ imports: [BenchModule] });
  if (mode === 'no audit (baseline)') {
    // Both the audit log and the credentials lib's read folding go: the baseline does no audit work at all.
    builder = builder.overrideProvider(AuditService).useValue(noopAudit).overrideProvider(ReadAuditCoalescer).useValue(noopFolding);
  }
  const app = await builder.compile();
  await app.init();
  try {
    const service = app.get(CredentialsService);
    const ctx: OperationContext = { tenantId: 'bench', actor: { id: 'bench' } };
    const { id } = await service.store(ctx, { integrationId: 'bench', connectionId: 'hot', type: CredentialType.API_KEY, value: `sk_${'v'.repeat(61)}` });
    await runLoad(5000, concurrency, () => service.get(ctx, id));
    const result = await runLoad(ops, concurrency, () => service.get(ctx, id));
    await app.get(AuditService).flush();
    return result;
  } finally {
    await app.close();
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      ops: { type: 'string', default: '50000' },
      concurrency: { type: 'string', default: '16' },
      rounds: { type: 'string', default: '3' },
      'no-write': { type: 'boolean' },
    },
  });
  const ops = Number(values.ops);
  const concurrency = Number(values.concurrency);
  const rounds = Number(values.rounds);
  Logger.overrideLogger(['error']);
  const dir = mkdtempSync(join(tmpdir(), 'cv-bench-audit-'));
  const vault = await KeyVaultEmulator.start({ dataDir: join(dir, 'vault'), throttle: false, quiet: true });
  const modes: Mode[] = ['no audit (baseline)', 'audited, folded reads (default)', 'audited, one row per read'];
  // Interleave the modes round by round and keep each one's best: a noisy neighbour hurts every mode alike.
  const best = new Map<Mode, LoadResult>();
  try {
    for (let r = 0; r < rounds; r++) {
      for (const mode of modes) {
        const res = await measureMode(mode, vault, dir, ops, concurrency);
        if (!best.has(mode) || res.opsPerSec > best.get(mode)!.opsPerSec) best.set(mode, res);
      }
    }
  } finally {
    await vault.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  const base = best.get('no audit (baseline)')!.opsPerSec;
  const overhead = (m: Mode) => Math.round((1 - best.get(m)!.opsPerSec / base) * 1000) / 10;
  for (const m of modes) process.stdout.write(`${JSON.stringify({ bench: 'audit-overhead', mode: m, overheadPct: overhead(m), ...best.get(m) })}\n`);
  if (!values['no-write']) {
    const rows = modes.map((m) => {
      const r = best.get(m)!;
      return `| ${m} | ${r.ops} | ${r.opsPerSec} | ${r.p50Ms} | ${r.p99Ms} | ${m === modes[0] ? '—' : `${overhead(m)}%`} |`;
    });
    writeBenchmarkSection(
      'Audit overhead',
      `Measured ${today()} with \`npm run bench:audit\` (bench/audit-overhead.bench.ts): warm \`CredentialsService.get\`
(cache hits) of one credential at concurrency ${concurrency}, through the real module stack on SQLite, with the real
AuditModule or with a no-op audit in its place (baseline). Best of ${rounds} interleaved rounds per mode.

Machine: ${machineLine()}.

| mode | reads | reads/s | p50 ms | p99 ms | overhead vs baseline |
|---|---|---|---|---|---|
${rows.join('\n')}

Target: ≤ 10% on the warm read path. The default folds identical successful reads (same tenant, actor,
correlation id, credential and version) within 1 s into one hash-chained row with \`details.reads\`; over HTTP
every request has its own correlation id, so every request still gets its own row. With one row per read the
cost is the audit log's hash-chained SQLite inserts (each read waits for buffer space when the writer falls behind:
back-pressure, never a drop).`,
    );
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
