import { randomBytes } from 'node:crypto';
import { CredentialsService, CredentialType } from '@app/credentials';
import { createServer, type Server } from 'node:http';
import { REDIS_URL } from './support/database';
import { generateApiKey } from '../apps/api/src/auth/api-keys';
import { callHost, startTestHost, TestHost } from './support/host';
import { startRedisForwarder, type RedisForwarder } from './support/redis-forwarder';
import { deleteRedisKeys, requireRedis } from './support/replica';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Line {
  level: number;
  context?: string;
  msg: string;
}

/** The shared Redis's URL, logging in as `user` with `password`. */
function redisUrlAs(user: string, password: string): string {
  const url = new URL(REDIS_URL);
  url.username = user;
  url.password = password;
  return url.toString();
}

/** A SQLite host logging in to the shared Redis as `user`, made first with `+@all` and then the ACL `rules`. */
async function startHostAsAclUser(user: string, password: string, prefix: string, rules: string[], env: Record<string, string> = {}): Promise<TestHost> {
  const admin = await requireRedis();
  try {
    await admin.call('ACL', 'SETUSER', user, 'on', `>${password}`, '~*', '&*', '+@all', ...rules);
  } finally {
    await admin.quit();
  }
  return startTestHost('sqlite', { REDIS_URL: redisUrlAs(user, password), REDIS_KEY_PREFIX: prefix, LOG_LEVEL: 'info', ...env });
}

/** Closes `host`, then deletes its ACL user and its keys. */
async function closeAclUserHost(host: TestHost | undefined, user: string, prefix: string): Promise<void> {
  await host?.close();
  const admin = await requireRedis();
  await admin.call('ACL', 'DELUSER', user);
  await deleteRedisKeys(admin, prefix);
  await admin.quit();
}

/** Readiness' status and its cache check's details. */
async function readiness(host: TestHost): Promise<{ status: number; cache: Record<string, unknown> }> {
  const res = await fetch(`${host.baseUrl}/health/ready`);
  return { status: res.status, cache: ((await res.json()) as { details: { cache: Record<string, unknown> } }).details.cache };
}

/** Nothing in `lines` says Redis does not answer or is not reachable, nor names the user or the password. */
function expectNoOutageNorLogin(lines: Line[], user: string, password: string): void {
  const all = lines.map((l) => JSON.stringify(l)).join('\n');
  expect(all).not.toMatch(/does not answer|not reachable/);
  expect(all).not.toContain(password);
  expect(all).not.toContain(user);
}

/**
 * What an operator reads while Redis is down: the host's Redis connections retry every ~2 s for as long as it lasts;
 * each connection says once that Redis does not answer (again each minute it stays down) and once that it answers
 * again — it wrote a warning per failed reconnect, several a second at first and one every 2 s per connection after.
 */
describe('the host log while Redis is unreachable (SQLite host, REDIS_URL through a forwarder that closes)', () => {
  const prefix = `cvt-log-${randomBytes(4).toString('hex')}:`;
  const ctx = { tenantId: `t-${randomBytes(4).toString('hex')}`, actor: { id: 'user:test' } };
  let host: TestHost;
  let proxy: RedisForwarder;
  const redisLines = (from: number): Line[] =>
    host.logs
      .slice(from)
      .map((l) => JSON.parse(l) as Line)
      .filter((l) => l.context === 'Redis');
  const allLines = (from: number): Line[] => host.logs.slice(from).map((l) => JSON.parse(l) as Line);
  const ready = async () => ((await (await fetch(`${host.baseUrl}/health/ready`)).json()) as { details: { cache: { redis?: string } } }).details.cache.redis;

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

  /**
   * While Redis is down each credential change's cache eviction waits in the outbox, delivered again with its backoff
   * until Redis takes it. The log says so once when it starts (how many events wait), again each minute at most, and
   * once when evictions go through again — it said `Outbox event <id> (credential.deleted) failed delivery #<n>: …` at
   * every retry of every event: an outage of minutes, thousands of lines.
   */
  it('says once that cache evictions wait (with the outbox events waiting), nothing at each retry, and once that they go through again', async () => {
    const svc = host.app.get(CredentialsService);
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await svc.store(ctx, { integrationId: 'stripe', connectionId: `c${i}`, type: CredentialType.API_KEY, value: `sk_${randomBytes(12).toString('hex')}` })).id);
    expect(await ready()).toBe('up');

    await proxy.close();
    for (const until = Date.now() + 10_000; (await ready()) !== 'down' && Date.now() < until; ) await sleep(200);
    const from = host.logs.length;
    // Five `credential.deleted` events, each eviction failing while Redis is away.
    await svc.deleteMany(ctx, ids);
    await sleep(8_000); // the outbox retries each after ~1, 2, 4 s (jittered): two or three failed deliveries of each by now

    const during = allLines(from);
    expect(during.filter((l) => l.context === 'OutboxDispatcher' && l.level >= 40).map((l) => l.msg)).toEqual([]);
    const waiting = during.filter((l) => l.context === 'CredentialCache' && /cache evictions/.test(l.msg));
    expect(waiting.map((l) => l.level)).toEqual([40]);
    const held = /^cache evictions cannot be announced to the other replicas \([A-Za-z]+(?:\([A-Z_]+\))?\): (\d+) outbox events? waits?; /.exec(waiting[0].msg);
    expect(held).not.toBeNull();
    // Each delete commits on its own: the first eviction may fail before the last delete wrote its event.
    expect(Number(held![1])).toBeGreaterThanOrEqual(1);

    proxy = await startRedisForwarder(new URL(REDIS_URL), proxy.port);
    // Each event comes back after its backoff (~8 s by its fourth try): then its eviction goes through.
    let back: Line[] = [];
    for (const until = Date.now() + 40_000; back.length === 0 && Date.now() < until; await sleep(200)) {
      back = allLines(from).filter((l) => l.context === 'CredentialCache' && /cache evictions are announced again/.test(l.msg));
    }
    expect(back.map((l) => l.level)).toEqual([30]);
    expect(back[0].msg).toMatch(/^cache evictions are announced again after \d+ s \(\d+ failed deliver(?:y|ies)\)$/);
    await sleep(1_000);
    expect(allLines(from).filter((l) => l.context === 'CredentialCache' && /cache evictions/.test(l.msg))).toHaveLength(2);
  }, 90_000);
});

