import { HttpStatus } from '@nestjs/common';
import { status as GrpcCode } from '@grpc/grpc-js';

/**
 * gRPC status codes for our errors. A typed lib error's code picks the HTTP status (the host's one
 * table); the gRPC code follows from that status, as the gRPC "HTTP to gRPC status" mapping does,
 * except where gRPC has a more precise code than HTTP had.
 */
const BY_HTTP_STATUS: Partial<Record<HttpStatus, GrpcCode>> = {
  [HttpStatus.BAD_REQUEST]: GrpcCode.INVALID_ARGUMENT,
  [HttpStatus.UNAUTHORIZED]: GrpcCode.UNAUTHENTICATED,
  [HttpStatus.FORBIDDEN]: GrpcCode.PERMISSION_DENIED,
  [HttpStatus.NOT_FOUND]: GrpcCode.NOT_FOUND,
  [HttpStatus.CONFLICT]: GrpcCode.FAILED_PRECONDITION,
  [HttpStatus.GONE]: GrpcCode.NOT_FOUND,
  [HttpStatus.PAYLOAD_TOO_LARGE]: GrpcCode.INVALID_ARGUMENT,
  [HttpStatus.UNSUPPORTED_MEDIA_TYPE]: GrpcCode.INVALID_ARGUMENT,
  [HttpStatus.UNPROCESSABLE_ENTITY]: GrpcCode.INVALID_ARGUMENT,
  [HttpStatus.TOO_MANY_REQUESTS]: GrpcCode.RESOURCE_EXHAUSTED,
  [HttpStatus.INTERNAL_SERVER_ERROR]: GrpcCode.INTERNAL,
  [HttpStatus.NOT_IMPLEMENTED]: GrpcCode.UNIMPLEMENTED,
  // Our upstream (the vault) refused or failed: nothing the caller can fix, retry later.
  [HttpStatus.BAD_GATEWAY]: GrpcCode.UNAVAILABLE,
  [HttpStatus.SERVICE_UNAVAILABLE]: GrpcCode.UNAVAILABLE,
  [HttpStatus.GATEWAY_TIMEOUT]: GrpcCode.DEADLINE_EXCEEDED,
};

/**
 * Codes whose gRPC status is not the one of their HTTP status: over HTTP the vault's throttling
 * (1001) and our full bulkhead (1012) are 503 with Retry-After; gRPC names them RESOURCE_EXHAUSTED.
 * A call dropped because its caller left (1019, HTTP 499) is CANCELLED.
 */
const BY_ERROR_CODE: Readonly<Record<number, GrpcCode>> = {
  1001: GrpcCode.RESOURCE_EXHAUSTED,
  1012: GrpcCode.RESOURCE_EXHAUSTED,
  // The caller left (HTTP 499): grpc-js has already answered it (CANCELLED or DEADLINE_EXCEEDED); never an INTERNAL with an errorId.
  1019: GrpcCode.CANCELLED,
};

/** The gRPC status code of an error answered over HTTP with `httpStatus` (and the lib code `code`, if any). */
export function grpcCodeFor(httpStatus: number, code?: number): GrpcCode {
  if (code !== undefined && BY_ERROR_CODE[code] !== undefined) return BY_ERROR_CODE[code];
  return BY_HTTP_STATUS[httpStatus as HttpStatus] ?? (httpStatus >= 500 ? GrpcCode.INTERNAL : GrpcCode.UNKNOWN);
}

/** `google.rpc.ErrorInfo.domain` of every error we send. */
export const ERROR_DOMAIN = 'credential-vault';
/** Trailing metadata with the stable numeric code, for clients that do not decode `grpc-status-details-bin`. */
export const ERROR_CODE_TRAILER = 'cv-error-code';
/** On INTERNAL answers: the id of the log line that has the cause (the client never sees internals). */
export const ERROR_ID_TRAILER = 'cv-error-id';

/** The binary trailer gRPC clients read status details from (`google.rpc.Status`). */
export const STATUS_DETAILS_TRAILER = 'grpc-status-details-bin';

export interface StatusDetails {
  code: GrpcCode;
  message: string;
  /** `google.rpc.ErrorInfo.reason`: the codeName (e.g. KEY_NOT_FOUND), or the gRPC code's name for transport errors. */
  reason: string;
  /** `ErrorInfo.metadata`, e.g. `{ code: '1003' }`. */
  metadata: Record<string, string>;
  /** `google.rpc.RetryInfo.retry_delay`, when the caller should wait before retrying. */
  retryAfterMs?: number;
}

/**
 * A serialised `google.rpc.Status` with an `ErrorInfo` (and a `RetryInfo` when there is a delay) —
 * what gRPC's richer error model puts in the `grpc-status-details-bin` trailer, so clients of any
 * language read it with their standard helpers (Go `status.FromError(err).Details()`, Java
 * `StatusProto.fromThrowable`). Encoded by hand: four small messages, no protobuf runtime needed.
 */
export function encodeRpcStatus(d: StatusDetails): Buffer {
  const errorInfo = Buffer.concat([
    stringField(1, d.reason),
    stringField(2, ERROR_DOMAIN),
    ...Object.entries(d.metadata).map(([k, v]) => messageField(3, Buffer.concat([stringField(1, k), stringField(2, v)]))),
  ]);
  const details = [any('google.rpc.ErrorInfo', errorInfo)];
  if (d.retryAfterMs !== undefined && d.retryAfterMs >= 0) {
    // At least 1 s, as HTTP's Retry-After: a delay of 0 (a breaker's break just ending) sends the client straight back.
    const delayMs = Math.max(1000, d.retryAfterMs);
    const seconds = Math.floor(delayMs / 1000);
    const nanos = (delayMs % 1000) * 1_000_000;
    const duration = Buffer.concat([seconds > 0 ? varintField(1, seconds) : Buffer.alloc(0), nanos > 0 ? varintField(2, nanos) : Buffer.alloc(0)]);
    details.push(any('google.rpc.RetryInfo', messageField(1, duration)));
  }
  return Buffer.concat([varintField(1, d.code), stringField(2, d.message), ...details.map((a) => messageField(3, a))]);
}

/** `google.protobuf.Any` packing `value` as `type.googleapis.com/<type>`. */
function any(type: string, value: Buffer): Buffer {
  return Buffer.concat([stringField(1, `type.googleapis.com/${type}`), messageField(2, value)]);
}

function varint(n: number): Buffer {
  const bytes: number[] = [];
  let v = n;
  while (v > 0x7f) {
    bytes.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  bytes.push(v);
  return Buffer.from(bytes);
}

/** Wire type 0 (varint); proto3 leaves a zero out. */
function varintField(field: number, n: number): Buffer {
  return n === 0 ? Buffer.alloc(0) : Buffer.concat([varint(field << 3), varint(n)]);
}

/** Wire type 2 (length-delimited): strings, bytes and embedded messages. */
function messageField(field: number, payload: Buffer): Buffer {
  return Buffer.concat([varint((field << 3) | 2), varint(payload.length), payload]);
}

function stringField(field: number, s: string): Buffer {
  return s === '' ? Buffer.alloc(0) : messageField(field, Buffer.from(s, 'utf8'));
}
