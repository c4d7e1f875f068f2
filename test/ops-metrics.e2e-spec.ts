import { EventEmitter2 } from '@nestjs/event-emitter';
import { DataSource } from 'typeorm';
import { CredentialsService, CredentialType, VAULT_VALUE_DELETION_EVENT } from '@app/credentials';
import { OAuthRefreshEvents } from '@app/oauth-refresh';
import { DATABASE_KINDS } from '@app/testing';
import { selfSignedCertificate as certificate } from './support/certificates';
import { startTestHost, TestHost, ROTATION_JOBS_OFF } from './support/host';

const DAY = 86_400_000;

/** The metrics the alert rules (ops/alerts.yml) use that the libs do not count themselves. */
describe.each(DATABASE_KINDS)('operations metrics on /metrics (%s)', (kind) => {
  let host: TestHost;
  beforeAll(async () => {
    host = await startTestHost(kind, { ...ROTATION_JOBS_OFF, OAUTH_PROACTIVE_ENABLED: 'false' });
    // Before any scrape (the backlog is read at most every 15 s): an event added an hour ago whose delivery failed
    // three times and backs off for another hour, as one a handler keeps failing.
    await host.app.get(DataSource).query(
      `INSERT INTO cv_outbox (id, name, tenant_id, payload, created_at, available_at, attempts, last_error) VALUES (${kind === 'postgres' ? '$1, $2, $3, $4, $5, $6, $7, $8' : '?, ?, ?, ?, ?, ?, ?, ?'})`,
      ['00000000-0000-4000-8000-0000000000aa', 'ops.test-stuck', 'ops-a', '{}', Date.now() - 3_600_000, Date.now() + 3_600_000, 3, 'Error(EHOOK)'],
    );
    // And a delete whose Key Vault side is not done (due in an hour: its handler does not run meanwhile).
    await host.app.get(DataSource).query(
      `INSERT INTO cv_outbox (id, name, tenant_id, payload, created_at, available_at, attempts) VALUES (${kind === 'postgres' ? '$1, $2, $3, $4, $5, $6, $7' : '?, ?, ?, ?, ?, ?, ?'})`,
      ['00000000-0000-4000-8000-0000000000ab', VAULT_VALUE_DELETION_EVENT, 'ops-a', '{"credentialId":"00000000-0000-4000-8000-0000000000ac"}', Date.now(), Date.now() + 3_600_000, 0],
    );
  });
  afterAll(() => host?.close());

  const metric = async (name: string) =>
    (await (await fetch(`${host.baseUrl}/metrics`)).text()).split('\n').filter((l) => l.startsWith(name));
  /** The database-backed gauges: a scrape waits at most 500 ms for their read, a slower one serves the next scrape. */
  const metricOnceRead = async (name: string, read: (lines: string[]) => boolean) => {
    for (const deadline = Date.now() + 10_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 200))) {
      const lines = await metric(name);
      if (read(lines)) return lines;
    }
    return metric(name);
  };

  // First: the counts are scanned at most once a minute.
  it('counts client certificates past (marked expired or not) or near expiry across tenants, without tenant or id labels', async () => {
    const credentials = host.app.get(CredentialsService);
    const store = (tenantId: string, connectionId: string, notAfter: Date) =>
      credentials.store({ tenantId, actor: { id: 'ops' } }, { integrationId: 'bank', connectionId, type: CredentialType.CLIENT_CERTIFICATE, value: certificate(notAfter, `${connectionId}.example`) });
    const gone = await store('ops-a', 'gone', new Date(Date.now() + 2000));
    await store('ops-a', 'soon', new Date(Date.now() + 3 * DAY));
    await store('ops-b', 'later', new Date(Date.now() + 20 * DAY));
    await store('ops-b', 'far', new Date(Date.now() + 200 * DAY));
    // Past its expiry, a read is refused and marks it `expired`: still a certificate calls fail with.
    await new Promise((r) => setTimeout(r, 2100));
    await expect(credentials.get({ tenantId: 'ops-a', actor: { id: 'ops' } }, gone.id)).rejects.toMatchObject({ codeName: 'EXPIRED' });
    expect((await credentials.getMetadata({ tenantId: 'ops-a', actor: { id: 'ops' } }, gone.id)).status).toBe('expired');
    const lines = await metricOnceRead('credential_vault_client_certificates_expiring', (l) => l.length === 3);
    expect(lines).toEqual(
      expect.arrayContaining([
        'credential_vault_client_certificates_expiring{window="expired"} 1',
        'credential_vault_client_certificates_expiring{window="7d"} 2',
        'credential_vault_client_certificates_expiring{window="30d"} 3',
      ]),
    );
    expect(lines.join('\n')).not.toMatch(/ops-a|ops-b|soon|later|gone/);
  });

  it('reports the outbox backlog from the database: pending, retrying, and the oldest event\'s age', async () => {
    expect(await metricOnceRead('credential_vault_outbox_pending_events', (l) => l.length === 2)).toEqual(expect.arrayContaining(['credential_vault_outbox_pending_events{state="retrying"} 1']));
    const [age] = await metric('credential_vault_outbox_oldest_pending_age_seconds');
    expect(Number(age.split(' ')[1])).toBeGreaterThanOrEqual(3600);
  });

  it('counts the deletes whose Key Vault side is not done yet, cluster-wide', async () => {
    expect(await metricOnceRead('credential_vault_vault_deletes_pending', (l) => l.length === 1)).toEqual(['credential_vault_vault_deletes_pending 1']);
  });

  it('exports every OAuth refresh and notification series from 0 (an alert on increase() misses a first increment without a sample before it)', async () => {
    const refreshes = await metric('credential_vault_oauth_refreshes_total');
    expect(refreshes).toEqual(expect.arrayContaining(['credential_vault_oauth_refreshes_total{outcome="failed_reauth",trigger="proactive"} 0']));
    expect(refreshes).toHaveLength(12);
    const notifications = await metric('credential_vault_notifications_total');
    expect(notifications).toEqual(
      expect.arrayContaining(['credential_vault_notifications_total{channel="webhook",outcome="given_up"} 0', 'credential_vault_notifications_total{channel="email",outcome="refused"} 0']),
    );
    expect(notifications).toHaveLength(18); // 3 channels × sent, skipped, failed, given_up, refused, duplicate
  });

  it('counts OAuth refreshes by outcome from the lib events', async () => {
    const events = host.app.get(EventEmitter2);
    const base = { tenantId: 't', integrationId: 'i', connectionId: 'c', accessCredentialId: 'x', trigger: 'proactive', occurredAt: new Date() };
    events.emit(OAuthRefreshEvents.REFRESHED, { ...base, version: 2, expiresAt: new Date(), refreshTokenRotated: false, attempts: 1 });
    events.emit(OAuthRefreshEvents.REFRESH_FAILED, { ...base, reauthRequired: true, retryable: false, errorCode: '4001:X', consecutiveFailures: 1 });
    events.emit(OAuthRefreshEvents.REFRESH_FAILED, { ...base, trigger: 'on_demand', reauthRequired: false, retryable: true, errorCode: '4002:Y', consecutiveFailures: 2 });
    const lines = await metric('credential_vault_oauth_refreshes_total');
    expect(lines).toEqual(
      expect.arrayContaining([
        'credential_vault_oauth_refreshes_total{outcome="refreshed",trigger="proactive"} 1',
        'credential_vault_oauth_refreshes_total{outcome="failed_reauth",trigger="proactive"} 1',
        'credential_vault_oauth_refreshes_total{outcome="failed_retryable",trigger="on_demand"} 1',
      ]),
    );
  });

  // The pools' behaviour under load is test/reliability/database-pool-exhausted.e2e-spec.ts's.
  it(kind === 'postgres' ? 'shows the main and lock-session PostgreSQL pools' : 'has no database pool series on SQLite (the families, without samples)', async () => {
    const samples = (await metric('credential_vault_database_pool_')).map((l) => l.slice(0, l.lastIndexOf(' ')));
    const families = (await metric('# TYPE credential_vault_database_pool_')).map((l) => l.split(' ')[2]);
    expect(families.sort()).toEqual(['connections', 'connections_replaced_total', 'exhausted_total', 'max_connections', 'waiting'].map((f) => `credential_vault_database_pool_${f}`));
    if (kind === 'sqlite') return expect(samples).toEqual([]);
    const pools = ['main', 'locks'];
    expect(samples.sort()).toEqual(
      pools
        .flatMap((pool) => [
          `connections{pool="${pool}",state="busy"}`,
          `connections{pool="${pool}",state="idle"}`,
          // From 0, for an alert on increase().
          `connections_replaced_total{pool="${pool}",reason="stall"}`,
          `connections_replaced_total{pool="${pool}",reason="idle_check"}`,
          `exhausted_total{pool="${pool}"}`,
          `max_connections{pool="${pool}"}`,
          `waiting{pool="${pool}"}`,
        ])
        .map((s) => `credential_vault_database_pool_${s}`)
        .sort(),
    );
  });
});

describe('/metrics switched off (METRICS_ENABLED=false)', () => {
  it('answers 404 in the API error format, not a 500 (every scraper would alert on it)', async () => {
    const host = await startTestHost('sqlite', { METRICS_ENABLED: 'false', ...ROTATION_JOBS_OFF, OAUTH_PROACTIVE_ENABLED: 'false' });
    try {
      const res = await fetch(`${host.baseUrl}/metrics`);
      expect(res.status).toBe(404);
      expect(res.headers.get('content-type')).toMatch(/^application\/json/);
      expect(await res.json()).toMatchObject({ statusCode: 404, message: expect.stringMatching(/METRICS_ENABLED=false/) });
    } finally {
      await host.close();
    }
  });
});
