/**
 * Cross-replica cache invalidation: two app instances (one process, separate Nest apps: separate
 * caches, connections and bus subscriptions) on one PostgreSQL schema, one Redis and the local vault.
 * Replica B holds a credential in its L1; replica A rotates it; measured per rotation:
 *
 *  - `busLag`: from A publishing the eviction (right after its commit) to B dropping the entry;
 *  - `visible`: from A's rotate() returning to B's next get() answering the new value (polling B).
 *
 * For each transport (`redis` pub/sub with the L2 tier, `postgres` LISTEN/NOTIFY without Redis).
 * Target: p99 busLag < 100 ms on one machine. Prints one JSON line.
 *
 *   npm run bench:cache -- [--rotations 200]
 */
import 'reflect-metadata';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { Logger, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { INestApplicationContext } from '@nestjs/common';
import type { OperationContext } from '@app/common';
import { CredentialCache, CredentialsService, CredentialType, type CredentialsModuleOptions, TieredCredentialCache } from '@app/credentials';
import { KeyVaultEmulator } from '@app/keyvault-emulator';
import { credentialsStackImports, REDIS_URL } from '@app/testing';
import { Redis } from 'ioredis';
import { dropSchema, freshSchema, BENCH_POSTGRES_URL } from './support/postgres';
import { machineLine, percentile, round } from './support/measure';

const { values: args } = parseArgs({ options: { rotations: { type: 'string', default: '200' } } });
const ROTATIONS = Number(args.rotations);
const ctx: OperationContext = { tenantId: 'bench', actor: { id: 'bench' } };

async function instance(schema: string, emu: KeyVaultEmulator, cache: CredentialsModuleOptions['cache']): Promise<INestApplicationContext> {
  @Module({
    imports: credentialsStackImports({
      database: { type: 'postgres', url: BENCH_POSTGRES_URL, schema, extra: { options: `-c search_path=${schema}` } },
      vault: emu,
      audit: { retention: { enabled: false } },
      credentials: { cache: { ttlMs: 300_000, ...cache } },
    }),
  })
  class BenchModule {}
  return NestFactory.createApplicationContext(BenchModule, { logger: ['error', 'warn'] });
}

const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return { p50Ms: round(percentile(s, 50), 3), p99Ms: round(percentile(s, 99), 3), maxMs: round(s[s.length - 1], 3) };
};

async function measure(transport: 'redis' | 'postgres', emu: KeyVaultEmulator): Promise<Record<string, unknown>> {
  const schema = await freshSchema(`bench_cacheprop_${transport}`);
  const connections: Redis[] = [];
  const redis = () => {
    const r = new Redis(REDIS_URL);
    connections.push(r);
    return r;
  };
  const prefix = `cvbench:${randomBytes(4).toString('hex')}:`;
  // Each instance has its own connections, as separate processes would.
  const cacheFor = (): CredentialsModuleOptions['cache'] =>
    transport === 'redis' ? { store: { type: 'redis', client: redis(), subscriber: redis, keyPrefix: prefix } } : { invalidation: 'postgres' };
  const a = await instance(schema, emu, cacheFor());
  const b = await instance(schema, emu, cacheFor());
  try {
    const [svcA, svcB] = [a.get(CredentialsService), b.get(CredentialsService)];
    const cacheB = b.get(CredentialCache) as TieredCredentialCache;
    const { id } = await svcA.store(ctx, { integrationId: 'bench', connectionId: 'c1', type: CredentialType.API_KEY, value: `v0_${randomBytes(16).toString('hex')}` });
    const busLag: number[] = [];
    const visible: number[] = [];
    let stale = 0;
    // The first eviction of each rotation (the writer's, right after commit; the outbox's follows).
    let first: number | undefined;
    cacheB.onRemoteInvalidation((_m, lag) => (first ??= lag));
    for (let i = 0; i < ROTATIONS; i++) {
      await svcB.get(ctx, id); // B caches the current value
      const next = `v${i + 1}_${randomBytes(16).toString('hex')}`;
      first = undefined;
      await svcA.rotate(ctx, id, next);
      const t0 = performance.now();
      for (;;) {
        if ((await svcB.get(ctx, id)).value === next) break;
        stale++;
        // An L1 hit resolves without I/O: yield, or the eviction message can never be read.
        await new Promise((r) => setImmediate(r));
      }
      visible.push(performance.now() - t0);
      while (first === undefined) await new Promise((r) => setTimeout(r, 1));
      busLag.push(first);
    }
    await new Promise((r) => setTimeout(r, 200));
    return { transport, rotations: ROTATIONS, received: cacheB.stats().shared!.invalidation.received, busLag: stats(busLag), visibleAfterWrite: stats(visible), staleReadsAfterWrite: stale };
  } finally {
    await a.close();
    await b.close();
    for (const c of connections) c.disconnect();
    await dropSchema(schema);
  }
}

async function main(): Promise<void> {
  Logger.overrideLogger(['error', 'warn']);
  const emu = await KeyVaultEmulator.start({ quiet: true, throttle: false });
  try {
    const results = [];
    for (const t of ['redis', 'postgres'] as const) results.push(await measure(t, emu));
    const p99 = Math.max(...results.map((r) => (r.busLag as { p99Ms: number }).p99Ms));
    console.log(JSON.stringify({ bench: 'cache-propagation', machine: machineLine(), results, targetP99Ms: 100, met: p99 < 100 }));
  } finally {
    await emu.stop();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
