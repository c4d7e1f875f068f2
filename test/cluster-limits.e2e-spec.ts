import { randomBytes } from 'node:crypto';
import { createServer, Server, Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { EventEmitter2 } from '@nestjs/event-emitter';
import { Redis } from 'ioredis';
import { AUDIT_SUSPICIOUS_ACTIVITY_EVENT, AuditAction, AuditService, SuspiciousActivityEvent } from '@app/audit';
import { CredentialCache, CredentialsService, CredentialType } from '@app/credentials';
import { OAuthProviderRegistry } from '@app/oauth-refresh';
import { TestOAuthServer } from '@app/testing';
import { generateApiKey } from '../apps/api/src/auth/api-keys';
import { SharedStateRedis } from '../apps/api/src/auth/shared-state-redis';
import { HostRedis } from '../apps/api/src/redis/host-redis';
import { RedisPrefixGuard } from '../apps/api/src/redis/redis-prefix-guard';
import { REDIS_URL } from './support/database';
import type { TestHost } from './support/host';
import { deleteRedisKeys, jsonCaller, Replica, ReplicaPair, startReplica, startReplicaPair, stopReplicaPair } from './support/replica';

/**
 * Cluster-wide limits and counters: two replicas of the host (two Nest apps in this process) on one
 * PostgreSQL, one local vault and one Redis share the API rate limit, the suspicious-activity
 * counters and the OAuth refresh cooldowns — and keep serving, with per-process limits, when Redis
 * stops answering. PostgreSQL only: several replicas need a shared database (SQLite is the
 * single-process default). Redis being down is a failure here, never a skip.
 */

/** A TCP proxy in front of Redis that can be made to stop answering (a hung Redis, not a refused connection). */
class StallableRedisProxy {
  private stalled = false;
  private readonly sockets = new Set<Socket>();
  /** Requests held while stalled, sent on `resume()` (so the connection stays consistent). */
  private readonly held: { upstream: Socket; data: Buffer }[] = [];
  private constructor(private readonly server: Server) {}

  static async start(target: URL, port = 0): Promise<StallableRedisProxy> {
    const proxy: { self?: StallableRedisProxy } = {};
    const server = createServer((client) => proxy.self!.accept(client, target));
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
    proxy.self = new StallableRedisProxy(server);
    return proxy.self;
  }

  get url(): string {
    return `redis://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** From now on requests are held: the connection stays open and nothing answers. */
  stall(): void {
    this.stalled = true;
  }

  resume(): void {
    this.stalled = false;
    for (const { upstream, data } of this.held.splice(0)) upstream.write(data);
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise((r) => this.server.close(r));
  }

  private accept(client: Socket, target: URL): void {
    const upstream = new Socket();
    upstream.connect(Number(target.port || 6379), target.hostname);
    this.sockets.add(client).add(upstream);
    client.on('data', (d) => {
      if (this.stalled) this.held.push({ upstream, data: d });
      else upstream.write(d);
    });
    upstream.on('data', (d) => client.write(d));
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  }
}

describe('cluster-wide limits and counters (two replicas, PostgreSQL, one Redis)', () => {
  const prefix = `cvt-${randomBytes(4).toString('hex')}:`;
  const limit = 6;
  const key = generateApiKey('acme-ci', 'acme', ['credentials:read', 'credentials:write']);
  const other = generateApiKey('acme-other', 'acme', ['credentials:read']);
  // credentials:revoke: it revokes through PATCH status below.
  const oauthClient = generateApiKey('acme-app', 'acme', ['credentials:read', 'credentials:read-value', 'credentials:write', 'credentials:revoke']);
  /** Another client of the same app: the calls of the client-refusal case do not spend the first one's rate limit. */
  const oauthOps = generateApiKey('acme-ops', 'acme', ['credentials:read', 'credentials:read-value', 'credentials:write']);
  /** Lacks credentials:write: every POST is a denial the audit lib counts. */
  const prober = generateApiKey('acme-prober', 'acme', ['credentials:read']);
  let redis: Redis;
  let a: TestHost;
  let b: Replica;

  beforeAll(async () => {
    ({ a, b, redis } = (await startReplicaPair(
      {
        AUTH_API_KEYS: JSON.stringify([key.entry, other.entry, prober.entry, oauthClient.entry, oauthOps.entry]),
        RATE_LIMIT_PER_MINUTE: String(limit),
        OAUTH_PROACTIVE_ENABLED: 'false',
      },
      prefix,
    )) as Required<ReplicaPair>);
  });

  afterAll(() => stopReplicaPair({ a, b, redis }, prefix));

  const get = (base: string, path: string, apiKey = key.key) => fetch(`${base}${path}`, { headers: { 'x-api-key': apiKey } });
  /** As the OAuth client (values and writes), JSON both ways. */
  const call = jsonCaller(oauthClient.key);

  describe('API rate limit', () => {
    it('is shared: N requests spread over both replicas, then the next one is refused on either', async () => {
      const statuses: number[] = [];
      const remaining: (string | null)[] = [];
      for (let i = 0; i < limit; i++) {
        const r = await get(i % 2 === 0 ? a.baseUrl : b.baseUrl, '/v1/credentials');
        statuses.push(r.status);
        remaining.push(r.headers.get('x-ratelimit-remaining'));
      }
      expect(statuses).toEqual(Array(limit).fill(200));
      // The count is the cluster's: each replica's answer reflects the other's requests.
      expect(remaining).toEqual(Array.from({ length: limit }, (_, i) => String(limit - 1 - i)));
      for (const replica of [a.baseUrl, b.baseUrl]) {
        const refused = await get(replica, '/v1/credentials');
        expect(refused.status).toBe(429);
        const retryAfter = Number(refused.headers.get('retry-after'));
        expect(retryAfter).toBeGreaterThanOrEqual(59);
        expect(retryAfter).toBeLessThanOrEqual(60);
      }
      // Another client has its own budget, on both replicas.
      expect((await get(a.baseUrl, '/v1/credentials', other.key)).status).toBe(200);
      expect((await get(b.baseUrl, '/v1/credentials', other.key)).status).toBe(200);
    });

    it("counts an anonymous prober's 404s and 405s across both replicas, with its failed authentications, in Redis", async () => {
      const probe = (base: string, method: string, path: string) => fetch(`${base}${path}`, { method }).then((r) => r.status);
      const statuses: number[] = [];
      for (let i = 0; i < limit; i++) statuses.push(await probe(i % 2 === 0 ? a.baseUrl : b.baseUrl, i % 3 === 0 ? 'PUT' : 'GET', i % 3 === 0 ? '/v1/credentials' : `/scan-${i}`));
      expect(statuses).toEqual(Array.from({ length: limit }, (_, i) => (i % 3 === 0 ? 405 : 404)));
      // Past the cluster's count, on either replica, for a probe and for a key guess alike.
      expect([await probe(a.baseUrl, 'GET', '/scan-x'), await probe(b.baseUrl, 'DELETE', '/v1/credentials')]).toEqual([429, 429]);
      expect((await get(b.baseUrl, '/v1/credentials', 'cvk_nobody_invalid')).status).toBe(429);
      // A known client from the same IP is served.
      expect((await get(a.baseUrl, '/v1/credentials', other.key)).status).toBe(200);
    });
  });

  describe('suspicious-activity counters', () => {
    const eventually = async <T>(read: () => Promise<T> | T, done: (v: T) => boolean, ms = 5000): Promise<T> => {
      const until = Date.now() + ms;
      for (;;) {
        const v = await read();
        if (done(v) || Date.now() > until) return v;
        await new Promise((r) => setTimeout(r, 50));
      }
    };

    it('count denials seen by both replicas against one threshold and raise each alert once in the cluster', async () => {
      const seen: { replica: string; event: SuspiciousActivityEvent }[] = [];
      const replicas = { a: a.app, b: b.app };
      const listeners = Object.entries(replicas).map(([name, app]) => {
        const listener = (event: SuspiciousActivityEvent) => seen.push({ replica: name, event });
        app.get(EventEmitter2).on(AUDIT_SUSPICIOUS_ACTIVITY_EVENT, listener);
        return () => app.get(EventEmitter2).off(AUDIT_SUSPICIOUS_ACTIVITY_EVENT, listener);
      });
      try {
        const deny = (base: string) =>
          fetch(`${base}/v1/credentials`, {
            method: 'POST',
            headers: { 'x-api-key': prober.key, 'content-type': 'application/json' },
            body: JSON.stringify({ integrationId: 'jira', connectionId: 'j1', type: 'api_key', value: 'never-stored-0123456789' }),
          });
        // The default threshold is 5 denials per actor (and per resource) in 10 minutes: 3 here, 2 there —
        // neither replica alone reaches it.
        for (const base of [a.baseUrl, b.baseUrl, a.baseUrl, b.baseUrl, a.baseUrl]) expect((await deny(base)).status).toBe(403);
        await eventually(() => seen.length, (n) => n >= 2);
        // More denials on both within the window raise nothing new anywhere.
        for (const base of [b.baseUrl, a.baseUrl, b.baseUrl]) expect((await deny(base)).status).toBe(403);
        await Promise.all([a.app.get(AuditService).flush(), b.app.get(AuditService).flush()]);
        await new Promise((r) => setTimeout(r, 500));
        expect(seen.map((s) => s.event.kind).sort()).toEqual(['failures_by_actor', 'failures_by_resource']);
        expect(seen.find((s) => s.event.kind === 'failures_by_actor')!.event).toMatchObject({ tenantId: 'acme', actorId: 'api-key:acme-prober', count: 5, threshold: 5 });
        const rows = await eventually(
          () => a.app.get(AuditService).query({ tenantId: 'acme', action: AuditAction.SUSPICIOUS_ACTIVITY }),
          (p) => p.items.length >= 2,
        );
        expect(rows.items).toHaveLength(2);
        expect(a.app.get(AuditService).stats.suspiciousActivities + b.app.get(AuditService).stats.suspiciousActivities).toBe(2);
      } finally {
        listeners.forEach((off) => off());
      }
    });
  });

  describe('OAuth refresh cooldowns', () => {
    const system = { tenantId: 'system', actor: { id: 'system:setup' } };
    let idp: TestOAuthServer;
    /** The client-secret credential of provider `idp-wrong`: a secret the provider refuses until the test fixes it. */
    let wrongSecretId: string;

    beforeAll(async () => {
      idp = await TestOAuthServer.start();
      const credentials = a.app.get(CredentialsService);
      const secret = await credentials.store(system, { integrationId: 'idp', connectionId: 'client-secret', type: CredentialType.CUSTOM_SECRET, value: idp.clientSecret });
      const wrong = await credentials.store(system, { integrationId: 'idp-wrong', connectionId: 'client-secret', type: CredentialType.CUSTOM_SECRET, value: 'wrong-client-secret-0c7e' });
      wrongSecretId = wrong.id;
      // The provider registry is per replica (configuration); both point at the same provider.
      for (const app of [a.app, b.app]) {
        for (const [integrationId, credentialId] of [['idp', secret.id], ['idp-wrong', wrong.id]]) {
          app.get(OAuthProviderRegistry).register({
            integrationId,
            issuer: idp.issuer,
            clientId: idp.clientId,
            clientSecret: { credentialId, tenantId: 'system' },
            allowInsecureRequests: true, // the test server speaks http on loopback
          });
        }
      }
    });

    afterAll(async () => idp?.close());

    it('a connection cooling down after a failed refresh on one replica is cooling down on the other; new tokens clear it on both', async () => {
      const tokens = await idp.authorize('openid');
      expect((await call(a.baseUrl, 'POST', '/v1/oauth/connections/idp/user-42/tokens', tokens)).status).toBe(201);
      idp.resetCounters();
      idp.failTokenEndpoint({ kind: 'status', status: 400, error: 'invalid_request' });
      const rejected = { accessToken: tokens.access_token };
      const onB = await call(b.baseUrl, 'POST', '/v1/oauth/connections/idp/user-42/token-rejected', rejected);
      expect(onB.status).toBe(503);
      expect(idp.refreshCalls).toBe(1);
      // Replica A has never seen this failure, yet it does not call the provider.
      const onA = await call(a.baseUrl, 'POST', '/v1/oauth/connections/idp/user-42/token-rejected', rejected);
      expect(onA.status).toBe(503);
      expect(onA.body.message).toMatch(/cooling down/);
      expect(idp.refreshCalls).toBe(1);

      // New tokens stored through A end the cooldown everywhere: B refreshes at once.
      idp.clearFault();
      const again = await idp.authorize('openid');
      expect((await call(a.baseUrl, 'POST', '/v1/oauth/connections/idp/user-42/tokens', again)).status).toBe(201);
      const refreshed = await call(b.baseUrl, 'POST', '/v1/oauth/connections/idp/user-42/token-rejected', { accessToken: again.access_token });
      expect(refreshed.status).toBe(200);
      expect(refreshed.body.accessToken).not.toBe(again.access_token);
      expect(idp.refreshCalls).toBe(2);
    });

    it("a refusal of the OAuth client is answered OAUTH_CLIENT_REJECTED on every replica while its cooldown lasts, and only then: once fixed, a later outage's cooldown is an outage on both", async () => {
      const call = jsonCaller(oauthOps.key);
      const tokens = await idp.authorize('openid');
      const path = '/v1/oauth/connections/idp-wrong/user-43';
      expect((await call(a.baseUrl, 'POST', `${path}/tokens`, tokens)).status).toBe(201);
      idp.resetCounters();
      const answer = async (base: string, accessToken: string) => {
        const r = await call(base, 'POST', `${path}/token-rejected`, { accessToken });
        return [r.status, r.body.codeName];
      };
      expect(await answer(a.baseUrl, tokens.access_token)).toEqual([502, 'OAUTH_CLIENT_REJECTED']);
      // B never saw the refusal: it answers the shared cooldown with the refusal's code, not as a passing outage.
      expect(await answer(b.baseUrl, tokens.access_token)).toEqual([502, 'OAUTH_CLIENT_REJECTED']);
      expect(idp.refreshCalls).toBe(1);

      // The operator fixes the client secret; the user reconnects through B (new tokens end the cooldown): B refreshes.
      await a.app.get(CredentialsService).rotate(system, wrongSecretId, idp.clientSecret);
      const again = await idp.authorize('openid');
      expect((await call(b.baseUrl, 'POST', `${path}/tokens`, again)).status).toBe(201);
      const refreshed = await call(b.baseUrl, 'POST', `${path}/token-rejected`, { accessToken: again.access_token });
      expect(refreshed.status).toBe(200);

      // Later the provider is down for a while: B's failure starts a cooldown of another cause, which A answers as such.
      idp.failTokenEndpoint({ kind: 'status', status: 503, error: 'temporarily_unavailable' });
      try {
        expect(await answer(b.baseUrl, refreshed.body.accessToken)).toEqual([503, 'REFRESH_FAILED']);
        const onA = await call(a.baseUrl, 'POST', `${path}/token-rejected`, { accessToken: refreshed.body.accessToken });
        expect([onA.status, onA.body.codeName]).toEqual([503, 'REFRESH_FAILED']);
        expect(onA.body.message).toMatch(/cooling down/);
      } finally {
        idp.clearFault();
      }
    });
  });

  describe('when Redis stops answering', () => {
    let proxy: StallableRedisProxy;
    let c: Replica;
    const fresh = generateApiKey('acme-fresh', 'acme', ['credentials:read']);

    beforeAll(async () => {
      proxy = await StallableRedisProxy.start(new URL(REDIS_URL));
      c = await startReplica(a, { REDIS_URL: proxy.url, AUTH_API_KEYS: JSON.stringify([fresh.entry]) });
    });

    afterAll(async () => {
      proxy?.resume();
      await c?.app.close();
      await proxy?.close();
    });

    it('answers within the timeout, falls back to per-process limits (still enforced) and counts the fallbacks', async () => {
      const shared = c.app.get(SharedStateRedis);
      expect((await get(c.baseUrl, '/v1/credentials', fresh.key)).status).toBe(200); // through Redis
      expect(shared.fallbacks.rate_limit).toBe(0);
      proxy.stall();
      const started = Date.now();
      const first = await get(c.baseUrl, '/v1/credentials', fresh.key);
      const firstMs = Date.now() - started;
      expect(first.status).toBe(200);
      // One timed-out Redis call (250 ms), not a hung request.
      expect(firstMs).toBeLessThan(2000);
      const statuses = [first.status];
      for (let i = 1; i < limit + 1; i++) statuses.push((await get(c.baseUrl, '/v1/credentials', fresh.key)).status);
      // The per-process window starts at the stall: `limit` allowed, then refused.
      expect(statuses).toEqual([...Array(limit).fill(200), 429]);
      expect(shared.fallbacks.rate_limit).toBe(limit + 1);
      const metrics = await (await fetch(`${c.baseUrl}/metrics`)).text();
      expect(metrics).toMatch(new RegExp(`credential_vault_shared_state_fallbacks_total\\{component="rate_limit"\\} ${limit + 1}\\b`));
      // A denial is still counted for suspicious activity, in this process.
      const denied = await fetch(`${c.baseUrl}/v1/credentials`, { method: 'POST', headers: { 'x-api-key': fresh.key, 'content-type': 'application/json' }, body: '{}' });
      expect(denied.status).toBe(403);
      const until = Date.now() + 3000;
      while (shared.fallbacks.suspicious_activity === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
      expect(shared.fallbacks.suspicious_activity).toBeGreaterThan(0);
    });
  });

  describe('a replica with another REDIS_KEY_PREFIX on the same database and vault', () => {
    const otherPrefix = `cvt-other-${randomBytes(4).toString('hex')}:`;
    let c: Replica;
    let cClosed = false;

    beforeAll(async () => {
      c = await startReplica(a, { REDIS_KEY_PREFIX: otherPrefix });
    });

    afterAll(async () => {
      if (!cClosed) await c?.app.close();
      await deleteRedisKeys(redis, otherPrefix);
    });

    it('is kept out of the balancer (readiness 503); the replicas already serving stay in, degraded, and the metric counts it', async () => {
      // It would neither hear their cache evictions nor be heard: stale values after every write elsewhere.
      const newcomer = await fetch(`${c.baseUrl}/health/ready`);
      expect(newcomer.status).toBe(503);
      expect(JSON.stringify(await newcomer.json())).toContain(prefix);
      await a.app.get(RedisPrefixGuard).beat(); // their next heartbeat
      const established = await fetch(`${a.baseUrl}/health/ready`);
      expect(established.status).toBe(200);
      expect(((await established.json()) as { details: Record<string, unknown> }).details.redisPrefix).toMatchObject({ status: 'degraded', prefix, otherPrefixes: [otherPrefix] });
      // (One metrics registry in this process: the newest app's gauge, the newcomer's, is the one served.)
      expect(await (await fetch(`${c.baseUrl}/metrics`)).text()).toMatch(/^credential_vault_redis_prefix_conflicts 1$/m);
    });

    it('while it lasts, neither side serves a value from its cache: a rotate or revoke on one side is seen at once on the other', async () => {
      await a.app.get(RedisPrefixGuard).beat(); // A's next heartbeat: it knows of C
      const v1 = `v1-${randomBytes(8).toString('hex')}`;
      const v2 = `v2-${randomBytes(8).toString('hex')}`;
      const created = await call(a.baseUrl, 'POST', '/v1/credentials', { integrationId: 'github', connectionId: `prefix-conflict-${randomBytes(4).toString('hex')}`, type: 'api_key', value: v1 });
      expect(created.status).toBe(201);
      const id = created.body.id as string;
      // Each side reads it twice: were it caching, the second read would be a hit.
      for (const r of [a, c]) for (let i = 0; i < 2; i++) expect((await call(r.baseUrl, 'GET', `/v1/credentials/${id}/value`)).body.value).toBe(v1);

      // Rotated on C: C evicts under its own prefix only, and A reads the new value anyway.
      expect((await call(c.baseUrl, 'POST', `/v1/credentials/${id}/rotate`, { value: v2 })).status).toBe(200);
      await new Promise((r) => setTimeout(r, 300)); // the outbox delivered the event (on C: its eviction stays under C's prefix)
      expect((await call(a.baseUrl, 'GET', `/v1/credentials/${id}/value`)).body.value).toBe(v2);
      expect((await call(c.baseUrl, 'GET', `/v1/credentials/${id}/value`)).body.value).toBe(v2);

      // Revoked on A: C refuses it at once.
      const meta = await call(a.baseUrl, 'GET', `/v1/credentials/${id}`);
      expect((await call(a.baseUrl, 'PATCH', `/v1/credentials/${id}`, { status: 'revoked', expectedVersion: meta.body.rowVersion })).status).toBe(200);
      await new Promise((r) => setTimeout(r, 300));
      const onC = await call(c.baseUrl, 'GET', `/v1/credentials/${id}/value`);
      expect(onC).toMatchObject({ status: 409, body: { codeName: 'REVOKED' } });
      expect(JSON.stringify(onC.body)).not.toContain(v2);

      // Neither side's cache took anything meanwhile; each says why.
      for (const r of [a.app, c.app]) {
        expect(r.get(CredentialCache).health()).toMatchObject({ status: 'degraded', details: { message: expect.stringContaining('REDIS_KEY_PREFIX') } });
      }

      // C goes (its record is dropped rather than waited out): A caches again, from an emptied shared tier.
      await c.app.close();
      cClosed = true;
      const guard = a.app.get(RedisPrefixGuard);
      await redis.hdel(`credential-vault:deployment:${guard.identity}`, otherPrefix);
      await guard.beat();
      const cache = a.app.get(CredentialCache);
      for (const until = Date.now() + 5000; cache.health().status !== 'up' && Date.now() < until; ) await new Promise((r) => setTimeout(r, 50));
      expect(cache.health().status).toBe('up');
      const again = await call(a.baseUrl, 'POST', '/v1/credentials', { integrationId: 'github', connectionId: `prefix-conflict-${randomBytes(4).toString('hex')}`, type: 'api_key', value: v1 });
      await call(a.baseUrl, 'GET', `/v1/credentials/${again.body.id}/value`);
      const hits = cache.stats().hits;
      expect((await call(a.baseUrl, 'GET', `/v1/credentials/${again.body.id}/value`)).body.value).toBe(v1);
      expect(cache.stats().hits).toBe(hits + 1);
    });
  });

  it('starts and serves with per-process limits while Redis is down, and counts in Redis again once it is back', async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((r) => closed.close(r));
    const lonely = generateApiKey('acme-lonely', 'acme', ['credentials:read']);
    const d = await startReplica(a, { REDIS_URL: `redis://127.0.0.1:${port}`, AUTH_API_KEYS: JSON.stringify([lonely.entry]), RATE_LIMIT_PER_MINUTE: '2' });
    let back: StallableRedisProxy | undefined;
    try {
      const shared = d.app.get(SharedStateRedis);
      const statuses = [];
      for (let i = 0; i < 3; i++) statuses.push((await get(d.baseUrl, '/v1/credentials', lonely.key)).status);
      expect(statuses).toEqual([200, 200, 429]);
      expect(shared.fallbacks.rate_limit).toBe(3);
      // Redis comes back at that address: the replica reconnects and counts there again (a fresh window).
      back = await StallableRedisProxy.start(new URL(REDIS_URL), port);
      const ready = d.app.get(HostRedis).client;
      for (const until = Date.now() + 10_000; ready.status !== 'ready' && Date.now() < until; ) await new Promise((r) => setTimeout(r, 100));
      expect(ready.status).toBe('ready');
      await new Promise((r) => setTimeout(r, 1100)); // past the fallback period of the last failure
      expect((await get(d.baseUrl, '/v1/credentials', lonely.key)).status).toBe(200);
      expect(shared.fallbacks.rate_limit).toBe(3);
      expect(await redis.keys(`${prefix}rl:*`)).not.toHaveLength(0);
    } finally {
      // (Closed while Redis answers: HostRedis's shutdown waits for QUIT, which never settles while Redis is unreachable.)
      await d.app.close();
      await back?.close();
    }
  });

  it('leaves no API key, client, tenant, actor or resource identifier in its Redis keys or values', async () => {
    // Its namespaces only: the credential cache's keys are another part's business.
    const keys = (await Promise.all(['rl:', 'sa:', 'oauth-cd:'].map((ns) => redis.keys(`${prefix}${ns}*`)))).flat();
    expect(keys.length).toBeGreaterThan(0);
    const values = await Promise.all(
      keys.map(async (k) => {
        const type = await redis.type(k);
        if (type === 'string') return redis.get(k);
        if (type === 'zset') return (await redis.zrange(k, 0, -1)).join(' ');
        if (type === 'hash') return JSON.stringify(await redis.hgetall(k));
        return type;
      }),
    );
    const dump = `${keys.join('\n')}\n${values.join('\n')}`;
    for (const needle of [key.key, other.key, prober.key, 'acme', 'api-key:', '/v1/credentials', 'user-42', 'client-secret']) expect(dump).not.toContain(needle);
  });
});
