import type { IncomingMessage, Server as HttpServer, ServerResponse } from 'node:http';
import { HttpStatus, type Type } from '@nestjs/common';
import { ModulesContainer, NestFactory } from '@nestjs/core';
import { FastifyAdapter, NestFastifyApplication } from '@nestjs/platform-fastify';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Server } from '@grpc/grpc-js';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import type { DestinationStream, Logger } from 'pino';
import { ThrottlerException } from '@nestjs/throttler';
import { AppModule } from './app.module';
import { AuthGuard } from './auth/auth.guard';
import { IdleConnections, otherListeningServers, SILENT_IN_DRAIN_MS } from './http/idle-connections';
import { errorAnswer, unparsableRequest } from './http/client-errors';
import { carriesContent, deferBodyParsing, dropUnparsableContentType } from './http/request-body';
import { type FixedStatusHostCode, HOST_ERROR_HTTP_STATUS, HostErrorCode, hostError } from './http/host-errors';
import { withErrorAnswers, withSuccessSchemas } from './http/openapi';
import { queryDecodes, UNDECODABLE_QUERY } from './http/query-string';
import { RouteTable } from './http/route-table';
import { assertValidatedInput, declaredQueryNames } from './http/validated-params';
import { observeGrpcCalls, observeNonGrpcRequests, observeUnknownMethods } from './keys/grpc/grpc-call-observer';
import { receiveDeadline } from './keys/grpc/receive-deadline';
import { closeSilentConnections, keysGrpcOptions } from './keys/grpc/grpc-server';
import { KEY_RESTORE_BODY_LIMIT } from './keys/keys.dto';
import { ShutdownState } from './health/shutdown-state';
import { HOST_LOG, holdStartErrorLines, HostLogger, lifecycleLog } from './logging/host-logger';
import { createHostLog, requestIdFor } from './logging/logging.options';
import { logRequests } from './logging/request-log';
import { countHttpRequests, grpcCallMetrics } from './metrics/request-metrics';
import type { AppConfig } from './config/app.config';
import { HTTP_REQUEST_TIMEOUT_DEFAULT_MS } from './config/env-schema';
import { HostTelemetry, type TelemetryOverrides } from './telemetry/host-telemetry';

/** Builds and starts the host. Shared by main.ts and the end-to-end tests, so both boot the same app. */
export async function createApp(
  config: AppConfig,
  options: { log?: Logger; logDestination?: DestinationStream; telemetry?: TelemetryOverrides } = {},
): Promise<NestFastifyApplication> {
  // Before the modules exist: the libs create their OpenTelemetry instruments when they are built.
  const telemetry = HostTelemetry.start(config, options.telemetry);
  // The root logger before Nest: its own start-up lines (and a failed start) are JSON lines like the rest.
  const log = options.log ?? createHostLog(config, options.logDestination);
  // Nest's own lines about the error a failed start throws here are dropped: the caller reports it (main.ts, once).
  const startLines = holdStartErrorLines(log);
  try {
    const app = await NestFactory.create<NestFastifyApplication>(AppModule.forRoot(config, { log, telemetry }), hostAdapter(config.http.requestTimeoutMs), {
      ...HOST_APP_OPTIONS,
      bufferLogs: false,
      logger: new HostLogger(log),
    });
    const started = await configureApp(app, config);
    startLines.release();
    return started;
  } catch (error) {
    startLines.release(error);
    await telemetry?.shutdown();
    throw error;
  }
}

/** Nest application options of the host (also for a host compiled from a testing module). */
export const HOST_APP_OPTIONS = { bufferLogs: true, abortOnError: false, bodyParser: false } as const;

