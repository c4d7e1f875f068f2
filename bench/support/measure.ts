import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

/** Shared by every benchmark: concurrent load with latency percentiles, the machine line, the report file. */

export interface LoadResult {
  ops: number;
  concurrency: number;
  errors: number;
  opsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[idx];
}

export const round = (n: number, d = 2): number => Math.round(n * 10 ** d) / 10 ** d;

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** The run with the median throughput of several (the upper middle one of an even count). */
export function medianRun<T extends { opsPerSec: number }>(runs: T[]): T {
  return [...runs].sort((a, b) => a.opsPerSec - b.opsPerSec)[Math.floor(runs.length / 2)];
}

/** A ratio as a percentage with one decimal (0.1234 → 12.3). */
export const percent = (ratio: number): number => Math.round(ratio * 1000) / 10;

/** One load run before summarising: every latency, ascending, and the wall time. */
export interface RawLoad {
  ops: number;
  concurrency: number;
  errors: number;
  wallS: number;
  /** Per-call latencies in ms, sorted ascending. */
  latencies: number[];
}

/** Runs `ops` calls of `fn` with `concurrency` workers; an error counts, it does not stop the run. */
export async function runLoadRaw(ops: number, concurrency: number, fn: (i: number) => Promise<unknown>): Promise<RawLoad> {
  const latencies: number[] = [];
  let errors = 0;
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let i = next++; i < ops; i = next++) {
        const t0 = performance.now();
        try {
          await fn(i);
        } catch {
          errors++;
        }
        latencies.push(performance.now() - t0);
      }
    }),
  );
  const wallS = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return { ops, concurrency, errors, wallS, latencies };
}

/** Decimals kept in the latency figures (each bench keeps the precision its report has always had). */
export interface LatencyDigits {
  /** p50 / p99. @default 3 */
  percentiles?: number;
  /** max. @default percentiles */
  max?: number;
}

/** p50 / p99 / max of ascending latencies, rounded. */
export function latencyFigures(sorted: number[], digits: LatencyDigits = {}): Pick<LoadResult, 'p50Ms' | 'p99Ms' | 'maxMs'> {
  const p = digits.percentiles ?? 3;
  return {
    p50Ms: round(percentile(sorted, 50), p),
    p99Ms: round(percentile(sorted, 99), p),
    maxMs: round(sorted[sorted.length - 1] ?? NaN, digits.max ?? p),
  };
}

/** `runLoadRaw` summarised: throughput and latency percentiles. */
export async function runLoad(ops: number, concurrency: number, fn: (i: number) => Promise<unknown>, digits?: LatencyDigits): Promise<LoadResult> {
  const { errors, wallS, latencies } = await runLoadRaw(ops, concurrency, fn);
  return { ops, concurrency, errors, opsPerSec: round(ops / wallS, 0), ...latencyFigures(latencies, digits) };
}

export function machineLine(): string {
  const cpu = cpus()[0]?.model?.trim() ?? 'unknown CPU';
  return `${availableParallelism()} vCPU (${cpu}), Node ${process.version}, ${process.platform}/${process.arch}`;
}

export const today = (): string => new Date().toISOString().slice(0, 10);

/** Replaces (or appends) the `## <title>` section of docs/BENCHMARKS.md. */
export function writeBenchmarkSection(title: string, body: string): string {
  const docPath = join(__dirname, '..', '..', '..', 'docs', 'BENCHMARKS.md');
  const header = `## ${title}`;
  const section = `${header}\n\n${body.trim()}\n`;
  let doc = existsSync(docPath) ? readFileSync(docPath, 'utf8') : '# Benchmarks\n\nResults of the benchmarks under `bench/`. Each section is written by its benchmark.\n\n';
  const start = doc.indexOf(`${header}\n`);
  if (start >= 0) {
    const after = doc.indexOf('\n## ', start + header.length);
    // Keep the blank line before the next section.
    doc = doc.slice(0, start) + section + (after >= 0 ? `\n${doc.slice(after + 1)}` : '');
  } else {
    doc = doc.replace(/\n*$/, '\n\n') + section;
  }
  writeFileSync(docPath, doc);
  return docPath;
}
