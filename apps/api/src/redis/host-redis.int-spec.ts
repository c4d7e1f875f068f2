import { randomUUID } from 'node:crypto';
import { Logger } from '@nestjs/common';
import { REDIS_URL } from '@app/testing';
import { loadAppConfig } from '../config/app.config';
import { HostRedis } from './host-redis';

describe('HostRedis (real Redis)', () => {
  it('is disabled without REDIS_URL and refuses to connect', () => {
    const redis = new HostRedis(loadAppConfig({}));
    expect(redis.enabled).toBe(false);
    expect(() => redis.client).toThrow(/REDIS_URL is unset/);
  });

  it('shares one command connection, gives subscribers their own, and closes all at shutdown', async () => {
    const prefix = `cvtest:${randomUUID()}:`;
    const redis = new HostRedis(loadAppConfig({ REDIS_URL, REDIS_KEY_PREFIX: prefix }));
    expect(redis.enabled).toBe(true);
    expect(redis.keyPrefix).toBe(prefix);
    expect(redis.client).toBe(redis.client);

    const sub = redis.subscriber();
    const received = new Promise<string>((resolve) => sub.on('message', (_channel, message) => resolve(message)));
    await sub.subscribe(`${prefix}channel`);
    await redis.client.publish(`${prefix}channel`, 'hello');
    await expect(received).resolves.toBe('hello');

    await redis.client.set(`${prefix}k`, 'v', 'PX', 10_000);
    await expect(redis.client.get(`${prefix}k`)).resolves.toBe('v');
    await redis.client.del(`${prefix}k`);

    const client = redis.client;
    await redis.onApplicationShutdown();
    expect(client.status).toBe('end');
    expect(sub.status).toBe('end');
  });

  // console.warn is the process's: a host embedded in an application, or started again in one (as tests do), left it
  // routed after its shutdown — the application's own console.warn calls went through the closed host's routing.
  it("routes ioredis' console warnings while it has connections, and gives console.warn back at shutdown; a host started again routes them again", async () => {
    const own = console.warn;
    const logged = jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    const written = jest.fn();
    console.warn = written;
    const skipped = `Skipping the ready check because INFO command fails: "NOPERM User someone has no permissions to run the 'info' command".`;
    try {
      for (let start = 1; start <= 2; start++) {
        const redis = new HostRedis(loadAppConfig({ REDIS_URL }));
        try {
          expect(redis.client.status).not.toBe('end');
          console.warn(skipped);
          expect(logged).toHaveBeenCalledTimes(start);
          expect(written).toHaveBeenCalledTimes(start - 1);
        } finally {
          await redis.onApplicationShutdown();
        }
        expect(console.warn).toBe(written);
        console.warn(skipped);
        expect(written).toHaveBeenCalledTimes(start);
      }
    } finally {
      console.warn = own;
      logged.mockRestore();
    }
  });

  it('shuts down promptly while Redis is unreachable (a queued QUIT would never settle)', async () => {
    // Port 1 on loopback: nothing listens, every connect is refused and ioredis keeps reconnecting.
    const redis = new HostRedis(loadAppConfig({ REDIS_URL: 'redis://127.0.0.1:1' }));
    const client = redis.client;
    const sub = redis.subscriber();
    await new Promise((resolve) => setTimeout(resolve, 100));
    const started = Date.now();
    await redis.onApplicationShutdown();
    const closedAt = Date.now();
    expect(closedAt - started).toBeLessThan(1_500);
    // And it stops trying: no reconnect attempt after shutdown — watched until ioredis's disconnect timeout (2 s) has
    // passed: closed between attempts, each connection got that timer on its socket already closed (see
    // closeRedisConnection). Nothing of them outlives the case (a jest worker that ran this file last was force-killed).
    let attempts = 0;
    for (const c of [client, sub]) c.on('reconnecting', () => attempts++);
    const disconnectTimeoutMs = client.options.disconnectTimeout ?? 2_000;
    await new Promise((resolve) => setTimeout(resolve, closedAt + disconnectTimeoutMs + 100 - Date.now()));
    expect(attempts).toBe(0);
  });

  it('names a bad REDIS_URL without echoing it', () => {
    expect(() => loadAppConfig({ REDIS_URL: 'http://user:s3cret@host' })).toThrow(/REDIS_URL: must be a redis:\/\/ or rediss:\/\/ URL/);
    expect(() => loadAppConfig({ REDIS_URL: 'http://user:s3cret@host' })).not.toThrow(/s3cret/);
  });
});
