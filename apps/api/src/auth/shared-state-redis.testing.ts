import { randomBytes } from 'node:crypto';
import { closeRedisConnection } from '@app/credentials';
import { REDIS_URL } from '@app/testing';
import { Redis } from 'ioredis';
import type { AppConfig } from '../config/app.config';
import { HostRedis } from '../redis/host-redis';
import { SharedStateRedis } from './shared-state-redis';

/**
 * For int specs: a SharedStateRedis on the real Redis under a fresh key prefix (a missing Redis fails
 * the test), an admin connection to look at the keys, and `close` to delete them and disconnect.
 */
export async function realSharedStateRedis(name: string) {
  const prefix = `${name}-${randomBytes(4).toString('hex')}:`;
  const host = new HostRedis({ redis: { url: REDIS_URL, keyPrefix: prefix } } as AppConfig);
  const shared = new SharedStateRedis(host, { timeoutMs: 1000 });
  await shared.onApplicationBootstrap();
  if (host.client.status !== 'ready') throw new Error(`Redis is required for this test but is not reachable at ${REDIS_URL}`);
  const admin = new Redis(REDIS_URL);
  const close = async () => {
    const keys = await admin.keys(`${prefix}*`);
    if (keys.length) await admin.del(...keys);
    await closeRedisConnection(admin);
    await host.onApplicationShutdown();
  };
  return { prefix, shared, admin, close };
}
