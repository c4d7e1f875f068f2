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

  it('a ready connection that answers PONG is up', async () => {
    const result = await (await indicator({ status: 'ready', ping: jest.fn().mockResolvedValue('PONG') })).isHealthy('cache');
    expect(result.cache).toMatchObject({ status: 'up', redis: 'up', l2: 'up' });
  });
});
