import { ArgumentsHost, Catch, ExceptionFilter, HttpException, HttpStatus, Logger } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { CredentialVaultError, DatabaseConnectionLostError, isSessionEnded, retryAfterSeconds } from '@app/common';
import { errorLogFields } from './error-log-fields';
import { statusForError } from './error-status';
import { HostErrorCode, hostError, hostErrorCodeOf } from './host-errors';

interface ErrorBody {
  statusCode: number;
  error: string;
  message: string | string[];
  code: number;
  codeName: string;
  errorId?: string;
  requestId?: string;
}

/**
 * Maps every error to one JSON shape. Typed lib errors keep their stable code; the host's own refusals (Nest's and
 * Fastify's HttpExceptions, an unreachable database, a fault of ours) carry a HostErrorCode; 5xx answers carry an
 * `errorId` that is also in the log line, so an operator can find the cause without the client ever
 * seeing internals. Messages of unknown errors are never sent to the client, and no message reaches
 * the log line (errorLogFields).
 */
@Catch()
export class AllExceptionsFilter implements ExceptionFilter {
  private readonly logger = new Logger('HttpErrors');

  catch(exception: unknown, host: ArgumentsHost): void {
    const ctx = host.switchToHttp();
    const reply = ctx.getResponse<FastifyReply>();
    const request = ctx.getRequest<FastifyRequest>();
    const requestId = String(request?.id ?? '');
    let body: ErrorBody;
    // Not for a client that left mid-body: Node's "aborted" is an ECONNRESET too, but of the request's own socket.
    if (!isClientGone(exception, request)) exception = typedDatabaseError(exception) ?? exception;

    if (exception instanceof CredentialVaultError) {
      const status = statusForError(exception);
      body = {
        statusCode: status,
        error: HttpStatus[status] ?? 'Error',
        message: exception.message,
        code: exception.code,
        codeName: exception.codeName,
      };
      const retryAfterS = errorRetryAfterSeconds(exception);
      if (retryAfterS !== undefined && status === HttpStatus.SERVICE_UNAVAILABLE) void reply.header('Retry-After', String(retryAfterS));
    } else if (exception instanceof HttpException && isHealthReport(exception.getResponse())) {
      // Terminus' 503: operators and orchestrators read its per-check report, keep it whole.
      void reply.status(exception.getStatus()).send(exception.getResponse());
      return;
    } else if (exception instanceof HttpException) {
      const status = exception.getStatus();
      const res = exception.getResponse();
      let message = typeof res === 'string' ? res : ((res as { message?: string | string[] }).message ?? exception.message);
      // The router's "Cannot GET /path?query" repeats the request; the client knows what it asked for.
      if (status === HttpStatus.NOT_FOUND && typeof message === 'string' && /^Cannot [A-Z]+ /.test(message)) message = 'no route matches this method and path';
      // A status the host has no code of its own for (409, 422, a 503 that is not the health report, a plugin's 403): the generic one.
      body = { statusCode: status, error: HttpStatus[status] ?? 'Error', message, ...hostError(hostErrorCodeOf(exception) ?? HostErrorCode.HTTP_ERROR) };
    } else if (isClientGone(exception, request)) {
      // The client left before its body arrived whole (Node's "aborted" on the request stream): its request, not our
      // failure, and its access line already says `request aborted`. Answered for form's sake; no one reads it.
      body = { statusCode: 400, error: 'BAD_REQUEST', message: 'the request body did not arrive whole', ...hostError(HostErrorCode.MALFORMED_REQUEST) };
    } else if (isDatabaseUnavailable(exception)) {
      // Not a fault of ours or the caller's: the connection was lost or refused (a failover, a restart).
      body = { statusCode: 503, error: 'SERVICE_UNAVAILABLE', message: 'the database is unavailable: retry later', ...hostError(HostErrorCode.DATABASE_UNAVAILABLE) };
      void reply.header('Retry-After', '1');
    } else {
      body = { statusCode: 500, error: 'INTERNAL_SERVER_ERROR', message: 'Internal server error', ...hostError(HostErrorCode.INTERNAL) };
    }

    if (body.statusCode >= 500) {
      body.errorId = randomUUID();
      this.logger.error(
        { errorId: body.errorId, requestId, statusCode: body.statusCode, err: errorLogFields(exception) },
        `Request failed with ${body.statusCode} (errorId ${body.errorId})`,
      );
    }
    if (requestId) body.requestId = requestId;
    // A JSON body whatever the route declared for its success (`/metrics` says text/plain: Fastify would refuse the object, a 500).
    void reply.status(body.statusCode).type('application/json; charset=utf-8').send(body);
  }
}

