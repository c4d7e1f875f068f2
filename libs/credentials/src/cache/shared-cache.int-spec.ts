/**
 * Integration: the two-level cache (L1 + Redis L2) and the invalidation fan-out with real Redis, real
 * PostgreSQL / SQLite, the real SDK against the local vault and several app instances in one process
 * (the multi-process cluster test is test/cluster). Redis or PostgreSQL down is a failure, never a skip.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type Server, Socket as NetSocket, type Socket } from 'node:net';
import { Logger } from '@nestjs/common';
import { Test, type TestingModule } from '@nestjs/testing';
import { type OperationContext, OutboxHandlerRegistry } from '@app/common';
import { KeyVaultEmulator } from '@app/keyvault-emulator';
import { CapturingLogger, createTestDatabase, credentialsStackImports, DATABASE_KINDS, REDIS_URL, type TestDatabase } from '@app/testing';
import { Redis } from 'ioredis';
import {
  closeRedisConnection,
  CredentialCache,
  CredentialNotFoundError,
  CredentialRevokedError,
  CredentialsService,
  CredentialStatus,
  CredentialType,
  TieredCredentialCache,
  type CredentialsModuleOptions,
} from '../index';

jest.setTimeout(60_000);

const run = randomBytes(4).toString('hex');
const PREFIX = `cvtest:${run}:cache:`;
const ctx: OperationContext = { tenantId: `t_${run}`, actor: { id: 'user:alice' } };
const connections: Redis[] = [];
const logger = new CapturingLogger();

function redisAt(url = REDIS_URL): Redis {
  const r = new Redis(url, { maxRetriesPerRequest: 1, connectTimeout: 1000, retryStrategy: (n) => Math.min(n * 50, 300) });
  r.on('error', () => undefined);
  connections.push(r);
  return r;
}

async function requireRedis(): Promise<void> {
  const probe = new Redis(REDIS_URL, { maxRetriesPerRequest: 0, retryStrategy: () => null, lazyConnect: true });
  probe.on('error', () => undefined);
  try {
    await probe.connect();
    await probe.ping();
  } catch (e) {
    throw new Error(`Redis is required for this test but is not reachable at ${REDIS_URL} (${(e as Error).message})`);
  } finally {
    await closeRedisConnection(probe);
  }
}

/** Every key under the prefix with its value (strings; generation counters included). */
async function redisDump(): Promise<Array<[string, string]>> {
  const r = redisAt();
  const out: Array<[string, string]> = [];
  let cursor = '0';
  do {
    const [next, keys] = await r.scan(cursor, 'MATCH', `${PREFIX}*`, 'COUNT', 1000);
    cursor = next;
    for (const k of keys) out.push([k, (await r.get(k)) ?? '']);
  } while (cursor !== '0');
  return out;
}

const eventually = async <T>(check: () => Promise<T> | T, timeoutMs = 5000): Promise<T> => {
  for (const deadline = Date.now() + timeoutMs; ; await new Promise((r) => setTimeout(r, 5))) {
    try {
      return await check();
    } catch (e) {
      if (Date.now() > deadline) throw e;
    }
  }
};

/** A TCP proxy to Redis that the test can cut (an outage seen by one replica only). */
class CuttableProxy {
  private server!: Server;
  private sockets = new Set<Socket>();
  private open = true;
  /** While stalled, bytes are held back both ways and nothing closes (a partition, as TCP sees one); delivered on resume. */
  private held?: Array<[Socket, Buffer]>;
  stall(): void {
    this.held ??= [];
  }
  resume(): void {
    const held = this.held ?? [];
    this.held = undefined;
    for (const [to, d] of held) to.write(d);
  }
  port = 0;
  async start(): Promise<void> {
    const target = new URL(REDIS_URL);
    this.server = createServer((client) => {
      if (!this.open) return client.destroy();
      const upstream = new NetSocket();
      upstream.connect(Number(target.port || 6379), target.hostname);
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('error', () => undefined);
        s.on('close', () => this.sockets.delete(s));
      }
      // By hand rather than pipe(): a stalled proxy holds bytes back while both connections stay open.
      const forward = (to: Socket) => (d: Buffer) => (this.held ? this.held.push([to, d]) : to.write(d));
      client.on('data', forward(upstream));
      upstream.on('data', forward(client));
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as { port: number }).port;
  }
  cut(): void {
    this.open = false;
    for (const s of this.sockets) s.destroy();
  }
  restore(): void {
    this.open = true;
  }
  async stop(): Promise<void> {
    this.cut();
    await new Promise((r) => this.server.close(r));
  }
}