/**
 * Credentials Redis refuses (a user it does not know: WRONGPASS, as for a wrong password; the shared test Redis has no
 * password, and ioredis goes on when a password is given to a server without one, so an unknown user is the refusal
 * the shared Redis can give): the log says so, once per connection, and so does readiness — not that Redis does not answer.
 */
describe('the host log while Redis refuses the credentials (SQLite host, REDIS_URL with a user Redis does not know)', () => {
  const prefix = `cvt-auth-${randomBytes(4).toString('hex')}:`;
  const user = `cvt-no-such-user-${randomBytes(4).toString('hex')}`;
  const password = `pw-${randomBytes(8).toString('hex')}`;
  let host: TestHost;
  /** This host's lines (every host of the file writes to one list). */
  let started: number;
  const lines = () => host.logs.map((l) => JSON.parse(l) as Line & { time: number }).filter((l) => l.time >= started);

  beforeAll(async () => {
    await requireRedis().then((r) => r.quit());
    started = Date.now();
    host = await startTestHost('sqlite', { REDIS_URL: redisUrlAs(user, password), REDIS_KEY_PREFIX: prefix, LOG_LEVEL: 'info' });
  }, 60_000);

  afterAll(async () => {
    await host?.close();
    // Its Redis connections were closed between reconnection attempts (Redis never accepts them): ioredis armed its
    // disconnect timer (2 s by default) on each socket already closed (see closeRedisConnection). The file ends once
    // those have run, or a jest worker that ran it last is force-killed ('failed to exit gracefully').
    await new Promise((r) => setTimeout(r, 2_100));
  });

  it('says once per connection that Redis refused the credentials (never that it does not answer), naming no user or password; readiness says so, degraded', async () => {
    await new Promise((r) => setTimeout(r, 3_000)); // a dozen refused connects per connection by now
    const redis = lines().filter((l) => l.context === 'Redis');
    const names = [...new Set(redis.map((l) => l.msg.split(':')[0]))];
    expect(names).toContain('commands');
    expect(redis.map((l) => ({ level: l.level, msg: l.msg })).sort((a, b) => a.msg.localeCompare(b.msg))).toEqual(
      names.sort().map((name) => ({ level: 40, msg: `${name}: WRONGPASS: Redis refused the credentials of REDIS_URL; retrying (logged again each minute it lasts, and once they are accepted)` })),
    );
    expectNoOutageNorLogin(lines(), user, password);

    const res = await fetch(`${host.baseUrl}/health/ready`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { status: string; details: { cache: Record<string, unknown> } };
    expect(body.details.cache).toMatchObject({ status: 'degraded', redis: 'down', l2: 'down', message: 'Redis refused the credentials of REDIS_URL: reads bypass the shared cache' });
  }, 30_000);
});

/**
 * A Redis user whose ACL does not allow a command the host runs (here PING, which readiness and the start check send):
 * Redis answers and accepts the credentials, so neither readiness nor the log may say it does not answer — they said
 * `Redis does not answer` and `Redis is not reachable at start (ReplyError(NOPERM))`, sending the operator to the network.
 */
describe('the host log and readiness while Redis refuses a command for lack of permission (ACL user without PING)', () => {
  const prefix = `cvt-perm-${randomBytes(4).toString('hex')}:`;
  const user = `cvt-noperm-${randomBytes(4).toString('hex')}`;
  const password = `pw-${randomBytes(8).toString('hex')}`;
  let host: TestHost | undefined;
  let started: number;
  const lines = () => host!.logs.map((l) => JSON.parse(l) as Line & { time: number }).filter((l) => l.time >= started);

  beforeAll(async () => {
    started = Date.now();
    host = await startHostAsAclUser(user, password, prefix, ['-ping']);
  }, 60_000);

  afterAll(() => closeAclUserHost(host, user, prefix));

  it('readiness and the start line say Redis refused PING for lack of permission (NOPERM), naming no user or password', async () => {
    expect(await readiness(host!)).toMatchObject({
      status: 200,
      cache: { status: 'degraded', redis: 'down', message: 'Redis refused PING for lack of permission (NOPERM): give the REDIS_URL user the commands the host runs' },
    });
    expect(lines().filter((l) => l.context === 'SharedState').map((l) => l.msg)).toEqual([
      'Redis refused PING at start for lack of permission (NOPERM): give the REDIS_URL user the commands the host runs',
    ]);
    expectNoOutageNorLogin(lines(), user, password);
  }, 30_000);
});

/**
 * REDIS_URL naming a server that is not Redis (a wrong port: here one answering as an HTTP server does to bytes it
 * cannot parse): it answers at once, and what it answers is not the Redis protocol (ioredis' ParserError). The log
 * and readiness say that — they said `Redis does not answer`, sending the operator to the network or a firewall.
 */
describe('the host log and readiness while REDIS_URL names a server that is not Redis (an HTTP server on that port)', () => {
  let host: TestHost | undefined;
  let server: Server;
  let started: number;
  const lines = () => host!.logs.map((l) => JSON.parse(l) as Line & { time: number }).filter((l) => l.time >= started);

  beforeAll(async () => {
    // Node's HTTP server: to the Redis client's bytes it answers 400 Bad Request and closes, so the client's next
    // writes on that socket fail too (EPIPE, ECONNRESET) — the same outage, not Redis gone.
    server = createServer((_req, res) => res.end());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    started = Date.now();
    host = await startTestHost('sqlite', { REDIS_URL: `redis://127.0.0.1:${port}`, REDIS_KEY_PREFIX: `cvt-http-${randomBytes(4).toString('hex')}:`, LOG_LEVEL: 'info' });
  }, 60_000);

  afterAll(async () => {
    await host?.close();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    // As above: connections closed between reconnection attempts leave ioredis' 2 s disconnect timers to run out.
    await new Promise((r) => setTimeout(r, 2_100));
  });

  it('says once per connection that the server at REDIS_URL is not Redis (never that it does not answer); readiness says so, degraded', async () => {
    await new Promise((r) => setTimeout(r, 3_000)); // several refused exchanges per connection by now
    const redis = lines().filter((l) => l.context === 'Redis');
    const names = [...new Set(redis.map((l) => l.msg.split(':')[0]))];
    expect(names).toContain('commands');
    expect(redis.map((l) => ({ level: l.level, msg: l.msg })).sort((a, b) => a.msg.localeCompare(b.msg))).toEqual(
      names.sort().map((name) => ({
        level: 40,
        msg: `${name}: ParserError: the server at REDIS_URL answers, not in the Redis protocol (a wrong host or port? another service listens there); reconnecting (logged again each minute it lasts, and once Redis answers)`,
      })),
    );
    expect(lines().map((l) => l.msg).join('\n')).not.toMatch(/does not answer/);

    expect(await readiness(host!)).toMatchObject({
      status: 200,
      cache: { status: 'degraded', redis: 'down', l2: 'down', message: 'The server at REDIS_URL is not Redis (its answer is not the Redis protocol): reads bypass the shared cache' },
    });
  }, 30_000);
});

/**
 * REDIS_URL naming a port where nothing listens (a wrong port, Redis not started): every connect is refused at once.
 * Readiness and the start line say so, with the address — they said `Redis does not answer` and `Redis is not
 * reachable at start (MaxRetriesPerRequestError)`, which names neither the cause nor where. Never the URL's user or password.
 */
describe('readiness and the start line while nothing listens at REDIS_URL (a closed port; a user and password in the URL)', () => {
  const user = `cvt-user-${randomBytes(4).toString('hex')}`;
  const password = `pw-${randomBytes(8).toString('hex')}`;
  let host: TestHost | undefined;
  let port: number;
  let started: number;
  const lines = () => host!.logs.map((l) => JSON.parse(l) as Line & { time: number }).filter((l) => l.time >= started);

  beforeAll(async () => {
    // A port just freed: nothing listens there now.
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as { port: number }).port;
    await new Promise((r) => server.close(r));
    started = Date.now();
    host = await startTestHost('sqlite', { REDIS_URL: `redis://${user}:${password}@127.0.0.1:${port}`, REDIS_KEY_PREFIX: `cvt-refused-${randomBytes(4).toString('hex')}:`, LOG_LEVEL: 'info' });
  }, 60_000);

  afterAll(async () => {
    await host?.close();
    // As above: connections closed between reconnection attempts leave ioredis' 2 s disconnect timers to run out.
    await new Promise((r) => setTimeout(r, 2_100));
  });

  it('readiness and the start line name the cause and the address (connection refused (ECONNREFUSED) at host:port), never the user or password', async () => {
    const cause = `connection refused (ECONNREFUSED) at 127.0.0.1:${port}`;
    expect(await readiness(host!)).toMatchObject({
      status: 200,
      cache: { status: 'degraded', redis: 'down', l2: 'down', message: `Redis is not reachable: ${cause}: reads bypass the shared cache` },
    });
    expect(lines().filter((l) => l.context === 'SharedState').map((l) => l.msg)).toEqual([`Redis is not reachable at start: ${cause}; limits and counters stay per process until it is`]);
    expect(lines().filter((l) => l.context === 'RedisPrefix').map((l) => l.msg)).toEqual([`could not check the deployment's other REDIS_KEY_PREFIX values: Redis is not reachable: ${cause}`]);
    const all = lines().map((l) => JSON.stringify(l)).join('\n');
    expect(all).not.toContain(password);
    expect(all).not.toContain(user);
  }, 30_000);
});

