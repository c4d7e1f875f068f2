import { randomUUID } from 'node:crypto';
import { Metadata, ServerInterceptingCall, status as GrpcCode, type Responder, type Server, type ServerInterceptingCallInterface, type ServerInterceptor } from '@grpc/grpc-js';
import { context, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Context, type Span, type TextMapGetter, type Tracer } from '@opentelemetry/api';
import type { Level, Logger } from 'pino';
import { TRACER_NAME } from '@app/common';
import { httpStatusForCode } from '../../http/error-status';
import { requestIdOf } from '../../logging/logging.options';
import { encodeRpcStatus, ERROR_CODE_TRAILER, STATUS_DETAILS_TRAILER } from './grpc-status';

/** The metadata key of the request id, both ways (as HTTP's `X-Request-Id` header). */
export const REQUEST_ID_METADATA = 'x-request-id';

type GrpcStatus = Parameters<ServerInterceptingCallInterface['sendStatus']>[0];

/** What the host knows of a call being served, found by the call's request metadata (a handler's second argument). */
export interface GrpcCallRecord {
  /** The caller's well-formed `x-request-id`, else a new UUID: sent back, logged, and the audit rows' correlation id. */
  readonly requestId: string;
  /** Set by GrpcAuthGuard once the caller is authenticated. */
  principal?: { tenantId: string; actorId: string };
}

const records = new WeakMap<Metadata, GrpcCallRecord>();

/**
 * Starts the record of the call whose request metadata this is: its request id is the caller's `x-request-id` when
 * it is well-formed and given once, else a new UUID, and is written back into the metadata the handler reads.
 */
export function recordGrpcCall(metadata: Metadata): GrpcCallRecord {
  const given = metadata.get(REQUEST_ID_METADATA);
  const record = { requestId: requestIdOf(given.length === 1 ? given[0] : undefined) };
  metadata.set(REQUEST_ID_METADATA, record.requestId);
  records.set(metadata, record);
  return record;
}

/** The record of the call whose request metadata this is (undefined when no observer saw the call: unit tests). */
export function grpcCallRecord(metadata: Metadata): GrpcCallRecord | undefined {
  return records.get(metadata);
}

/**
 * What HTTP requests get from the host's Fastify hooks, for gRPC calls, as a grpc-js server interceptor:
 * - a request id per call — the caller's `x-request-id` metadata when well-formed (HTTP's rule), else a new UUID —,
 *   put back into the request metadata (GrpcAuthGuard makes it the OperationContext's correlation id) and sent
 *   back in the initial metadata, and in the trailers of an error;
 * - with `options.trace` (the host's telemetry is on), a SERVER span per call, parent taken from the metadata's
 *   `traceparent`, the handler running inside it; attributes `rpc.system`/`rpc.service`/`rpc.method`/`rpc.grpc.status_code`;
 * - one access line per call when its status is sent (or the caller cancels): `req` {id, method: the full method
 *   path}, `res` {grpcStatus, errorCode}, `responseTime` (ms), `tenantId`/`actorId` once authenticated, the span's
 *   ids. Never a message or a metadata value other than the request id.
 * It must be the server's first interceptor: it then also sees the statuses grpc-js sends by itself (deadline
 * passed, a message over the size limit or that does not decompress — the caller's fault, see callersFault —), which no responder is asked about. Not the UNIMPLEMENTED
 * of a path no handler serves: grpc-js answers it before it builds any interceptor chain (observeUnknownMethods).
 */
export function observeGrpcCalls(log: Logger, options: { trace: boolean; count?: GrpcCallCounter }): ServerInterceptor {
  const tracer = options.trace ? trace.getTracer(TRACER_NAME) : undefined;
  return (method, call) => new ObservedCall(method.path, call, log, tracer, options.count).interceptingCall;
}

/**
 * Counts a call once it ended: its full method path (`unknown` for a path the server does not serve), its status code's
 * name, whose failure it was, its duration (none for an unknown method: grpc-js answers it at once, unseen till then).
 */
export type GrpcCallCounter = (method: string, code: string, fault: 'server' | 'client' | 'none', seconds: number | undefined) => void;

