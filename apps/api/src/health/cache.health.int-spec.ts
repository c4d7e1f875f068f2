/**
 * The host wires the shared cache from its environment: REDIS_URL → the redis tier on the host's
 * connections (readiness shows it), without it the in-process cache as before. Real Redis: a failure,
 * never a skip, when it is down.
 */
import { randomBytes } from 'node:crypto';
import { closeRedisConnection, CredentialCache, CredentialsService, CredentialType, type InvalidationLiveness } from '@app/credentials';
import { DATABASE_KINDS, REDIS_URL } from '@app/testing';
import { Redis } from 'ioredis';
import { startTestHost, type TestHost } from '../../../../test/support/host';

jest.setTimeout(60_000);

describe.each(DATABASE_KINDS)('host cache wiring on %s', (kind) => {
  const prefix = `cvtest:${randomBytes(4).toString('hex')}:`;
  let host: TestHost;
  let redis: Redis;

  beforeAll(async () => {
    redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 0, retryStrategy: () => null });
    redis.on('error', () => undefined);
    await redis.ping().catch((e: Error) => {
      throw new Error(`Redis is required for this test but is not reachable at ${REDIS_URL} (${e.message})`);
    });
    // A long heartbeat threshold and Redis call bound: these tests read the wiring, and on a loaded machine a late
    // heartbeat would drop the cache, a Redis call past its bound would serve that read uncached (no L2 fill).
    host = await startTestHost(kind, { REDIS_URL, REDIS_KEY_PREFIX: prefix, CACHE_HEARTBEAT_INTERVAL_MS: '500', CACHE_HEARTBEAT_LOST_AFTER_MS: '30000', CACHE_REDIS_TIMEOUT_MS: '5000' });
  });

  afterAll(async () => {
    await host?.close();
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length) await redis.del(...keys);
    await closeRedisConnection(redis);
  });

  it('uses the redis tier with fan-out over Redis and reports it in readiness', async () => {
    const res = await fetch(`${host.baseUrl}/health/ready`);
    const body = (await res.json()) as { info: Record<string, Record<string, unknown>> };
    expect(res.status).toBe(200);
    expect(body.info.cache).toMatchObject({ status: 'up', tier: 'redis', invalidation: 'redis', invalidationConnected: true, l2: 'up', redis: 'up' });
  });

  it('creates the shared cache key at its first start without a vault error on /metrics: the key\'s absence was the answer it looked for', async () => {
    const text = await (await fetch(`${host.baseUrl}/metrics`)).text();
    // The existence check of the key (a not-found, then a create and a read back), counted as what it was.
    expect(text).toMatch(/^credential_vault_keyvault_operations_total\{operation="getSecret",outcome="not_found"\} [1-9]/m);
    expect(text).toMatch(/^credential_vault_keyvault_operations_total\{operation="setSecret",outcome="success"\} [1-9]/m);
    // No vault error at all: an alert on this counter would fire on every fresh deployment.
    expect(text.split('\n').filter((l) => l.startsWith('credential_vault_keyvault_errors_total{'))).toEqual([]);
    expect(text).not.toMatch(/^credential_vault_keyvault_operations_total\{operation="getSecret",outcome="client"\}/m);
  });

  it('keeps reads in L2 under the configured prefix, sealed: no value in plaintext in any key', async () => {
    const ctx = { tenantId: 'acme', actor: { id: 'user:test' } };
    const value = `sk_${randomBytes(20).toString('hex')}`;
    const svc = host.app.get(CredentialsService);
    const { id } = await svc.store(ctx, { integrationId: 'stripe', connectionId: 'main', type: CredentialType.API_KEY, value });
    expect((await svc.get(ctx, id)).value).toBe(value);
    const keys = await redis.keys(`${prefix}cache:*`);
    expect(keys).toContain(`${prefix}cache:e:{acme/${id}}`);
    for (const k of await redis.keys(`${prefix}*`)) {
      const type = await redis.type(k);
      const v = type === 'string' ? await redis.get(k) : '';
      expect(`${k} ${v}`).not.toContain(value);
    }
    expect(host.app.get(CredentialCache).stats().shared?.l2).toMatchObject({ enabled: true, fills: 1 });
  });

  it('takes the heartbeat from CACHE_HEARTBEAT_* and the Redis call bound from CACHE_REDIS_TIMEOUT_MS, and counts a cache dropped by a lost connection on /metrics, by reason', async () => {
    const cache = host.app.get(CredentialCache);
    // The lib's own view (no public accessor): what the host passed.
    const internals = cache as unknown as { liveness: InvalidationLiveness; bus: { sub: { disconnect(reconnect: boolean): void } } };
    expect(internals.liveness).toEqual({ intervalMs: 500, lostAfterMs: 30_000 });
    expect((cache as unknown as { l2: { options: { operationTimeoutMs: number } } }).l2.options.operationTimeoutMs).toBe(5000);
    const lostTotal = async (reason: string) => {
      const text = await (await fetch(`${host.baseUrl}/metrics`)).text();
      const sample = new RegExp(`^credential_vault_cache_fanout_lost_total\\{reason="${reason}"\\} (\\d+)$`, 'm').exec(text);
      if (!sample) throw new Error(`no credential_vault_cache_fanout_lost_total{reason="${reason}"} on /metrics`);
      return Number(sample[1]);
    };
    const before = { disconnected: await lostTotal('disconnected'), heartbeat: await lostTotal('heartbeat') };
    // The subscription's connection drops (a Redis failover, a network blip) and comes back by itself.
    internals.bus.sub.disconnect(true);
    for (const deadline = Date.now() + 10_000; cache.health().status !== 'up' || (await lostTotal('disconnected')) === before.disconnected; await new Promise((r) => setTimeout(r, 50))) {
      if (Date.now() > deadline) throw new Error(`not counted and back within 10 s: ${JSON.stringify(cache.health())}`);
    }
    expect(await lostTotal('disconnected')).toBe(before.disconnected + 1);
    expect(await lostTotal('heartbeat')).toBe(before.heartbeat);
  });
});
