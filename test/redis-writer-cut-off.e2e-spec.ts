import { randomBytes } from 'node:crypto';
import { Outbox } from '@app/common';
import { REDIS_URL } from '@app/testing';
import type { Redis } from 'ioredis';
import { generateApiKey } from '../apps/api/src/auth/api-keys';
import { startTestHost, type TestHost } from './support/host';
import { startRedisForwarder, type RedisForwarder } from './support/redis-forwarder';
import { jsonCaller, requireRedis, startReplica, stopReplicaPair, type Replica } from './support/replica';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Two replicas on one PostgreSQL schema and the shared Redis, A's Redis path through a forwarder that closes: A alone is
 * cut off from Redis while B is not. A credential rotated on A meanwhile cannot have its eviction announced: A's outbox
 * event for it waits (deferred to its backoff) and A keeps the key among the evictions to send again. What B may serve
 * while A is cut off is the limit SECURITY.md leaves open (B hears its own heartbeats); once A reaches Redis again, B
 * serves the new value within a few seconds — not after its cache TTL (5 minutes here) nor the event's next retry — and
 * the event is delivered.
 */
describe('a credential changed on a replica cut off from Redis (2 replicas, PostgreSQL, the shared Redis)', () => {
  const prefix = `cvt-cutoff-${randomBytes(4).toString('hex')}:`;
  const user = generateApiKey('acme-app', 'acme', ['credentials:read', 'credentials:write', 'credentials:read-value']);
  const call = jsonCaller(user.key);
  let proxy: RedisForwarder;
  let a: TestHost;
  let b: Replica | undefined;
  let redis: Redis;

  beforeAll(async () => {
    redis = await requireRedis();
    proxy = await startRedisForwarder(new URL(REDIS_URL));
    a = await startTestHost('postgres', { REDIS_URL: `redis://127.0.0.1:${proxy.port}`, REDIS_KEY_PREFIX: prefix, AUTH_API_KEYS: JSON.stringify([user.entry]) });
    b = await startReplica(a, { REDIS_URL });
  }, 90_000);

  afterAll(async () => {
    await stopReplicaPair({ a, b, redis }, prefix);
    await proxy?.close();
  });

  it('B serves the new value within seconds of A reaching Redis again, and the eviction event is delivered', async () => {
    const created = await call(a.baseUrl, 'POST', '/v1/credentials', { integrationId: 'stripe', connectionId: 'c1', type: 'api_key', value: 'before-cut' });
    expect(created.status).toBe(201);
    const id = created.body.id as string;
    const readB = async () => (await call(b!.baseUrl, 'GET', `/v1/credentials/${id}/value`)).body?.value as string | undefined;
    const redisOfA = async () => ((await (await fetch(`${a.baseUrl}/health/ready`)).json()) as { details: { cache: { redis?: string } } }).details.cache.redis;
    expect(await readB()).toBe('before-cut'); // cached on B now

    await proxy.close();
    for (const until = Date.now() + 10_000; (await redisOfA()) !== 'down' && Date.now() < until; ) await sleep(200);
    expect((await call(a.baseUrl, 'POST', `/v1/credentials/${id}/rotate`, { value: 'after-cut' })).status).toBe(200);
    await sleep(4_000); // the event's first deliveries fail meanwhile (if A's dispatcher has it)

    proxy = await startRedisForwarder(new URL(REDIS_URL), proxy.port);
    const back = Date.now();
    let seen = await readB();
    while (seen !== 'after-cut' && Date.now() - back < 15_000) {
      await sleep(200);
      seen = await readB();
    }
    expect(seen).toBe('after-cut');
    expect(Date.now() - back).toBeLessThan(15_000);
    // And the outbox event is delivered, whichever replica's dispatcher took it.
    const outbox = a.app.get(Outbox);
    for (const until = Date.now() + 40_000; (await outbox.backlog()).pending > 0 && Date.now() < until; ) await sleep(500);
    expect((await outbox.backlog()).pending).toBe(0);
  }, 90_000);
});