/** The method label of every call to a path the server does not serve: the path is the caller's text, unbounded. */
export const UNKNOWN_METHOD = 'unknown';

/**
 * Counts one scan request — a call to a method the server does not serve, a request that is not gRPC — from a peer
 * address; resolves with the seconds until the address may scan again when it is past the limit, else undefined.
 */
export type GrpcScanLimiter = (ip: string) => Promise<number | undefined>;

/** The HTTP/2 stream of a request grpc-js answers by itself, as far as it is used here. */
interface RawStream {
  readonly destroyed: boolean;
  readonly session?: { readonly socket?: { readonly remoteAddress?: string } };
  respond(headers: Record<string, unknown>, options?: unknown): void;
}

/**
 * Gives a call to a path the server does not serve what a served one gets but its span: one access line at `warn`
 * (`req.method` `unknown`, as HTTP logs `unmatched`: never a path the caller chose, which may hold anything; a new
 * request id, also sent back in the trailers: the caller's is not at hand) and a count under the method `unknown`, code UNIMPLEMENTED, fault `client` — HTTP's 404.
 * With `limit`, it is first counted as a scan from its peer's address (HTTP counts its 404s so): past the limit it is
 * answered RESOURCE_EXHAUSTED with a RetryInfo, as the guard's rate limit is. grpc-js
 * (1.14) answers such a path before it builds any interceptor chain, through its Server's `_respondWithError`, which
 * it calls for nothing else: wrapped here, it costs a served call nothing. It is not public API: without it the host
 * says so once at start, and test/keys-grpc-observability.e2e-spec.ts fails.
 */
export function observeUnknownMethods(server: Server, log: Logger, count?: GrpcCallCounter, limit?: GrpcScanLimiter): void {
  type Answer = (this: Server, status: { code?: GrpcCode; details?: string; metadata?: Metadata }, stream: RawStream, ...rest: unknown[]) => void;
  const target = server as unknown as { _respondWithError?: Answer };
  const answer = target._respondWithError;
  if (typeof answer !== 'function') {
    log.warn('Calls to unknown gRPC methods are not observed: this grpc-js has no Server#_respondWithError');
    return;
  }
  target._respondWithError = function (status, stream, ...rest) {
    if (status.code !== GrpcCode.UNIMPLEMENTED) return answer.call(this, status, stream, ...rest);
    const requestId = randomUUID();
    const metadata = status.metadata?.clone() ?? new Metadata();
    metadata.set(REQUEST_ID_METADATA, requestId);
    const send = (retryAfterS: number | undefined) => {
      if (retryAfterS === undefined) {
        unservedCall(log, count, requestId, 'UNIMPLEMENTED', { grpcStatus: 'UNIMPLEMENTED' });
        return answer.call(this, { ...status, metadata }, stream, ...rest);
      }
      unservedCall(log, count, requestId, 'RESOURCE_EXHAUSTED', { grpcStatus: 'RESOURCE_EXHAUSTED' });
      metadata.set(STATUS_DETAILS_TRAILER, encodeRpcStatus({ ...SCAN_REFUSED, metadata: {}, retryAfterMs: retryAfterS * 1000 }));
      return answer.call(this, { code: SCAN_REFUSED.code, details: SCAN_REFUSED.message, metadata }, stream, ...rest);
    };
    if (!limit) return send(undefined);
    void scanLimited(limit, stream).then((retryAfterS) => {
      if (!stream.destroyed) send(retryAfterS);
    });
  };
}

/** What a scan past the limit is answered (RESOURCE_EXHAUSTED, as the guard's rate limit). */
const SCAN_REFUSED = { code: GrpcCode.RESOURCE_EXHAUSTED, message: 'too many requests from this address: RATE_LIMIT_PER_MINUTE', reason: 'RESOURCE_EXHAUSTED' } as const;

/** The limiter's answer for the stream's peer; a limiter that fails lets the request through (it is answered a refusal anyway). */
async function scanLimited(limit: GrpcScanLimiter, stream: RawStream): Promise<number | undefined> {
  try {
    return await limit(stream.session?.socket?.remoteAddress ?? '');
  } catch {
    return undefined;
  }
}

