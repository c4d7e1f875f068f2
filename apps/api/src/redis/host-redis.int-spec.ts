import { randomUUID } from 'node:crypto';
import { createServer } from 'node:net';
import { Logger } from '@nestjs/common';
import { CapturingLogger, REDIS_URL } from '@app/testing';
import { SharedStateRedis } from '../auth/shared-state-redis';
import { loadAppConfig } from '../config/app.config';
import { HostRedis } from './host-redis';
import { RedisPrefixGuard } from './redis-prefix-guard';

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

  /**
   * The start lines (SharedState's PING, RedisPrefix's first check) read the connection's outage: a command sent while
   * it is between attempts is given up as MaxRetriesPerRequestError — the cause is the connection's, not the command's.
   * Refused credentials (a user the shared Redis does not know) and a server that is not Redis are each named as such,
   * never as an unreachable Redis, however the host's start falls in the connection's attempts.
   */
  it.each([
    ['refused credentials', 'WRONGPASS'],
    ['a server that is not Redis', 'protocol'],
  ])('names %s in the start lines when the command connection is between attempts (a command given up, not answered)', async (_label, kind) => {
    const logger = new CapturingLogger();
    Logger.overrideLogger(logger);
    // Answers anything with a line that is not the Redis protocol, and closes.
    const notRedis = createServer((socket) => socket.once('data', () => socket.end('HTTP/1.1 400 Bad Request\r\n\r\n')));
    await new Promise<void>((resolve) => notRedis.listen(0, '127.0.0.1', resolve));
    const user = `cvt-no-such-user-${randomUUID().slice(0, 8)}`;
    const url = new URL(REDIS_URL);
    url.username = user;
    url.password = 'pw-MARKER-5e1';
    const redisUrl = kind === 'WRONGPASS' ? url.toString() : `redis://${user}:pw-MARKER-5e1@127.0.0.1:${(notRedis.address() as { port: number }).port}`;
    const redis = new HostRedis(loadAppConfig({ REDIS_URL: redisUrl, REDIS_KEY_PREFIX: `cvtest:${randomUUID()}:` }));
    try {
      const client = redis.client;
      await new Promise<void>((resolve) => client.once('reconnecting', () => resolve()));
      expect(client.status).toBe('reconnecting');
      await new SharedStateRedis(redis).onApplicationBootstrap();
      await new RedisPrefixGuard(redis, `test-${randomUUID()}`).beat();
      const start = logger.lines.filter((l) => /at start|other REDIS_KEY_PREFIX/.test(l)).map((l) => l.replace(/ (SharedState|RedisPrefix)$/, ''));
      expect(start).toEqual(
        kind === 'WRONGPASS'
          ? [
              'warn Redis refused the credentials of REDIS_URL at start (WRONGPASS); limits and counters stay per process until it accepts them',
              "warn could not check the deployment's other REDIS_KEY_PREFIX values: Redis refused the credentials of REDIS_URL (WRONGPASS)",
            ]
          : [
              'warn the server at REDIS_URL is not Redis at start (its answer is not the Redis protocol: a wrong host or port?); limits and counters stay per process until it is',
              "warn could not check the deployment's other REDIS_KEY_PREFIX values: the server at REDIS_URL is not Redis (its answer is not the Redis protocol)",
            ],
      );
      expect(logger.lines.join('\n')).not.toMatch(/MARKER-5e1|no-such-user/);
    } finally {
      await redis.onApplicationShutdown();
      await new Promise<void>((resolve) => notRedis.close(() => resolve()));
      Logger.overrideLogger(new Logger());
      // Closed between attempts: ioredis' 2 s disconnect timer runs out on its closed socket (see above).
      await new Promise((resolve) => setTimeout(resolve, 2_100));
    }
  }, 15_000);

  it('names a bad REDIS_URL without echoing it', () => {
    expect(() => loadAppConfig({ REDIS_URL: 'http://user:s3cret@host' })).toThrow(/REDIS_URL: must be a redis:\/\/ or rediss:\/\/ URL/);
    expect(() => loadAppConfig({ REDIS_URL: 'http://user:s3cret@host' })).not.toThrow(/s3cret/);
  });
});
