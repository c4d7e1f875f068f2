import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ScheduledJobs } from '@app/common';
import { AggregationTemporality, InMemoryMetricExporter, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';
import { InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { DATABASE_KINDS } from '@app/testing';
import { generateApiKey } from '../apps/api/src/auth/api-keys';
import { startTestHost, TestHost, ROTATION_JOBS_OFF } from './support/host';

const VALUE = 'sk_live_telemetry_should_never_show_0123';
const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const traceparent = `00-${TRACE_ID}-00f067aa0ba902b7-01`;

const admin = generateApiKey('otel-admin', 'otel', ['admin']);
const AUTH = { AUTH_API_KEYS: JSON.stringify([admin.entry]) };

function api(host: TestHost, path: string, init: RequestInit = {}) {
  return fetch(`${host.baseUrl}${path}`, { ...init, headers: { 'x-api-key': admin.key, 'content-type': 'application/json', traceparent, ...(init.headers ?? {}) } });
}

describe.each(DATABASE_KINDS)('OpenTelemetry (%s, in-memory exporters)', (kind) => {
  let host: TestHost;
  const spans = new InMemorySpanExporter();
  const metricExporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
  const reader = new PeriodicExportingMetricReader({ exporter: metricExporter, exportIntervalMillis: 3_600_000 });

  beforeAll(async () => {
    host = await startTestHost(
      kind,
      { ...AUTH, LOG_LEVEL: 'info', ...ROTATION_JOBS_OFF },
      { telemetry: { spanProcessor: new SimpleSpanProcessor(spans), metricReader: reader } },
    );
  });
  afterAll(() => host?.close());

  it('traces a request from its traceparent through the vault call and the transaction, with no value or query in any span', async () => {
    const stored = await api(host, '/v1/credentials', { method: 'POST', body: JSON.stringify({ integrationId: 'github', connectionId: 'main', type: 'api_key', value: VALUE }) });
    expect(stored.status).toBe(201);
    const { id } = (await stored.json()) as { id: string };
    expect((await api(host, `/v1/credentials/${id}/value?allowExpired=false`)).status).toBe(200);

    const all = spans.getFinishedSpans();
    const ofTrace = all.filter((s) => s.spanContext().traceId === TRACE_ID);
    const server = ofTrace.filter((s) => s.kind === 1 /* SERVER */).map((s) => s.name);
    expect(server).toEqual(expect.arrayContaining(['POST /v1/credentials', 'GET /v1/credentials/:id/value']));
    const post = ofTrace.find((s) => s.name === 'POST /v1/credentials')!;
    expect(post.attributes).toMatchObject({ 'http.request.method': 'POST', 'http.route': '/v1/credentials', 'http.response.status_code': 201 });
    expect(post.parentSpanContext?.spanId).toBe('00f067aa0ba902b7');

    const childrenOf = (parent: ReadableSpan): ReadableSpan[] => {
      const direct = ofTrace.filter((s) => s.parentSpanContext?.spanId === parent.spanContext().spanId);
      return [...direct, ...direct.flatMap(childrenOf)];
    };
    const under = childrenOf(post);
    const vault = under.find((s) => s.name === 'keyvault setSecret')!;
    expect(vault).toBeDefined();
    expect(vault.kind).toBe(2 /* CLIENT */);
    expect(vault.attributes).toMatchObject({ 'keyvault.operation': 'setSecret', 'keyvault.attempts': 1 });
    expect(vault.attributes['server.address']).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(under.map((s) => s.name)).toContain('db.transaction');

    const everything = JSON.stringify(all.map((s) => ({ name: s.name, attributes: s.attributes, events: s.events })));
    expect(everything).not.toContain(VALUE);
    expect(everything).not.toContain('allowExpired'); // no query strings
    expect(everything).not.toMatch(/cv--/); // no vault secret names
  });

  it('puts the trace id on the log lines of the request', () => {
    const lines = host.logs.map((l) => JSON.parse(l) as { trace_id?: string; req?: { url?: string } });
    const requestLines = lines.filter((l) => l.req?.url?.startsWith('/v1/credentials'));
    expect(requestLines.length).toBeGreaterThan(0);
    expect(requestLines.every((l) => l.trace_id === TRACE_ID)).toBe(true);
    expect(host.logs.join('\n')).not.toContain(VALUE);
  });

  it('traces scheduled jobs', async () => {
    await host.app.get(ScheduledJobs).runNow('audit-anchor');
    const job = spans.getFinishedSpans().find((s) => s.name === 'job audit-anchor');
    expect(job?.attributes).toMatchObject({ 'job.name': 'audit-anchor', 'job.outcome': 'success' });
  });

  it('exports the vault metrics under OpenTelemetry names', async () => {
    await reader.forceFlush();
    const names = metricExporter
      .getMetrics()
      .flatMap((r) => r.scopeMetrics)
      .flatMap((s) => s.metrics)
      .map((m) => m.descriptor.name);
    expect(names).toEqual(expect.arrayContaining(['keyvault.operations', 'keyvault.operation.duration', 'keyvault.circuit_breaker.state']));
  });
});

describe('OpenTelemetry over OTLP/HTTP (OTEL_EXPORTER_OTLP_ENDPOINT to a loopback collector)', () => {
  let collector: Server;
  const received: { path: string; body: string }[] = [];
  beforeAll(async () => {
    collector = createServer((req: IncomingMessage, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        received.push({ path: req.url ?? '', body: Buffer.concat(chunks).toString('utf8') });
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((resolve) => collector.listen(0, '127.0.0.1', resolve));
  });
  afterAll(() => new Promise<void>((resolve) => collector.close(() => resolve())));

  it('sends spans and metrics to the collector and nothing when unset', async () => {
    const port = (collector.address() as AddressInfo).port;
    const host = await startTestHost('sqlite', { OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}/`, OTEL_SERVICE_NAME: 'cv-test', ...AUTH });
    try {
      const res = await api(host, '/v1/credentials', { method: 'POST', body: JSON.stringify({ integrationId: 'github', connectionId: 'otlp', type: 'api_key', value: VALUE }) });
      expect(res.status).toBe(201);
    } finally {
      await host.close(); // flushes
    }
    const traces = received.filter((r) => r.path === '/v1/traces');
    expect(traces.length).toBeGreaterThan(0);
    expect(traces.map((t) => t.body).join()).toContain('cv-test');
    expect(received.some((r) => r.path === '/v1/metrics')).toBe(true);
    expect(received.map((r) => r.body).join()).not.toContain(VALUE);

    received.length = 0;
    const quiet = await startTestHost('sqlite', AUTH);
    await quiet.close();
    expect(received).toEqual([]);
  });
});
