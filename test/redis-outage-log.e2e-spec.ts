import { randomBytes } from 'node:crypto';
import { REDIS_URL } from './support/database';
import { startTestHost, TestHost } from './support/host';
import { startRedisForwarder, type RedisForwarder } from './support/redis-forwarder';
import { deleteRedisKeys, requireRedis } from './support/replica';

interface Line {
  level: number;
  context?: string;
  msg: string;
}

/**
 * What an operator reads while Redis is down: the host's Redis connections retry every ~2 s for as long as it lasts;
 * each connection says once that Redis does not answer (again each minute it stays down) and once that it answers
 * again — it wrote a warning per failed reconnect, several a second at first and one every 2 s per connection after.
 */
describe('the host log while Redis is unreachable (SQLite host, REDIS_URL through a forwarder that closes)', () => {
  const prefix = `cvt-log-${randomBytes(4).toString('hex')}:`;
  let host: TestHost;
  let proxy: RedisForwarder;
  const redisLines = (from: number): Line[] =>
    host.logs
      .slice(from)
      .map((l) => JSON.parse(l) as Line)
      .filter((l) => l.context === 'Redis');

  beforeAll(async () => {
    await requireRedis().then((r) => r.quit());
    proxy = await startRedisForwarder(new URL(REDIS_URL));
    host = await startTestHost('sqlite', { REDIS_URL: `redis://127.0.0.1:${proxy.port}`, REDIS_KEY_PREFIX: prefix, LOG_LEVEL: 'info' });
  }, 60_000);

  afterAll(async () => {
    await host?.close();
    await proxy?.close();
    const redis = await requireRedis();
    await deleteRedisKeys(redis, prefix);
    await redis.quit();
  });

  it('says once per connection that Redis does not answer, and once that it answers again', async () => {
    const ready = async () => ((await (await fetch(`${host.baseUrl}/health/ready`)).json()) as { details: { cache: { redis?: string } } }).details.cache.redis;
    expect(await ready()).toBe('up');
    const from = host.logs.length;
    await proxy.close();
    await new Promise((r) => setTimeout(r, 8_000)); // ioredis retries after 50, 100, … ms: ~25 attempts per connection by now
    expect(await ready()).toBe('down');
    const down = redisLines(from);
    const names = [...new Set(down.map((l) => l.msg.split(':')[0]))];
    expect(names.length).toBeGreaterThan(0);
    // One warning per connection, naming no address or password.
    expect(down.filter((l) => l.level === 40).map((l) => l.msg.split(':')[0]).sort()).toEqual([...names].sort());
    for (const l of down) expect(l.msg).toMatch(/^[a-z-]+: (ECONNREFUSED|ECONNRESET|EPIPE|[A-Za-z]+Error): Redis does not answer/);

    proxy = await startRedisForwarder(new URL(REDIS_URL), proxy.port);
    for (const until = Date.now() + 15_000; (await ready()) !== 'up' && Date.now() < until; ) await new Promise((r) => setTimeout(r, 200));
    await new Promise((r) => setTimeout(r, 500));
    const back = redisLines(from).filter((l) => /answers again/.test(l.msg));
    expect(back.map((l) => ({ level: l.level, name: l.msg.split(':')[0] })).sort((a, b) => a.name.localeCompare(b.name))).toEqual(
      [...names].sort().map((name) => ({ level: 30, name })),
    );
  }, 60_000);
});