/** The metric's code of a request refused as not gRPC at all: it has no gRPC status, only HTTP's. */
export const NOT_GRPC_CODE = 'HTTP_415';

/**
 * Gives a request that is not gRPC at all — its `content-type` is not `application/grpc…`, which grpc-js (1.14) answers
 * HTTP 415 with no gRPC status, before any metadata is read or interceptor built — what an unknown method's call gets
 * (observeUnknownMethods): one access line at `warn` (`req.method` `unknown`, `res.httpStatus` 415), a new request id
 * sent back in the 415's headers, a count under method `unknown`, code NOT_GRPC_CODE, fault `client` (HTTP's own 415).
 * With `limit`, it is counted as a scan first: past the limit it is answered HTTP 429 with `retry-after` instead (code
 * `HTTP_429`). grpc-js decides this in its Server's `_verifyContentType`, replaced here by the same test (a served call
 * costs nothing more), whose refusal is answered here: grpc-js takes `false` as "answered". Not public API: without it
 * the host says so once at start, and test/keys-grpc-observability.e2e-spec.ts fails.
 */
export function observeNonGrpcRequests(server: Server, log: Logger, count?: GrpcCallCounter, limit?: GrpcScanLimiter): void {
  type Verify = (this: Server, stream: RawStream, headers: Record<string, unknown>) => boolean;
  const target = server as unknown as { _verifyContentType?: Verify };
  const verify = target._verifyContentType;
  if (typeof verify !== 'function') {
    log.warn('Requests that are not gRPC are not observed: this grpc-js has no Server#_verifyContentType');
    return;
  }
  target._verifyContentType = function (stream, headers) {
    const type = headers['content-type'];
    if (typeof type === 'string' && type.startsWith('application/grpc')) return verify.call(this, stream, headers);
    const requestId = randomUUID();
    const send = (retryAfterS: number | undefined) => {
      const status = retryAfterS === undefined ? 415 : 429;
      unservedCall(log, count, requestId, retryAfterS === undefined ? NOT_GRPC_CODE : 'HTTP_429', { httpStatus: status });
      const retry = retryAfterS === undefined ? {} : { 'retry-after': String(retryAfterS) };
      stream.respond({ ':status': status, [REQUEST_ID_METADATA]: requestId, ...retry }, { endStream: true });
    };
    if (!limit) send(undefined);
    else
      void scanLimited(limit, stream).then((retryAfterS) => {
        if (!stream.destroyed) send(retryAfterS);
      });
    return false;
  };
}

/** The line and count of a request grpc-js answered before any interceptor saw it (so no span and no duration): the caller's fault. */
function unservedCall(log: Logger, count: GrpcCallCounter | undefined, requestId: string, code: string, res: Record<string, unknown>): void {
  count?.(UNKNOWN_METHOD, code, 'client', undefined);
  log.warn({ req: { id: requestId, method: UNKNOWN_METHOD }, res }, 'gRPC call completed');
}

/** Codes that are the server's failure, not the caller's: logged at `error` (as HTTP's 5xx) when no typed error says otherwise. */
const SERVER_FAILURES = new Set<GrpcCode>([GrpcCode.UNKNOWN, GrpcCode.INTERNAL, GrpcCode.UNIMPLEMENTED, GrpcCode.UNAVAILABLE, GrpcCode.DATA_LOSS]);

/**
 * The level of a call's line, as the same outcome's over HTTP. A typed error (its `cv-error-code`) takes the level of
 * its HTTP status: our own vault call timing out is DEADLINE_EXCEEDED here and 504 there, so `error` both ways, and the
 * vault's throttling or a full bulkhead (RESOURCE_EXHAUSTED here, 503 there) too. Without one the code decides:
 * DEADLINE_EXCEEDED is then the caller's own deadline (grpc-js answers it), `warn` as a 4xx.
 */
function grpcCallLevel(code: GrpcCode, errorCode?: number): Level {
  if (code === GrpcCode.OK || code === GrpcCode.CANCELLED) return 'info';
  const httpStatus = errorCode === undefined ? undefined : httpStatusForCode(errorCode);
  if (httpStatus !== undefined) return httpStatus >= 500 ? 'error' : httpStatus >= 400 ? 'warn' : 'info';
  return SERVER_FAILURES.has(code) ? 'error' : 'warn';
}