/**
 * A Redis user whose ACL allows PING (so readiness's PING answers) but not the commands behind the shared state and the
 * cache: EVALSHA and EVAL (rate limits, counters, the prefix check, the cache's scripts), PUBLISH (its heartbeats and
 * evictions), SET. Each is named as a refusal for lack of permission, with the command, once — they said `Redis call
 * failed (ReplyError(NOPERM))` once a second under traffic, `… REDIS_KEY_PREFIX values: ReplyError`, and readiness `no
 * invalidation heartbeat heard within 3000 ms`, naming no command and no permission.
 */
describe('the host log and readiness while the REDIS_URL user may run PING but not EVAL, EVALSHA, PUBLISH or SET', () => {
  const prefix = `cvt-acl-${randomBytes(4).toString('hex')}:`;
  const user = `cvt-acl-${randomBytes(4).toString('hex')}`;
  const password = `pw-${randomBytes(8).toString('hex')}`;
  const caller = generateApiKey('acl-ops', `t-${randomBytes(4).toString('hex')}`, ['admin']);
  let host: TestHost | undefined;
  let started: number;
  const lines = () => host!.logs.map((l) => JSON.parse(l) as Line & { time: number }).filter((l) => l.time >= started);

  beforeAll(async () => {
    started = Date.now();
    host = await startHostAsAclUser(user, password, prefix, ['-eval', '-evalsha', '-publish', '-spublish', '-set'], { AUTH_API_KEYS: JSON.stringify([caller.entry]) });
  }, 60_000);

  afterAll(() => closeAclUserHost(host, user, prefix));

  it('names each refused command once, as a lack of permission; requests are still served; no user or password', async () => {
    // Requests over 3 s: each one's rate limit (EVALSHA) is refused, answered per process.
    const statuses: number[] = [];
    for (let i = 0; i < 15; i++) {
      statuses.push((await callHost(host!, caller.key, 'GET', '/v1/credentials')).status);
      await sleep(200);
    }
    expect(statuses.every((s) => s === 200)).toBe(true);

    const warned = (context: string) => lines().filter((l) => l.context === context && l.level >= 40).map((l) => l.msg);
    expect(warned('SharedState')).toEqual([
      'Redis refused EVALSHA for lack of permission (NOPERM): limits and counters stay per process; give the REDIS_URL user the commands the host runs (logged again each minute it lasts)',
    ]);
    expect(warned('RedisPrefix')).toEqual(["could not check the deployment's other REDIS_KEY_PREFIX values: Redis refused EVAL for lack of permission (NOPERM)"]);
    expect(warned('CredentialCache')).toEqual([
      'no cache invalidation heartbeat heard within 3000 ms of start (Redis refused PUBLISH for lack of permission (NOPERM)): reads bypass the cache until one is heard',
    ]);
    expect(await readiness(host!)).toMatchObject({
      status: 200,
      cache: { status: 'degraded', redis: 'up', message: 'no invalidation heartbeat heard within 3000 ms (Redis refused PUBLISH for lack of permission (NOPERM)): reads bypass the cache' },
    });
    expectNoOutageNorLogin(lines(), user, password);
  }, 30_000);
});
