/**
 * Where the host's time goes on one route: starts the local vault and the host (each in its own
 * process, the host profiled by its inspector during the measured load only), loads the route with autocannon from a third process, stops
 * the host and summarises the profile by self time — per function and per area (Nest core, pino,
 * TypeORM, the drivers, audit, our code...). Not a figure: the proportions decide what to fix.
 *
 * `--route bare` profiles the bare Fastify route of http-read.bench the same way: the baseline's µs/request
 * under the same conditions.
 *
 *   npm run build && node dist/bench/profile-host.js [--route value|metadata|live|bare] [--seconds 10]
 *     [--connections 32] [--database sqlite|postgres] [--top 30] [--audit real|noop] [--profile false|alloc] [--out DIR]
 *
 * `--profile alloc` samples allocations instead of CPU time (also of objects the GC has collected since):
 * bytes allocated per request by function and area, for when the garbage collector's share is what to cut.
 */
import 'reflect-metadata';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { generateApiKey } from '../apps/api/src/auth/api-keys';
import { autocannon } from './support/autocannon';
import { BENCH_POSTGRES_URL, dropSchema, freshSchema } from './support/postgres';
import { ServerProcess } from './support/server-process';
import { VaultProcess } from './support/vault-process';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount: number;
  children?: number[];
}

/** The area a frame belongs to, from its script URL. */
export function areaOf(url: string, fn: string): string {
  if (!url) return fn.startsWith('(') ? fn : '(native)';
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (m) return m[1];
  if (url.startsWith('node:')) return url.replace(/^node:(internal\/)?/, 'node:').split('/').slice(0, 2).join('/');
  const ours = /(apps\/[^/]+\/src\/[^/]+|libs\/[^/]+\/src\/[^/]+|bench\/[^/]+)/.exec(url);
  return ours ? ours[1] : url;
}

interface HeapNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  id: number;
  children: HeapNode[];
}

/** Bytes allocated per request of a sampling heap profile, by area and by allocating function, largest first. */
export function summariseAllocations(
  path: string,
  requests: number,
  top: number,
): { bytesPerRequest: number; byArea: Array<[string, number]>; byFunction: Array<[string, number]> } {
  const p = JSON.parse(readFileSync(path, 'utf8')) as { head: HeapNode; samples: Array<{ size: number; nodeId: number }> };
  const nodes = new Map<number, HeapNode>();
  const walk = (n: HeapNode) => {
    nodes.set(n.id, n);
    n.children.forEach(walk);
  };
  walk(p.head);
  const area = new Map<string, number>();
  const fn = new Map<string, number>();
  let total = 0;
  for (const { size, nodeId } of p.samples) {
    const n = nodes.get(nodeId);
    if (!n) continue;
    total += size;
    const a = areaOf(n.callFrame.url, n.callFrame.functionName);
    area.set(a, (area.get(a) ?? 0) + size);
    const f = `${n.callFrame.functionName || '(anonymous)'} ${n.callFrame.url.split('/').slice(-2).join('/')}:${n.callFrame.lineNumber + 1}`;
    fn.set(f, (fn.get(f) ?? 0) + size);
  }
  const perRequest = (m: Map<string, number>) =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([k, v]) => [k, Math.round(v / requests)] as [string, number]);
  return { bytesPerRequest: Math.round(total / requests), byArea: perRequest(area), byFunction: perRequest(fn) };
}

