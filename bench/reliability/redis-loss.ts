import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { KeyVaultEmulator } from '@app/keyvault-emulator';
import { startReplica, type Replica } from '../../test/cluster/replicas';
import { externalVaultEnv } from '../../test/support/cli';
import { round } from '../support/measure';
import { hostDatabase, redisEnv } from './databases';
import { metricSum } from './faults';
import { apiClient, marker, QUIET_HOST_ENV, sleep, tenantKey, type ApiClient } from './http';
import { hostBuild } from './processes';
import type { Profile } from './profile';
import { bounded, Examples, info, type PartResult } from './report';

const run = promisify(execFile);

/** A Redis of the part's own on a spare port (never the shared 6379): it can be shut down and started again. */
class OwnRedis {
  private constructor(readonly port: number) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  static async start(): Promise<OwnRedis> {
    const port = await new Promise<number>((resolve, reject) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const a = s.address();
        s.close(() => (a && typeof a === 'object' ? resolve(a.port) : reject(new Error('no port'))));
      });
    });
    const r = new OwnRedis(port);
    await r.up();
    return r;
  }

  async up(): Promise<void> {
    await run('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'yes']);
    for (let i = 0; i < 100; i++) {
      if (await this.ping()) return;
      await sleep(50);
    }
    throw new Error(`redis-server on port ${this.port} did not answer`);
  }

  async down(): Promise<void> {
    await run('redis-cli', ['-p', String(this.port), 'shutdown', 'nosave']).catch(() => undefined);
    for (let i = 0; i < 100 && (await this.ping()); i++) await sleep(50);
  }

  async ping(): Promise<boolean> {
    try {
      return (await run('redis-cli', ['-p', String(this.port), 'ping'], { timeout: 2000 })).stdout.trim() === 'PONG';
    } catch {
      return false;
    }
  }
}

/** One write of a credential as its only writer saw it: `ackedAt` unset when its answer was an error (it may have landed). */
interface Written {
  value: string;
  ackedAt?: number;
}

interface Owned {
  id: string;
  writes: Written[];
}

/**
 * A read that started at `startedAt` and returned `value` is stale when the value was never written, or
 * when a later write of the credential had been acknowledged before the read began.
 */
export function staleRead(t: Owned, value: string, startedAt: number): boolean {
  const i = t.writes.findIndex((w) => w.value === value);
  return i < 0 || t.writes.slice(i + 1).some((w) => w.ackedAt !== undefined && w.ackedAt < startedAt);
}

const zero = (): PhaseCounts => ({ requests: 0, status5xx: 0, otherErrors: 0, stale: 0, dropped: 0 });

interface PhaseCounts {
  requests: number;
  status5xx: number;
  otherErrors: number;
  stale: number;
  dropped: number;
}

/**
 * Redis loss: two host processes on one PostgreSQL schema share a Redis of the part's own (cache L2,
 * eviction bus, shared state; default cache TTL, so values are cached). Writers rotate credentials on one
 * replica and read them back on both, readers read any credential meanwhile; Redis is shut down under
 * that load and started again (empty, as after a restart without persistence).
 */