/** The host's Fastify adapter; `requestTimeoutMs`: how long a whole request may take to arrive (HTTP_REQUEST_TIMEOUT_MS). */
export function hostAdapter(requestTimeoutMs = HTTP_REQUEST_TIMEOUT_DEFAULT_MS): FastifyAdapter {
  // Fastify's own request logging is off: the host writes one redacted line per request (logging/request-log.ts).
  // No Nest middleware is used, so middie is not registered (one hook less on every request); a module that
  // adds middleware (`configure(consumer)`) needs `skipMiddie` off again.
  // The body limit sits above Key Vault's 25 KB value limit plus JSON overhead.
  return new FastifyAdapter({
    logger: false,
    skipMiddie: true,
    bodyLimit: 256 * 1024,
    forceCloseConnections: 'idle',
    // A request the replica accepted is served during the close too (with `Connection: close`), not answered with
    // Fastify's bare 503, which has no request id and passes no hook: neither logged nor counted.
    return503OnClosing: false,
    // No implicit HEAD twin of every GET: HEAD on a value route ran the read (vault call, audit row
    // "read/success") without delivering the value, and on the access-token route it could refresh a token.
    // The probes', the scrape's and the OpenAPI document's GET routes answer HEAD too (configureApp's RouteTable).
    exposeHeadRoutes: false,
    genReqId: requestIdFor,
    frameworkErrors: routingError,
    clientErrorHandler: unparsableRequest,
    // A request is authenticated only once its body has arrived: without a deadline on the whole request (Fastify's
    // default is none, which also lifts Node's 300 s) anyone could hold connections open for ever by sending a body a
    // byte at a time. Past it Node answers 408 (unparsableRequest). Headers keep Node's 60 s, unless this is shorter;
    // connections are checked often enough to keep it within a quarter.
    requestTimeout: requestTimeoutMs,
    // Node answers an HTTP/1.1 request without Host with a bare 400 of its own: configureApp's hook answers it instead.
    http: {
      requireHostHeader: false,
      headersTimeout: Math.min(60_000, requestTimeoutMs),
      connectionsCheckingInterval: Math.min(30_000, Math.ceil(requestTimeoutMs / 4)),
    },
  });
}

/** An Expect other than 100-continue: Node answers a bare 417 unless the server listens for it; answered in the error shape. */
function unmetExpectation(_req: IncomingMessage, res: ServerResponse): void {
  const { requestId, body } = errorAnswer(HostErrorCode.EXPECTATION_NOT_SUPPORTED, UNMET_EXPECTATION);
  res.writeHead(417, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body), 'x-request-id': requestId, 'x-content-type-options': 'nosniff' }).end(body);
}

const UNMET_EXPECTATION = 'the Expect header asks for what the server does not do (only 100-continue)';
const NO_HOST = 'the request is not valid HTTP: HTTP/1.1 needs a Host header';
const TWO_HOSTS = 'the request is not valid HTTP: it has more than one Host header';
const BAD_HOST = 'the request is not valid HTTP: its Host header is not a host[:port]';
/** RFC 9112 §3.2's `uri-host [ ":" port ]` (RFC 3986: an IP literal, or a reg-name, which may be empty). */
const HOST_FIELD = /^(?:\[[0-9A-Za-z._~!$&'()*+,;=:-]+\]|(?:[0-9A-Za-z._~!$&'()*+,;=-]|%[0-9A-Fa-f]{2})*)(?::[0-9]*)?$/;

/**
 * RFC 9112 §3.2: a server must answer 400 to an HTTP/1.1 request without Host (Node's own check answered without
 * a body), and to any request with more than one Host field or an invalid one: Node keeps the first of two, where a
 * proxy in front may have routed by the other.
 */
function hostFieldProblem(raw: IncomingMessage): string | undefined {
  let fields = 0;
  for (let i = 0; i < raw.rawHeaders.length; i += 2) if (raw.rawHeaders[i].length === 4 && raw.rawHeaders[i].toLowerCase() === 'host') fields++;
  if (fields === 0) return raw.httpVersion === '1.1' ? NO_HOST : undefined;
  if (fields > 1) return TWO_HOSTS;
  return HOST_FIELD.test(raw.headers.host ?? '') ? undefined : BAD_HOST;
}

/**
 * A request Fastify cannot route (e.g. a path with malformed percent-encoding) never reaches Nest's
 * exception filter: answer in the same error shape, without Fastify's message, which quotes the URL.
 */
function routingError(error: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  const code = error.statusCode === HttpStatus.URI_TOO_LONG ? HostErrorCode.URI_TOO_LONG : HostErrorCode.MALFORMED_REQUEST;
  const message =
    error.code === 'FST_ERR_BAD_URL'
      ? 'the request URL is not valid (malformed percent-encoding)'
      : code === HostErrorCode.URI_TOO_LONG
        ? 'a path segment is longer than the router accepts'
        : 'the request could not be routed';
  answerBeforeNest(request, reply, code, message);
}

const METHOD_NOT_ALLOWED = 'this path does not take this method: the Allow header names the ones it takes';

/**
 * An answer in the host's error shape for a request refused before Nest sees it (so its exception filter cannot). Its
 * body, if one is on its way, is not read: the connection closes after the answer (as after Fastify's own 413),
 * else it stayed open while a slow client sent the rest, and past the request's deadline a second answer came (a 408).
 * Node hands a request over at its headers, before it parses a body that came in the same packet (a small one usually
 * does): whether it has all arrived is known once that packet is parsed, after the I/O callback (setImmediate) — else
 * every such answer closed a connection a keep-alive client could have reused.
 */
