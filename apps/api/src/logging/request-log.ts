import { AsyncLocalStorage } from 'node:async_hooks';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Level, Logger } from 'pino';
import { requestTraceLogFields } from '../telemetry/host-telemetry';
import { redactQuery } from './logging.options';

/**
 * The request being served, for Nest's own lines written while it is (HostLogger adds its id), when the
 * host asks for it (LOG_REQUEST_CONTEXT). One store per request and no allocation: the store is
 * Fastify's request object itself. Off by default: an AsyncLocalStorage scope per request keeps Node 20's
 * promise hooks on for every promise in the process (~10% of a warm read's CPU, measured).
 */
const currentRequest = new AsyncLocalStorage<FastifyRequest>();

/** Requests whose line was written when the client went away (a later 'finish' or 'error' writes no second one). */
const aborted = new WeakSet<FastifyRequest>();

/** The request fields of a log line: id, method and path — query values never (they may carry tokens). */
export function requestLogFields(req: Pick<FastifyRequest, 'id' | 'method' | 'url'>): { id: string; method: string; url: string } {
  return { id: String(req.id), method: req.method, url: redactQuery(req.url) };
}

/** The request fields of the request being served, if any. */
export function currentRequestLogFields(): { id: string; method: string; url: string } | undefined {
  const req = currentRequest.getStore();
  return req === undefined ? undefined : requestLogFields(req);
}

/**
 * One log line per request, written from Fastify's own hooks when the response is sent (or the client
 * leaves first): `req` {id, method, url without query values}, `res` {statusCode}, `responseTime` (ms),
 * the request span's `trace_id`/`span_id` when tracing. Levels: 5xx error, 4xx warn, else info; health
 * probes and metric scrapes only when they fail. A line the logger would drop is never built.
 * `requestContext`: Nest's own lines written during a request carry its `req` too (see `currentRequest`).
 */
export function logRequests(fastify: FastifyInstance, log: Logger, { requestContext = false }: { requestContext?: boolean } = {}): void {
  if (requestContext) fastify.addHook('onRequest', (req, _reply, done) => currentRequest.run(req, done));
  fastify.addHook('onResponse', (req, reply, done) => {
    if (!aborted.has(req)) writeRequestLine(log, req, reply.statusCode, Math.round(reply.elapsedTime * 10) / 10);
    done();
  });
  fastify.addHook('onRequestAbort', (req, done) => {
    aborted.add(req);
    writeRequestLine(log, req, 0, undefined);
    done();
  });
}

function writeRequestLine(log: Logger, req: FastifyRequest, statusCode: number, responseTime: number | undefined): void {
  const level = requestLevel(req.url, statusCode);
  if (level === undefined || !log.isLevelEnabled(level)) return;
  const line: Record<string, unknown> = { req: requestLogFields(req), res: { statusCode } };
  if (responseTime !== undefined) line.responseTime = responseTime;
  // Written after the span's context is left: the ids come from the request's own span.
  const trace = requestTraceLogFields(req);
  if (trace.trace_id !== undefined) Object.assign(line, trace);
  log[level](line, statusCode === 0 ? 'request aborted' : statusCode >= 500 ? 'request errored' : 'request completed');
}

/** The level of a request's line; undefined for a successful health probe or metrics scrape (every few seconds, they would drown the log). */
export function requestLevel(url: string, statusCode: number): Level | undefined {
  if (statusCode >= 500) return 'error';
  if (statusCode >= 400) return 'warn';
  return /^\/(health|metrics)(\/|\?|$)/.test(url) ? undefined : 'info';
}
