import { execFile } from 'node:child_process';
import { LoadResult } from './measure';

/** One timed autocannon run against `url` (GET), in its own process. */
export interface CannonLoad {
  url: string;
  headers?: Record<string, string>;
  connections: number;
  durationS: number;
  /** Requests in flight per connection. @default 1 */
  pipelining?: number;
}

export interface CannonResult extends LoadResult {
  non2xx: number;
  /** The load generator's own CPU use over the run, in % of one core (near 100: the client saturated). */
  clientCpuPct: number;
}

/**
 * Runs autocannon in a separate Node process (its CPU is not the server's) and returns req/s (mean
 * over the run), latency percentiles and the generator's own CPU use. Non-2xx answers count as
 * errors: a refused request is not throughput.
 */
export function autocannon(load: CannonLoad): Promise<CannonResult> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [__filename, JSON.stringify(load)], { maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`autocannon failed: ${err.message}\n${stderr}`));
      resolve(JSON.parse(stdout.trim().split('\n').pop()!) as CannonResult);
    });
  });
}

async function child(load: CannonLoad): Promise<void> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- autocannon ships no types; loaded only in the child
  const run = require('autocannon') as (opts: object) => Promise<{
    requests: { average: number; total: number };
    latency: { p50: number; p99: number; max: number };
    errors: number;
    timeouts: number;
    non2xx: number;
  }>;
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  const r = await run({ url: load.url, headers: load.headers, connections: load.connections, duration: load.durationS, pipelining: load.pipelining ?? 1 });
  const cpu = process.cpuUsage(cpu0);
  const wallUs = Number(process.hrtime.bigint() - t0) / 1000;
  const result: CannonResult = {
    ops: r.requests.total,
    concurrency: load.connections,
    errors: r.errors + r.timeouts + r.non2xx,
    non2xx: r.non2xx,
    opsPerSec: Math.round(r.requests.average),
    p50Ms: r.latency.p50,
    p99Ms: r.latency.p99,
    maxMs: r.latency.max,
    clientCpuPct: Math.round(((cpu.user + cpu.system) / wallUs) * 100),
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

if (require.main === module) {
  child(JSON.parse(process.argv[2]) as CannonLoad).catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
