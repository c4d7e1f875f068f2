import { ArgumentsHost, Catch, HttpException, Logger, RpcExceptionFilter } from '@nestjs/common';
import { Metadata, status as GrpcCode } from '@grpc/grpc-js';
import { randomUUID } from 'node:crypto';
import { Observable, throwError } from 'rxjs';
import { CredentialVaultError } from '@app/common';
import { isDatabaseUnavailable, typedDatabaseError } from '../../http/all-exceptions.filter';
import { errorLogFields } from '../../http/error-log-fields';
import { statusForError } from '../../http/error-status';
import { HostErrorCode, hostError, hostErrorCodeOf } from '../../http/host-errors';
import { grpcCallRecord } from './grpc-call-observer';
import { encodeRpcStatus, ERROR_CODE_TRAILER, ERROR_ID_TRAILER, grpcCodeFor, STATUS_DETAILS_TRAILER, StatusDetails } from './grpc-status';

/** What grpc-js sends as the call's status (`code`, `details`, trailers). */
export interface GrpcErrorStatus {
  code: GrpcCode;
  details: string;
  message: string;
  metadata: Metadata;
}

/**
 * The gRPC side of AllExceptionsFilter: every error of a gRPC handler (or its guard) becomes a gRPC
 * status, its typed code in the standard status details and in a plain trailer. Messages are the
 * libs' (which never repeat a value) or fixed texts; an unknown error's message is never sent, and no
 * message reaches the log line (errorLogFields: Azure's text and vault object names stay out).
 */
@Catch()
export class GrpcExceptionFilter implements RpcExceptionFilter<unknown> {
  private readonly logger = new Logger('GrpcErrors');

  catch(exception: unknown, host: ArgumentsHost): Observable<never> {
    const status = this.toStatus(exception, host);
    return throwError(() => status);
  }

  toStatus(exception: unknown, host?: ArgumentsHost): GrpcErrorStatus {
    let d: StatusDetails;
    // A database failure answers as over HTTP: its typed code (a lost session, a deadline), else UNAVAILABLE.
    exception = typedDatabaseError(exception) ?? exception;
    if (exception instanceof CredentialVaultError) {
      const code = exception.code;
      const retryAfterMs = (exception as { retryAfterMs?: number }).retryAfterMs;
      d = { code: grpcCodeFor(statusForError(exception), code), message: inProtoTerms(exception), reason: exception.codeName, metadata: { code: String(code) }, retryAfterMs };
    } else if (exception instanceof HttpException) {
      const res = exception.getResponse();
      const message = typeof res === 'string' ? res : ((res as { message?: string | string[] }).message ?? exception.message);
      const code = grpcCodeFor(exception.getStatus());
      const retryAfterMs = (exception as { retryAfterMs?: unknown }).retryAfterMs; // GrpcRateLimitedException's
      // The host's code of the refusal, as over HTTP (a status the host never raises: the gRPC code's name alone).
      const host = hostErrorCodeOf(exception);
      d = {
        code,
        message: Array.isArray(message) ? message.join('; ') : message,
        ...(host === undefined ? { reason: GrpcCode[code], metadata: {} } : hostDetails(host)),
        retryAfterMs: typeof retryAfterMs === 'number' ? retryAfterMs : undefined,
      };
    } else if (isDatabaseUnavailable(exception)) {
      d = { code: GrpcCode.UNAVAILABLE, message: 'the database is unavailable: retry later', ...hostDetails(HostErrorCode.DATABASE_UNAVAILABLE), retryAfterMs: 1000 };
    } else {
      d = { code: GrpcCode.INTERNAL, message: 'Internal server error', ...hostDetails(HostErrorCode.INTERNAL) };
    }
    const metadata = new Metadata();
    if (d.metadata.code) metadata.set(ERROR_CODE_TRAILER, d.metadata.code);
    if (d.code === GrpcCode.INTERNAL || d.code === GrpcCode.UNKNOWN) {
      const errorId = randomUUID();
      d.metadata.errorId = errorId;
      metadata.set(ERROR_ID_TRAILER, errorId);
      this.logger.error({ errorId, requestId: requestIdOf(host), method: methodOf(host), err: errorLogFields(exception) }, `gRPC call failed (errorId ${errorId})`);
    }
    metadata.set(STATUS_DETAILS_TRAILER, encodeRpcStatus(d));
    return { code: d.code, details: d.message, message: d.message, metadata };
  }
}

/** ErrorInfo's reason and code of a host refusal: its codeName and HostErrorCode, as in an HTTP error body. */
function hostDetails(code: HostErrorCode): Pick<StatusDetails, 'reason' | 'metadata'> {
  return { reason: hostError(code).codeName, metadata: { code: String(code) } };
}

/**
 * The keys lib's request fields that keys.proto spells otherwise: a gRPC client sent `page_size`, and a message
 * about `maxPageSize` names a field it has never seen.
 */
const PROTO_FIELD_NAMES: Readonly<Record<string, string>> = {
  type: 'key_type',
  size: 'key_size',
  keyOps: 'key_ops',
  expiresOn: 'expires_at',
  notBefore: 'not_before',
  maxPageSize: 'page_size',
  continuationToken: 'page_token',
};
const LIB_FIELD_NAME = new RegExp(`\\b(${Object.keys(PROTO_FIELD_NAMES).join('|')})\\b`, 'g');

/** A typed error's message, the fields of a request validation error (one with a `field`) under their proto names. */
function inProtoTerms(e: CredentialVaultError): string {
  if (typeof (e as { field?: unknown }).field !== 'string') return e.message;
  return e.message.replace(LIB_FIELD_NAME, (name) => PROTO_FIELD_NAMES[name]);
}

/** The call's request id (its access line's `req.id`): the handler's second argument is the request metadata. */
function requestIdOf(host?: ArgumentsHost): string | undefined {
  const metadata = host?.getArgByIndex(1) as Metadata | undefined;
  return metadata instanceof Metadata ? grpcCallRecord(metadata)?.requestId : undefined;
}

/** The called method (`/package.Service/Method`): the handler's third argument is grpc-js' call. */
function methodOf(host?: ArgumentsHost): string | undefined {
  return (host?.getArgByIndex(2) as { getPath?: () => string } | undefined)?.getPath?.();
}
