import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { generateApiKey } from '../apps/api/src/auth/api-keys';
import { freePort, GrpcKeysClient } from './support/grpc-keys-client';
import { startTestHost, TestHost } from './support/host';

/**
 * Rate, errors and duration of the host's own API on /metrics, per route pattern (HTTP) and method (gRPC): what an
 * operator graphs first and alerts on (ops/alerts.yml, CredentialVaultHttpErrors). No label carries an id or a tenant.
 */
describe('HTTP and gRPC request metrics on /metrics', () => {
  let host: TestHost;
  let client: GrpcKeysClient;
  const user = generateApiKey('metrics-user', 'metrics-t', ['credentials:read', 'credentials:write', 'credentials:read-value', 'keys:write', 'keys:use']);
  const as = { 'x-api-key': user.key };
  const http = (method: string, path: string, body?: unknown, headers: Record<string, string> = as) =>
    fetch(`${host.baseUrl}${path}`, {
      method,
      headers: { ...headers, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  const scrape = async (prefix: string) =>
    (await (await fetch(`${host.baseUrl}/metrics`)).text()).split('\n').filter((l) => l.startsWith(prefix));
  const sample = (lines: string[], series: string) => {
    const line = lines.find((l) => l.startsWith(`${series} `));
    return line === undefined ? undefined : Number(line.slice(series.length + 1));
  };

  beforeAll(async () => {
    const port = await freePort();
    host = await startTestHost('sqlite', { AUTH_API_KEYS: JSON.stringify([user.entry]), GRPC_ENABLED: 'true', GRPC_PORT: String(port) });
    client = new GrpcKeysClient(`127.0.0.1:${port}`);
  }, 60_000);
  afterAll(async () => {
    await client?.close();
    await host?.close();
  });

  it('counts HTTP requests by method, route pattern and status, and times them; never an id in a label', async () => {
    const created = await http('POST', '/v1/credentials', { integrationId: 'github', connectionId: 'metrics.a', type: 'api_key', value: `v-${randomBytes(8).toString('hex')}` });
    expect(created.status).toBe(201);
    const { id } = (await created.json()) as { id: string };
    for (let i = 0; i < 3; i++) expect((await http('GET', `/v1/credentials/${id}/value`)).status).toBe(200);
    const unknownId = '00000000-0000-4000-8000-00000000abcd';
    expect((await http('GET', `/v1/credentials/${unknownId}/value`)).status).toBe(404);
    expect((await http('GET', `/v1/credentials/${id}/value`, undefined, {})).status).toBe(401);
    expect((await http('GET', `/no/such/${id}`)).status).toBe(404);

    const counts = await scrape('credential_vault_http_requests_total');
    const value = '/v1/credentials/:id/value';
    expect(sample(counts, `credential_vault_http_requests_total{method="POST",route="/v1/credentials",status="201"}`)).toBe(1);
    expect(sample(counts, `credential_vault_http_requests_total{method="GET",route="${value}",status="200"}`)).toBe(3);
    expect(sample(counts, `credential_vault_http_requests_total{method="GET",route="${value}",status="404"}`)).toBe(1);
    expect(sample(counts, `credential_vault_http_requests_total{method="GET",route="${value}",status="401"}`)).toBe(1);
    expect(sample(counts, `credential_vault_http_requests_total{method="GET",route="unmatched",status="404"}`)).toBe(1);

    const durations = await scrape('credential_vault_http_request_duration_seconds');
    // Every answered request of the route is timed (401 and 404 included), each in some bucket up to +Inf.
    expect(sample(durations, `credential_vault_http_request_duration_seconds_count{method="GET",route="${value}"}`)).toBe(5);
    expect(sample(durations, `credential_vault_http_request_duration_seconds_bucket{le="+Inf",method="GET",route="${value}"}`)).toBe(5);
    expect(sample(durations, `credential_vault_http_request_duration_seconds_sum{method="GET",route="${value}"}`)).toBeGreaterThan(0);

    // Prometheus's own tool reads these series without a problem, lint included (needs promtool: apt-get install prometheus).
    const ours = (await (await fetch(`${host.baseUrl}/metrics`)).text()).split('\n').filter((l) => /credential_vault_(http|grpc)_request/.test(l));
    expect(() => execFileSync('promtool', ['check', 'metrics'], { input: `${ours.join('\n')}\n`, stdio: 'pipe' })).not.toThrow();

    const all = [...counts, ...durations].join('\n');
    expect(all).not.toContain(id);
    expect(all).not.toContain(unknownId);
    expect(all).not.toContain('metrics-t');
  });

  it('counts gRPC calls by method, status code name and fault, and times them', async () => {
    expect((await client.call('CreateKey', { name: 'metered', key_type: 'EC' }, as)).error).toBeUndefined();
    expect((await client.call('CreateKey', { name: 'metered-2', key_type: 'NOPE' }, as)).error?.code).toBe(3); // INVALID_ARGUMENT
    expect((await client.call('CreateKey', { name: 'metered-3', key_type: 'EC' }, {})).error?.code).toBe(16); // UNAUTHENTICATED

    const method = '/credential_vault.keys.v1.KeysService/CreateKey';
    const counts = await scrape('credential_vault_grpc_requests_total');
    expect(sample(counts, `credential_vault_grpc_requests_total{method="${method}",code="OK",fault="none"}`)).toBe(1);
    expect(sample(counts, `credential_vault_grpc_requests_total{method="${method}",code="INVALID_ARGUMENT",fault="client"}`)).toBe(1);
    expect(sample(counts, `credential_vault_grpc_requests_total{method="${method}",code="UNAUTHENTICATED",fault="client"}`)).toBe(1);
    const durations = await scrape('credential_vault_grpc_request_duration_seconds');
    expect(sample(durations, `credential_vault_grpc_request_duration_seconds_count{method="${method}"}`)).toBe(3);
    expect([...counts, ...durations].join('\n')).not.toMatch(/metered|metrics-t/);
  });
});
