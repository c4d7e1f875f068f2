import { RequestMethod } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { hostname } from 'node:os';
import type { Params } from 'nestjs-pino';
import type { DestinationStream } from 'pino';
import type { Options } from 'pino-http';
import type { AppConfig } from '../config/app.config';
import { requestTraceLogFields, traceLogFields } from '../telemetry/host-telemetry';

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * Fields that can hold a credential or a bearer token. Redacted wherever they appear in a log object
 * (pino's redact paths are literal, so list the nesting levels we use).
 */
const SENSITIVE_KEYS = [
  'value',
  'secret',
  'password',
  'token',
  'accessToken',
  'access_token',
  'refreshToken',
  'refresh_token',
  'clientSecret',
  'client_secret',
  'privateKey',
  'apiKey',
];

export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-api-key"]',
  'res.headers["set-cookie"]',
  ...SENSITIVE_KEYS.flatMap((k) => [k, `*.${k}`, `*.*.${k}`]),
];

/**
 * Correlation id: the caller's X-Request-Id when it is well-formed, otherwise a new UUID. Fastify
 * calls this once per request (its `genReqId`); pino-http then reuses `req.id`, so the log lines, the
 * error bodies and the `x-request-id` response header all carry the same id.
 */
export function requestIdFor(req: Pick<IncomingMessage, 'headers'>): string {
  const given = req.headers['x-request-id'];
  const id = typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
  (req as { id?: string }).id = id;
  return id;
}

export function loggingOptions(config: AppConfig, destination?: DestinationStream): Params {
  const options: Options = {
    level: config.log.level,
    genReqId: (req) => (req as IncomingMessage & { id?: string }).id ?? requestIdFor(req),
    redact: { paths: REDACT_PATHS, censor: '[REDACTED]' },
    // In the root logger's bindings, serialised once: every line carries it, with no per-request work.
    base: { pid: process.pid, hostname: hostname(), service: 'credential-vault' },
    // Trace ids on every line written inside a span, and on the request line from the request's own span.
    mixin: traceLogFields,
    customProps: requestTraceLogFields,
    customLogLevel: (req, res, err) => {
      // Health probes and scrapes every few seconds would drown the log; failures still show.
      if (/^\/(health|metrics)(\/|\?|$)/.test(req.url ?? '') && res.statusCode < 400 && !err) return 'silent';
      const level = err || res.statusCode >= 500 ? 'error' : res.statusCode >= 400 ? 'warn' : 'info';
      // A line the logger would drop anyway (e.g. info at LOG_LEVEL=warn): 'silent' makes pino-http skip
      // building it. Asks pino-http's own response logger (on Fastify `res.log` is Fastify's), so a
      // level changed at runtime on the root logger is honoured.
      const log = res.allLogs?.at(-1);
      return log !== undefined && !log.isLevelEnabled(level) ? 'silent' : level;
    },
    serializers: {
      req: (req: { id: string; method: string; url: string }) => ({ id: req.id, method: req.method, url: redactQuery(req.url) }),
    },
  };
  // Tests pass a destination to read what the host logs; otherwise pino writes JSON lines to stdout.
  return {
    pinoHttp: destination ? [options, destination] : options,
    // nestjs-pino's default route pattern does not reach Fastify routes under Nest 12: name every path.
    forRoutes: [{ path: '/{*splat}', method: RequestMethod.ALL }],
  };
}

/** Query strings may carry tokens (`?access_token=`): keep the path, drop the values. */
function redactQuery(url: string): string {
  const q = url.indexOf('?');
  if (q < 0) return url;
  const params = new URLSearchParams(url.slice(q + 1));
  const keys = [...new Set(params.keys())];
  return `${url.slice(0, q)}?${keys.map((k) => `${k}=[REDACTED]`).join('&')}`;
}
