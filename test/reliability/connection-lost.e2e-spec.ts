import { randomBytes } from 'node:crypto';
import { Client } from 'pg';
import { AUDIT_RETENTION_JOB } from '@app/audit';
import { ScheduledJobs } from '@app/common';
import { CredentialsService, CredentialType } from '@app/credentials';
import { OAuthProviderRegistry } from '@app/oauth-refresh';
import { POSTGRES_URL } from '@app/testing';
import { DataSource } from 'typeorm';
import { generateApiKey } from '../../apps/api/src/auth/api-keys';
import { callHost, startTestHost, type TestHost, ROTATION_JOBS_OFF } from '../support/host';

/**
 * PostgreSQL ends the session of a query outside any transaction while the query is in flight (pg_terminate_backend,
 * a failover): the query gets 57P01. The request answers a typed 503 it may retry (DATABASE_CONNECTION_LOST,
 * Retry-After) — it answered an untyped 503 — and the pool replaces the session by itself: the next request is
 * answered. Only this host's sessions are ended (its own application_name), while they wait on a table lock.
 */
describe('the host when PostgreSQL ends the session of a query outside a transaction', () => {
  let host: TestHost;
  const admin = generateApiKey('lost-admin', 'acme', ['admin']);
  const appName = `cv-lost-${randomBytes(4).toString('hex')}`;

  beforeAll(async () => {
    host = await startTestHost('postgres', {
      DATABASE_URL: `${POSTGRES_URL}${POSTGRES_URL.includes('?') ? '&' : '?'}application_name=${appName}`,
      AUTH_API_KEYS: JSON.stringify([admin.entry]),
      CREDENTIALS_INTEGRATIONS: 'github,idp',
      ...ROTATION_JOBS_OFF,
      OAUTH_PROACTIVE_ENABLED: 'false',
      AUDIT_ANCHOR_ENABLED: 'false',
      // Scheduled, never due during the test: run by hand.
      AUDIT_RETENTION_CRON: '0 3 1 1 *',
    });
  }, 60_000);
  afterAll(async () => host?.close());

  const call = (method: string, path: string, body?: unknown) => callHost(host, admin.key, method, path, body);

  /** Runs `work` while every table of the host's schema is locked, and ends this host's sessions that wait on the lock. */
  const terminatedInFlight = async <T>(work: () => Promise<T>): Promise<{ ended: number; result: T }> => {
    const c = new Client({ connectionString: POSTGRES_URL });
    await c.connect();
    const schema = host.env.DATABASE_SCHEMA;
    try {
      await c.query('BEGIN');
      const tables = (await c.query(`SELECT tablename FROM pg_tables WHERE schemaname = $1`, [schema])).rows.map((r) => `"${schema}"."${r.tablename}"`);
      await c.query(`LOCK TABLE ${tables.join(', ')} IN ACCESS EXCLUSIVE MODE`);
      const result = work();
      let ended = 0;
      for (let i = 0; i < 200 && ended === 0; i++) {
        await new Promise((r) => setTimeout(r, 25));
        const rows = await c.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'`, [appName]);
        ended = rows.rowCount ?? 0;
      }
      await c.query('ROLLBACK');
      return { ended, result: await result };
    } finally {
      await c.end();
    }
  };

  const until = async (check: () => Promise<boolean>, ms: number) => {
    const deadline = Date.now() + ms;
    while (!(await check()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    return check();
  };

  it('answers each read a typed 503 with Retry-After, changes nothing, and answers the next request', async () => {
    const value = `sk_${randomBytes(12).toString('hex')}`;
    const created = await call('POST', '/v1/credentials', { integrationId: 'github', connectionId: 'a', type: 'api_key', value });
    expect(created.status).toBe(201);
    const id = created.body.id as string;
    const secret = await host.app.get(CredentialsService).store(
      { tenantId: 'system', actor: { id: 'system:setup' } },
      { integrationId: 'idp', connectionId: 'client-secret', type: CredentialType.CUSTOM_SECRET, value: `cs_${randomBytes(8).toString('hex')}` },
    );
    // Never called: the stored access token is fresh.
    host.app.get(OAuthProviderRegistry).register({ integrationId: 'idp', tokenEndpoint: 'http://127.0.0.1:9/token', clientId: 'c', clientSecret: { credentialId: secret.id, tenantId: 'system' }, allowInsecureRequests: true });
    expect((await call('POST', '/v1/oauth/connections/idp/u1/tokens', { access_token: 'at-1', token_type: 'Bearer', expires_in: 3600 })).status).toBe(201);

    const routes: Array<[string, string, string, unknown?]> = [
      ['metadata', 'GET', `/v1/credentials/${id}`],
      ['list', 'GET', '/v1/credentials'],
      ['versions', 'GET', `/v1/credentials/${id}/versions`],
      ['connections', 'GET', '/v1/connections'],
      ['audit', 'GET', '/v1/audit'],
      ['value', 'GET', `/v1/credentials/${id}/value`],
      ['oauth access token', 'GET', '/v1/oauth/connections/idp/u1/access-token'],
      ['rotation policies', 'GET', '/v1/rotation/policies'],
      ['rotate', 'POST', `/v1/credentials/${id}/rotate`, { value: `sk_${randomBytes(12).toString('hex')}` }],
    ];
    const answered: Record<string, unknown> = {};
    const expected: Record<string, unknown> = {};
    for (const [name, method, path, body] of routes) {
      const { ended, result } = await terminatedInFlight(() => call(method, path, body));
      answered[name] = { ended, status: result.status, retryAfter: result.retryAfter, codeName: result.body.codeName, leaks: result.text.includes(value) || /terminating|administrator/i.test(result.text) };
      expected[name] = { ended: 1, status: 503, retryAfter: '1', codeName: 'DATABASE_CONNECTION_LOST', leaks: false };
      // The pool replaced the session by itself.
      expect({ name, next: (await call('GET', `/v1/credentials/${id}`)).status }).toEqual({ name, next: 200 });
    }
    expect(answered).toEqual(expected);
    // Nothing half-written: the refused rotate left the credential as it was.
    const after = await call('GET', `/v1/credentials/${id}/value`);
    expect({ status: after.status, value: after.body.value, rowVersion: (await call('GET', `/v1/credentials/${id}`)).body.rowVersion }).toEqual({
      status: 200,
      value,
      rowVersion: created.body.rowVersion,
    });
  }, 120_000);

  it("serves a key read whose audit row's session ends: the row is written once on a new session (fail-closed still: served only after it)", async () => {
    expect((await call('POST', '/v1/keys', { name: 'signer', type: 'EC' })).status).toBe(201);
    const keyReads = async () =>
      Number((await host.app.get(DataSource).query(`SELECT count(*) AS n FROM cv_audit_log WHERE resource = 'key:signer'`))[0].n);
    const before = await keyReads();
    // The key comes from the vault: the read's first query is its buffered audit row's insert.
    const { ended, result } = await terminatedInFlight(() => call('GET', '/v1/keys/signer'));
    expect({ ended, status: result.status }).toEqual({ ended: 1, status: 200 });
    expect(await keyReads()).toBe(before + 1);
  }, 60_000);

  it('fails a scheduled scan whose session ends (the next run succeeds), and readiness recovers by itself', async () => {
    const jobs = host.app.get(ScheduledJobs);
    const { ended, result } = await terminatedInFlight(() => jobs.runNow(AUDIT_RETENTION_JOB));
    expect({ ended, result }).toEqual({ ended: 1, result: 'failed' });
    // The job runs again by itself. Once in a CI rehearsal (2026-12-07) the run right after the ended one failed too,
    // and the one after it was not tried; alone the file passed every time: the cause is not known (a pooled session
    // whose end was not seen yet is a candidate). So: a run within a few seconds succeeds, and at most one fails first.
    const runs: string[] = [];
    for (let i = 0; i < 3 && runs[runs.length - 1] !== 'success'; i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, 1_000));
      runs.push(await jobs.runNow(AUDIT_RETENTION_JOB));
    }
    expect(runs[runs.length - 1]).toBe('success');
    expect(runs.filter((r) => r === 'failed').length).toBeLessThanOrEqual(1);
    expect(await until(async () => (await call('GET', '/health/ready')).status === 200, 10_000)).toBe(true);
  }, 60_000);
});