function answerBeforeNest(request: FastifyRequest, reply: FastifyReply, code: FixedStatusHostCode, message: string): void {
  if (request.raw.complete || !carriesContent(request.headers)) return sendBeforeNest(request, reply, code, message);
  setImmediate(() => {
    if (!request.raw.complete) void reply.header('connection', 'close');
    sendBeforeNest(request, reply, code, message);
  });
}

function sendBeforeNest(request: FastifyRequest, reply: FastifyReply, code: FixedStatusHostCode, message: string): void {
  const status = HOST_ERROR_HTTP_STATUS[code];
  void reply
    .status(status)
    .header('x-request-id', request.id)
    .header('x-content-type-options', 'nosniff')
    .send({ statusCode: status, error: HttpStatus[status] ?? 'Error', message, ...hostError(code), requestId: String(request.id) });
}

/** The host's telemetry, when it was started (a host compiled from a testing module may not provide it). */
function telemetryOf(app: NestFastifyApplication): HostTelemetry | null {
  try {
    return app.get<HostTelemetry | null>(HostTelemetry, { strict: false });
  } catch {
    return null;
  }
}

/** KeysController's restore, the one route whose body may pass the default bodyLimit. */
const KEY_RESTORE_ROUTE = '/v1/keys/restore';
/** Where the OpenAPI UI is served; its document is at `/docs/json` (and `/docs-yaml`, SwaggerModule's default). */
const OPENAPI_UI = 'docs';
/**
 * The GET routes SwaggerModule adds for the document and the UI's page, which answer HEAD too (the UI's static files
 * answer it already: their plugin's routes). Not `/docs/LICENSE`, which SwaggerModule answers 404.
 */
const OPENAPI_ROUTES = [`/${OPENAPI_UI}`, `/${OPENAPI_UI}/`, `/${OPENAPI_UI}/index.html`, `/${OPENAPI_UI}/json`, `/${OPENAPI_UI}-yaml`, `/${OPENAPI_UI}/swagger-ui-init.js`];

/**
 * Everything `createApp` does to a created application — logger, request-id header, validation,
 * OpenAPI, `Connection: close` while draining — then listens (signals are main.ts's: `closeGracefullyOnSignals`). Benchmarks use it on a host built with provider overrides.
 */
