import { randomUUID } from 'node:crypto';
import { Logger } from '@nestjs/common';
import { HealthIndicatorService } from '@nestjs/terminus';
import { CapturingLogger, REDIS_URL } from '@app/testing';
import { loadAppConfig } from '../config/app.config';
import { RedisPrefixHealthIndicator } from '../health/redis-prefix.health';
import { HostRedis } from './host-redis';
import { deploymentIdentity, RedisPrefixGuard } from './redis-prefix-guard';

/**
 * Replicas of one deployment with different REDIS_KEY_PREFIX values, on real Redis: each guard is one replica
 * (its own connection and prefix), its heartbeats driven by the test. Redis missing fails this (nothing is seen).
 */
describe('RedisPrefixGuard (real Redis)', () => {
  const run = randomUUID().slice(0, 8);
  const intervalMs = 100; // prefixes not renewed for 300 ms are gone
  const logger = new CapturingLogger();
  const connections: HostRedis[] = [];
  const replica = (prefix: string, identity: string) => {
    const redis = new HostRedis(loadAppConfig({ REDIS_URL, REDIS_KEY_PREFIX: `${run}-${prefix}:` }));
    connections.push(redis);
    const guard = new RedisPrefixGuard(redis, identity, { intervalMs });
    return { guard, redis, health: new RedisPrefixHealthIndicator(new HealthIndicatorService(), guard) };
  };
  const lines = (text: string) => logger.lines.filter((l) => l.includes(text));

  beforeAll(() => Logger.overrideLogger(logger));
  afterAll(async () => {
    await Promise.all(connections.map((c) => c.onApplicationShutdown()));
  });

  it('a second prefix for the same deployment: the newcomer is down, the established replicas degraded, each says so once', async () => {
    const identity = `test-${run}-1`;
    const a = replica('a', identity);
    const a2 = replica('a', identity);
    const b = replica('b', identity);
    await a.guard.beat();
    await a2.guard.beat();
    expect([a.guard.status().role, a2.guard.status().role]).toEqual(['alone', 'alone']);

    await b.guard.beat();
    expect(b.guard.status()).toMatchObject({ prefix: `${run}-b:`, otherPrefixes: [`${run}-a:`], role: 'newcomer' });
    await a.guard.beat();
    await a2.guard.beat();
    // Same prefix: the same side; both were first.
    for (const r of [a, a2]) expect(r.guard.status()).toMatchObject({ otherPrefixes: [`${run}-b:`], role: 'established' });

    // Readiness reads the last heartbeat: no Redis call per probe.
    const evals = jest.spyOn(b.redis.client, 'eval');
    expect(b.health.isHealthy()).toMatchObject({ redisPrefix: { status: 'down', prefix: `${run}-b:`, otherPrefixes: [`${run}-a:`], role: 'newcomer' } });
    expect(a.health.isHealthy()).toMatchObject({ redisPrefix: { status: 'degraded', otherPrefixes: [`${run}-b:`], role: 'established' } });
    expect(evals).not.toHaveBeenCalled();
    evals.mockRestore();

    await a.guard.beat(); // unchanged: not logged again
    expect(lines(`REDIS_KEY_PREFIX "${run}-b:" is live`)).toHaveLength(2); // a and a2
    expect(lines(`REDIS_KEY_PREFIX "${run}-a:" is live`)).toEqual([expect.stringMatching(/^error .*This replica came later: readiness fails/)]);

    // b stops (its field is no longer renewed): after 3 intervals a is alone again, and says so.
    for (const until = Date.now() + 5000; a.guard.status().role !== 'alone' && Date.now() < until; ) {
      await new Promise((r) => setTimeout(r, intervalMs));
      await a.guard.beat();
    }
    expect(a.guard.status()).toMatchObject({ otherPrefixes: [], role: 'alone' });
    expect(a.health.isHealthy()).toMatchObject({ redisPrefix: { status: 'up' } });
    expect(lines(`no other REDIS_KEY_PREFIX is live for this deployment any more (this replica's: "${run}-a:")`)).toHaveLength(1);
  });

  it('a replica once ready stays in when Redis lost the record and the later prefix is recorded first again', async () => {
    const identity = `test-${run}-5`;
    const a = replica('a', identity);
    const b = replica('b', identity);
    await a.guard.beat();
    await b.guard.beat();
    await a.redis.client.del(`credential-vault:deployment:${identity}`); // a Redis restart without persistence
    await b.guard.beat();
    await a.guard.beat();
    await b.guard.beat();
    // Both serve (degraded, still alerting) rather than the replicas that were serving leaving the balancer.
    expect([a.guard.status().role, b.guard.status().role]).toEqual(['established', 'established']);
  });

  it('tells the credential cache when another prefix is live and when none is, once each; a heartbeat that fails lifts nothing', async () => {
    const identity = `test-${run}-6`;
    const told: Array<string | undefined> = [];
    const cache = { setUnheardReplicas: (reason: string | undefined) => void told.push(reason) };
    const redis = new HostRedis(loadAppConfig({ REDIS_URL, REDIS_KEY_PREFIX: `${run}-a:` }));
    connections.push(redis);
    const a = new RedisPrefixGuard(redis, identity, { intervalMs }, cache);
    const b = replica('b', identity);
    await a.beat();
    expect(told).toEqual([]);
    await b.guard.beat();
    await a.beat();
    await a.beat();
    expect(told).toEqual([`REDIS_KEY_PREFIX "${run}-b:" is live for this deployment beside "${run}-a:": its cache evictions are not heard here`]);

    // Redis stops answering this replica past the prefixes' lifetime: readiness forgets the conflict, the cache stays fenced.
    const evals = jest.spyOn(redis.client, 'eval').mockRejectedValue(new Error('ECONNRESET'));
    await new Promise((r) => setTimeout(r, 4 * intervalMs));
    await a.beat();
    expect(a.status().role).toBe('alone');
    expect(told).toHaveLength(1);
    evals.mockRestore();

    // B is gone (its record expires): the next heartbeat that answers lifts it.
    for (const until = Date.now() + 5000; told.length < 2 && Date.now() < until; ) {
      await new Promise((r) => setTimeout(r, intervalMs));
      await a.beat();
    }
    expect(told).toEqual([expect.any(String), undefined]);
  });

  it('another deployment (another database or vault) may use another prefix on the same Redis', async () => {
    const a = replica('a', `test-${run}-2`);
    const b = replica('b', `test-${run}-3`);
    await a.guard.beat();
    await b.guard.beat();
    await a.guard.beat();
    expect([a.guard.status().role, b.guard.status().role]).toEqual(['alone', 'alone']);
  });

  it('records only prefixes and times, under a fixed key outside every prefix, which expires', async () => {
    const identity = `test-${run}-4`;
    const a = replica('a', identity);
    await a.guard.beat();
    const key = `credential-vault:deployment:${identity}`;
    const fields = await a.redis.client.hgetall(key);
    expect(Object.keys(fields)).toEqual([`${run}-a:`]);
    expect(fields[`${run}-a:`]).toMatch(/^\d+:\d+$/);
    const ttl = await a.redis.client.pttl(key);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(3 * intervalMs);
  });

  it('names a deployment by its database location and vault URL, never by a user or password', () => {
    const pg = (url: string, schema?: string, vault = 'https://v.vault.azure.net') =>
      deploymentIdentity(loadAppConfig({ DATABASE_TYPE: 'postgres', DATABASE_URL: url, ...(schema ? { DATABASE_SCHEMA: schema } : {}) }), vault);
    const base = pg('postgres://app:secret@db.example:5432/cv', 'tenant1');
    expect(pg('postgres://other:changed@DB.example/cv', 'tenant1')).toBe(base);
    expect(pg('postgres://app:secret@db.example:5432/cv', 'tenant1', 'https://V.vault.azure.net/')).toBe(base);
    expect(pg('postgres://app:secret@db.example:5432/cv', 'tenant2')).not.toBe(base);
    expect(pg('postgres://app:secret@db.example:5432/cv', 'tenant1', 'https://w.vault.azure.net')).not.toBe(base);
    expect(base).toMatch(/^[A-Za-z0-9_-]{32}$/);
    // libpq's Unix-socket forms, with a user and without: one deployment, not another host's.
    const socket = pg('postgresql://app:secret@/cv?host=/run/postgresql', 'tenant1');
    expect(pg('postgresql:///cv?host=/run/postgresql', 'tenant1')).toBe(socket);
    expect(socket).not.toBe(base);
  });
});
