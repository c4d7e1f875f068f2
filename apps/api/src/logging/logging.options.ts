import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { hostname } from 'node:os';
import { pino, type DestinationStream, type Logger, type LoggerOptions } from 'pino';
import type { AppConfig } from '../config/app.config';
import { traceLogFields } from '../telemetry/host-telemetry';

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * Keys whose value can hold a credential, a bearer token or a session: censored at any depth of any
 * log line (headers included, if a line ever carries them).
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
  'authorization',
  'cookie',
  'set-cookie',
  'x-api-key',
];

export const REDACTED = '[REDACTED]';
const SENSITIVE = new Set(SENSITIVE_KEYS);
/** A JSON line that may hold a sensitive key (`"value":` ...; text in a string may match too, then the slow path finds nothing). */
const MAY_HOLD_SENSITIVE = new RegExp(`"(?:${SENSITIVE_KEYS.join('|')})":`);

/**
 * Censors sensitive keys in one serialised log line. Most lines hold none, and one native regex scan
 * tells; only a line that may is parsed, censored at every depth and written again. This replaces
 * pino's path-based redaction, whose wildcard paths cost a selective clone on every line and every
 * per-request child logger (a profiled tenth of a request), and which only reached three levels.
 */
export function redactLine(line: string): string {
  if (!MAY_HOLD_SENSITIVE.test(line)) return line;
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch {
    // Not one JSON object (never from pino): write nothing that might hold a value.
    return `${JSON.stringify({ msg: 'log line withheld: it could not be checked for secrets' })}\n`;
  }
  return `${JSON.stringify(censor(parsed, 0))}\n`;
}

function censor(node: unknown, depth: number): unknown {
  if (node === null || typeof node !== 'object') return node;
  if (depth > 64) return REDACTED;
  if (Array.isArray(node)) return node.map((x) => censor(x, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(node)) out[k] = SENSITIVE.has(k) ? REDACTED : censor(v, depth + 1);
  return out;
}

/** A request id: `given` (a caller's `x-request-id`) when it is well-formed, otherwise a new UUID. HTTP and gRPC share the rule. */
export function requestIdOf(given: unknown): string {
  return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
}

/**
 * Correlation id: the caller's X-Request-Id when it is well-formed, otherwise a new UUID. Fastify
 * calls this once per request (its `genReqId`), so the log lines, the error bodies and the
 * `x-request-id` response header all carry the same id.
 */
export function requestIdFor(req: Pick<IncomingMessage, 'headers'>): string {
  const id = requestIdOf(req.headers['x-request-id']);
  (req as { id?: string }).id = id;
  return id;
}

/**
 * The host's root pino logger options: Nest's own lines (HostLogger) and the request lines
 * (request-log.ts) are written through one logger built from these.
 */
export function hostLogOptions(config: AppConfig): LoggerOptions {
  return {
    level: config.log.level,
    // Every line, request lines and the app's own, is censored as it is written (see redactLine).
    hooks: { streamWrite: redactLine },
    // In the root logger's bindings, serialised once: every line carries it, with no per-request work.
    base: { pid: process.pid, hostname: hostname(), service: 'credential-vault' },
    // Trace ids on every line written inside a span (the request line takes its own span's, see request-log.ts).
    mixin: traceLogFields,
  };
}

/** Bytes of log lines gathered before one write to stdout. */
export const STDOUT_BATCH_BYTES = 4096;
/** The longest a gathered line waits for a write (ms), whatever the traffic. */
export const STDOUT_FLUSH_MS = 200;

/**
 * stdout (or `dest`, a file descriptor or path) for the host's lines: gathered up to
 * STDOUT_BATCH_BYTES and written in one call, at least every STDOUT_FLUSH_MS. A write per line (each a
 * trip to libuv's thread pool) cost more CPU than building the line (measured). Never blocks the event
 * loop. Pino writes what is gathered synchronously when the process exits (also on an uncaught
 * exception); only a killed process (SIGKILL, OOM) loses its last ≤ 200 ms of lines.
 */
export function hostStdout(dest: number | string = 1): DestinationStream {
  return pino.destination({ dest, sync: false, minLength: STDOUT_BATCH_BYTES, periodicFlush: STDOUT_FLUSH_MS });
}

/** The host's root logger: JSON lines on stdout, or on `destination` (tests read what the host logs). */
export function createHostLog(config: AppConfig, destination?: DestinationStream): Logger {
  return pino(hostLogOptions(config), destination ?? hostStdout());
}

/** What a query parameter name no route declares is logged as. */
export const UNDECLARED_QUERY_NAME = '[UNDECLARED]';

/**
 * Query strings may carry tokens (`?access_token=`): keep the path, drop the values. With `declared`, a name not in
 * it is dropped too (a token pasted as a bare `?ghp_…` is a name): only names some route takes are shown.
 */
export function redactQuery(url: string, declared?: ReadonlySet<string>): string {
  const q = url.indexOf('?');
  if (q < 0) return url;
  const params = new URLSearchParams(url.slice(q + 1));
  const keys = new Set<string>();
  for (const k of params.keys()) keys.add(declared === undefined || declared.has(k) ? k : UNDECLARED_QUERY_NAME);
  return `${url.slice(0, q)}?${[...keys].map((k) => `${k}=[REDACTED]`).join('&')}`;
}
