/**
 * Two builds of the host side by side: each checkout's own host process on one local vault, loaded in turn in
 * short bursts (A B, B A, A B…), so the machine's drift — a VM's neighbours, frequency, another job — falls on
 * both alike. Prints, per build, the server CPU µs per request and the req/s of each burst, and the median of
 * the per-pair ratios B/A. Not a figure: it tells whether a change (or a commit range) moved the host's cost,
 * where successive single runs differ by ±10–40% on this VM.
 *
 *   npm run build (in each checkout) && node dist/bench/ab-hosts.js <checkout A> <checkout B>
 *     [--route value|metadata|live] [--pairs 12] [--seconds 2] [--database sqlite|postgres] [--b-audit noop]
 *     [--b-audit-indexes chain] [--credentials 1] [--lives 1]
 *
 * A checkout is a directory with its own `dist/` (a `git worktree` or clone, built). Its host starts from its own
 * `dist/bench/support/server-main.js`, so both sides run their own code with this checkout's load generator.
 *
 * `--b-audit noop`: B is its checkout's host with a no-op audit (give one checkout twice): the audit's overhead
 * measured in pairs, where http-read's rounds of 5 s one after the other spread over tens of points on this VM.
 *
 * `--b-audit-indexes chain|no-resource|…` (bench/support/audit-index-sets): B's host, once migrated, has the audit
 * table's query indexes changed so — what a choice of query indexes would give over HTTP (BENCHMARKS, "Twelfth
 * round"). With `--b-audit noop` it applies to A's host instead (B then has no audit table to change).
 *
 * `--credentials N` (default 1): each host gets N credentials in the bench's tenant (its own and N − 1 stored
 * through its API, bench/support/spread-reads) and the route's reads (value or metadata) go round-robin over them — what
 * reads spread over many credentials cost (their audit rows' catch-up into the query indexes), where one credential
 * hides it. Per build the p99 latency of each burst is printed beside its req/s.
 *
 * `--lives K` (default 1): the pairs are split over K lifetimes of the two hosts — each life starts both hosts
 * afresh (new processes, new databases), seeds, warms up and runs its share of the pairs. Two processes of one
 * build do not run alike (JIT decisions, heap layout, where the database's pages fall), and alternating bursts
 * cancel the machine's drift but not that: one life's ratio carries it whole. The last line adds each life's
 * median ratio (`lifeRatiosBA`) beside the median over all pairs.
 */
import 'reflect-metadata';
import { mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { generateApiKey } from '../apps/api/src/auth/api-keys';
import { INDEX_SETS, isIndexSet, type IndexSet } from './support/audit-index-sets';
import { autocannon } from './support/autocannon';
import { parseCredentials, spreadOver } from './support/spread-reads';
import { BENCH_POSTGRES_URL, dropSchema, freshSchema } from './support/postgres';
import type { ServerProcess as ServerProcessType, ServerSpec } from './support/server-process';
import { VaultProcess } from './support/vault-process';

export function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

const round3 = (x: number): number => Math.round(x * 1000) / 1000;

/** B's figure over A's, pair by pair, rounded to 3 places. */
export function pairRatios(a: readonly number[], b: readonly number[]): number[] {
  return a.map((x, i) => round3(b[i] / x));
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      route: { type: 'string', default: 'value' },
      pairs: { type: 'string', default: '12' },
      seconds: { type: 'string', default: '2' },
      database: { type: 'string', default: 'sqlite' },
      'b-audit': { type: 'string', default: 'real' },
      'b-audit-indexes': { type: 'string', default: 'all' },
      credentials: { type: 'string', default: '1' },
      lives: { type: 'string', default: '1' },
    },
  });
  if (positionals.length !== 2) throw new Error('usage: ab-hosts <checkout A> <checkout B> [--route value|metadata|live] [--pairs N] [--seconds S] [--database sqlite|postgres] [--b-audit real|noop] [--b-audit-indexes all|chain|no-…] [--credentials N] [--lives K]');
  if (values['b-audit'] !== 'real' && values['b-audit'] !== 'noop') throw new Error('--b-audit is real or noop');
  const auditIndexes = values['b-audit-indexes'];
  if (!isIndexSet(auditIndexes)) throw new Error(`--b-audit-indexes takes ${INDEX_SETS.join(', ')}`);
  const credentials = parseCredentials(values.credentials);
  const changedHost = values['b-audit'] === 'noop' ? 0 : 1;
  const route = values.route as 'value' | 'metadata' | 'live';
  const seconds = Number(values.seconds);
  const checkouts = positionals.map((p) => resolve(p));
  const outDir = join(tmpdir(), `cv-ab-${Date.now()}`);
  mkdirSync(outDir, { recursive: true });
  const vault = await VaultProcess.start({ dataDir: join(outDir, 'vault'), throttle: { limit: 1_000_000, windowMs: 1000 } });
  const caCertPath = join(outDir, 'ca.pem');
  writeFileSync(caCertPath, vault.caCertPem);
  const key = generateApiKey('bench', 'bench', ['admin']);
  const lives = Number(values.lives);
  const pairs = Number(values.pairs);
  if (!Number.isInteger(lives) || lives < 1 || !Number.isInteger(pairs) || pairs < lives) throw new Error('--lives is an integer from 1 to --pairs');
  const cpu: number[][] = [[], []];
  const rps: number[][] = [[], []];
  const p99: number[][] = [[], []];
  const lifeRatios: number[] = [];
  try {
    for (let life = 0; life < lives; life++) {
      // The pairs spread evenly over the lives (the first ones take the remainder).
      const share = Math.floor(pairs / lives) + (life < pairs % lives ? 1 : 0);
      const before = rps[0].length;
      await runLife({ life, share, checkouts, vault, caCertPath, key, values, credentials, changedHost, auditIndexes, route, seconds, cpu, rps, p99 });
      lifeRatios.push(round3(median(pairRatios(rps[0].slice(before), rps[1].slice(before)))));
    }
    for (const [i, dir] of checkouts.entries()) {
      const spread = credentials > 1 ? { credentials } : {};
      process.stdout.write(`${JSON.stringify({ checkout: dir, route, database: values.database, ...spread, cpuUsPerRequest: median(cpu[i]), reqPerSec: median(rps[i]), p99Ms: median(p99[i]), cpuRuns: cpu[i], rpsRuns: rps[i], p99Runs: p99[i] })}\n`);
    }
    const cpuRatios = pairRatios(cpu[0], cpu[1]);
    const rpsRatios = pairRatios(rps[0], rps[1]);
    const perLife = lives > 1 ? { lifeRatiosBA: lifeRatios } : {};
    process.stdout.write(`${JSON.stringify({ cpuRatioBA: round3(median(cpuRatios)), reqPerSecRatioBA: round3(median(rpsRatios)), ...perLife, cpuRatios, rpsRatios })}\n`);
  } finally {
    await vault.stop();
  }
}

