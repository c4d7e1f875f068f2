import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { LOCK_KEYS, ScheduledJobs } from '@app/common';
import { DATABASE_KINDS } from '@app/testing';
import { EmbeddedVault } from '../apps/api/src/vault/embedded-vault';
import { startTestHost, TestHost } from './support/host';

/** The reference host booted as `npm start` boots it, on each database, against the embedded vault. */
describe.each(DATABASE_KINDS)('reference host on %s', (kind) => {
  let host: TestHost;
  let app: NestFastifyApplication;
  let base: string;

  beforeAll(async () => {
    host = await startTestHost(kind);
    app = host.app;
    base = host.baseUrl;
  });

  afterAll(async () => {
    await host?.close();
  });

  it('is ready: database and Key Vault both up', async () => {
    const res = await fetch(`${base}/health/ready`);
    const body = (await res.json()) as any;
    expect(res.status).toBe(200);
    expect(body.status).toBe('ok');
    expect(body.info.database.status).toBe('up');
    expect(body.info.keyVault.status).toBe('up');
    expect(body.info.audit).toMatchObject({ status: 'up', bufferDepth: expect.any(Number) });
    expect(body.info.jobs).toEqual({
      status: 'up',
      scheduled: ['audit-anchor', 'audit-retention', 'credential-orphan-versions', 'oauth-proactive-refresh', 'rotation-check', 'rotation-expiry-monitor', 'webhook-secret-rotation'],
    });
  });

  it('reports a job that has not succeeded for 3 intervals as degraded (still 200), and publishes job metrics', async () => {
    const jobs = app.get(ScheduledJobs);
    jobs.schedule({
      name: 'e2e-failing',
      enabled: true,
      cron: '* * * * * *', // every second: 3 intervals pass quickly
      switchOption: 'test',
      lockKey: LOCK_KEYS.auditRetention,
      lockedBy: 'work',
      run: () => Promise.reject(new Error('always fails')),
    });
    try {
      await new Promise((r) => setTimeout(r, 3300));
      const res = await fetch(`${base}/health/ready`);
      const body = (await res.json()) as any;
      expect(res.status).toBe(200);
      expect(body.status).toBe('degraded');
      expect(body.details.jobs).toMatchObject({ status: 'degraded', degraded: [{ job: 'e2e-failing', lastSuccess: null, lastError: 'Error' }] });
      expect(body.info.database.status).toBe('up');
      const text = await (await fetch(`${base}/metrics`)).text();
      expect(text).toMatch(/credential_vault_job_runs_total\{scheduled_job="e2e-failing",outcome="failed"\} [1-9]/);
      expect(text).toMatch(/credential_vault_job_runs_total\{scheduled_job="audit-retention",outcome="success"\} 0/);
      expect(text).toMatch(/credential_vault_job_degraded\{scheduled_job="e2e-failing"\} 1/);
      expect(text).toMatch(/credential_vault_job_degraded\{scheduled_job="audit-anchor"\} 0/);
      expect(text).toMatch(/credential_vault_job_last_duration_seconds\{scheduled_job="e2e-failing"\} \d/);
      expect(host.logs.join('\n')).not.toContain('always fails');
    } finally {
      jobs.unschedule('e2e-failing');
    }
    await jobs.runNow('audit-retention');
    const text = await (await fetch(`${base}/metrics`)).text();
    expect(text).toMatch(/credential_vault_job_last_success_timestamp_seconds\{scheduled_job="audit-retention"\} \d+/);
    expect(text).toMatch(/credential_vault_job_runs_total\{scheduled_job="audit-retention",outcome="success"\} 1/);
  });

  it('turns not-ready (503, Key Vault down) while the vault fails, and ready again after', async () => {
    const vault = app.get(EmbeddedVault).emulator!;
    vault.injectFault({ kind: 'status', status: 503, retryAfterSeconds: 1 });
    try {
      const res = await fetch(`${base}/health/ready`, { headers: { 'x-request-id': `not-ready-${kind}` } });
      const body = (await res.json()) as any;
      expect(res.status).toBe(503);
      expect(body.error.keyVault.status).toBe('down');
      expect(body.info.database.status).toBe('up');
      // Liveness checks nothing external: a vault outage must not get the pod restarted.
      expect((await fetch(`${base}/health/live`)).status).toBe(200);
    } finally {
      vault.clearFaults();
    }
    // One failed probe is below the breaker's threshold: readiness recovers at once.
    expect((await fetch(`${base}/health/ready`)).status).toBe(200);
    // The host logs at error level here: the failed probe's request line is still written, with the
    // service name and the caller's correlation id.
    const line = host.logs.map((l) => JSON.parse(l)).find((l) => l.req?.id === `not-ready-${kind}` && l.res);
    expect(line).toMatchObject({ level: 50, service: 'credential-vault', req: { url: '/health/ready' }, res: { statusCode: 503 } });
  });

  it('is live, in the shape of a terminus health check and never cached', async () => {
    const res = await fetch(`${base}/health/live`);
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-cache, no-store, must-revalidate');
    expect(await res.json()).toEqual({ status: 'ok', info: {}, error: {}, details: {} });
  });

  it('serves Prometheus metrics including the Key Vault operations the readiness probe made', async () => {
    await fetch(`${base}/health/ready`);
    const res = await fetch(`${base}/metrics`);
    const text = await res.text();
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/text\/plain/);
    expect(text).toMatch(/credential_vault_keyvault_circuit_breaker_state/);
    expect(text).toMatch(/credential_vault_process_cpu_seconds_total/);
    expect(text).toMatch(/credential_vault_cache_hits_total \d+/);
    expect(text).toMatch(/credential_vault_cache_slab_bytes \d+/);
    expect(text).toMatch(/credential_vault_cache_slab_pool_bytes \d+/);
    expect(text).toMatch(/credential_vault_audit_healthy 1/);
  });

  it('answers unknown routes with the one error shape and echoes a well-formed request id', async () => {
    const res = await fetch(`${base}/nope`, { headers: { 'x-request-id': 'req-123' } });
    expect(res.status).toBe(404);
    expect(res.headers.get('x-request-id')).toBe('req-123');
    const body = (await res.json()) as any;
    expect(body).toMatchObject({ statusCode: 404, requestId: 'req-123' });
  });

  it('documents the error answers of every operation: the one error body, 401/429 where authenticated, 403 with the scopes needed', async () => {
    const doc = (await (await fetch(`${base}/docs/json`)).json()) as {
      components: { schemas: Record<string, unknown> };
      paths: Record<string, Record<string, { responses: Record<string, { content?: unknown }>; 'x-required-scopes'?: string[]; description?: string }>>;
    };
    expect(doc.components.schemas.ErrorBody).toMatchObject({ required: ['statusCode', 'error', 'message', 'code', 'codeName', 'requestId'] });
    const value = doc.paths['/v1/credentials/{id}/value'].get;
    expect(value['x-required-scopes']).toEqual(['credentials:read-value']);
    expect(value.description).toContain('Scope: credentials:read-value.');
    for (const status of ['400', '401', '403', '404', '429', '500']) {
      expect([status, value.responses[status]?.content]).toEqual([status, { 'application/json': { schema: { $ref: '#/components/schemas/ErrorBody' } } }]);
    }
    // Request bodies say what the server checks (a client validating against the document sends what is accepted).
    const store = (doc.components.schemas.StoreCredentialDto as { properties: Record<string, Record<string, unknown>> }).properties;
    expect(store.integrationId.pattern).toBe('^(?!\\.+$)[A-Za-z0-9._:@-]{1,128}$');
    expect(store.value).toMatchObject({ minLength: 1 });
    expect(store.tags).toMatchObject({ maxProperties: 15 });
    expect((doc.components.schemas.RollbackCredentialDto as { properties: Record<string, unknown> }).properties.version).toMatchObject({ type: 'integer', minimum: 1 });
    const activate = doc.paths['/v1/rotation/webhooks/{integrationId}/{connectionId}/secret/activate']?.post as unknown as { requestBody?: { required?: boolean } };
    expect(activate.requestBody?.required).toBe(false);
    // Public probes are not authenticated: no 401 / 403 documented.
    expect(Object.keys(doc.paths['/health/live'].get.responses)).not.toContain('401');
    // Every authenticated operation says which scope it needs.
    const unscoped = Object.entries(doc.paths)
      .filter(([p]) => p.startsWith('/v1/'))
      .flatMap(([p, ops]) => Object.entries(ops).filter(([, op]) => !op['x-required-scopes']).map(([m]) => `${m} ${p}`));
    expect(unscoped).toEqual([]);
  });

  it('replaces a malformed request id with a fresh one', async () => {
    const res = await fetch(`${base}/health/live`, { headers: { 'x-request-id': 'bad id with spaces' } });
    expect(res.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });

  if (kind === 'sqlite') {
    it('keeps its SQLite file where DATABASE_PATH says', async () => {
      const { existsSync } = await import('node:fs');
      expect(existsSync(host.env.DATABASE_PATH)).toBe(true);
    });
  }
});