/** The default heartbeat, given explicitly to the replicas of the tests that assert its bound (the drop itself). */
const DEFAULT_HEARTBEAT = { intervalMs: 1000, lostAfterMs: 3000 };

/**
 * One replica. Its heartbeat is lost only after 30 s unless the test gives one: most tests here assert what the
 * cache serves, and a heartbeat late on a loaded machine would drop it under them.
 */
async function app(db: TestDatabase, emu: KeyVaultEmulator, cache: CredentialsModuleOptions['cache']): Promise<TestingModule> {
  const m = await Test.createTestingModule({
    imports: credentialsStackImports({
      database: db.options,
      vault: emu,
      // Quick redelivery: one test waits for the outbox to carry an eviction its writer could not send.
      persistence: { outbox: { pollIntervalMs: 200, backoff: { baseMs: 100, maxMs: 500 } } },
      keyVault: { resilience: { maxAttempts: 1, pollIntervalMs: 20 } },
      credentials: { cache: { ttlMs: 60_000, heartbeat: { lostAfterMs: 30_000 }, ...cache } },
    }),
  })
    .setLogger(logger)
    .compile();
  await m.init();
  return m;
}

// Generous bounds: five test runs share two cores here, and a timed-out Redis call is (rightly) a load of its own.
const redisStore = (client = redisAt()) => ({ type: 'redis' as const, client, subscriber: () => redisAt(), keyPrefix: PREFIX, lockMs: 15_000, waitMs: 15_000, operationTimeoutMs: 3000 });

