/**
 * Integration: the two-level cache (L1 + Redis L2) and the invalidation fan-out with real Redis, real
 * PostgreSQL / SQLite, the real SDK against the local vault and several app instances in one process
 * (the multi-process cluster test is test/cluster): sealed L2 entries, evictions fanned out to every replica,
 * cluster-wide single-flight, and the transports without Redis. Redis faults: shared-cache.redis-faults.int-spec.ts.
 */
import { randomBytes } from 'node:crypto';
import type { TestingModule } from '@nestjs/testing';
import { OutboxHandlerRegistry } from '@app/common';
import { KeyVaultEmulator } from '@app/keyvault-emulator';
import { createTestDatabase, DATABASE_KINDS, type TestDatabase } from '@app/testing';
import { CredentialCache, CredentialNotFoundError, CredentialRevokedError, CredentialsService, CredentialStatus, CredentialType, type TieredCredentialCache } from '../index';
import { app, ctx, eventually, PREFIX, redisAt, redisDump, redisStore, run, useSharedCacheStack } from './shared-cache.testing';

jest.setTimeout(60_000);

describe.each(DATABASE_KINDS)('shared credential cache on %s (real Redis, local vault)', (kind) => {
  const stack = useSharedCacheStack(kind);
  const { apps, values, secret, svc, cacheOf, getSecretCalls, store } = stack;
  // The stack's vault, once its beforeAll has started it.
  let emu: KeyVaultEmulator;
  beforeAll(() => ({ emu } = stack));

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
    // Its generation mark only has to outlast a load: minutes (5 here), not an hour, whatever the entry TTL.
    const genTtl = await r.pttl(`${PREFIX}g:{${ctx.tenantId}/${id}}`);
    expect({ lives: genTtl > 0, atMostFiveMinutes: genTtl <= 300_000 }).toEqual({ lives: true, atMostFiveMinutes: true });
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

  it("a load that started before an eviction fills no L2 entry when Redis lost the key's generation meanwhile (keys deleted, restarted empty, evicted for memory)", async () => {
    const key = `${ctx.tenantId}/lost-gen-${randomBytes(3).toString('hex')}`;
    let release!: (v: string) => void;
    const slow = cacheOf(0).getOrLoad(key, () => new Promise<string>((r) => (release = r)));
    await eventually(() => expect(release).toBeDefined());
    await cacheOf(1).evictEverywhere(key); // B: a write committed while A was loading
    // The prefix's keys go (an operator's delete, a FLUSHDB, a Redis that restarted without its data): the eviction's mark with them.
    await redisAt().del(`${PREFIX}g:{${key}}`, `${PREFIX}l:{${key}}`);
    release('value-from-before-the-write');
    expect(await slow).toBe('value-from-before-the-write');
    expect(await redisAt().exists(`${PREFIX}e:{${key}}`)).toBe(0);
    // No replica is served the value from before the write.
    expect(await cacheOf(2).getOrLoad(key, async () => 'fresh')).toBe('fresh');
    expect(await cacheOf(1).getOrLoad(key, async () => 'other')).toBe('fresh');
  });

  it("a load that started before an eviction fills no L2 entry when Redis lost the key's generation, also one an eviction had created", async () => {
    const key = `${ctx.tenantId}/lost-evicted-gen-${randomBytes(3).toString('hex')}`;
    await cacheOf(1).evictEverywhere(key); // a write of a credential nobody read lately: the eviction creates the generation
    let release!: (v: string) => void;
    const slow = cacheOf(0).getOrLoad(key, () => new Promise<string>((r) => (release = r)));
    await eventually(() => expect(release).toBeDefined());
    await redisAt().del(`${PREFIX}g:{${key}}`, `${PREFIX}l:{${key}}`); // Redis loses the prefix's keys
    await cacheOf(1).evictEverywhere(key); // B: a write committed while A was loading, creating the generation anew
    release('value-from-before-the-write');
    expect(await slow).toBe('value-from-before-the-write');
    expect(await redisAt().exists(`${PREFIX}e:{${key}}`)).toBe(0);
    expect(await cacheOf(2).getOrLoad(key, async () => 'fresh')).toBe('fresh');
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

  it('a load lock left without expiry (restored from a snapshot without TTL, a manual SET) gets one again: a miss waits out lockMs, not waitMs, and single-flight comes back', async () => {
    // Its own replica: a short lock and a long wait, so that waiting out the wait shows.
    const d = await app(stack.db, emu, { store: { ...redisStore(), lockMs: 400, waitMs: 8000 } });
    const dCache = d.get(CredentialCache) as TieredCredentialCache;
    const key = `${ctx.tenantId}/no-ttl-lock-${randomBytes(3).toString('hex')}`;
    const lockKey = `${PREFIX}l:{${key}}`;
    const r = redisAt();
    try {
      await r.set(lockKey, 'a-lock-without-expiry');
      expect(await r.pttl(lockKey)).toBe(-1);
      const loader = jest.fn(async () => 'loaded');
      const started = Date.now();
      expect(await dCache.getOrLoad(key, loader)).toBe('loaded');
      const waited = Date.now() - started;
      const l2 = dCache.stats().shared!.l2;
      // It took the lock once it expired and freed it with its fill (a lock timeout would load without the lock).
      expect({ waitedLessThanWaitMs: waited < 4000, lockTimeouts: l2.lockTimeouts, fills: l2.fills, lockLeft: await r.exists(lockKey) }).toEqual({ waitedLessThanWaitMs: true, lockTimeouts: 0, fills: 1, lockLeft: 0 });
      expect(waited).toBeGreaterThanOrEqual(350);
      // Another replica is served that fill: one load in all.
      expect(await cacheOf(1).getOrLoad(key, async () => 'other')).toBe('loaded');
      expect(loader).toHaveBeenCalledTimes(1);
    } finally {
      await d.close();
    }
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
