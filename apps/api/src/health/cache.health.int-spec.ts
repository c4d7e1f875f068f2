/**
 * The host wires the shared cache from its environment: REDIS_URL → the redis tier on the host's
 * connections (readiness shows it), without it the in-process cache as before. Real Redis: a failure,
 * never a skip, when it is down.
 */
import { randomBytes } from 'node:crypto';
import { CredentialCache, CredentialsService, CredentialType } from '@app/credentials';
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
    host = await startTestHost(kind, { REDIS_URL, REDIS_KEY_PREFIX: prefix });
  });

  afterAll(async () => {
    await host?.close();
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length) await redis.del(...keys);
    redis.disconnect();
  });

  it('uses the redis tier with fan-out over Redis and reports it in readiness', async () => {
    const res = await fetch(`${host.baseUrl}/health/ready`);
    const body = (await res.json()) as { info: Record<string, Record<string, unknown>> };
    expect(res.status).toBe(200);
    expect(body.info.cache).toMatchObject({ status: 'up', tier: 'redis', invalidation: 'redis', invalidationConnected: true, l2: 'up', redis: 'up' });
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
});
