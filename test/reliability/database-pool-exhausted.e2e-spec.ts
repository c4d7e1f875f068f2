import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { getDataSourceToken } from '@nestjs/typeorm';
import type { DataSource, QueryRunner } from 'typeorm';
import { generateApiKey } from '../../apps/api/src/auth/api-keys';
import { callHost, startTestHost, type TestHost, ROTATION_JOBS_OFF } from '../support/host';

/**
 * Every connection of the host's PostgreSQL pool is busy (held here, as long transactions or slow queries would
 * hold them) for longer than DATABASE_CONNECT_TIMEOUT_MS. Before, the request waiting for one got the generic
 * 503 "the database is unavailable", which tells an operator nothing about the pool.
 */
describe('the host when every PostgreSQL pool connection is busy', () => {
  let host: TestHost;
  const admin = generateApiKey('pool-admin', 'acme', ['admin']);
  const value = `sk_${randomBytes(12).toString('hex')}`;

  beforeAll(async () => {
    host = await startTestHost('postgres', {
      DATABASE_POOL_SIZE: '3',
      DATABASE_CONNECT_TIMEOUT_MS: '1000',
      AUTH_API_KEYS: JSON.stringify([admin.entry]),
      CREDENTIALS_INTEGRATIONS: 'github',
      ...ROTATION_JOBS_OFF,
      OAUTH_PROACTIVE_ENABLED: 'false',
      AUDIT_ANCHOR_ENABLED: 'false',
      AUDIT_RETENTION_ENABLED: 'false',
    });
  }, 60_000);
  afterAll(() => host?.close());

  const call = (method: string, path: string, body?: unknown) => callHost(host, admin.key, method, path, body);

  /** Takes every connection of the host's pool (the cache's LISTEN connection, without Redis, holds one of them). */
  const holdEveryConnection = async () => {
    const dataSource = host.app.get<DataSource>(getDataSourceToken(), { strict: false });
    const pool = (dataSource.driver as unknown as { master: { totalCount: number; idleCount: number; options: { max: number } } }).master;
    const held: QueryRunner[] = [];
    while (pool.totalCount < pool.options.max || pool.idleCount > 0) {
      const runner = dataSource.createQueryRunner();
      await runner.connect();
      held.push(runner);
    }
    let released = false;
    return async () => {
      if (released) return;
      released = true;
      await Promise.all(held.map((r) => r.release()));
    };
  };

  it('answers 503 DATABASE_POOL_EXHAUSTED naming DATABASE_POOL_SIZE, logged once without the value, and serves again once connections come free', async () => {
    const created = await call('POST', '/v1/credentials', { integrationId: 'github', connectionId: 'pool', type: 'api_key', value });
    expect(created.status).toBe(201);

    const release = await holdEveryConnection();
    try {
      const before = host.logs.length;
      const busy = await call('GET', '/v1/credentials');
      expect(busy).toMatchObject({
        status: 503,
        retryAfter: '1',
        body: { code: 6008, codeName: 'DATABASE_POOL_EXHAUSTED', message: expect.stringContaining('DATABASE_POOL_SIZE') },
      });
      const lines = host.logs.slice(before).filter((l) => l.includes(String(busy.body.errorId)));
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain('DATABASE_POOL_EXHAUSTED');
      expect(host.logs.join('\n')).not.toContain(value);
    } finally {
      await release();
    }

    const list = await call('GET', '/v1/credentials');
    expect(list.status).toBe(200);
    expect(list.body.items).toEqual([expect.objectContaining({ id: created.body.id })]);
    expect((await call('GET', `/v1/credentials/${String(created.body.id)}/value`)).body.value).toBe(value);
    expect((await call('GET', '/health/ready')).status).toBe(200);
  }, 60_000);

  /** The pool families' samples on /metrics (`name{labels}` → value), and the text promtool reads. */
  const scrapePool = async () => {
    const text = await (await fetch(`${host.baseUrl}/metrics`)).text();
    const lines = text.split('\n').filter((l) => /^(# (HELP|TYPE) )?credential_vault_database_pool_/.test(l));
    const samples = new Map(lines.filter((l) => !l.startsWith('#')).map((l) => [l.slice(0, l.lastIndexOf(' ')), Number(l.slice(l.lastIndexOf(' ') + 1))]));
    return { text: `${lines.join('\n')}\n`, get: (series: string) => samples.get(`credential_vault_database_pool_${series}`) };
  };

  it('shows the pool on /metrics: every connection busy, a caller waiting, its DATABASE_POOL_EXHAUSTED counted; back once released', async () => {
    // This scrape also makes the outbox and certificate gauges read the database, not again for 15 s: a scrape below
    // does not wait for a connection itself.
    const before = await scrapePool();
    expect(before.get('max_connections{pool="main"}')).toBe(3);
    expect(before.get('waiting{pool="main"}')).toBe(0);
    const exhausted = before.get('exhausted_total{pool="main"}')!;
    expect(exhausted).toEqual(expect.any(Number));
    // The advisory-lock sessions are a pool of their own (DATABASE_LOCK_SESSIONS, 8 by default).
    expect(before.get('max_connections{pool="locks"}')).toBe(8);
    expect(before.get('waiting{pool="locks"}')).toBe(0);
    expect(before.get('exhausted_total{pool="locks"}')).toBe(0);
    // Prometheus's own tool reads these series without a problem, lint included.
    expect(() => execFileSync('promtool', ['check', 'metrics'], { input: before.text, stdio: 'pipe' })).not.toThrow();

    const release = await holdEveryConnection();
    try {
      const full = await scrapePool();
      expect([full.get('connections{pool="main",state="busy"}'), full.get('connections{pool="main",state="idle"}')]).toEqual([3, 0]);

      let settled = false;
      const busy = call('GET', '/v1/credentials').finally(() => (settled = true));
      let waiting = await scrapePool();
      // Until the request queues for a connection (it waits DATABASE_CONNECT_TIMEOUT_MS there).
      while (!settled && waiting.get('waiting{pool="main"}') === 0) waiting = await scrapePool();
      expect(waiting.get('waiting{pool="main"}')).toBe(1);
      expect(waiting.get('exhausted_total{pool="main"}')).toBe(exhausted);

      expect((await busy).body.codeName).toBe('DATABASE_POOL_EXHAUSTED');
      // The caller it refused waits no more. The host's own background work (the outbox's poll, a job) may be queued
      // behind the held connections meanwhile, for DATABASE_CONNECT_TIMEOUT_MS (1 s) at most: seen once in a CI
      // rehearsal as a waiter right after the 503. Until none is left.
      let after = await scrapePool();
      for (const deadline = Date.now() + 10_000; after.get('waiting{pool="main"}') !== 0 && Date.now() < deadline; ) after = await scrapePool();
      expect(after.get('waiting{pool="main"}')).toBe(0);
      // Its exhaustion counted (and any such background caller's that waited in vain).
      expect(after.get('exhausted_total{pool="main"}')).toBeGreaterThanOrEqual(exhausted + 1);
    } finally {
      await release();
    }

    const released = await scrapePool();
    expect(released.get('connections{pool="main",state="busy"}')).toBeLessThan(3);
    expect(released.get('connections{pool="main",state="idle"}')).toBeGreaterThan(0);
    expect(released.get('waiting{pool="main"}')).toBe(0);
    expect(released.get('exhausted_total{pool="main"}')).toBe(exhausted + 1);
    expect((await call('GET', '/v1/credentials')).status).toBe(200);
  }, 60_000);
});
