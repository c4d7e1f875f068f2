import type { FastifyInstance } from 'fastify';
import type { Metric } from 'prom-client';
import { onRequestEnd } from '../http/request-end';
import { routePattern } from '../http/route-pattern';
import { registerHostMetrics } from './host-metrics';

/** Seconds: a cached value read takes a few ms, a vault write a few hundred, a request past 10 s has gone wrong. */
const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Methods the API routes; any other is counted as `other` (a label value a client chooses must stay bounded). */
const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

type Labels = Record<string, string>;
interface Described {
  name: string;
  help: string;
}

/**
 * A request counter (`<target>{…, <outcome label>}`) and a duration histogram (`<target>{…}`), counted per request in
 * plain numbers — one Map lookup by a string key each — and turned into Prometheus series at scrape time (the
 * registry's `get()` shape, as prom-client's own metrics give it). prom-client's Counter and Histogram hash their
 * label objects on every call, children included: 3.6% of a warm value read's main thread in its profile.
 */
class RequestSeries {
  private readonly counts = new Map<string, { labels: Labels; n: number }>();
  private readonly times = new Map<string, { labels: Labels; buckets: number[]; sum: number; n: number }>();

  constructor(
    private readonly target: [string, string],
    /** The outcome's label, or labels: an outcome is then their values joined by NUL (split once, for a new series). */
    private readonly outcomeLabels: string[],
    counter: Described,
    histogram: Described,
  ) {
    registerHostMetrics([this.counterMetric(counter), this.histogramMetric(histogram)]);
  }

  /** One call: `a`, `b` the target's two label values (`b` may be absent: ''), its outcome, and its duration unless unknown. */
  record(a: string, b: string, outcome: string, seconds: number | undefined): void {
    const target = `${a}\u0000${b}`;
    const countKey = `${target}\u0000${outcome}`;
    let c = this.counts.get(countKey);
    if (!c) this.counts.set(countKey, (c = { labels: { ...this.labelsOf(a, b), ...this.outcomeOf(outcome) }, n: 0 }));
    c.n++;
    if (seconds === undefined) return;
    let t = this.times.get(target);
    if (!t) this.times.set(target, (t = { labels: this.labelsOf(a, b), buckets: new Array<number>(DURATION_BUCKETS.length).fill(0), sum: 0, n: 0 }));
    t.n++;
    t.sum += seconds;
    for (let i = 0; i < DURATION_BUCKETS.length; i++) {
      if (seconds <= DURATION_BUCKETS[i]) {
        t.buckets[i]++; // the first bucket it fits; the export makes them cumulative
        break;
      }
    }
  }

  private outcomeOf(outcome: string): Labels {
    const values = outcome.split('\u0000');
    return Object.fromEntries(this.outcomeLabels.map((label, i) => [label, values[i] ?? '']));
  }

  private labelsOf(a: string, b: string): Labels {
    const [first, second] = this.target;
    return second && b ? { [first]: a, [second]: b } : { [first]: a };
  }

  private counterMetric({ name, help }: Described): Metric {
    const counts = this.counts;
    const get = async () => ({ name, help, type: 'counter', aggregator: 'sum', values: [...counts.values()].map((c) => ({ labels: c.labels, value: c.n })) });
    return { name, help, get, reset: () => counts.clear() } as unknown as Metric;
  }

  private histogramMetric({ name, help }: Described): Metric {
    const times = this.times;
    const get = async () => ({
      name,
      help,
      type: 'histogram',
      aggregator: 'sum',
      values: [...times.values()].flatMap((t) => {
        let below = 0;
        const bucket = (le: number | string, value: number) => ({ labels: { le, ...t.labels }, value, metricName: `${name}_bucket` });
        return [
          ...DURATION_BUCKETS.map((le, i) => bucket(le, (below += t.buckets[i]))),
          bucket('+Inf', t.n),
          { labels: t.labels, value: t.sum, metricName: `${name}_sum` },
          { labels: t.labels, value: t.n, metricName: `${name}_count` },
        ];
      }),
    });
    return { name, help, get, reset: () => times.clear() } as unknown as Metric;
  }
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
  const series = new RequestSeries(
    ['method', 'route'],
    ['status'],
    { name: 'credential_vault_http_requests_total', help: 'HTTP requests answered, by method, route pattern and status code (aborted: the client left first)' },
    { name: 'credential_vault_http_request_duration_seconds', help: 'HTTP request duration, from its arrival to the answer sent, by method and route pattern' },
  );
  onRequestEnd(fastify, (req, statusCode, elapsedMs) =>
    series.record(
      METHODS.has(req.method) ? req.method : 'other',
      routePattern(req),
      statusCode === 0 ? 'aborted' : String(statusCode),
      elapsedMs === undefined ? undefined : elapsedMs / 1000,
    ),
  );
}

/**
 * gRPC call metrics, the HTTP ones' counterpart: `credential_vault_grpc_requests_total{method, code, fault}` (the
 * status code's name: `OK`, `INVALID_ARGUMENT`, `DEADLINE_EXCEEDED`, …; and whose failure it was: `server`,
 * `client` or `none`, as HTTP's 5xx and 4xx — one gRPC code can be either: DEADLINE_EXCEEDED is the caller's own
 * deadline, or our vault call timing out) and `credential_vault_grpc_request_duration_seconds{method}`. The method
 * is the call's full path, or `unknown` for any path the server does not serve (counted, no duration): never a
 * label value the caller chose.
 */
export function grpcCallMetrics(): (method: string, code: string, fault: GrpcFault, seconds: number | undefined) => void {
  const series = new RequestSeries(
    ['method', ''],
    ['code', 'fault'],
    { name: 'credential_vault_grpc_requests_total', help: 'gRPC calls answered, by full method path, status code name and fault (server, client or none)' },
    { name: 'credential_vault_grpc_request_duration_seconds', help: 'gRPC call duration, from its arrival to its status, by full method path' },
  );
  return (method, code, fault, seconds) => series.record(method, '', `${code}\u0000${fault}`, seconds);
}

/** Whose failure a gRPC call's status is: the server's (HTTP's 5xx), the caller's (4xx), or none (OK, cancelled). */
export type GrpcFault = 'server' | 'client' | 'none';
