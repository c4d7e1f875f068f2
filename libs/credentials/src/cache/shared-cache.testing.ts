/**
 * What the shared-cache int-specs share: real Redis under a key prefix of this run, replicas of the credentials stack
 * on one database and the local vault, and the stack (`useSharedCacheStack`) whose afterAll checks that no credential
 * value was ever in plaintext under the prefix. Redis or PostgreSQL down is a failure, never a skip.
 */
import { randomBytes } from 'node:crypto';
import { Logger } from '@nestjs/common';
import { Test, type TestingModule } from '@nestjs/testing';
import type { OperationContext } from '@app/common';
import { KeyVaultEmulator } from '@app/keyvault-emulator';
import { CapturingLogger, createTestDatabase, credentialsStackImports, REDIS_URL, type TestDatabase, type TestDatabaseKind } from '@app/testing';
import { Redis } from 'ioredis';
import { closeRedisConnection, CredentialCache, CredentialsService, CredentialType, TieredCredentialCache, type CredentialsModuleOptions } from '../index';

export const run = randomBytes(4).toString('hex');
export const PREFIX = `cvtest:${run}:cache:`;
export const ctx: OperationContext = { tenantId: `t_${run}`, actor: { id: 'user:alice' } };
export const connections: Redis[] = [];
export const logger = new CapturingLogger();

export function redisAt(url = REDIS_URL): Redis {
  const r = new Redis(url, { maxRetriesPerRequest: 1, connectTimeout: 1000, retryStrategy: (n) => Math.min(n * 50, 300) });
  r.on('error', () => undefined);
  connections.push(r);
  return r;
}

export async function requireRedis(): Promise<void> {
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
export async function redisDump(): Promise<Array<[string, string]>> {
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

export const eventually = async <T>(check: () => Promise<T> | T, timeoutMs = 5000): Promise<T> => {
  for (const deadline = Date.now() + timeoutMs; ; await new Promise((r) => setTimeout(r, 5))) {
    try {
      return await check();
    } catch (e) {
      if (Date.now() > deadline) throw e;
    }
  }
};

/** The default heartbeat, given explicitly to the replicas of the tests that assert its bound (the drop itself). */
export const DEFAULT_HEARTBEAT = { intervalMs: 1000, lostAfterMs: 3000 };

/**
 * One replica. Its heartbeat is lost only after 30 s unless the test gives one: most tests here assert what the
 * cache serves, and a heartbeat late on a loaded machine would drop it under them.
 */
/** `outbox.dispatch: false`: a replica that never delivers outbox events (its cache then hears evictions from the bus alone). */
export async function app(db: TestDatabase, emu: KeyVaultEmulator, cache: CredentialsModuleOptions['cache'], outbox: { dispatch?: boolean } = {}): Promise<TestingModule> {
  const m = await Test.createTestingModule({
    imports: credentialsStackImports({
      database: db.options,
      vault: emu,
      // Quick redelivery: one test waits for the outbox to carry an eviction its writer could not send.
      persistence: { outbox: { pollIntervalMs: 200, backoff: { baseMs: 100, maxMs: 500 }, ...outbox } },
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
export const redisStore = (client = redisAt()) => ({ type: 'redis' as const, client, subscriber: () => redisAt(), keyPrefix: PREFIX, lockMs: 15_000, waitMs: 15_000, operationTimeoutMs: 3000 });

/** The replicas of `kind` (SQLite: one, PostgreSQL: three) over real Redis, started in beforeAll, closed in afterAll. */
export function useSharedCacheStack(kind: TestDatabaseKind) {
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

  return {
    /** Started in beforeAll. */
    get emu() {
      return emu;
    },
    get db() {
      return db;
    },
    apps,
    /** Every value stored, for the afterAll's plaintext check. */
    values,
    secret,
    svc,
    cacheOf,
    getSecretCalls,
    store,
  };
}
