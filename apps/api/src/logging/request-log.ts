import { AsyncLocalStorage } from 'node:async_hooks';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { pino, type Level, type Logger } from 'pino';
import { onRequestEnd } from '../http/request-end';
import { loggablePath } from '../http/route-pattern';
import { requestTraceLogFields } from '../telemetry/host-telemetry';
import { redactQuery } from './logging.options';

/**
 * The request being served, for Nest's own lines written while it is (HostLogger adds its id), when the
 * host asks for it (LOG_REQUEST_CONTEXT). One store per request and no allocation: the store is
 * Fastify's request object itself. Off by default: an AsyncLocalStorage scope per request keeps Node 20's
 * promise hooks on for every promise in the process (~10% of a warm read's CPU, measured).
 */
const currentRequest = new AsyncLocalStorage<FastifyRequest>();

/**
 * The request fields of a log line: id, method and `url` — the route pattern with only the path parameters that passed
 * validation (loggablePath), then the query with its values redacted. Never caller text a route refused (a token
 * pasted as `:id`), nor query values (they may carry tokens).
 */
export function requestLogFields(req: Pick<FastifyRequest, 'id' | 'method' | 'url' | 'routeOptions' | 'params'>): { id: string; method: string; url: string } {
  const q = req.url.indexOf('?');
  const path = loggablePath(req);
  return { id: String(req.id), method: req.method, url: q < 0 ? path : redactQuery(path + req.url.slice(q), shownQueryNames) };
}

/** The query parameter names a line shows (`logRequests`' `queryNames`: the names the host's routes declare); unset, every name. */
let shownQueryNames: ReadonlySet<string> | undefined;

/** The request fields of the request being served, if any. */
export function currentRequestLogFields(): { id: string; method: string; url: string } | undefined {
  const req = currentRequest.getStore();
  return req === undefined ? undefined : requestLogFields(req);
}

/**
 * One log line per request, written from Fastify's own hooks when the response is sent (or the client
 * leaves first): `req` {id, method, url: route pattern and validated path parameters, query without values}, `res` {statusCode}, `responseTime` (ms),
 * the request span's `trace_id`/`span_id` when tracing. Levels: 5xx error, 4xx warn, else info; health
 * probes and metric scrapes only when they fail. A line the logger would drop is never built.
 * `requestContext`: Nest's own lines written during a request carry its `req` too (see `currentRequest`).
 * `queryNames`: the query parameter names a line may show; any other shows as `[UNDECLARED]` (see redactQuery).
 */
export function logRequests(fastify: FastifyInstance, log: Logger, { requestContext = false, queryNames }: { requestContext?: boolean; queryNames?: ReadonlySet<string> } = {}): void {
  if (queryNames) shownQueryNames = queryNames;
  const writeLine = requestLineWriter(log);
  if (requestContext) fastify.addHook('onRequest', (req, _reply, done) => currentRequest.run(req, done));
  onRequestEnd(fastify, (req, statusCode, elapsedMs) => writeLine(req, statusCode, elapsedMs === undefined ? undefined : Math.round(elapsedMs * 10) / 10));
}

type RequestLineWriter = (req: FastifyRequest, statusCode: number, responseTime: number | undefined) => void;

/** pino's own pieces of a line, as `requestLineWriter` reads them off a logger (`pino.symbols` is pino's public API). */
type PinoInternals = Record<symbol, unknown>;
const S = pino.symbols as typeof pino.symbols & { msgPrefixSym: symbol };

/**
 * Writes request lines for `log`. Through pino's generic path — the object walked key by key, each
 * member stringified, the mixin merged — the line was ~8% of a warm value read's CPU profile (its
 * stream write included), so the line's fixed shape is serialised here (~9.5 → ~6.5 µs of CPU per line,
 * written to the same stream, measured apart). The parts that depend on the logger's settings are
 * pino's own: level prefix (its level formatter applied), time, bindings, message key, line end,
 * `streamWrite` hook (the redaction) and stream. A spec holds this line equal to pino's. A logger set
 * up beyond those (a log formatter, serializers or `redact` paths for the line's keys, a nested key or
 * message prefix, a multistream) and a line with a mixin's fields take pino's path.
 */
