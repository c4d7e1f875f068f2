import { execFile } from 'node:child_process';
import { LoadResult } from './measure';
import { roundRobin } from './spread-reads';

/** One timed autocannon run against `url` (GET), in its own process. */
export interface CannonLoad {
  url: string;
  /**
   * GET paths on `url`'s origin to request in turn instead of `url`'s own (`--credentials N`): one cursor shared
   * by every connection, so the requests in flight name different paths; the cost per request does not grow with
   * the count. Not with `pipelining` > 1. Absent (or one path): `url` alone.
   */
  paths?: readonly string[];
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
    // The load goes over stdin: thousands of paths would pass an argument's size limit (128 KiB on Linux).
    const child = execFile(process.execPath, [__filename], { maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`autocannon failed: ${err.message}\n${stderr}`));
      resolve(JSON.parse(stdout.trim().split('\n').pop()!) as CannonResult);
    });
    child.stdin!.end(JSON.stringify(load));
  });
}

/**
 * autocannon's `requests` for `paths`: one request whose path each build takes from a shared round-robin cursor
 * (autocannon builds every listed request for every connection up front, which would grow with the count).
 */
export function spreadRequests(paths: readonly string[]): Array<{ method: 'GET'; setupRequest: (r: { path: string }) => { path: string } }> {
  const next = roundRobin(paths);
  return [
    {
      method: 'GET',
      setupRequest: (r) => {
        r.path = next();
        return r;
      },
    },
  ];
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
  const spread = load.paths && load.paths.length > 1 ? { requests: spreadRequests(load.paths) } : {};
  const r = await run({ url: load.url, headers: load.headers, connections: load.connections, duration: load.durationS, pipelining: load.pipelining ?? 1, ...spread });
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

async function stdinText(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

if (require.main === module) {
  stdinText()
    .then((text) => child(JSON.parse(text) as CannonLoad))
    .catch((e) => {
      console.error(e);
      process.exit(1);
    });
}