export async function redisLoss(p: Profile): Promise<PartResult> {
  const started = performance.now();
  const examples = new Examples();
  const o = p.redisLoss;
  const dir = mkdtempSync(join(tmpdir(), 'cv-redisloss-'));
  const vault = await KeyVaultEmulator.start({ quiet: true, throttle: false });
  const redis = await OwnRedis.start();
  const database = await hostDatabase('postgres', dir);
  const build = await hostBuild();
  const key = tenantKey('redis-loss', 'acme');
  const replicas: Replica[] = [];
  try {
    const env = {
      NODE_ENV: 'test',
      HOST: '127.0.0.1',
      PORT: '0',
      LOG_LEVEL: 'error',
      ...database.env,
      ...redisEnv(redis.url),
      ...externalVaultEnv(vault),
      AUTH_API_KEYS: JSON.stringify([key.entry]),
      ...QUIET_HOST_ENV,
    };
    // One at a time: the first runs the schema migrations.
    for (const name of ['a', 'b']) replicas.push(await startReplica(build, `redis-loss-${name}`, env));
    const calls: ApiClient[] = replicas.map((r) => apiClient(r.url, key.key, 30_000));
    const owned: Owned[] = [];
    for (let i = 0; i < o.credentials; i++) {
      const value = marker('rl');
      const res = await calls[i % 2]('POST', '/v1/credentials', { integrationId: 'redis-loss', connectionId: `c${i}`, type: 'api_key', value, valueStore: i % 2 ? 'vault' : 'envelope' });
      if (res.status !== 201) throw new Error(`seeding: ${res.status} ${res.text}`);
      owned.push({ id: res.body.id, writes: [{ value, ackedAt: 0 }] });
    }
    const metric = async (name: string) => {
      let sum = 0;
      for (const r of replicas) sum += metricSum(await (await fetch(`${r.url}/metrics`)).text(), name);
      return sum;
    };
    const ready = async () =>
      Promise.all(
        replicas.map(async (r) => {
          const res = await fetch(`${r.url}/health/ready`);
          const body = (await res.json()) as { details?: { cache?: { status?: string; redis?: string; invalidationConnected?: boolean; invalidationHeard?: boolean } } };
          return { status: res.status, cache: body.details?.cache };
        }),
      );

    /**
     * One load from start to end, Redis going away and coming back under it. Writers each own credentials:
     * rotate one on one replica, read it back on the other and on the writer. Readers read any credential
     * on either replica meanwhile, so reads overlap writes (and each other) on the same keys.
     */
    type Phase = 'before' | 'outage' | 'after';
    let phase: Phase = 'before';
    let outageAt = 0;
    let stop = false;
    const counts: Record<Phase, PhaseCounts> = { before: zero(), outage: zero(), after: zero() };
    const send = async (replica: number, method: string, path: string, body?: unknown) => {
      const c = counts[phase];
      c.requests++;
      try {
        const res = await calls[replica](method, path, body);
        if (res.status >= 500) c.status5xx++;
        else if (res.status >= 300) c.otherErrors++;
        if (res.status >= 300) examples.add(`${phase}: ${method} ${path.replace(/[0-9a-f-]{36}/, ':id')} on replica ${replica} → ${res.status} ${res.text.slice(0, 160)}`);
        return res.status < 300 ? res : undefined;
      } catch (e) {
        c.dropped++;
        examples.add(`${phase}: ${method} on replica ${replica} dropped: ${(e as Error).message}`);
        return undefined;
      }
    };
    const read = async (replica: number, t: Owned) => {
      const startedAt = performance.now();
      const during = phase;
      const res = await send(replica, 'GET', `/v1/credentials/${t.id}/value`);
      if (res && staleRead(t, res.body.value, startedAt)) {
        counts[during].stale++;
        const i = t.writes.findIndex((w) => w.value === res.body.value);
        const newer = t.writes.slice(i + 1).find((w) => w.ackedAt !== undefined && w.ackedAt < startedAt);
        const since = (at: number) => (outageAt ? `${Math.round(at - outageAt)} ms after the Redis shutdown began` : 'before the outage');
        examples.add(
          `${during}: replica ${replica} served ${i < 0 ? 'a value never written' : `write #${i}`} of ${t.id} in a read begun ${since(startedAt)}, though write #${t.writes.indexOf(newer!)} was acknowledged ${since(newer?.ackedAt ?? 0)}`,
        );
      }
    };
    const writers = Array.from({ length: o.workers }, async (_, w) => {
      const mine = owned.filter((_, i) => i % o.workers === w);
      for (let n = w; !stop; n++) {
        const t = mine[n % mine.length];
        const writer = n % 2;
        const written: Written = { value: marker('rl') };
        t.writes.push(written);
        if (await send(writer, 'POST', `/v1/credentials/${t.id}/rotate`, { value: written.value })) written.ackedAt = performance.now();
        // Read back on the other replica first (its cache held the old value), then on the writer.
        await read(1 - writer, t);
        await read(writer, t);
      }
    });
    const readers = Array.from({ length: o.workers }, async (_, r) => {
      for (let n = r; !stop; n++) await read(n % 2, owned[(n * 7919) % owned.length]);
    });
    const running = Promise.all([...writers, ...readers]);

    await sleep(o.beforeMs);
    const degraded0 = await metric('credential_vault_cache_degraded_reads_total');
    const fallbacks0 = await metric('credential_vault_shared_state_fallbacks_total');
    phase = 'outage';
    const outageStart = performance.now();
    outageAt = outageStart;
    await redis.down();
    await sleep(o.outageMs);
    const readyDuring = await ready();
    const degraded1 = await metric('credential_vault_cache_degraded_reads_total');
    const fallbacks1 = await metric('credential_vault_shared_state_fallbacks_total');
    await redis.up();
    const outageS = (performance.now() - outageStart) / 1000;
    phase = 'after';
    const upAt = performance.now();
    let recovered = false;
    let readyAfter = await ready();
    while (!recovered && performance.now() - upAt < 60_000) {
      readyAfter = await ready();
      // Back means serving from the cache again: subscribed, the shared tier emptied and a heartbeat heard (until
      // then reads rightly bypass the cache, and a slow machine takes longer to get there).
      recovered = readyAfter.every((r) => r.status === 200 && r.cache?.status === 'up' && r.cache?.redis === 'up' && r.cache?.invalidationHeard === true);
      if (!recovered) await sleep(250);
    }
    const recoverS = (performance.now() - upAt) / 1000;
    const degraded2 = await metric('credential_vault_cache_degraded_reads_total');
    const l2Before = await metric('credential_vault_cache_l2_hits_total');
    await sleep(o.afterMs);
    stop = true;
    await running;
    const { before, outage: during, after } = counts;
    const degraded3 = await metric('credential_vault_cache_degraded_reads_total');
    const l2After = await metric('credential_vault_cache_l2_hits_total');
    const all = [before, during, after];
    const sum = (k: keyof PhaseCounts) => all.reduce((a, c) => a + c[k], 0);
    const readyDuringOk = readyDuring.every((r) => r.status === 200 && r.cache?.status === 'degraded' && r.cache?.redis === 'down');
    return {
      part: 'Redis loss',
      profile: p.name,
      method: `Two host processes (\`node apps/api/src/main.js\`) on one PostgreSQL schema share a Redis started by the part on a spare port (cache L2, eviction bus, rate-limit and other shared state; the default cache TTL, so values are cached on both replicas) and the local vault over HTTPS. ${o.workers} writers each own credentials: a step rotates one on one replica, then reads it back on the other replica and on the writer; ${o.workers} readers meanwhile read any credential on either replica, so reads overlap writes and each other on the same keys. A read is stale when it returns a value older than a write acknowledged before the read began (each credential has one writer, so that order is known; a write answered with an error may or may not have landed). One load runs throughout: ${o.beforeMs / 1000} s with Redis up, then \`redis-cli shutdown nosave\` under it and ${o.outageMs / 1000} s without Redis, then Redis starts again empty and the load goes on until both replicas report it back in /health/ready and ${o.afterMs / 1000} s more. What the host documents for a Redis loss (docs/OPERATIONS.md CredentialVaultCacheFanoutDown and CredentialVaultSharedStateDegraded, ARCHITECTURE.md "Cluster-wide state", the cache's readiness indicator): a replica that cannot hear evictions reads from the vault uncached and never serves a value another replica changed; shared state falls back to per-process counting and never fails a request; readiness stays 200 with the cache \`degraded\` (Redis \`down\`); it re-subscribes and empties its cache by itself when Redis is back. So the bounds: 0 stale reads, 0 answers other than 2xx (no fail-closed answer is documented for a Redis loss), readiness 200/degraded during it, back within 60 s, no degraded read once both report Redis back.`,
      ran: `${sum('requests')} requests (before ${before.requests}, during the ${round(outageS, 1)} s outage ${during.requests}, after ${after.requests}) on ${owned.length} credentials; during the outage ${degraded1 - degraded0} reads went to the vault uncached and ${fallbacks1 - fallbacks0} shared-state calls fell back to per-process state; readiness during it ${readyDuring.map((r) => `${r.status} cache ${r.cache?.status}/redis ${r.cache?.redis}`).join(', ')}; both replicas reported Redis back ${round(recoverS, 1)} s after it restarted; ${l2After - l2Before} L2 hits after.`,
      figures: [
        info('requests', sum('requests')),
        info('requests during the outage', during.requests),
        bounded('reads of a value older than the last acknowledged write (any phase)', sum('stale'), '=', 0),
        bounded('answers 5xx', sum('status5xx'), '=', 0),
        bounded('answers 4xx or 3xx', sum('otherErrors'), '=', 0),
        bounded('requests dropped (no answer)', sum('dropped'), '=', 0),
        info('reads served uncached during the outage (degraded)', degraded1 - degraded0),
        info('shared-state calls answered per process during the outage', fallbacks1 - fallbacks0),
        bounded('/health/ready during the outage (200, cache degraded, redis down) on both replicas', readyDuringOk ? 1 : 0, '=', 1),
        bounded('both replicas report Redis back and evictions heard', recovered ? 1 : 0, '=', 1),
        info('seconds until both report Redis back', round(recoverS, 1), 's'),
        bounded('degraded (uncached) reads once Redis is back', degraded3 - degraded2, '=', 0),
        info('L2 hits after Redis is back', l2After - l2Before),
      ],
      examples: examples.list,
      durationS: Math.round((performance.now() - started) / 1000),
    };
  } finally {
    await Promise.all(replicas.map((r) => r.stop()));
    build.remove();
    await redis.down();
    await database.drop();
    await vault.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
