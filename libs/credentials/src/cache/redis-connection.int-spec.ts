/** `closeRedisConnection` against real ioredis connections: real Redis, and a port nothing listens on. */
import { randomBytes } from 'node:crypto';
import { connect as connectTcp, createServer, type Socket } from 'node:net';
import { REDIS_URL } from '@app/testing';
import { Redis, type RedisOptions } from 'ioredis';
import { closeRedisConnection, redisCommandRefusal } from './redis-connection';

/** A port nothing listens on (one the kernel just gave out and took back). */
async function deadPort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const port = (probe.address() as { port: number }).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

describe('closeRedisConnection', () => {
  const opened: Redis[] = [];
  /**
   * A connection stopped between reconnection attempts gets ioredis's disconnect timer (2 s) on its socket already
   * closed (see closeRedisConnection): the file ends once those have run, or a jest worker that ran it last is
   * force-killed ('failed to exit gracefully').
   */
  let timersUntil = 0;
  const stoppedBetweenAttempts = (r: Redis) => (timersUntil = Math.max(timersUntil, Date.now() + (r.options.disconnectTimeout ?? 2_000)));
  afterAll(async () => {
    await Promise.all(opened.map((r) => closeRedisConnection(r)));
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, timersUntil + 100 - Date.now())));
  });
  const connect = async (url = REDIS_URL, options: RedisOptions = {}) => {
    const r = new Redis(url, { maxRetriesPerRequest: 1, ...options });
    r.on('error', () => undefined);
    opened.push(r);
    if (url === REDIS_URL) {
      await r.ping().catch((e: Error) => {
        throw new Error(`Redis is required for this test but is not reachable at ${REDIS_URL} (${e.message})`);
      });
    }
    return r;
  };

  it('closes a connection two owners close at once with one QUIT, and resolves for both once its socket has closed', async () => {
    const r = await connect();
    const quit = jest.spyOn(r, 'quit');
    const disconnect = jest.spyOn(r, 'disconnect');
    expect(await Promise.all([closeRedisConnection(r), closeRedisConnection(r)])).toEqual([true, true]);
    expect(r.status).toBe('end');
    expect(quit).toHaveBeenCalledTimes(1);
    expect(disconnect).not.toHaveBeenCalled();
  });

  it('closes a connection opened again after it was closed', async () => {
    const r = await connect();
    await closeRedisConnection(r);
    await r.connect();
    expect(r.status).toBe('ready');
    expect(await closeRedisConnection(r)).toBe(true);
    expect(r.status).toBe('end');
  });

  it('closes a connection opened again after it was stopped between reconnection attempts (no end came: the stop is not taken for this close)', async () => {
    const r = await connect(`redis://127.0.0.1:${await deadPort()}`, { retryStrategy: () => 200 });
    await new Promise<void>((resolve) => r.once('reconnecting', () => resolve()));
    expect(await closeRedisConnection(r)).toBe(true);
    stoppedBetweenAttempts(r);
    r.options.port = Number(new URL(REDIS_URL).port || 6379); // Redis is there now
    await r.connect();
    expect(r.status).toBe('ready');
    expect(await closeRedisConnection(r)).toBe(true);
    expect(r.status).toBe('end');
  });

  it('stops a connection between reconnection attempts at once: no attempt follows', async () => {
    const r = await connect(`redis://127.0.0.1:${await deadPort()}`, { retryStrategy: () => 200 });
    await new Promise<void>((resolve) => r.once('reconnecting', () => resolve()));
    let attempts = 0;
    r.on('reconnecting', () => attempts++);
    const started = Date.now();
    expect(await closeRedisConnection(r, 1000)).toBe(true);
    stoppedBetweenAttempts(r);
    expect(Date.now() - started).toBeLessThan(100);
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(attempts).toBe(0);
  });

  it('gives up at its deadline when Redis stops answering (no QUIT reply, its side never closes): false, in time', async () => {
    // A proxy to Redis that stops carrying bytes either way and closes nothing: a stalled Redis as the client sees one.
    const { hostname, port } = new URL(REDIS_URL);
    const sockets: Socket[] = [];
    let stalled = false;
    const proxy = createServer({ allowHalfOpen: true }, (client) => {
      const upstream = connectTcp(Number(port || 6379), hostname);
      sockets.push(client, upstream);
      client.on('data', (b: Buffer) => void (stalled || upstream.write(b)));
      upstream.on('data', (b: Buffer) => void (stalled || client.write(b)));
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    try {
      const r = await connect(`redis://127.0.0.1:${(proxy.address() as { port: number }).port}`, { retryStrategy: () => null });
      await r.ping();
      stalled = true;
      const disconnect = jest.spyOn(r, 'disconnect');
      const started = Date.now();
      expect(await closeRedisConnection(r, 300)).toBe(false);
      expect(Date.now() - started).toBeGreaterThanOrEqual(290);
      expect(Date.now() - started).toBeLessThan(600);
      expect(disconnect).toHaveBeenCalledTimes(1); // after QUIT's half of the deadline
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => proxy.close(() => resolve()));
    }
  });
});