/** Self-time shares of one profile: by function and by area, largest first. */
export function summariseProfile(path: string, top: number): { totalMs: number; byArea: Array<[string, number]>; byFunction: Array<[string, number]> } {
  const p = JSON.parse(readFileSync(path, 'utf8')) as { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[] };
  const selfUs = new Map<number, number>();
  p.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (p.timeDeltas[i] ?? 0)));
  const total = [...selfUs.values()].reduce((a, b) => a + b, 0);
  const area = new Map<string, number>();
  const fn = new Map<string, number>();
  for (const n of p.nodes) {
    const us = selfUs.get(n.id) ?? 0;
    if (!us) continue;
    const a = areaOf(n.callFrame.url, n.callFrame.functionName);
    area.set(a, (area.get(a) ?? 0) + us);
    const file = n.callFrame.url.split('/').slice(-2).join('/');
    const f = `${n.callFrame.functionName || '(anonymous)'} ${file}:${n.callFrame.lineNumber + 1}`;
    fn.set(f, (fn.get(f) ?? 0) + us);
  }
  const share = (m: Map<string, number>) =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([k, v]) => [k, Math.round((v / total) * 1000) / 10] as [string, number]);
  return { totalMs: Math.round(total / 1000), byArea: share(area), byFunction: share(fn) };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      route: { type: 'string', default: 'value' },
      seconds: { type: 'string', default: '10' },
      connections: { type: 'string', default: '32' },
      database: { type: 'string', default: 'sqlite' },
      audit: { type: 'string', default: 'real' },
      top: { type: 'string', default: '30' },
      profile: { type: 'string', default: 'true' },
      // Outside the repository: profiles are large and not for committing.
      out: { type: 'string', default: join(tmpdir(), 'cv-profiles') },
    },
  });
  const route = values.route as 'value' | 'metadata' | 'live' | 'bare';
  const outDir = join(values.out!, `${route}-${Date.now()}`);
  mkdirSync(outDir, { recursive: true });
  const vault = await VaultProcess.start({ dataDir: join(outDir, 'vault'), throttle: { limit: 1_000_000, windowMs: 1000 } });
  const caCertPath = join(outDir, 'ca.pem');
  writeFileSync(caCertPath, vault.caCertPem);
  const key = generateApiKey('bench', 'bench', ['admin']);
  const schema = values.database === 'postgres' ? await freshSchema(`bench_profile_${process.pid}`) : null;
  try {
    const host = await ServerProcess.start(
      {
        kind: route === 'bare' ? 'bare-fastify' : values.audit === 'noop' ? 'host-noop-audit' : 'host',
        vaultUrl: vault.vaultUrl,
        caCertPath,
        apiKeyEntry: JSON.stringify(key.entry),
        apiKey: key.key,
        database: schema ? { type: 'postgres', url: BENCH_POSTGRES_URL, schema } : { type: 'sqlite' },
      },
    );
    const load = { url: host.url(route), headers: host.ready.headers, connections: Number(values.connections) };
    await autocannon({ ...load, durationS: 2 }); // warm-up: JIT, cache, connections
    const profile = values.profile !== 'false';
    const alloc = values.profile === 'alloc';
    if (profile) await host.profileStart(alloc ? 'alloc' : 'cpu');
    const cpu0 = await host.cpuUs();
    const r = await autocannon({ ...load, durationS: Number(values.seconds) });
    const cpuUsPerRequest = Math.round((await host.cpuUs()) - cpu0) / r.ops;
    if (!profile) {
      await host.stop();
      process.stdout.write(`${JSON.stringify({ route, database: values.database, audit: values.audit, ...r, cpuUsPerRequest: Math.round(cpuUsPerRequest) })}\n`);
      return;
    }
    const file = join(outDir, alloc ? 'host.heapprofile' : 'host.cpuprofile');
    await host.profileStop(file);
    await host.stop();
    if (alloc) {
      const a = summariseAllocations(file, r.ops, Number(values.top));
      const head = { route, database: values.database, audit: values.audit, ...r, cpuUsPerRequest: Math.round(cpuUsPerRequest) };
      process.stdout.write(`${JSON.stringify({ ...head, profile: file, bytesPerRequest: a.bytesPerRequest })}\n`);
      process.stdout.write(`\nbytes allocated per request by area:\n`);
      for (const [k, v] of a.byArea) process.stdout.write(`  ${String(v).padStart(7)}  ${k}\n`);
      process.stdout.write(`\nbytes allocated per request by function:\n`);
      for (const [k, v] of a.byFunction) process.stdout.write(`  ${String(v).padStart(7)}  ${k}\n`);
      return;
    }
    const s = summariseProfile(file, Number(values.top));
    process.stdout.write(`${JSON.stringify({ route, database: values.database, audit: values.audit, ...r, cpuUsPerRequest: Math.round(cpuUsPerRequest), profile: file, totalMs: s.totalMs })}\n`);
    process.stdout.write(`\nself time by area (% of all samples, idle included):\n`);
    for (const [k, v] of s.byArea) process.stdout.write(`  ${String(v).padStart(5)}%  ${k}\n`);
    process.stdout.write(`\nself time by function:\n`);
    for (const [k, v] of s.byFunction) process.stdout.write(`  ${String(v).padStart(5)}%  ${k}\n`);
  } finally {
    await vault.stop();
    if (schema) await dropSchema(schema);
  }
}

if (require.main === module) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