export async function configureApp(app: NestFastifyApplication, config: AppConfig): Promise<NestFastifyApplication> {
  app.useLogger(app.get(HostLogger));
  const fastify = app.getHttpAdapter().getInstance();
  const controllers = [...app.get(ModulesContainer).values()].flatMap((m) => [...m.controllers.values()].map((c) => c.metatype as Type<unknown>));
  // Before any route is registered (Nest registers its routes in listen's init): it hears of every one. HEAD is
  // answered by the probes, the scrape and the OpenAPI document and UI only, which read no credential (docs/OPERATIONS.md, Probes).
  const routes = new RouteTable(fastify, { headToo: ['/health/live', '/health/ready', '/metrics', ...OPENAPI_ROUTES] });
  if (telemetryOf(app)) HostTelemetry.instrumentFastify(fastify);
  logRequests(fastify, app.get(HOST_LOG), { requestContext: config.log.requestContext, queryNames: declaredQueryNames(controllers) });
  if (config.metrics.enabled) countHttpRequests(fastify);
  const shutdown = app.get(ShutdownState);
  const connections = new IdleConnections(app.getHttpServer() as HttpServer, config.http.requestTimeoutMs);
  shutdown.connections = connections;
  (app.getHttpServer() as HttpServer).on('checkExpectation', unmetExpectation);
  const guard = app.get(AuthGuard);
  fastify.addHook('onRequest', (req, reply, done) => {
    void reply.header('x-request-id', req.id);
    // Every answer is JSON (or the docs page): a browser must not guess another type from a body that echoes input.
    void reply.header('x-content-type-options', 'nosniff');
    // The OpenAPI UI is the one HTML page (it takes an API key): no other site may frame it under a decoy (clickjacking).
    if (req.url.startsWith(`/${OPENAPI_UI}`)) void reply.header('x-frame-options', 'DENY').header('content-security-policy', "frame-ancestors 'none'");
    // Draining (SIGTERM, SIGINT): the client leaves this connection after the answer, instead of reusing it as it closes.
    // (Requests that came before the signal: IdleConnections.closeAfterAnswers.)
    if (shutdown.draining) void reply.header('connection', 'close');
    const hostProblem = hostFieldProblem(req.raw);
    if (hostProblem) return answerBeforeNest(req, reply.header('connection', 'close'), HostErrorCode.MALFORMED_REQUEST, hostProblem);
    // Before routing's query is used anywhere (every route, matched or not); the answer ends the request.
    if (!queryDecodes(req.url)) return answerBeforeNest(req, reply, HostErrorCode.MALFORMED_REQUEST, UNDECODABLE_QUERY);
    // Here rather than a hook of its own (one fewer per request): Fastify's 415 would come before the guard (request-body.ts).
    dropUnparsableContentType(req.raw.headers);
    if (req.is404) return void answerUnmatched(req, reply, done);
    done();
  });
  /**
   * A path no route serves (404, Nest's not-found handler answers), or a known path asked with a method it does not
   * take (405 here, with Allow: it tells only what the route table, public at /docs/json, says). Either is counted
   * first, so scanning is throttled: past the limit 429 (AuthGuard.countUnmatched says whose count). Never audited.
   */
  const answerUnmatched = (req: FastifyRequest, reply: FastifyReply, done: (e?: Error) => void): Promise<void> =>
    countUnmatched(req, reply, done, () => {
      const allow = routes.allowedMethods(req.url);
      if (allow) return answerBeforeNest(req, reply.header('allow', allow), HostErrorCode.METHOD_NOT_ALLOWED, METHOD_NOT_ALLOWED);
      done();
    });
  const countUnmatched = async (req: FastifyRequest, reply: FastifyReply, fail: (e: Error) => void, then: () => void): Promise<void> => {
    try {
      await guard.countUnmatched(req, reply);
    } catch (e) {
      if (e instanceof ThrottlerException) return answerBeforeNest(req, reply, HostErrorCode.RATE_LIMIT_EXCEEDED, e.message);
      return fail(e instanceof Error ? e : new Error(String(e)));
    }
    then();
  };
  // A file the OpenAPI UI lacks: its static route (`/docs/*`) matched, so the hook above did not count it, and the
  // plugin hands it to the not-found handler. Counted there the same way; only that route's requests pay for it.
  fastify.addHook('onRoute', (route) => {
    if (!route.url.startsWith(`/${OPENAPI_UI}/`) || !route.url.endsWith('*')) return;
    const serve = route.handler;
    route.handler = function (this: FastifyInstance, req: FastifyRequest, reply: FastifyReply) {
      const notFound = reply.callNotFound.bind(reply);
      reply.callNotFound = () => {
        void countUnmatched(req, reply, (e) => void reply.send(e), notFound);
        return reply;
      };
      return serve.call(this, req, reply);
    };
  });
  // SwaggerModule serves `/docs/index.html` the page of `/docs`, whose asset paths (`./docs/…`) resolve beside
  // index.html to /docs/docs/… (404s, counted as unmatched). It is sent to `/docs/`, whose asset paths resolve.
  fastify.addHook('onRoute', (route) => {
    // A key's backup grows with its versions (76 KB at 10 of RSA-4096): past 256 KiB, one this host made could not be restored.
    if (route.url === KEY_RESTORE_ROUTE) route.bodyLimit = KEY_RESTORE_BODY_LIMIT;
    if (route.url === `/${OPENAPI_UI}/index.html`) route.handler = (_req: FastifyRequest, reply: FastifyReply) => reply.redirect('./', 301);
  });
  // Bodies are read here and parsed only after authentication (AuthGuard, the global guard): HOST_APP_OPTIONS turns Nest's parsers off.
  deferBodyParsing(app.getHttpAdapter().getInstance());
  // Validation is each input parameter's own pipe, not a global one (http/validated-params.ts): checked here for every route.
  assertValidatedInput(controllers);
  const doc = new DocumentBuilder()
    .setTitle('Credential Vault')
    .setDescription('Multi-tenant integration credentials in Azure Key Vault')
    .setVersion('1')
    .addBearerAuth()
    .addApiKey({ type: 'apiKey', in: 'header', name: 'X-API-Key' }, 'api-key')
    .build();
  SwaggerModule.setup(OPENAPI_UI, app, withErrorAnswers(withSuccessSchemas(SwaggerModule.createDocument(app, doc))), { jsonDocumentUrl: `${OPENAPI_UI}/json` });
  // The keys API over gRPC, in the same process and container (guards and filters of its own): off unless GRPC_ENABLED.
  // Each call gets what each HTTP request gets above: a request id, an access line, a server span when tracing.
  if (config.grpc.enabled) {
    const count = config.metrics.enabled ? grpcCallMetrics() : undefined;
    const observe = observeGrpcCalls(app.get(HOST_LOG), { trace: telemetryOf(app) !== null, count });
    // Calls to a path no one serves, and requests that are not gRPC, never reach an interceptor: observed where grpc-js answers them.
    // Both count as a scan from their address, as HTTP's 404s and 405s do (AuthGuard.countGrpcScan).
    const { requestTimeoutMs } = config.http;
    const observeUnserved = (server: Server) => {
      const limit = (ip: string) => guard.countGrpcScan(ip);
      observeUnknownMethods(server, app.get(HOST_LOG), count, limit);
      observeNonGrpcRequests(server, app.get(HOST_LOG), count, limit);
      if (!closeSilentConnections(server, requestTimeoutMs)) app.get(HOST_LOG).warn('gRPC connections that send nothing are not closed: this grpc-js has no Server#http2Servers');
    };
    app.connectMicroservice(keysGrpcOptions(config.grpc, [observe, receiveDeadline(requestTimeoutMs)], observeUnserved, requestTimeoutMs));
    await app.startAllMicroservices();
  }
  await app.listen(config.http.port, config.http.host);
  // HOST=localhost: Fastify listens on each address it resolves to, every one after the first on a server of its own.
  // Fastify gives these its options (requestTimeout and the rest) but not its clientErrorHandler: Node's bare 408 and 400.
  for (const server of otherListeningServers(fastify)) {
    connections.watch(server);
    server.on('checkExpectation', unmetExpectation);
    server.on('clientError', unparsableRequest);
  }
  return app;
}

