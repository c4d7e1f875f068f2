import { HttpStatus } from '@nestjs/common';
import { CredentialVaultError, ErrorSeverity } from '@app/common';

/**
 * The one place where typed lib errors become HTTP statuses. Codes are grouped by lib:
 * 1xxx Key Vault (an upstream of ours: its failures are 5xx for our clients, except "not found"
 * and "bad request" which the client caused), 2xxx credentials, 3xxx audit, 4xxx+ later modules.
 */
const BY_CODE: Record<number, HttpStatus> = {
  1001: HttpStatus.SERVICE_UNAVAILABLE, // vault throttled us: the client may retry after Retry-After
  1002: HttpStatus.BAD_GATEWAY, // our identity was refused by the vault: an operator problem
  1003: HttpStatus.NOT_FOUND,
  1004: HttpStatus.BAD_REQUEST,
  1005: HttpStatus.GATEWAY_TIMEOUT,
  1006: HttpStatus.SERVICE_UNAVAILABLE,
  1007: HttpStatus.CONFLICT,
  1008: HttpStatus.CONFLICT,
  1009: HttpStatus.FORBIDDEN,
  1010: HttpStatus.BAD_GATEWAY,
  1011: HttpStatus.SERVICE_UNAVAILABLE,
  1012: HttpStatus.SERVICE_UNAVAILABLE,
  1013: HttpStatus.INTERNAL_SERVER_ERROR,
  1014: HttpStatus.BAD_REQUEST,
  1015: HttpStatus.CONFLICT,
  2001: HttpStatus.BAD_REQUEST, // credentials: validation
  2002: HttpStatus.NOT_FOUND, // also another tenant's credential: indistinguishable on purpose
  2003: HttpStatus.CONFLICT, // compare-and-set lost
  2004: HttpStatus.CONFLICT, // already exists: rotate instead
  2005: HttpStatus.NOT_FOUND,
  2006: HttpStatus.INTERNAL_SERVER_ERROR, // metadata points at a missing value: our state is broken
  2007: HttpStatus.INTERNAL_SERVER_ERROR, // ciphertext failed authentication
  2008: HttpStatus.INTERNAL_SERVER_ERROR,
  2009: HttpStatus.CONFLICT, // revoked: the credential exists but its value is not served
  2010: HttpStatus.CONFLICT, // expired: not served unless the caller opts in (allowExpired)
  4001: HttpStatus.NOT_FOUND, // no OAuth provider registered for the integration
  4002: HttpStatus.CONFLICT, // connection needs re-authorization by its user
  4003: HttpStatus.SERVICE_UNAVAILABLE, // refresh failed (retryable ones carry Retry-After)
  4004: HttpStatus.BAD_REQUEST,
  4005: HttpStatus.NOT_FOUND,
  4006: HttpStatus.CONFLICT, // expired and auto-refresh was off
  4007: HttpStatus.INTERNAL_SERVER_ERROR,
  4008: HttpStatus.BAD_REQUEST,
  5001: HttpStatus.BAD_REQUEST,
  5002: HttpStatus.SERVICE_UNAVAILABLE, // an audit row could not be written: the operation did not happen
  5003: HttpStatus.SERVICE_UNAVAILABLE, // audit log failing, reads refused (fail-closed)
  5004: HttpStatus.BAD_REQUEST,
  5005: HttpStatus.INTERNAL_SERVER_ERROR,
  5006: HttpStatus.SERVICE_UNAVAILABLE, // an anchor could not be read: verify cannot vouch for the chain
};

/** Fallback by name suffix for libs that follow the naming convention (e.g. CredentialNotFoundError). */
const BY_NAME: [RegExp, HttpStatus][] = [
  [/NotFound/, HttpStatus.NOT_FOUND],
  [/Conflict|AlreadyExists|VersionMismatch/, HttpStatus.CONFLICT],
  [/Validation|Invalid/, HttpStatus.BAD_REQUEST],
  [/Forbidden|Denied/, HttpStatus.FORBIDDEN],
  [/Unauthori[sz]ed/, HttpStatus.UNAUTHORIZED],
  [/RateLimit|TooMany/, HttpStatus.TOO_MANY_REQUESTS],
];

const BY_SEVERITY: Record<ErrorSeverity, HttpStatus> = {
  [ErrorSeverity.CLIENT]: HttpStatus.BAD_REQUEST,
  [ErrorSeverity.TRANSIENT]: HttpStatus.SERVICE_UNAVAILABLE,
  [ErrorSeverity.CONFIGURATION]: HttpStatus.INTERNAL_SERVER_ERROR,
  [ErrorSeverity.FATAL]: HttpStatus.INTERNAL_SERVER_ERROR,
};

export function statusForError(err: CredentialVaultError): HttpStatus {
  const explicit = (err as { httpStatus?: number }).httpStatus;
  if (typeof explicit === 'number') return explicit;
  if (BY_CODE[err.code] !== undefined) return BY_CODE[err.code];
  for (const [re, status] of BY_NAME) if (re.test(err.name)) return status;
  return BY_SEVERITY[err.severity] ?? HttpStatus.INTERNAL_SERVER_ERROR;
}
