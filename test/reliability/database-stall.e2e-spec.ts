import { createServer, connect, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { getDataSourceToken } from '@nestjs/typeorm';
import { Client } from 'pg';
import type { DataSource } from 'typeorm';
import { AUDIT_RETENTION_JOB } from '@app/audit';
import { OutboxDispatcher, ScheduledJobs, createDistributedLock } from '@app/common';
import { POSTGRES_URL, startStallProxy, type StallProxy } from '@app/testing';
import { generateApiKey } from '../../apps/api/src/auth/api-keys';
import { startTestHost, type TestHost, ROTATION_JOBS_OFF } from '../support/host';

/**
 * PostgreSQL stalls (it accepts connections and never answers: a hung server, a half-open network),
 * then answers again. The replica must become ready again by itself: each stuck connection attempt
 * gives up after DATABASE_CONNECT_TIMEOUT_MS and frees its pool slot. (Before, the pool filled with
 * attempts that never ended: /health/ready answered 503 for good while /health/live stayed 200, so
 * no orchestrator ever restarted the replica.)
 */
describe('the host when PostgreSQL stalls and comes back', () => {
  let host: TestHost;
  let proxy: Server;
  let mode: 'pass' | 'stall' = 'pass';
  const sockets = new Set<Socket>();

  beforeAll(async () => {
    const target = new URL(POSTGRES_URL);
    proxy = createServer((client) => {
      sockets.add(client);
      client.on('close', () => sockets.delete(client));
      client.on('error', () => undefined);
      if (mode === 'stall') return; // accepted, never answered
      const server = connect(Number(target.port || 5432), target.hostname);
      sockets.add(server);
      server.on('close', () => sockets.delete(server));
      server.on('error', () => client.destroy());
      client.on('error', () => server.destroy());
      client.pipe(server).pipe(client);
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    const url = new URL(POSTGRES_URL);
    url.port = String((proxy.address() as AddressInfo).port);
    url.hostname = '127.0.0.1';
    host = await startTestHost('postgres', {
      DATABASE_URL: url.toString(),
      DATABASE_POOL_SIZE: '4',
      DATABASE_CONNECT_TIMEOUT_MS: '1000',
      ...ROTATION_JOBS_OFF,
      OAUTH_PROACTIVE_ENABLED: 'false',
      AUDIT_ANCHOR_ENABLED: 'false',
      AUDIT_RETENTION_ENABLED: 'false',
    });
  }, 60_000);

  afterAll(async () => {
    mode = 'pass';
    for (const s of sockets) s.destroy();
    await host?.close();
    await new Promise((resolve) => proxy?.close(resolve));
  });

  const ready = async () => (await fetch(`${host.baseUrl}/health/ready`)).status;

  it('answers 503 while it stalls, and is ready again within seconds of PostgreSQL answering', async () => {
    expect(await ready()).toBe(200);
    // The stall: every open connection is cut (as a restart would) and new ones hang.
    mode = 'stall';
    for (const s of sockets) s.destroy();
    const during = [];
    for (let i = 0; i < 8; i++) during.push(await ready());
    expect(during.every((s) => s === 503)).toBe(true);
    expect((await fetch(`${host.baseUrl}/health/live`)).status).toBe(200);

    mode = 'pass';
    const deadline = Date.now() + 15_000;
    let status = await ready();
    while (status !== 200 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 500));
      status = await ready();
    }
    expect(status).toBe(200);
  }, 60_000);
});

/**
 * PostgreSQL stalls on the connections already open too (a hung or stopped server, a stalled proxy or pooler, a
 * path that drops packets while the peer's kernel still ACKs, so TCP keepalive never trips), then answers again
 * on new connections only — the stalled ones stay wedged. Before: value reads and metadata reads hung for as
 * long as the stall, readiness stayed 503 for good (the pool's slots held by queries that never ended), the
 * retention job stayed "running", the cache stopped serving for good (its LISTEN connection never noticed), and a
 * lock held when the stall began stayed held by the server's orphaned session: the outbox stopped cluster-wide.
 * Bounds are generous: the machine is shared; the host's own deadline here is 4 s.
 */
describe('the host when PostgreSQL stalls on established connections', () => {
  let host: TestHost;
  let proxy: StallProxy;
  const admin = generateApiKey('stall-admin', 'acme', ['admin']);
  const WAIT_MS = 30_000;

  beforeAll(async () => {
    proxy = await startStallProxy(POSTGRES_URL);
    host = await startTestHost('postgres', {
      DATABASE_URL: proxy.url,
      DATABASE_POOL_SIZE: '4',
      DATABASE_CONNECT_TIMEOUT_MS: '1000',
      DATABASE_QUERY_TIMEOUT_MS: '4000',
      DATABASE_STATEMENT_TIMEOUT_MS: '3000',
      DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS: '5000',
      AUTH_API_KEYS: JSON.stringify([admin.entry]),
      CREDENTIALS_INTEGRATIONS: 'github',
      ...ROTATION_JOBS_OFF,
      OAUTH_PROACTIVE_ENABLED: 'false',
      AUDIT_ANCHOR_ENABLED: 'false',
      // Scheduled, never due during the test: run by hand.
      AUDIT_RETENTION_CRON: '0 3 1 1 *',
    });
  }, 60_000);

  afterAll(async () => {
    proxy?.resume();
    await host?.close();
    await proxy?.close();
  });

  /** An answer, or `hung` when none came within WAIT_MS. */
  const call = async (method: string, path: string, body?: unknown) => {
    try {
      const res = await fetch(`${host.baseUrl}${path}`, {
        method,
        headers: { 'x-api-key': admin.key, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(WAIT_MS),
      });
      const text = await res.text();
      return { status: res.status as number | 'hung', body: text ? JSON.parse(text) : undefined };
    } catch {
      return { status: 'hung' as const, body: undefined };
    }
  };
  const create = (connectionId: string) =>
    call('POST', '/v1/credentials', { integrationId: 'github', connectionId, type: 'api_key', value: `sk_${randomBytes(12).toString('hex')}` });
  const within = <T>(work: Promise<T>) => {
    let timer: NodeJS.Timeout | undefined;
    return Promise.race([work, new Promise<'hung'>((r) => (timer = setTimeout(() => r('hung'), WAIT_MS)))]).finally(() => clearTimeout(timer));
  };
  const until = async (check: () => Promise<boolean>, ms: number) => {
    const deadline = Date.now() + ms;
    while (!(await check()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 500));
    return check();
  };
  /** `credential_vault_database_pool_connections_replaced_total` on /metrics, summed over both pools, by reason. */
  const replaced = async () => {
    const text = await (await fetch(`${host.baseUrl}/metrics`, { signal: AbortSignal.timeout(WAIT_MS) })).text();
    const sum = (reason: string) =>
      [...text.matchAll(new RegExp(`^credential_vault_database_pool_connections_replaced_total\\{pool="(?:main|locks)",reason="${reason}"\\} (\\d+)$`, 'gm'))].reduce((n, m) => n + Number(m[1]), 0);
    return { stall: sum('stall'), idle_check: sum('idle_check') };
  };
  const schemaSql = async <R>(sql: string, params: unknown[] = []): Promise<R[]> => {
    const c = new Client({ connectionString: POSTGRES_URL });
    await c.connect();
    try {
      return (await c.query(sql.replaceAll('$schema', `"${host.env.DATABASE_SCHEMA}"`), params)).rows as R[];
    } finally {
      await c.end();
    }
  };

  it('ends every request with a 503 (never hangs), and is whole again once PostgreSQL answers on new connections', async () => {
    const a = await create('a');
    expect(a.status).toBe(201);
    const id = a.body.id as string;
    expect((await call('GET', `/v1/credentials/${id}/value`)).status).toBe(200);
    expect((await call('GET', '/health/ready')).status).toBe(200);

    proxy.stall();
    const jobs = host.app.get(ScheduledJobs);
    const [read, metadata, created, rotated, ready, job] = await Promise.all([
      call('GET', `/v1/credentials/${id}/value`),
      call('GET', `/v1/credentials/${id}`),
      create('b'),
      call('POST', `/v1/credentials/${id}/rotate`, { value: `sk_${randomBytes(12).toString('hex')}`, expectedVersion: a.body.rowVersion }),
      call('GET', '/health/ready'),
      within(jobs.runNow(AUDIT_RETENTION_JOB)),
    ]);
    // A typed 503 each (the value read: the audit log cannot take its row, fail-closed), not a request left hanging.
    expect({ read: read.status, metadata: metadata.status, created: created.status, rotated: rotated.status, ready: ready.status }).toEqual({
      read: 503,
      metadata: 503,
      created: 503,
      rotated: 503,
      ready: 503,
    });
    // From the cache, the audit row cannot be written; with the cache degraded (no heartbeat heard), the row cannot be read.
    expect(['AUDIT_UNAVAILABLE', 'DATABASE_UNRESPONSIVE']).toContain(read.body.codeName);
    expect(metadata.body.codeName).toBe('DATABASE_UNRESPONSIVE');
    expect(job).toBe('failed');
    expect((await call('GET', '/health/live')).status).toBe(200);

    proxy.passNew();
    expect(await until(async () => (await call('GET', '/health/ready')).status === 200, WAIT_MS)).toBe(true);
    expect((await call('GET', `/v1/credentials/${id}/value`)).status).toBe(200);
    const c = await create('c');
    expect(c.status).toBe(201);
    const meta = await call('GET', `/v1/credentials/${id}`);
    expect((await call('POST', `/v1/credentials/${id}/rotate`, { value: `sk_${randomBytes(12).toString('hex')}`, expectedVersion: meta.body.rowVersion })).status).toBe(200);
    expect(await within(jobs.runNow(AUDIT_RETENTION_JOB))).toBe('success');
    // The cache hears evictions again (its LISTEN connection was one of the stalled ones).
    expect(await until(async () => (await call('GET', '/health/ready')).body?.details?.cache?.status === 'up', WAIT_MS)).toBe(true);
    // The outbox delivers what was written after the stall.
    expect(
      await until(async () => (await schemaSql<{ n: string }>('SELECT count(*) AS n FROM $schema.cv_outbox WHERE delivered_at IS NULL'))[0].n === '0', WAIT_MS),
    ).toBe(true);
  }, 180_000);

  it('a lock held when the stall began is released: the outbox delivers again', async () => {
    proxy.resume();
    expect(await until(async () => (await call('GET', '/health/ready')).status === 200, WAIT_MS)).toBe(true);
    // Hold the outbox dispatcher's lock (on the host's own lock sessions) while PostgreSQL stalls.
    const dataSource = host.app.get<DataSource>(getDataSourceToken(), { strict: false });
    const lockKey = host.app.get(OutboxDispatcher, { strict: false }).lockKey;
    const lock = createDistributedLock(dataSource);
    let release: (() => void) | undefined;
    let held: Promise<unknown> = Promise.resolve();
    // The dispatcher itself may hold it for a moment.
    for (const deadline = Date.now() + WAIT_MS; !release && Date.now() < deadline; ) {
      held = lock.tryRun(lockKey, () => new Promise<void>((r) => (release = r)));
      await Promise.race([held, new Promise((r) => setTimeout(r, 500))]);
    }
    expect(release).toBeDefined();

    const replacedBefore = await replaced();
    proxy.stall();
    release!();
    // Its unlock never gets an answer: the host gives up on that session...
    expect(await within(held)).toEqual({ acquired: true });
    proxy.passNew();
    // ...and PostgreSQL, which never heard, would keep the lock for that orphaned session.
    // The pooled connections left idle when the stall began are wedged too (their path still stalled): the unlock that
    // met its deadline showed the stall, so they are closed when taken, and the first write after it goes through.
    const d = await create('d');
    expect(d.status).toBe(201);
    // Operators see it: the connections closed when taken are counted.
    const replacedAfter = await replaced();
    expect(replacedAfter.stall).toBeGreaterThan(replacedBefore.stall);
    expect(
      await until(
        async () => (await schemaSql<{ n: string }>(`SELECT count(*) AS n FROM $schema.cv_outbox WHERE delivered_at IS NULL`))[0].n === '0',
        60_000,
      ),
    ).toBe(true);
  }, 180_000);
  it('answers /metrics at once while PostgreSQL stalls (its database-backed gauges keep their last samples): a scrape that timed out would drop every series, the alerts on them with it', async () => {
    proxy.resume();
    expect(await until(async () => (await call('GET', '/health/ready')).status === 200, WAIT_MS)).toBe(true);
    proxy.stall();
    const started = Date.now();
    const scrape = await fetch(`${host.baseUrl}/metrics`, { signal: AbortSignal.timeout(WAIT_MS) });
    const text = await scrape.text();
    const elapsedMs = Date.now() - started;
    proxy.resume();
    expect(scrape.status).toBe(200);
    expect(text).toMatch(/^credential_vault_database_pool_connections\{pool="main",state="busy"\} /m);
    // The outbox backlog and certificate gauges read the database; their reads go on for the next scrape. Without the
    // bound the scrape waited for them: the query deadline here (4 s), 40 s by default.
    expect(elapsedMs).toBeLessThan(2_500);
  }, 120_000);
});