/**
 * `redisCommandRefusal` on the replies the shared Redis really sends to a user whose ACL leaves out a command, keys or
 * channels — directly and inside a script (the cache's eviction script PUBLISHes): each named, with what was refused.
 * The forms of 7.2+ and Valkey are pinned in redis-connection.spec.ts; either way the words for a key or a channel are
 * the same.
 */
describe('redisCommandRefusal against a real Redis (an ACL user without SET, keys outside a prefix, no channels)', () => {
  const id = randomBytes(4).toString('hex');
  const user = `cvt-refusal-${id}`;
  const password = `pw-${randomBytes(8).toString('hex')}`;
  const prefix = `cvt-refusal-${id}:`;
  let admin: Redis;
  let limited: Redis;

  beforeAll(async () => {
    admin = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
    await admin.call('ACL', 'SETUSER', user, 'reset', 'on', `>${password}`, `~${prefix}*`, 'resetchannels', '+@all', '-set');
    const url = new URL(REDIS_URL);
    url.username = user;
    url.password = password;
    limited = new Redis(url.toString(), { maxRetriesPerRequest: 1 });
  });

  afterAll(async () => {
    await closeRedisConnection(limited);
    await admin.call('ACL', 'DELUSER', user);
    await closeRedisConnection(admin);
  });

  const refusal = (work: Promise<unknown>) =>
    work.then(
      () => 'allowed',
      (e: unknown) => redisCommandRefusal(e) ?? `not a refusal: ${(e as Error).message}`,
    );

  it('names the command, the key or the channel refused, and a command a script calls', async () => {
    expect(await refusal(limited.set(`${prefix}k`, '1'))).toBe('Redis refused SET for lack of permission (NOPERM)');
    expect(await refusal(limited.get('cvt-elsewhere'))).toBe('Redis refused GET for lack of permission on a key (NOPERM)');
    expect(await refusal(limited.publish(`${prefix}channel`, 'x'))).toBe('Redis refused PUBLISH for lack of permission on a channel (NOPERM)');
    expect(await refusal(limited.eval("return redis.call('PUBLISH', ARGV[1], 'x')", 0, `${prefix}channel`))).toBe(
      "Redis refused a command in EVAL's script for lack of permission on a channel (ERR)",
    );
    expect(await refusal(limited.eval("return redis.call('GET', ARGV[1])", 0, 'cvt-elsewhere'))).toBe("Redis refused a command in EVAL's script for lack of permission on a key (ERR)");
    // 7.0 does not say which command; 7.2 and later do.
    expect(await refusal(limited.eval("return redis.call('SET', KEYS[1], '1')", 1, `${prefix}k`))).toMatch(/^Redis refused (?:a command|SET) in EVAL's script for lack of permission \(ERR\)$/);
    expect(await refusal(limited.get(`${prefix}k`))).toBe('allowed');
  });
});