describe.each(DATABASE_KINDS)('shared credential cache on %s (real Redis, local vault)', (kind) => {
  let emu: KeyVaultEmulator;
  let db: TestDatabase;
  const apps: TestingModule[] = [];
  const values = new Set<string>();
  const secret = () => {
    const v = `sk_${randomBytes(18).toString('base64url')}`;
    values.add(v);
    return v;
  };
  const svc = (i: number) => apps[i].get(CredentialsService);
  const cacheOf = (i: number) => apps[i].get(CredentialCache) as TieredCredentialCache;
  const getSecretCalls = () => emu.stats().byOperation.getSecret ?? 0;
  const store = async (i = 0) => (await svc(i).store(ctx, { integrationId: 'stripe', connectionId: `c_${randomBytes(4).toString('hex')}`, type: CredentialType.API_KEY, value: secret() })).id;

  beforeAll(async () => {
    Logger.overrideLogger(logger);
    await requireRedis();
    emu = await KeyVaultEmulator.start({ quiet: true, throttle: false, operationDelayMs: 0 }); // a credential delete soft-deletes its secret
    db = await createTestDatabase(kind);
    // SQLite is one process: one instance; PostgreSQL: three replicas on one schema.
    for (let i = 0; i < (kind === 'postgres' ? 3 : 1); i++) apps.push(await app(db, emu, { store: redisStore() }));
  });

  afterAll(async () => {
    // After everything: no credential value in plaintext anywhere under the prefix.
    const dump = await redisDump().catch(() => []);
    for (const m of apps) await m.close();
    await emu?.stop();
    await db?.drop();
    const cleaner = redisAt();
    for (const [k] of dump) await cleaner.del(k);
    await Promise.all(connections.map((c) => closeRedisConnection(c)));
    Logger.overrideLogger(new Logger());
    for (const [k, v] of dump) for (const value of values) expect(`${k} ${v}`).not.toContain(value);
  });

  it('fills L2 with sealed entries only: a scan of every key under the prefix finds no value in plaintext', async () => {
    const ids = [await store(), await store()];
    for (const id of ids) await svc(0).get(ctx, id);
    const dump = await redisDump();
    const entries = dump.filter(([k]) => k.startsWith(`${PREFIX}e:`));
    expect(entries.length).toBeGreaterThanOrEqual(2);
    expect(values.size).toBeGreaterThanOrEqual(2);
    for (const [k, v] of dump) {
      for (const value of values) {
        expect(v).not.toContain(value);
        expect(k).not.toContain(value);
        expect(v).not.toContain(Buffer.from(value).toString('base64'));
      }
    }
    for (const [, v] of entries) expect(v).toMatch(/^c3\.[A-Za-z0-9-]+\.[\w-]+\.[\w-]+\.[\w-]+$/);
    expect(cacheOf(0).stats().shared?.l2).toMatchObject({ enabled: true, fills: 2 });
  });

  it('an entry copied under another credential’s key does not decrypt: a miss, and the right value is read', async () => {
    const a = await store();
    const b = await store();
    const valueA = (await svc(0).get(ctx, a)).value;
    const r = redisAt();
    const sealedA = await r.get(`${PREFIX}e:{${ctx.tenantId}/${a}}`);
    expect(sealedA).toBeTruthy();
    await r.set(`${PREFIX}e:{${ctx.tenantId}/${b}}`, sealedA!, 'PX', 60_000);
    const before = cacheOf(0).stats().shared!.l2.rejected;
    const readB = await svc(0).get(ctx, b);
    expect(readB.value).not.toBe(valueA);
    expect(readB.metadata.id).toBe(b);
    expect(cacheOf(0).stats().shared!.l2.rejected).toBe(before + 1);
  });

  it('a rotation evicts the L2 entry; the next read (any instance) sees the new value', async () => {
    const id = await store();
    for (let i = 0; i < apps.length; i++) await svc(i).get(ctx, id);
    const r = redisAt();
    const entryKey = `${PREFIX}e:{${ctx.tenantId}/${id}}`;
    expect(await r.exists(entryKey)).toBe(1);
    expect(await r.pttl(entryKey)).toBeLessThanOrEqual(60_000);
    const next = secret();
    await svc(0).rotate(ctx, id, next);
    expect(await r.exists(entryKey)).toBe(0);
    for (let i = 0; i < apps.length; i++) await eventually(async () => expect((await svc(i).get(ctx, id)).value).toBe(next));
  });

  if (kind !== 'postgres') return;

  it('a write, a revoke and a delete on replica A are seen by the next read on B and C (fan-out over Redis)', async () => {
    const id = await store();
    for (let i = 0; i < 3; i++) await svc(i).get(ctx, id);
    const hitsBefore = cacheOf(1).stats().shared!.l1.hits;
    await svc(1).get(ctx, id);
    expect(cacheOf(1).stats().shared!.l1.hits).toBe(hitsBefore + 1); // B serves it from L1

    const next = secret();
    await svc(0).rotate(ctx, id, next);
    // The eviction is published right after commit: by the time rotate() returns, B and C have (almost) always dropped it.
    for (const i of [1, 2]) await eventually(async () => expect((await svc(i).get(ctx, id)).value).toBe(next), 1000);

    await svc(0).revoke(ctx, id);
    for (const i of [1, 2]) await eventually(() => expect(svc(i).get(ctx, id)).rejects.toBeInstanceOf(CredentialRevokedError), 1000);
    await svc(0).unrevoke(ctx, id);
    for (const i of [1, 2]) await eventually(async () => expect((await svc(i).get(ctx, id)).value).toBe(next), 1000);

    await svc(0).delete(ctx, id);
    for (const i of [1, 2]) await eventually(() => expect(svc(i).get(ctx, id)).rejects.toBeInstanceOf(CredentialNotFoundError), 1000);
  });

  it('cached metadata on B and C follows a write, a revoke and a delete on A', async () => {
    const id = await store();
    const meta = (i: number) => svc(i).getMetadata(ctx, id, { cached: true });
    for (let i = 0; i < 3; i++) expect((await meta(i)).tags).toEqual({});
    await svc(0).updateMetadata(ctx, id, { tags: { owner: 'billing' } });
    for (const i of [1, 2]) await eventually(async () => expect((await meta(i)).tags).toEqual({ owner: 'billing' }), 1000);
    await svc(0).rotate(ctx, id, secret());
    for (const i of [1, 2]) await eventually(async () => expect((await meta(i)).version).toBe(2), 1000);
    await svc(0).revoke(ctx, id);
    for (const i of [1, 2]) await eventually(async () => expect((await meta(i)).status).toBe(CredentialStatus.REVOKED), 1000);
    await svc(0).delete(ctx, id);
    for (const i of [1, 2]) await eventually(() => expect(meta(i)).rejects.toBeInstanceOf(CredentialNotFoundError), 1000);
    // Rows never reach the shared tier.
    expect((await redisDump()).filter(([k]) => k.includes(id) && k.startsWith(`${PREFIX}e:`))).toEqual([]);
  });

  it('the outbox handler of a credential change evicts the entry on every replica (the path that survives a crash)', async () => {
    const id = await store();
    for (let i = 0; i < 3; i++) await svc(i).get(ctx, id);
    const received = cacheOf(2).stats().shared!.invalidation.received;
    // What the dispatcher does on whichever replica holds its lock, here replica B.
    const handlers = apps[1].get(OutboxHandlerRegistry).handlersFor('credential.rotated');
    expect(handlers.length).toBeGreaterThanOrEqual(1);
    const event = { id: 'evt-1', name: 'credential.rotated', tenantId: ctx.tenantId, payload: { credentialId: id }, createdAt: new Date(), attempts: 0 };
    for (const h of handlers) await h(event);
    for (const h of handlers) await h(event); // at least once: twice is harmless
    await eventually(() => expect(cacheOf(2).stats().shared!.invalidation.received).toBeGreaterThanOrEqual(received + 2), 1000);
    expect(await redisAt().exists(`${PREFIX}e:{${ctx.tenantId}/${id}}`)).toBe(0);
    const loads = cacheOf(2).stats().loads;
    const l2Hits = cacheOf(2).stats().shared!.l2.hits;
    await svc(2).get(ctx, id);
    // C's L1 was emptied and L2 too: the read reached L2 (miss) and loaded.
    expect(cacheOf(2).stats().loads + cacheOf(2).stats().shared!.l2.hits).toBe(loads + l2Hits + 1);
  });

  it('cluster-wide single-flight: a cold burst of reads of 100 credentials on 3 replicas makes exactly 100 vault reads', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 100; i++) ids.push(await store(i % 3));
    emu.resetStats();
    const reads = ids.flatMap((id) => [0, 1, 2].map((i) => svc(i).get(ctx, id)));
    const results = await Promise.all(reads);
    expect(results).toHaveLength(300);
    const l2 = [0, 1, 2].map((i) => cacheOf(i).stats().shared!.l2);
    expect({ vaultReads: getSecretCalls(), lockTimeouts: l2.reduce((n, s) => n + s.lockTimeouts, 0), l2Errors: l2.reduce((n, s) => n + s.errors, 0) }).toEqual({
      vaultReads: 100,
      lockTimeouts: 0,
      l2Errors: 0,
    });
    expect(results.map((r) => r.metadata.id).sort()).toEqual(ids.flatMap((id) => [id, id, id]).sort());
  });

  it('a load that started before an eviction on another replica fills neither its L1 nor L2', async () => {
    const key = `${ctx.tenantId}/slow-${randomBytes(3).toString('hex')}`;
    let release!: (v: string) => void;
    const slow = cacheOf(0).getOrLoad(key, () => new Promise<string>((r) => (release = r)));
    await eventually(() => expect(release).toBeDefined());
    await cacheOf(1).evictEverywhere(key); // B: a write committed while A was loading
    release('value-from-before-the-write');
    expect(await slow).toBe('value-from-before-the-write'); // the caller that asked before the write still gets its answer
    expect(await redisAt().exists(`${PREFIX}e:{${key}}`)).toBe(0);
    expect(cacheOf(0).stats().shared!.l2.fillsRefused).toBeGreaterThanOrEqual(1);
    expect(await cacheOf(0).getOrLoad(key, async () => 'fresh')).toBe('fresh');
    expect(await cacheOf(2).getOrLoad(key, async () => 'other')).toBe('fresh'); // C reads the fresh fill from L2
  });

  it('waiters load by themselves when the lock holder died (its lock expires; no fill ever comes)', async () => {
    const key = `${ctx.tenantId}/orphan-${randomBytes(3).toString('hex')}`;
    await redisAt().set(`${PREFIX}l:{${key}}`, 'a-dead-replica', 'PX', 300);
    const started = Date.now();
    const loader = jest.fn(async () => 'loaded');
    expect(await Promise.all([cacheOf(1).getOrLoad(key, loader), cacheOf(2).getOrLoad(key, loader)])).toEqual(['loaded', 'loaded']);
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    // One of them took the freed lock and loaded; the other found its fill (or, at worst, loaded too).
    expect(loader.mock.calls.length).toBeGreaterThanOrEqual(1);
    expect(loader.mock.calls.length).toBeLessThanOrEqual(2);
    expect(cacheOf(1).stats().shared!.l2.lockWaits + cacheOf(2).stats().shared!.l2.lockWaits).toBeGreaterThanOrEqual(2);
  });

  it('a replica whose lock request timed out frees the lock it may have taken: the others need not wait for a fill that never comes', async () => {
    const proxy = new CuttableProxy();
    await proxy.start();
    const d = await app(db, emu, { store: { ...redisStore(redisAt(`redis://127.0.0.1:${proxy.port}`)), subscriber: () => redisAt(`redis://127.0.0.1:${proxy.port}`), operationTimeoutMs: 300 } });
    const dCache = d.get(CredentialCache) as TieredCredentialCache;
    const key = `${ctx.tenantId}/slow-${randomBytes(3).toString('hex')}`;
    const lockKey = `${PREFIX}l:{${key}}`;
    try {
      await eventually(() => expect(dCache.health().status).toBe('up'));
      proxy.stall(); // D's lock request reaches Redis only after D gave up on it (a slow Redis, a loaded replica)
      expect(await dCache.getOrLoad(key, async () => 'loaded by D')).toBe('loaded by D');
      expect(dCache.stats().shared!.l2).toMatchObject({ fills: 0, errors: expect.any(Number) });
      proxy.resume(); // now Redis runs it: the lock is taken in D's name
      // Without the release, the lock stays for lockMs (15 s here) and every other replica's read of the key waits that long.
      await eventually(async () => expect(await redisAt().exists(lockKey)).toBe(0), 2000);
      const waitsBefore = cacheOf(0).stats().shared!.l2.lockWaits;
      expect(await cacheOf(0).getOrLoad(key, async () => 'loaded by A')).toBe('loaded by A');
      expect(cacheOf(0).stats().shared!.l2.lockWaits).toBe(waitsBefore);
    } finally {
      proxy.resume();
      await d.close();
      await proxy.stop();
    }
  });

  it('a replica that loses Redis bypasses its cache (degraded, counted) and never serves what an eviction it missed removed', async () => {
    const proxy = new CuttableProxy();
    await proxy.start();
    const viaProxy = redisAt(`redis://127.0.0.1:${proxy.port}`);
    const d = await app(db, emu, { store: { type: 'redis', client: viaProxy, subscriber: () => redisAt(`redis://127.0.0.1:${proxy.port}`), keyPrefix: PREFIX } });
    try {
      const dCache = d.get(CredentialCache) as TieredCredentialCache;
      const dSvc = d.get(CredentialsService);
      const id = await store();
      const first = (await dSvc.get(ctx, id)).value;
      const hits = dCache.stats().shared!.l1.hits;
      expect((await dSvc.get(ctx, id)).value).toBe(first);
      expect(dCache.stats().shared!.l1.hits).toBe(hits + 1);

      proxy.cut();
      await eventually(() => expect(dCache.health().status).toBe('degraded'), 3000);
      const next = secret();
      await svc(0).rotate(ctx, id, next); // D cannot hear this eviction
      const degraded = dCache.stats().shared!.degradedReads;
      expect((await dSvc.get(ctx, id)).value).toBe(next);
      expect(dCache.stats().shared!.degradedReads).toBe(degraded + 1);

      // D writes while it cannot reach Redis: its own eviction fails, the outbox event carries it to B.
      await svc(1).get(ctx, id);
      const fromD = secret();
      await dSvc.rotate(ctx, id, fromD);
      expect(dCache.stats().shared!.invalidation.publishErrors).toBeGreaterThanOrEqual(1);
      await eventually(async () => expect((await svc(1).get(ctx, id)).value).toBe(fromD), 15_000);

      proxy.restore();
      await eventually(() => expect(dCache.health().status).toBe('up'), 5000);
      expect((await dSvc.get(ctx, id)).value).toBe(fromD);
    } finally {
      await d.close();
      await proxy.stop();
    }
  });

  it('a replica whose link to Redis silently stops carrying anything (a partition: no close) stops serving from its cache within the heartbeat bound', async () => {
    const proxy = new CuttableProxy();
    await proxy.start();
    const d = await app(db, emu, {
      store: { type: 'redis', client: redisAt(`redis://127.0.0.1:${proxy.port}`), subscriber: () => redisAt(`redis://127.0.0.1:${proxy.port}`), keyPrefix: PREFIX, operationTimeoutMs: 500 },
      heartbeat: DEFAULT_HEARTBEAT,
    });
    try {
      const dCache = d.get(CredentialCache) as TieredCredentialCache;
      const dSvc = d.get(CredentialsService);
      const id = await store();
      await eventually(() => expect(dCache.health().status).toBe('up'), 5000);
      const first = (await dSvc.get(ctx, id)).value;
      expect((await dSvc.get(ctx, id)).value).toBe(first); // an L1 hit from now on

      proxy.stall();
      await svc(0).revoke(ctx, id); // its eviction reaches Redis; D hears nothing, and its connection looks fine
      const revokedAt = Date.now();
      await eventually(async () => expect(await dSvc.get(ctx, id).then(() => 'served', (e: unknown) => e)).toBeInstanceOf(CredentialRevokedError), 10_000);
      // Within the heartbeat bound (3 s unheard) plus a check interval, not the entry's TTL (60 s here).
      expect(Date.now() - revokedAt).toBeLessThan(5_000);
      expect(dCache.health()).toMatchObject({ status: 'degraded', details: { invalidationHeard: false } });
      proxy.resume();
      await eventually(() => expect(dCache.health().status).toBe('up'), 10_000);
    } finally {
      await d.close();
      await proxy.stop();
    }
  });

  it('a revoke whose eviction cannot be announced (Redis paused for every replica) returns once no replica serves it from its cache', async () => {
    const proxy = new CuttableProxy();
    await proxy.start();
    const viaProxy = () => ({ type: 'redis' as const, client: redisAt(`redis://127.0.0.1:${proxy.port}`), subscriber: () => redisAt(`redis://127.0.0.1:${proxy.port}`), keyPrefix: PREFIX, operationTimeoutMs: 300 });
    // The revoke waits out the heartbeat bound: D's, which is A's.
    const [a, d] = [await app(db, emu, { store: viaProxy(), heartbeat: DEFAULT_HEARTBEAT }), await app(db, emu, { store: viaProxy(), heartbeat: DEFAULT_HEARTBEAT })];
    try {
      const id = (await a.get(CredentialsService).store(ctx, { integrationId: 'stripe', connectionId: `c_${randomBytes(4).toString('hex')}`, type: CredentialType.API_KEY, value: secret() })).id;
      for (const m of [a, d]) await eventually(() => expect((m.get(CredentialCache) as TieredCredentialCache).health().status).toBe('up'), 5000);
      await d.get(CredentialsService).get(ctx, id);
      await d.get(CredentialsService).get(ctx, id); // cached on D
      proxy.stall(); // Redis answers nobody, and every connection still looks open
      await a.get(CredentialsService).revoke(ctx, id);
      await expect(d.get(CredentialsService).get(ctx, id)).rejects.toBeInstanceOf(CredentialRevokedError);
    } finally {
      proxy.resume();
      await a.close();
      await d.close();
      await proxy.stop();
    }
  });

  it('entries Redis brings back after an outage (restored from its data) are deleted before a replica serves any', async () => {
    const id = await store();
    await svc(0).get(ctx, id); // fills L2
    const raw = redisAt();
    const [entryKey] = (await redisDump()).map(([k]) => k).filter((k) => k.startsWith(`${PREFIX}e:`) && k.includes(id));
    const old = await raw.get(entryKey);
    expect(old).toBeTruthy();
    await svc(0).revoke(ctx, id); // evicts L2
    await raw.set(entryKey, old!); // Redis restarts from a snapshot taken before the eviction
    // A replica started now (a redeploy during the outage) must not serve the revoked value from L2.
    const fresh = await app(db, emu, { store: redisStore() });
    try {
      await eventually(() => expect((fresh.get(CredentialCache) as TieredCredentialCache).health().status).toBe('up'), 5000);
      await expect(fresh.get(CredentialsService).get(ctx, id)).rejects.toBeInstanceOf(CredentialRevokedError);
    } finally {
      await fresh.close();
    }
  });

  it('while some replicas cannot be heard (another key prefix) reads go to the store; after, L2 is emptied before it serves again', async () => {
    const id = await store();
    await svc(0).get(ctx, id); // fills L1 and L2
    const raw = redisAt();
    const [entryKey] = (await redisDump()).map(([k]) => k).filter((k) => k.startsWith(`${PREFIX}e:`) && k.includes(id));
    const old = await raw.get(entryKey);
    expect(old).toBeTruthy();
    cacheOf(0).setUnheardReplicas('REDIS_KEY_PREFIX "other:" is live for this deployment');
    // Revoked on a replica this one cannot hear: its eviction reaches neither this L1 nor this L2 (the entry stays).
    await svc(0).revoke(ctx, id);
    await raw.set(entryKey, old!);
    await expect(svc(0).get(ctx, id)).rejects.toBeInstanceOf(CredentialRevokedError);
    expect(cacheOf(0).health()).toMatchObject({ status: 'degraded', details: { unheardReplicas: expect.stringContaining('other:') } });

    cacheOf(0).setUnheardReplicas(undefined);
    await eventually(() => expect(cacheOf(0).health().status).toBe('up'), 5000);
    expect(await raw.get(entryKey)).toBeNull();
    await expect(svc(0).get(ctx, id)).rejects.toBeInstanceOf(CredentialRevokedError);
  });
});

