import { Test } from '@nestjs/testing';
import { HealthIndicatorService } from '@nestjs/terminus';
import { CredentialCache, type CredentialCacheHealth } from '@app/credentials';
import { HostRedis } from '../redis/host-redis';
import { CacheHealthIndicator } from './cache.health';

/** The redis tier's lib view: up (no cache call has failed), as while no read came since Redis went away. */
const LIB_SAYS_UP: CredentialCacheHealth = { tier: 'redis', invalidation: 'redis', status: 'up', details: { l2: 'up' } };

async function indicator(client: { status: string; ping: jest.Mock }) {
  const moduleRef = await Test.createTestingModule({
    providers: [
      CacheHealthIndicator,
      HealthIndicatorService,
      { provide: CredentialCache, useValue: { health: () => LIB_SAYS_UP, stats: () => ({ hitRate: 0 }) } },
      { provide: HostRedis, useValue: { enabled: true, client } },
    ],
  }).compile();
  return moduleRef.get(CacheHealthIndicator);
}

describe('CacheHealthIndicator (redis tier)', () => {
  it('a connection that is not ready is down at once: no PING waits in the offline queue for its timeout', async () => {
    const ping = jest.fn(() => new Promise<string>(() => undefined));
    const health = await indicator({ status: 'reconnecting', ping });
    const started = Date.now();
    const result = await health.isHealthy('cache');
    expect(Date.now() - started).toBeLessThan(200);
    expect(ping).not.toHaveBeenCalled();
    expect(result.cache).toMatchObject({ status: 'degraded', redis: 'down', l2: 'down' });
  });

  it('a ready connection whose PING does not come back within 1 s is down, l2 with it', async () => {
    const ping = jest.fn(() => new Promise<string>(() => undefined));
    const health = await indicator({ status: 'ready', ping });
    const started = Date.now();
    const result = await health.isHealthy('cache');
    expect(Date.now() - started).toBeLessThan(1_500);
    expect(result.cache).toMatchObject({ status: 'degraded', redis: 'down', l2: 'down' });
  });

  // A probe joins the PING still out: once that one settles — answered late, or failed (the connection dropped, its
  // retries spent) — the next probe must send its own, or readiness would stay down with Redis back.
  it('after the outstanding PING settles, late or failed, the next probe sends a new one: up once Redis answers', async () => {
    let answerLate!: (reply: string) => void;
    const ping = jest
      .fn()
      .mockReturnValueOnce(new Promise<string>((resolve) => (answerLate = resolve)))
      .mockRejectedValueOnce(new Error('Reached the max retries per request limit (which is 2). Refer to "maxRetriesPerRequest" option for details.'))
      .mockResolvedValue('PONG');
    const health = await indicator({ status: 'ready', ping });
    const probe = async () => ((await health.isHealthy('cache')).cache as Record<string, unknown>).redis;
    expect(await probe()).toBe('down');
    answerLate('PONG');
    await new Promise((resolve) => setImmediate(resolve));
    expect(await probe()).toBe('down');
    expect(await probe()).toBe('up');
    expect(ping).toHaveBeenCalledTimes(3);
  }, 10_000);

  it('a ready connection that answers PONG is up', async () => {
    const result = await (await indicator({ status: 'ready', ping: jest.fn().mockResolvedValue('PONG') })).isHealthy('cache');
    expect(result.cache).toMatchObject({ status: 'up', redis: 'up', l2: 'up' });
  });
});