/**
 * The process's signal handling (main.ts; instead of Nest's shutdown hooks, which close at once). On
 * SIGTERM or SIGINT (Ctrl-C) the replica first drains for `drainMs`: readiness answers 503 so the load balancer stops
 * routing here, every answer carries `Connection: close`, requests are still served, and kept-alive
 * connections silent for the drain's first second (at most half of it) are closed. Then it closes
 * (requests in flight finish; the modules' hooks flush the audit and stop the jobs) and exits 0.
 * `shutdownTimeoutMs` after the close began, the process exits 1 whatever is still pending, saying so;
 * further signals meanwhile are ignored (a second Ctrl-C too: `SHUTDOWN_DRAIN_MS=0` skips the drain).
 */
export function closeGracefullyOnSignals(app: NestFastifyApplication, config: AppConfig): void {
  const log = lifecycleLog(app.get(HOST_LOG));
  let closing = false;
  const close = async (signal: NodeJS.Signals): Promise<void> => {
    if (closing) return;
    const drainMs = config.http.drainMs;
    closing = true;
    const shutdown = app.get(ShutdownState);
    shutdown.startDraining();
    shutdown.connections?.closeAfterAnswers();
    if (drainMs > 0) {
      log.info({ signal, drainMs }, 'Draining before shutdown: readiness answers 503, connections are closed after each answer');
      // Kept-alive connections that stay silent are closed while this replica still listens (IdleConnections).
      void shutdown.connections?.closeSilent(Math.min(SILENT_IN_DRAIN_MS, drainMs / 2));
      await new Promise((resolve) => setTimeout(resolve, drainMs));
    }
    const timeoutMs = config.http.shutdownTimeoutMs;
    setTimeout(() => {
      // Else the exit 1 says nothing of its cause.
      const openConnections = shutdown.connections?.count ?? 0;
      const msg = `Shutdown did not finish within SHUTDOWN_TIMEOUT_MS (${timeoutMs} ms): exiting 1 with ${openConnections} HTTP connection(s) open (requests in flight, or clients that never finished sending one)`;
      log.error({ timeoutMs, openConnections }, msg);
      // LOG_LEVEL=silent writes no line, not even this one: plain text on stderr, as a failed start does (main.ts).
      if (config.log.level === 'silent') process.stderr.write(`${msg}\n`);
      process.exit(1);
    }, timeoutMs).unref();
    try {
      await app.close();
    } catch (e) {
      log.error({ err: e instanceof Error ? { type: e.name, message: e.message } : String(e) }, 'Shutdown failed');
      process.exit(1);
    }
    process.exit(0);
  };
  // SIGINT as SIGTERM: Ctrl-C on `npm start`, and process managers that stop with SIGINT (PM2), drain the same way.
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => void close(signal));
}