describe('invalidation over PostgreSQL LISTEN/NOTIFY (no Redis)', () => {
  let emu: KeyVaultEmulator;
  let db: TestDatabase;
  const apps: TestingModule[] = [];

  beforeAll(async () => {
    emu = await KeyVaultEmulator.start({ quiet: true, throttle: false });
    db = await createTestDatabase('postgres');
    for (let i = 0; i < 2; i++) apps.push(await app(db, emu, {}));
  });

  afterAll(async () => {
    for (const m of apps) await m.close();
    await emu?.stop();
    await db?.drop();
  });

  it('a rotation on A evicts B’s in-process entry', async () => {
    const [a, b] = apps.map((m) => m.get(CredentialsService));
    expect(apps[1].get(CredentialCache).health()).toMatchObject({ tier: 'memory', invalidation: 'postgres', status: 'up' });
    const id = (await a.store(ctx, { integrationId: 'github', connectionId: `c_${run}`, type: CredentialType.API_KEY, value: `v1_${randomBytes(12).toString('hex')}` })).id;
    await b.get(ctx, id);
    const next = `v2_${randomBytes(12).toString('hex')}`;
    await a.rotate(ctx, id, next);
    await eventually(async () => expect((await b.get(ctx, id)).value).toBe(next), 1000);
    expect(apps[1].get(CredentialCache).stats().shared?.invalidation).toMatchObject({ transport: 'postgres', healthy: true });
    expect(apps[1].get(CredentialCache).stats().shared!.invalidation.received).toBeGreaterThanOrEqual(1);
  });
});

describe('no shared state on SQLite without Redis', () => {
  it('keeps the in-process LRU (exactly the cache of a single process)', async () => {
    const emu = await KeyVaultEmulator.start({ quiet: true, throttle: false });
    const db = await createTestDatabase('sqlite');
    const m = await app(db, emu, {});
    try {
      expect(m.get(CredentialCache).constructor.name).toBe('LruCredentialCache');
      expect(m.get(CredentialCache).health()).toMatchObject({ tier: 'memory', invalidation: 'none', status: 'up' });
    } finally {
      await m.close();
      await emu.stop();
      await db.drop();
    }
  });
});
