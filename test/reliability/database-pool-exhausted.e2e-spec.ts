import { randomBytes } from 'node:crypto';
import { getDataSourceToken } from '@nestjs/typeorm';
import type { DataSource, QueryRunner } from 'typeorm';
import { generateApiKey } from '../../apps/api/src/auth/api-keys';
import { startTestHost, type TestHost } from '../support/host';

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
      ROTATION_EXPIRY_MONITOR_ENABLED: 'false',
      ROTATION_CHECK_ENABLED: 'false',
      OAUTH_PROACTIVE_ENABLED: 'false',
      AUDIT_ANCHOR_ENABLED: 'false',
      AUDIT_RETENTION_ENABLED: 'false',
    });
  }, 60_000);
  afterAll(() => host?.close());

  const call = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${host.baseUrl}${path}`, {
      method,
      headers: { 'x-api-key': admin.key, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(30_000),
    });
    return { status: res.status, retryAfter: res.headers.get('retry-after'), body: (await res.json()) as Record<string, unknown> };
  };

  it('answers 503 DATABASE_POOL_EXHAUSTED naming DATABASE_POOL_SIZE, logged once without the value, and serves again once connections come free', async () => {
    const created = await call('POST', '/v1/credentials', { integrationId: 'github', connectionId: 'pool', type: 'api_key', value });
    expect(created.status).toBe(201);

    // Take every connection of the pool (the cache's LISTEN connection, without Redis, holds one of them).
    const dataSource = host.app.get<DataSource>(getDataSourceToken(), { strict: false });
    const pool = (dataSource.driver as unknown as { master: { totalCount: number; idleCount: number; options: { max: number } } }).master;
    const held: QueryRunner[] = [];
    while (pool.totalCount < pool.options.max || pool.idleCount > 0) {
      const runner = dataSource.createQueryRunner();
      await runner.connect();
      held.push(runner);
    }
    let released = false;
    const release = async () => {
      if (released) return;
      released = true;
      await Promise.all(held.map((r) => r.release()));
    };
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
});