export function requestLineWriter(log: Logger): RequestLineWriter {
  const slow: RequestLineWriter = (req, statusCode, responseTime) => writeRequestLine(log, req, statusCode, responseTime);
  const l = log as unknown as PinoInternals;
  const serializers = l[S.serializersSym] as Record<string, unknown>;
  const stringifiers = l[S.stringifiersSym] as Record<string | symbol, unknown>;
  const formatters = l[S.formattersSym] as { log?: unknown };
  const stream = l[S.streamSym] as { write(s: string): unknown; [key: symbol]: unknown };
  const keys = ['req', 'res', 'responseTime', 'trace_id', 'span_id', l[S.messageKeySym] as string];
  const plain =
    !formatters.log &&
    !keys.some((k) => serializers[k] || stringifiers[k]) &&
    !stringifiers[S.wildcardFirstSym] &&
    !l[S.nestedKeySym] &&
    !l[S.msgPrefixSym] &&
    stream[S.needsMetadataGsym] !== true;
  if (!plain) return slow;
  const levelPrefix = l[S.lsCacheSym] as Record<number, string>;
  const time = l[S.timeSym] as () => string;
  const end = l[S.endSym] as string;
  const msgKey = `,${JSON.stringify(l[S.messageKeySym])}:`;
  const mixin = l[S.mixinSym] as ((obj: object, level: number, logger: Logger) => object) | undefined;
  const hook = (l[S.hooksSym] as { streamWrite?: (s: string) => string }).streamWrite;
  return (req, statusCode, responseTime) => {
    const level = requestLevel(req.url, statusCode);
    if (level === undefined || !log.isLevelEnabled(level)) return;
    const num = log.levels.values[level];
    // A mixin's fields would come first and merge with the line's: pino's path does that. It is asked with
    // an empty object, not the line's (the host's mixin reads the active span, never its argument).
    if (mixin && hasOwnKey(mixin({}, num, log))) return slow(req, statusCode, responseTime);
    const { id, method, url } = requestLogFields(req);
    // Bindings read per line: `setBindings` replaces them.
    let s = `${levelPrefix[num]}${time()}${l[S.chindingsSym] as string},"req":{"id":${JSON.stringify(id)},"method":${JSON.stringify(method)},"url":${JSON.stringify(url)}},"res":{"statusCode":${statusCode}}`;
    if (responseTime !== undefined) s += `,"responseTime":${Number.isFinite(responseTime) ? responseTime : null}`;
    const trace = requestTraceLogFields(req);
    if (trace.trace_id !== undefined) s += `,"trace_id":${JSON.stringify(trace.trace_id)},"span_id":${JSON.stringify(trace.span_id)}`;
    s += `${msgKey}${JSON.stringify(requestMessage(statusCode))}${end}`;
    stream.write(hook ? hook(s) : s);
  };
}

function hasOwnKey(o: object): boolean {
  for (const k in o) if (Object.hasOwn(o, k)) return true;
  return false;
}

function requestMessage(statusCode: number): string {
  return statusCode === 0 ? 'request aborted' : statusCode >= 500 ? 'request errored' : 'request completed';
}

/** The request line through pino's own path. */
function writeRequestLine(log: Logger, req: FastifyRequest, statusCode: number, responseTime: number | undefined): void {
  const level = requestLevel(req.url, statusCode);
  if (level === undefined || !log.isLevelEnabled(level)) return;
  const line: Record<string, unknown> = { req: requestLogFields(req), res: { statusCode } };
  if (responseTime !== undefined) line.responseTime = responseTime;
  // Written after the span's context is left: the ids come from the request's own span.
  const trace = requestTraceLogFields(req);
  if (trace.trace_id !== undefined) Object.assign(line, trace);
  log[level](line, requestMessage(statusCode));
}

/** The level of a request's line; undefined for a successful health probe or metrics scrape (every few seconds, they would drown the log). */
export function requestLevel(url: string, statusCode: number): Level | undefined {
  if (statusCode >= 500) return 'error';
  if (statusCode >= 400) return 'warn';
  return /^\/(health|metrics)(\/|\?|$)/.test(url) ? undefined : 'info';
}
