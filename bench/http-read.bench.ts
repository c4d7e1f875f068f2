/**
 * The host's HTTP read path against the framework's own limit, measured side by side in one run:
 * a bare Fastify route answering a JSON object of the same size vs the reference host's warm
 * `GET /v1/credentials/:id/value` (API-key auth, rate limit, request log at info, tenant check,
 * cache, one hash-chained audit row per request), `GET /v1/credentials/:id` and `GET /health/live`;
 * and the audit overhead: the same host with a no-op audit, on SQLite and on PostgreSQL.
 *
 * Every server runs in a process of its own, the local vault in another, and the load comes from
 * autocannon in yet another (bench/support/autocannon.ts). Rounds interleave the targets; ratios are
 * medians of the per-round ratios. The audit overhead comes from alternating pairs of short bursts (host, no-op
 * host; no-op host, host; …) after the rounds: in a round ~15 s separate a host from its no-op twin, and this VM
 * drifts by tens of points over that. The load generator's own ceiling (pipelined, against the bare
 * route) and its CPU use are reported, so a reader can tell which side saturated.
 * Prints one JSON line per figure and writes "## HTTP read path" in docs/BENCHMARKS.md.
 *
 * `--credentials N` (default 1): each host (and no-op twin) gets N credentials in the bench's tenant — its own and
 * N − 1 stored through its API (bench/support/spread-reads) — and the value and metadata reads go round-robin over
 * them: reads spread over many credentials, whose audit rows' catch-up into the query indexes one credential hides.
 * For N > 1 every figure and row name says "N credentials" (e.g. "(sqlite, 1000 credentials)") and the section is
 * "## HTTP read path (N credentials)", so such a run never replaces the one-credential rows.
 *
 *   npm run bench -- http-read [--seconds 5] [--connections 32] [--rounds 3] [--pairs 16] [--pair-seconds 2]
 *     [--databases sqlite,postgres] [--credentials 1] [--no-write]
 */
import 'reflect-metadata';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { generateApiKey } from '../apps/api/src/auth/api-keys';
import { autocannon, CannonResult } from './support/autocannon';
import { emitFigure, figure, Figure, withCredentials } from './support/figures';
import { machineLine, median, medianRun, percent, percentile, today, writeBenchmarkSection } from './support/measure';
import { BENCH_POSTGRES_URL, dropSchema, freshSchema } from './support/postgres';
import { scratchDir, ServerKind, ServerProcess } from './support/server-process';
import { parseCredentials, spreadOver } from './support/spread-reads';
import { VaultProcess } from './support/vault-process';

const BENCH = 'http-read';

