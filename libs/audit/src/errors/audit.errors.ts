import { HttpStatus } from '@nestjs/common';
import { CredentialVaultError, ErrorSeverity } from '@app/common';

/** Stable error codes of the audit lib (5xxx). Never renumber. */
export enum AuditErrorCode {
  /** The event itself is malformed (missing tenant, bad action name, ...). */
  INVALID_EVENT = 5001,
  /** The audit row could not be written; the operation must not proceed (fail-closed). */
  WRITE_FAILED = 5002,
  /** Buffered audit writes are failing; reads are refused until they recover (fail-closed). */
  UNAVAILABLE = 5003,
  /** A query filter, limit or cursor is invalid. */
  INVALID_QUERY = 5004,
  /** AuditModule options are invalid. */
  CONFIGURATION = 5005,
  /** A chain's anchor could not be read from the AuditAnchorStore, so the chain cannot be vouched for. */
  ANCHOR_UNAVAILABLE = 5006,
}

/** HTTP status of each code, composed by the host; a new code does not compile without one. */
export const AUDIT_ERROR_HTTP_STATUS: Record<AuditErrorCode, HttpStatus> = {
  [AuditErrorCode.INVALID_EVENT]: HttpStatus.BAD_REQUEST,
  [AuditErrorCode.WRITE_FAILED]: HttpStatus.SERVICE_UNAVAILABLE, // the audited operation did not happen
  [AuditErrorCode.UNAVAILABLE]: HttpStatus.SERVICE_UNAVAILABLE, // audit log failing, reads refused (fail-closed)
  [AuditErrorCode.INVALID_QUERY]: HttpStatus.BAD_REQUEST,
  [AuditErrorCode.CONFIGURATION]: HttpStatus.INTERNAL_SERVER_ERROR,
  [AuditErrorCode.ANCHOR_UNAVAILABLE]: HttpStatus.SERVICE_UNAVAILABLE, // verify cannot vouch for the chain
};

export abstract class AuditError extends CredentialVaultError {
  abstract override readonly code: AuditErrorCode;
}

export class AuditInvalidEventError extends AuditError {
  readonly code = AuditErrorCode.INVALID_EVENT;
  readonly codeName = 'AUDIT_INVALID_EVENT';
  readonly severity = ErrorSeverity.CLIENT;
}

export class AuditWriteError extends AuditError {
  readonly code = AuditErrorCode.WRITE_FAILED;
  readonly codeName = 'AUDIT_WRITE_FAILED';
  readonly severity = ErrorSeverity.TRANSIENT;
}

export class AuditUnavailableError extends AuditError {
  readonly code = AuditErrorCode.UNAVAILABLE;
  readonly codeName = 'AUDIT_UNAVAILABLE';
  readonly severity = ErrorSeverity.TRANSIENT;
}

export class AuditQueryError extends AuditError {
  readonly code = AuditErrorCode.INVALID_QUERY;
  readonly codeName = 'AUDIT_INVALID_QUERY';
  readonly severity = ErrorSeverity.CLIENT;
}

export class AuditConfigurationError extends AuditError {
  readonly code = AuditErrorCode.CONFIGURATION;
  readonly codeName = 'AUDIT_CONFIGURATION';
  readonly severity = ErrorSeverity.CONFIGURATION;
}

export class AuditAnchorUnavailableError extends AuditError {
  readonly code = AuditErrorCode.ANCHOR_UNAVAILABLE;
  readonly codeName = 'AUDIT_ANCHOR_UNAVAILABLE';
  readonly severity = ErrorSeverity.TRANSIENT;
}
