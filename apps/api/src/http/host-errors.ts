import { ForbiddenException, HttpException, HttpStatus } from '@nestjs/common';

/**
 * The host's own refusals, by what the client did wrong: the requests Nest, Fastify, Node's parser and the host's
 * guard refuse before or around the libs (whose typed errors carry their own codes). Block `host` of
 * ERROR_CODE_RANGES (90000–90999, far from the libs' blocks, which grow up from 1000 by thousands). The names of the
 * auth guard's refusals are those of their audit rows' `errorCode`. Never renumber; a codeName is unique across
 * every lib (hence RATE_LIMIT_EXCEEDED: the vault's throttling of us is key-vault's 1001 RATE_LIMITED).
 */
export enum HostErrorCode {
  /** A body field, query parameter or path parameter failed validation, or the route does not take it. */
  VALIDATION_FAILED = 90001,
  /** The body is not a JSON object in UTF-8 (not JSON, too deeply nested, a repeated member name, a forbidden key). */
  MALFORMED_BODY = 90002,
  /** Not valid HTTP, or not a URL the router can read (Host header, percent-encoding), or a body that did not arrive whole. */
  MALFORMED_REQUEST = 90003,
  /** No valid API key or bearer token. */
  UNAUTHENTICATED = 90004,
  /** Authenticated, but without a scope the route needs. */
  MISSING_SCOPE = 90005,
  /** No route serves this path. */
  ROUTE_NOT_FOUND = 90006,
  /** The path is served, but not with this method (the Allow header names those it takes). */
  METHOD_NOT_ALLOWED = 90007,
  /** The request line and headers took too long to arrive. */
  REQUEST_TIMEOUT = 90008,
  /** The body is larger than the route accepts. */
  BODY_TOO_LARGE = 90009,
  /** A path segment is longer than the router accepts. */
  URI_TOO_LONG = 90010,
  /** The body is not `application/json` in UTF-8, or it is compressed. */
  UNSUPPORTED_MEDIA_TYPE = 90011,
  /** An `Expect` header other than `100-continue`. */
  EXPECTATION_NOT_SUPPORTED = 90012,
  /** Past `RATE_LIMIT_PER_MINUTE` (per client and route, failed authentications per address): retry after Retry-After. */
  RATE_LIMIT_EXCEEDED = 90013,
  /** The request line and headers are larger than the server accepts (16 KB). */
  HEADERS_TOO_LARGE = 90014,
  /** The database could not be reached (refused, restarting, a statement or lock timeout): retry after Retry-After. */
  DATABASE_UNAVAILABLE = 90015,
  /** A fault of ours; `errorId` names the log line. */
  INTERNAL = 90016,
  /**
   * An HTTP error without a more specific code (a status none of the others is, or a framework plugin's refusal): its
   * status and message say what. Its status is the answer's own, so it has none in HOST_ERROR_HTTP_STATUS.
   */
  HTTP_ERROR = 90017,
}

/** The host codes that each answer with one status (all but HTTP_ERROR, whose status is the error's own). */
export type FixedStatusHostCode = Exclude<HostErrorCode, HostErrorCode.HTTP_ERROR>;

