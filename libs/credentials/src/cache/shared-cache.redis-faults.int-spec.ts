/**
 * Integration: the shared cache when Redis fails one replica or all (real Redis behind a TCP proxy the test cuts or
 * stalls, real PostgreSQL, the local vault): a lock request timed out, Redis lost, a silent partition, evictions that
 * cannot be announced, entries Redis brings back, replicas that cannot be heard. Three replicas on PostgreSQL.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type Server, Socket as NetSocket, type Socket } from 'node:net';
import type { KeyVaultEmulator } from '@app/keyvault-emulator';
import { REDIS_URL, type TestDatabase } from '@app/testing';
import { CredentialCache, CredentialRevokedError, CredentialsService, CredentialType, TieredCredentialCache } from '../index';
import { app, ctx, DEFAULT_HEARTBEAT, eventually, PREFIX, redisAt, redisDump, redisStore, useSharedCacheStack } from './shared-cache.testing';

jest.setTimeout(60_000);

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

describe('shared credential cache on postgres (real Redis, local vault)', () => {
  const stack = useSharedCacheStack('postgres');
  const { secret, svc, cacheOf, store } = stack;
  // The stack's vault and database, once its beforeAll has started them.
  let emu: KeyVaultEmulator;
  let db: TestDatabase;
  beforeAll(() => ({ emu, db } = stack));

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
    // D delivers no outbox events: had it taken the revoke's, its handler would have evicted D's own entry (and failed on
    // Redis: degraded, heartbeats still heard) -- a refusal by another path than the one this test is about.
    const d = await app(
      db,
      emu,
      {
        store: { type: 'redis', client: redisAt(`redis://127.0.0.1:${proxy.port}`), subscriber: () => redisAt(`redis://127.0.0.1:${proxy.port}`), keyPrefix: PREFIX, operationTimeoutMs: 500 },
        heartbeat: DEFAULT_HEARTBEAT,
      },
      { dispatch: false },
    );
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