/** One measured load: a server, a path of it, and what the row is called. */
interface Target {
  name: string;
  server: ServerProcess;
  path: 'value' | 'metadata' | 'live' | 'bare';
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string', default: '5' },
      connections: { type: 'string', default: '32' },
      rounds: { type: 'string', default: '3' },
      pairs: { type: 'string', default: '16' },
      'pair-seconds': { type: 'string', default: '2' },
      databases: { type: 'string', default: 'sqlite,postgres' },
      credentials: { type: 'string', default: '1' },
      'no-write': { type: 'boolean' },
    },
  });
  const durationS = Number(values.seconds);
  const connections = Number(values.connections);
  const rounds = Number(values.rounds);
  const pairs = Number(values.pairs);
  const pairSeconds = Number(values['pair-seconds']);
  if (!(pairs >= 1) || !(pairSeconds > 0)) throw new Error('--pairs takes a count ≥ 1, --pair-seconds a duration > 0');
  const databases = values.databases!.split(',').filter(Boolean) as Array<'sqlite' | 'postgres'>;
  if (databases.some((d) => d !== 'sqlite' && d !== 'postgres')) throw new Error('--databases takes sqlite and/or postgres');
  const credentials = parseCredentials(values.credentials);
  // Every figure, row and section name of a spread run says its count; unchanged for one credential.
  const named = (name: string) => withCredentials(name, credentials);
  const valueRead = (db: string) => named(`value read (${db})`);
  const noopRead = (db: string) => named(`value read, no-op audit (${db})`);
  const metadataRead = named(`metadata read (${databases[0]})`);
  const live = named('/health/live');

  const scratch = scratchDir('cv-bench-http-');
  const vault = await VaultProcess.start({ dataDir: join(scratch.dir, 'vault'), throttle: { limit: 1_000_000, windowMs: 1000 } });
  const caCertPath = join(scratch.dir, 'ca.pem');
  writeFileSync(caCertPath, vault.caCertPem);
  const key = generateApiKey('bench', 'bench', ['admin']);
  const servers: ServerProcess[] = [];
  const schemas: string[] = [];
  // Per host, the value and metadata paths over its credentials (`--credentials` > 1).
  const spreadPaths = new Map<ServerProcess, Map<'value' | 'metadata', string[]>>();
  const start = async (kind: ServerKind, db: 'sqlite' | 'postgres' = 'sqlite') => {
    const schema = db === 'postgres' ? await freshSchema(`bench_http_${kind.replace(/\W/g, '_')}_${process.pid}`) : undefined;
    if (schema) schemas.push(schema);
    const s = await ServerProcess.start({
      kind,
      vaultUrl: vault.vaultUrl,
      caCertPath,
      apiKeyEntry: JSON.stringify(key.entry),
      apiKey: key.key,
      database: schema ? { type: 'postgres', url: BENCH_POSTGRES_URL, schema } : { type: 'sqlite' },
    });
    servers.push(s);
    return s;
  };

  try {
    const bare = await start('bare-fastify');
    const hosts = new Map<string, { host: ServerProcess; noop: ServerProcess }>();
    for (const db of databases) hosts.set(db, { host: await start('host', db), noop: await start('host-noop-audit', db) });
    // `--credentials`: every host seeded at once (each 16 stores in flight), before any load.
    await Promise.all(
      [...hosts.values()].flatMap((h) => [h.host, h.noop]).map(async (s) => {
        const spread = await spreadOver(s.ready, ['value', 'metadata'], credentials);
        if (spread) spreadPaths.set(s, spread);
      }),
    );
    const main = hosts.get(databases[0])!;
    const targets: Target[] = [
      { name: 'bare Fastify route', server: bare, path: 'bare' },
      { name: valueRead(databases[0]), server: main.host, path: 'value' },
      { name: metadataRead, server: main.host, path: 'metadata' },
      { name: live, server: main.host, path: 'live' },
      ...[...hosts].flatMap(([db, h]) => [
        ...(db === databases[0] ? [] : [{ name: valueRead(db), server: h.host, path: 'value' as const }]),
        { name: noopRead(db), server: h.noop, path: 'value' as const },
      ]),
    ];
    // Value reads answered 2xx per server: each must have its own audit row (checked after the rounds).
    const valueReadsServed = new Map<ServerProcess, number>();
    const load = async (t: Target, seconds = durationS, pipelining = 1) => {
      const paths = t.path === 'value' || t.path === 'metadata' ? spreadPaths.get(t.server)?.get(t.path) : undefined;
      const res = await autocannon({ url: t.server.url(t.path), paths, headers: t.server.ready.headers, connections, durationS: seconds, pipelining });
      if (t.path === 'value') valueReadsServed.set(t.server, (valueReadsServed.get(t.server) ?? 0) + res.ops - res.non2xx);
      return res;
    };

    // Warm-up: JIT, connection pools, the host's cache (one vault call per host), the audit chains.
    for (const t of targets) await load(t, 2);
    // The load generator's own ceiling: pipelined requests to the cheapest route there is.
    const ceiling = await load(targets[0], durationS, 10);

    const results = new Map<string, CannonResult[]>();
    const cpu = new Map<string, number[]>();
    for (let r = 0; r < rounds; r++) {
      for (const t of targets) {
        const cpu0 = await t.server.cpuUs();
        const res = await load(t);
        const used = (await t.server.cpuUs()) - cpu0;
        results.set(t.name, [...(results.get(t.name) ?? []), res]);
        cpu.set(t.name, [...(cpu.get(t.name) ?? []), used / Math.max(1, res.ops)]);
        process.stderr.write(`round ${r + 1}/${rounds} ${t.name}: ${res.opsPerSec} req/s, p99 ${res.p99Ms} ms, client CPU ${res.clientCpuPct}%\n`);
      }
    }
    // The audit overhead: each host and its no-op twin in alternating bursts right after each other.
    const pairRatios = new Map<string, number[]>();
    for (const [db, h] of hosts) {
      const real: Target = { name: valueRead(db), server: h.host, path: 'value' };
      const noop: Target = { name: noopRead(db), server: h.noop, path: 'value' };
      const ratios: number[] = [];
      const p99 = new Map<Target, number[]>([[real, []], [noop, []]]);
      for (let p = 0; p < pairs; p++) {
        const got = new Map<Target, number>();
        for (const t of p % 2 ? [noop, real] : [real, noop]) {
          const res = await load(t, pairSeconds);
          got.set(t, res.opsPerSec);
          p99.get(t)!.push(res.p99Ms);
        }
        ratios.push(got.get(real)! / got.get(noop)!);
      }
      process.stderr.write(`pairs ${named(`(${db})`)}: value read / no-op ${ratios.map((r) => r.toFixed(3)).join(' ')}; p99 ms ${p99.get(real)!.join(' ')} / ${p99.get(noop)!.join(' ')}\n`);
      pairRatios.set(db, ratios);
    }
    // Not a figure, a precondition of every figure: a value read served without its audit row would be a
    // security defect measured as speed. (Requests cut off at a run's end may be audited too: at least, not equal.)
    for (const [db, h] of hosts) {
      const audited = await h.host.auditedReads();
      const served = valueReadsServed.get(h.host) ?? 0;
      process.stderr.write(`audit rows of value reads (${db}): ${audited} for ${served} value reads served\n`);
      if (audited === null || audited < served) throw new Error(`the ${db} host served ${served} value reads but wrote ${audited} audit rows for them`);
    }
    const mid = (name: string) => medianRun(results.get(name)!);
    const roundRatios = (a: string, b: string) => results.get(a)!.map((x, i) => x.opsPerSec / results.get(b)![i].opsPerSec);
    const pairedRatio = (a: string, b: string) => median(roundRatios(a, b));
    // How far the rounds spread: on a shared VM one run's figure can be far from the next run's.
    const spread = (xs: number[], digits: number) => `${Math.min(...xs).toFixed(digits)}–${Math.max(...xs).toFixed(digits)}`;
    /** What follows a figure's value in the section: its rounds' spread, or the overhead's pairs. */
    const noteOf = new Map<string, string>();
    const cpuUs = (name: string) => Math.round(median(cpu.get(name)!));
    const bareName = targets[0].name;
    const ratioFigure = (name: string, label: string, limit: number) => {
      const f = figure(BENCH, label, mid(name).opsPerSec, mid(bareName).opsPerSec, { on: 'ratio', op: '>=', limit });
      noteOf.set(label, `rounds ${spread(roundRatios(name, bareName), 3)}`);
      // The ratio is the median of the per-round ratios (interleaved), not the ratio of the medians.
      return { ...f, ratio: Math.round(pairedRatio(name, bareName) * 1000) / 1000, met: pairedRatio(name, bareName) >= limit };
    };
    const figures: Figure[] = [
      ratioFigure(valueRead(databases[0]), named(`warm value read req/s vs bare Fastify (${databases[0]})`), 0.3),
      figure(BENCH, named(`warm value read p99 ms at ${connections} connections (${databases[0]})`), mid(valueRead(databases[0])).p99Ms, null, { on: 'value', op: '<=', limit: 10, unit: 'ms' }),
      ratioFigure(metadataRead, named(`metadata read req/s vs bare Fastify (${databases[0]})`), 0.3),
      ratioFigure(live, named('/health/live req/s vs bare Fastify'), 0.6),
      ...databases.map((db) => {
        const perPair = pairRatios.get(db)!.map((r) => (1 - r) * 100).sort((a, b) => a - b);
        const perRound = roundRatios(valueRead(db), noopRead(db)).map((r) => (1 - r) * 100);
        const overhead = percent(1 - median(pairRatios.get(db)!));
        const f = figure(BENCH, named(`audit overhead on the HTTP value read, % of throughput (${db})`), overhead, null, { on: 'value', op: '<=', limit: 10, unit: '%' });
        const q = (p: number) => percentile(perPair, p).toFixed(1);
        noteOf.set(f.figure, `${pairs} pairs: ${spread(perPair, 1)}%, middle half ${q(25)} to ${q(75)}%; the rounds' median ${percent(1 - pairedRatio(valueRead(db), noopRead(db)))}% (${spread(perRound, 1)}%)`);
        return { ...f, baseline: mid(noopRead(db)).opsPerSec };
      }),
    ];
    for (const f of figures) emitFigure(f);
    const totalErrors = [...results.values()].flat().reduce((n, x) => n + x.errors, 0);
    process.stderr.write(`load generator ceiling: ${ceiling.opsPerSec} req/s (pipelined x10, client CPU ${ceiling.clientCpuPct}%); errors: ${totalErrors}\n`);

    if (!values['no-write']) {
      const row = (t: Target) => {
        const m = mid(t.name);
        const ratio = t.name === bareName ? '1' : String(Math.round(pairedRatio(t.name, bareName) * 1000) / 1000);
        const rounds = t.name === bareName ? '—' : spread(roundRatios(t.name, bareName), 3);
        return `| ${t.name} | ${m.opsPerSec} | ${ratio} | ${rounds} | ${m.p50Ms} | ${m.p99Ms} | ${cpuUs(t.name)} | ${m.clientCpuPct}% | ${m.errors} |`;
      };
      const spreadText =
        credentials === 1
          ? `The reads name one credential; \`--credentials N\` stores N in the bench's tenant (through \`POST /v1/credentials\`)
and spreads the value and metadata reads over them round-robin, written as a section and figures of their own ("N credentials").`
          : `The value and metadata reads go round-robin over ${credentials} credentials of the bench's tenant in each host (its
own and ${credentials - 1} stored through \`POST /v1/credentials\`; one cursor for all connections).`;
      writeBenchmarkSection(
        named('HTTP read path'),
        `Measured ${today()} with \`npm run bench -- http-read${credentials === 1 ? '' : ` --credentials ${credentials}`}\` (bench/http-read.bench.ts). Machine: ${machineLine()}.

Method: every server is its own Node process — a bare Fastify route answering a JSON object of the value read's
size, the reference host (metadata and audit log on ${databases.join(' and on ')}), and the same host with a no-op
audit — the local vault is another process (HTTPS, throttling off), and autocannon runs in yet another, ${connections}
connections, ${durationS} s per run. The host's value route does API-key authentication, rate limiting (counting
every request), the request log at \`info\` (written to /dev/null), the tenant check, the in-process cache and one
hash-chained audit row per request (each request has its own correlation id, nothing folds), committed before the value
is sent (group commit: the reads of one event-loop turn share a transaction). ${spreadText} Each target is warmed
for 2 s; then ${rounds} rounds interleave the targets. Rows are the median round; ratios are medians of the
per-round ratios against the bare route of the same round, and each round's ratio is given as a range. The audit
overhead is 1 − the median ratio of ${pairs} alternating pairs of ${pairSeconds} s bursts run after the rounds (host then
no-op host, no-op host then host, …): within a round the two are several runs of ${durationS} s apart, and this VM's speed
drifts by tens of points over that; the rounds' own median is given beside it. "Server CPU" is the serving process's user+system time
per request (PostgreSQL's own CPU is not in it). Load generator ceiling on this machine: **${ceiling.opsPerSec}
req/s** (pipelined ×10 against the bare route, client CPU ${ceiling.clientCpuPct}% of one core); a client CPU
near 100% in a row means the client, not the server, set that row's pace. All processes share the machine's
cores, and other work may have run on it at the same time.

| target | req/s | ratio to bare | rounds' ratios | p50 ms | p99 ms | server CPU µs/request | client CPU | errors |
|---|---|---|---|---|---|---|---|---|
${targets.map(row).join('\n')}

${figures.map((f) => `- ${f.figure}: **${f.ratio ?? f.value}** (target ${f.target}: ${f.met ? 'met' : 'not met'}${noteOf.has(f.figure) ? `; ${noteOf.get(f.figure)}` : ''})`).join('\n')}`,
      );
    }
  } finally {
    await Promise.allSettled(servers.map((s) => s.stop()));
    await vault.stop();
    for (const schema of schemas) await dropSchema(schema);
    scratch.remove();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