/** The status each host code answers with: exhaustive, so a new code does not compile without one. */
export const HOST_ERROR_HTTP_STATUS: Readonly<Record<FixedStatusHostCode, HttpStatus>> = {
  [HostErrorCode.VALIDATION_FAILED]: HttpStatus.BAD_REQUEST,
  [HostErrorCode.MALFORMED_BODY]: HttpStatus.BAD_REQUEST,
  [HostErrorCode.MALFORMED_REQUEST]: HttpStatus.BAD_REQUEST,
  [HostErrorCode.UNAUTHENTICATED]: HttpStatus.UNAUTHORIZED,
  [HostErrorCode.MISSING_SCOPE]: HttpStatus.FORBIDDEN,
  [HostErrorCode.ROUTE_NOT_FOUND]: HttpStatus.NOT_FOUND,
  [HostErrorCode.METHOD_NOT_ALLOWED]: HttpStatus.METHOD_NOT_ALLOWED,
  [HostErrorCode.REQUEST_TIMEOUT]: HttpStatus.REQUEST_TIMEOUT,
  [HostErrorCode.BODY_TOO_LARGE]: HttpStatus.PAYLOAD_TOO_LARGE,
  [HostErrorCode.URI_TOO_LONG]: HttpStatus.URI_TOO_LONG,
  [HostErrorCode.UNSUPPORTED_MEDIA_TYPE]: HttpStatus.UNSUPPORTED_MEDIA_TYPE,
  [HostErrorCode.EXPECTATION_NOT_SUPPORTED]: HttpStatus.EXPECTATION_FAILED,
  [HostErrorCode.RATE_LIMIT_EXCEEDED]: HttpStatus.TOO_MANY_REQUESTS,
  [HostErrorCode.HEADERS_TOO_LARGE]: 431 as HttpStatus, // HttpStatus has no 431
  [HostErrorCode.DATABASE_UNAVAILABLE]: HttpStatus.SERVICE_UNAVAILABLE,
  [HostErrorCode.INTERNAL]: HttpStatus.INTERNAL_SERVER_ERROR,
};

/**
 * The code of an HttpException raised without one (Nest's, Fastify's, the guard's, the validation pipes'), by its
 * status: the one refusal of that status the host and its frameworks raise. A 400 is a validation failure unless
 * raised as a HostHttpException with a more precise code.
 */
const CODE_BY_STATUS: Readonly<Partial<Record<number, HostErrorCode>>> = {
  [HttpStatus.BAD_REQUEST]: HostErrorCode.VALIDATION_FAILED,
  [HttpStatus.UNAUTHORIZED]: HostErrorCode.UNAUTHENTICATED,
  // Not 403: MISSING_SCOPE is the guards' MissingScopeException; another 403 (a plugin's) is HTTP_ERROR.
  [HttpStatus.NOT_FOUND]: HostErrorCode.ROUTE_NOT_FOUND,
  [HttpStatus.METHOD_NOT_ALLOWED]: HostErrorCode.METHOD_NOT_ALLOWED,
  [HttpStatus.PAYLOAD_TOO_LARGE]: HostErrorCode.BODY_TOO_LARGE,
  [HttpStatus.URI_TOO_LONG]: HostErrorCode.URI_TOO_LONG,
  [HttpStatus.UNSUPPORTED_MEDIA_TYPE]: HostErrorCode.UNSUPPORTED_MEDIA_TYPE,
  [HttpStatus.TOO_MANY_REQUESTS]: HostErrorCode.RATE_LIMIT_EXCEEDED,
  [HttpStatus.INTERNAL_SERVER_ERROR]: HostErrorCode.INTERNAL,
};

/** A refusal of the host whose status alone does not say which (a malformed body is a 400 as a failed validation is). */
export class HostHttpException extends HttpException {
  constructor(
    readonly hostCode: FixedStatusHostCode,
    message: string,
  ) {
    super(message, HOST_ERROR_HTTP_STATUS[hostCode]);
  }
}

/**
 * The auth guards' refusal of a caller without a scope the route needs (HTTP and gRPC): MISSING_SCOPE by its class,
 * not its status — a Fastify plugin answers 403 too (the static files' for `/docs/../x`), for no scope of anyone's.
 */
export class MissingScopeException extends ForbiddenException {
  readonly hostCode = HostErrorCode.MISSING_SCOPE;
}

/** `code` and `codeName` of a host refusal, for an error body or a gRPC status. */
export function hostError(code: HostErrorCode): { code: number; codeName: string } {
  return { code, codeName: HostErrorCode[code] };
}

/** The host code of an HttpException (its own, else its status's), or undefined for a status the host never raises. */
export function hostErrorCodeOf(e: HttpException): HostErrorCode | undefined {
  return e instanceof HostHttpException || e instanceof MissingScopeException ? e.hostCode : CODE_BY_STATUS[e.getStatus()];
}