interface Life {
  life: number;
  share: number;
  checkouts: string[];
  vault: VaultProcess;
  caCertPath: string;
  key: ReturnType<typeof generateApiKey>;
  values: { database?: string; 'b-audit'?: string };
  credentials: number;
  changedHost: number;
  auditIndexes: IndexSet;
  route: 'value' | 'metadata' | 'live';
  seconds: number;
  cpu: number[][];
  rps: number[][];
  p99: number[][];
}

/** One lifetime of the two hosts: started afresh, seeded, warmed up, `share` alternating pairs, stopped. */
async function runLife(l: Life): Promise<void> {
  const { checkouts, values, route, seconds } = l;
  const schemas: string[] = [];
  const hosts: ServerProcessType[] = [];
  try {
    for (const [i, dir] of checkouts.entries()) {
      // eslint-disable-next-line @typescript-eslint/no-require-imports -- the other checkout's own module, chosen at run time
      const { ServerProcess } = require(join(dir, 'dist/bench/support/server-process.js')) as { ServerProcess: typeof ServerProcessType };
      const schema = values.database === 'postgres' ? await freshSchema(`bench_ab_${i}_${l.life}_${process.pid}`) : undefined;
      if (schema) schemas.push(schema);
      const spec: ServerSpec = {
        kind: i === 1 && values['b-audit'] === 'noop' ? 'host-noop-audit' : 'host',
        vaultUrl: l.vault.vaultUrl,
        caCertPath: l.caCertPath,
        apiKeyEntry: JSON.stringify(l.key.entry),
        apiKey: l.key.key,
        database: schema ? { type: 'postgres', url: BENCH_POSTGRES_URL, schema } : { type: 'sqlite' },
        ...(i === l.changedHost ? { auditIndexes: l.auditIndexes } : {}),
      };
      hosts.push(await ServerProcess.start(spec));
    }
    // Per host, the route's paths over its credentials (`--credentials`; none for one): both hosts seeded at once
    // (each 16 stores in flight), before any load.
    const paths = await Promise.all(hosts.map(async (h) => (route === 'live' ? undefined : (await spreadOver(h.ready, [route], l.credentials))?.get(route))));
    const load = (i: number, durationS: number) => autocannon({ url: hosts[i].url(route), paths: paths[i], headers: hosts[i].ready.headers, connections: 32, durationS });
    // Warm-up: JIT, cache, connections, the database (bursts after a 3 s warm-up still rose by half).
    for (const i of hosts.keys()) await load(i, 6);
    for (let p = 0; p < l.share; p++) {
      for (const i of p % 2 ? [1, 0] : [0, 1]) {
        const c0 = await hosts[i].cpuUs();
        const r = await load(i, seconds);
        l.cpu[i].push(Math.round(((await hosts[i].cpuUs()) - c0) / r.ops * 10) / 10);
        l.rps[i].push(Math.round(r.ops / seconds));
        l.p99[i].push(r.p99Ms);
      }
    }
  } finally {
    for (const h of hosts) await h.stop();
    for (const s of schemas) await dropSchema(s);
  }
}

if (require.main === module) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