/** What grpc-js advertises it decompresses (its default response headers): sent with its refusal of any other. */
const ACCEPTED_ENCODINGS = 'identity,deflate,gzip';

/**
 * grpc-js' own answers (grpc-js 1.14, by their fixed texts) to what the caller sent wrong: a message that does not
 * decompress (INTERNAL), one compressed with an encoding it lacks (UNIMPLEMENTED), a `grpc-timeout` it cannot read
 * (INTERNAL), a unary call that ends without its message or sends two (UNIMPLEMENTED: gRPC's cardinality violation;
 * grpc-js' text says "server streaming method" for unary ones too). The codes are gRPC's own (its status codes document;
 * every gRPC server answers them so) and stay on the wire; the fault is the caller's, as HTTP's 400 for a body it cannot
 * read: logged at `warn`, counted `client`.
 */
function callersFault(code: GrpcCode, details: string): boolean {
  if (code === GrpcCode.INTERNAL) return details === 'Failed to decompress message' || details.startsWith('Invalid grpc-timeout value');
  return (
    code === GrpcCode.UNIMPLEMENTED &&
    (unsupportedEncoding(details) || details.startsWith('Received no request message for') || details.startsWith('Received a second request message for'))
  );
}

/** grpc-js' refusal of a message compressed with an encoding it lacks (its answer then names those it accepts). */
function unsupportedEncoding(details: string): boolean {
  return details.startsWith('Received message compressed with unsupported encoding');
}
/** OpenTelemetry's gRPC server convention: these codes (and no others) make the span an error. */
const SPAN_ERRORS = new Set<GrpcCode>([...SERVER_FAILURES, GrpcCode.DEADLINE_EXCEEDED]);

/** How much earlier than ours a caller's deadline may pass (see ObservedCall.deadlinePassed). */
const DEADLINE_SKEW_MS = 250;

/** `traceparent`/`tracestate`/`baggage` read from request metadata. */
const METADATA_GETTER: TextMapGetter<Metadata> = {
  keys: (metadata) => Object.keys(metadata.getMap()),
  get: (metadata, key) => {
    const values = metadata.get(key).filter((v): v is string => typeof v === 'string');
    return values.length === 0 ? undefined : values;
  },
};

class ObservedCall {
  readonly interceptingCall: ServerInterceptingCall;
  private readonly started = performance.now();
  private readonly arrivedAt = Date.now();
  private record?: GrpcCallRecord;
  private span?: Span;
  private spanContext?: Context;
  private headersSent = false;
  private ended = false;

  constructor(
    private readonly path: string,
    private readonly call: ServerInterceptingCallInterface,
    private readonly log: Logger,
    private readonly tracer: Tracer | undefined,
    private readonly count: GrpcCallCounter | undefined,
  ) {
    // grpc-js' own statuses go straight to the call it made (this one, when first): they are seen here.
    const sendStatus = call.sendStatus.bind(call);
    call.sendStatus = (status) => sendStatus(this.finish(status));
    const responder: Responder = {
      start: (next) =>
        next({
          onReceiveMetadata: (metadata, nextMetadata) => {
            this.begin(metadata);
            this.inSpan(() => nextMetadata(metadata));
          },
          onReceiveMessage: (message, nextMessage) => this.inSpan(() => nextMessage(message)),
          // A unary handler is started here: it runs inside the call's span.
          onReceiveHalfClose: (nextHalfClose) => this.inSpan(nextHalfClose),
          // After a status too; without one, the caller cancelled (or its connection dropped).
          onCancel: () => this.end(this.deadlinePassed() ? GrpcCode.DEADLINE_EXCEEDED : GrpcCode.CANCELLED),
        }),
      sendMetadata: (metadata, next) => {
        this.headersSent = true;
        metadata.set(REQUEST_ID_METADATA, this.requestId());
        next(metadata);
      },
    };
    this.interceptingCall = new ServerInterceptingCall(call, responder);
  }