/**
 * Libs say "retry later" as `retryAfterMs` (Key Vault, audit) or `retryAfter: Date` (OAuth cooldown). Whole seconds,
 * rounded up, at least 1 — a CIRCUIT_OPEN whose break just ended (`retryAfterMs: 0`) included.
 */
function errorRetryAfterSeconds(e: CredentialVaultError): number | undefined {
  const ms = (e as { retryAfterMs?: number }).retryAfterMs;
  if (typeof ms === 'number' && ms >= 0) return retryAfterSeconds(ms);
  const at = (e as { retryAfter?: Date }).retryAfter;
  if (at instanceof Date) return retryAfterSeconds(at.getTime() - Date.now());
  return undefined;
}

function isHealthReport(res: unknown): boolean {
  return typeof res === 'object' && res !== null && 'status' in res && 'details' in res && 'info' in res;
}

/**
 * PostgreSQL's "connection exception" class (08), its shutdowns (57P01–57P03, e.g. pg_terminate_backend), and
 * a statement it cancelled because it ran or waited for a lock too long (57014: DATABASE_STATEMENT_TIMEOUT_MS,
 * 55P03: a lock_timeout): the database is busy or stalled, not the request wrong.
 */
const DATABASE_UNAVAILABLE_SQLSTATE = /^(08\d{3}|57P0[1-3]|57014|55P03)$/;
/** What the pg driver and Node raise for a connection that is gone or never came. */
const CONNECTION_ERRNO = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH']);
/**
 * pg-pool's refusal to hand out a client once our side ended the pool (the DataSource destroyed at shutdown as a
 * request's query asked for one). No session was lost, nothing was sent — so not `isSessionEnded` — but it is the
 * shutdown race of "Client was closed and is not queryable": the same 503 code, retried on another replica.
 */
const POOL_ENDED = 'Cannot use a pool after calling end on the pool';
const CONNECTION_LOST = new RegExp(`^(Connection terminated( unexpectedly| due to connection timeout)?|timeout exceeded when trying to connect|Client (has encountered a connection error|was closed) and is not queryable|${POOL_ENDED})$`);

type DriverLayer = { code?: unknown; message?: unknown; driverError?: unknown };

/** Whether `e`, or a driver error it wraps (TypeORM keeps it as `driverError`; three layers at most), passes `test`. */
function anyDriverLayer(e: unknown, test: (code: string | undefined, message: string | undefined) => boolean): boolean {
  for (let err = e as DriverLayer | undefined, depth = 0; err && depth < 3; err = err.driverError as DriverLayer | undefined, depth++) {
    if (test(typeof err.code === 'string' ? err.code : undefined, typeof err.message === 'string' ? err.message : undefined)) return true;
  }
  return false;
}

/** A query that failed because the database could not be reached, not because of the query. */
export function isDatabaseUnavailable(e: unknown): boolean {
  return anyDriverLayer(
    e,
    (code, message) => (code !== undefined && (DATABASE_UNAVAILABLE_SQLSTATE.test(code) || CONNECTION_ERRNO.has(code))) || (message !== undefined && CONNECTION_LOST.test(message)),
  );
}

/**
 * Node's error for a request whose client left while its body was being read (`ECONNRESET` "aborted", raised by the
 * request stream), on a request whose socket is gone. A database connection reset says "read ECONNRESET" instead.
 */
function isClientGone(e: unknown, request: FastifyRequest | undefined): boolean {
  const err = e as { code?: unknown; message?: unknown } | null | undefined;
  return err?.code === 'ECONNRESET' && err.message === 'aborted' && request?.raw?.destroyed === true;
}

/**
 * The typed error for a driver failure, if it has one: the typed error raised under the driver (a query past its
 * deadline: DATABASE_UNRESPONSIVE, wrapped in TypeORM's QueryFailedError), or DATABASE_CONNECTION_LOST for a query
 * whose session ended while it ran (`isSessionEnded`) or that met the pool ended by shutdown — a client switches on the code to retry. Other unavailability (refused
 * connections, statement or lock timeouts) stays the untyped 503 of isDatabaseUnavailable.
 */
export function typedDatabaseError(e: unknown): CredentialVaultError | undefined {
  if (e instanceof CredentialVaultError) return undefined;
  const driverError = (e as { driverError?: unknown } | null | undefined)?.driverError;
  if (driverError instanceof CredentialVaultError) return driverError;
  const lost = isSessionEnded(e) || anyDriverLayer(e, (_code, message) => message === POOL_ENDED);
  return lost ? new DatabaseConnectionLostError({ cause: e, during: 'query' }) : undefined;
}
