import type { FastifyInstance } from 'fastify';
import { Counter, Histogram } from 'prom-client';
import { registerHostMetrics } from './host-metrics';

/** Seconds: a cached value read takes a few ms, a vault write a few hundred, a request past 10 s has gone wrong. */
const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Methods the API routes; any other is counted as `other` (a label value a client chooses must stay bounded). */
const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

/** A request counter and its duration histogram, put on the registry /metrics serves (~1 µs per request for both). */
function counterAndHistogram(
  counter: { name: string; help: string; labelNames: string[] },
  histogram: { name: string; help: string; labelNames: string[] },
): { counter: Counter<string>; histogram: Histogram<string> } {
  const pair = { counter: new Counter({ ...counter, registers: [] }), histogram: new Histogram({ ...histogram, buckets: DURATION_BUCKETS, registers: [] }) };
  registerHostMetrics([pair.counter, pair.histogram]);
  return pair;
}

/**
 * HTTP request metrics, as operators expect them from a web service (rate, errors, duration per route):
 * `credential_vault_http_requests_total{method, route, status}` and
 * `credential_vault_http_request_duration_seconds{method, route}`. The route is Fastify's pattern
 * (`/v1/credentials/:id/value`), `unmatched` for a path no route serves: no label carries an id, a tenant or
 * anything else a client chose. A request whose client left before the answer counts with status `aborted`
 * and no duration.
 */
export function countHttpRequests(fastify: FastifyInstance): void {
  const { counter, histogram } = counterAndHistogram(
    {
      name: 'credential_vault_http_requests_total',
      help: 'HTTP requests answered, by method, route pattern and status code (aborted: the client left first)',
      labelNames: ['method', 'route', 'status'],
    },
    { name: 'credential_vault_http_request_duration_seconds', help: 'HTTP request duration, from its arrival to the answer sent, by method and route pattern', labelNames: ['method', 'route'] },
  );
  const labels = (req: { method: string; routeOptions?: { url?: string } }) => ({
    method: METHODS.has(req.method) ? req.method : 'other',
    route: req.routeOptions?.url ?? 'unmatched',
  });
  const aborted = new WeakSet<object>();
  fastify.addHook('onResponse', (req, reply, done) => {
    if (!aborted.has(req)) {
      const route = labels(req);
      counter.inc({ ...route, status: reply.statusCode });
      histogram.observe(route, reply.elapsedTime / 1000);
    }
    done();
  });
  fastify.addHook('onRequestAbort', (req, done) => {
    aborted.add(req);
    counter.inc({ ...labels(req), status: 'aborted' });
    done();
  });
}

/**
 * gRPC call metrics, the HTTP ones' counterpart: `credential_vault_grpc_requests_total{method, code}` (the
 * status code's name: `OK`, `INVALID_ARGUMENT`, `DEADLINE_EXCEEDED`, …) and
 * `credential_vault_grpc_request_duration_seconds{method}`. The method is the call's full path; only methods the
 * server serves reach it (grpc-js answers unknown ones itself).
 */
export function grpcCallMetrics(): (method: string, code: string, seconds: number) => void {
  const { counter, histogram } = counterAndHistogram(
    { name: 'credential_vault_grpc_requests_total', help: 'gRPC calls answered, by full method path and status code name', labelNames: ['method', 'code'] },
    { name: 'credential_vault_grpc_request_duration_seconds', help: 'gRPC call duration, from its arrival to its status, by full method path', labelNames: ['method'] },
  );
  return (method, code, seconds) => {
    counter.inc({ method, code });
    histogram.observe({ method }, seconds);
  };
}