  private begin(metadata: Metadata): void {
    this.record = recordGrpcCall(metadata);
    if (!this.tracer) return;
    const parent = propagation.extract(ROOT_CONTEXT, metadata, METADATA_GETTER);
    const [service, rpcMethod] = this.path.slice(1).split('/');
    this.span = this.tracer.startSpan(
      this.path.slice(1),
      { kind: SpanKind.SERVER, attributes: { 'rpc.system': 'grpc', 'rpc.service': service, 'rpc.method': rpcMethod } },
      parent,
    );
    this.spanContext = trace.setSpan(parent, this.span);
  }

  /**
   * Whether a cancellation is the caller's deadline: a grpc-js client cancels the call when its deadline passes,
   * which may reach us just before our copy of it passes (ours started when the call arrived, theirs when it was
   * sent). So: less than a quarter of the call's time, and at most DEADLINE_SKEW_MS, was left.
   */
  private deadlinePassed(): boolean {
    const deadline = this.call.getDeadline();
    const at = deadline instanceof Date ? deadline.getTime() : deadline;
    if (!Number.isFinite(at)) return false;
    return at - Date.now() <= Math.min(DEADLINE_SKEW_MS, (at - this.arrivedAt) / 4);
  }

  private inSpan(work: () => void): void {
    if (this.spanContext) context.with(this.spanContext, work);
    else work();
  }

  private requestId(): string {
    // A call cancelled before its metadata was read still gets an id for its line.
    this.record ??= { requestId: randomUUID() };
    return this.record.requestId;
  }

  /**
   * The status as sent: the request id added to the trailers of an error (and of an answer without headers), and to a
   * refused compression the encodings accepted, as gRPC's compression spec asks.
   */
  private finish(status: GrpcStatus): GrpcStatus {
    if (this.ended) return status;
    const given = Number(status.metadata?.get(ERROR_CODE_TRAILER)[0]);
    const errorCode = Number.isInteger(given) ? given : undefined;
    // An OK answer costs one comparison more; only an untyped INTERNAL or UNIMPLEMENTED (rare) has its text read.
    const callers = status.code !== GrpcCode.OK && errorCode === undefined && callersFault(status.code, status.details ?? '');
    this.end(status.code, errorCode, callers);
    if (status.code === GrpcCode.OK && this.headersSent) return status;
    const metadata = status.metadata?.clone() ?? new Metadata();
    metadata.set(REQUEST_ID_METADATA, this.requestId());
    if (callers && status.code === GrpcCode.UNIMPLEMENTED && unsupportedEncoding(status.details ?? '')) metadata.set('grpc-accept-encoding', ACCEPTED_ENCODINGS);
    return { ...status, metadata };
  }

  private end(code: GrpcCode, errorCode?: number, byCaller = false): void {
    if (this.ended) return;
    this.ended = true;
    const span = this.span;
    if (span) {
      span.setAttribute('rpc.grpc.status_code', code);
      if (SPAN_ERRORS.has(code)) span.setStatus({ code: SpanStatusCode.ERROR });
      span.end();
    }
    const elapsedMs = performance.now() - this.started;
    const level = byCaller ? 'warn' : grpcCallLevel(code, errorCode);
    // The metric's fault says what the line's level says: an alert on server faults sees our vault timing out, not callers' deadlines.
    this.count?.(this.path, GrpcCode[code], level === 'error' ? 'server' : level === 'warn' ? 'client' : 'none', elapsedMs / 1000);
    if (!this.log.isLevelEnabled(level)) return;
    const line: Record<string, unknown> = {
      req: { id: this.requestId(), method: this.path },
      res: errorCode === undefined ? { grpcStatus: GrpcCode[code] } : { grpcStatus: GrpcCode[code], errorCode },
      responseTime: Math.round(elapsedMs * 10) / 10,
    };
    const principal = this.record?.principal;
    if (principal) Object.assign(line, principal);
    if (span) Object.assign(line, { trace_id: span.spanContext().traceId, span_id: span.spanContext().spanId });
    this.log[level](line, code === GrpcCode.CANCELLED ? 'gRPC call cancelled' : level === 'error' ? 'gRPC call errored' : 'gRPC call completed');
  }
}
