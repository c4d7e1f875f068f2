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
  /** A query filter, limit or cursor is invalid (a `from` after `to` too). */
  INVALID_QUERY = 5004,
  /** AuditModule options are invalid. */
  CONFIGURATION = 5005,
  /** A chain's anchor could not be read from the AuditAnchorStore (down, throttled, slow), so the chain cannot be vouched for now. */
  ANCHOR_UNAVAILABLE = 5006,
  /** A retention statement was cancelled past `retention.statementTimeoutMs`, or PostgreSQL stopped answering it. */
  RETENTION_TIMEOUT = 5007,
  /** The AuditAnchorStore answered, but a chain's anchor cannot be used (deleted, corrupt, disabled): not transient, maybe tampering. */
  ANCHOR_DAMAGED = 5008,
}

/** HTTP status of each code, composed by the host; a new code does not compile without one. */
export const AUDIT_ERROR_HTTP_STATUS: Record<AuditErrorCode, HttpStatus> = {
  [AuditErrorCode.INVALID_EVENT]: HttpStatus.BAD_REQUEST,
  [AuditErrorCode.WRITE_FAILED]: HttpStatus.SERVICE_UNAVAILABLE, // the audited operation did not happen
  [AuditErrorCode.UNAVAILABLE]: HttpStatus.SERVICE_UNAVAILABLE, // audit log failing, reads refused (fail-closed)
  [AuditErrorCode.INVALID_QUERY]: HttpStatus.BAD_REQUEST,
  [AuditErrorCode.CONFIGURATION]: HttpStatus.INTERNAL_SERVER_ERROR,
  [AuditErrorCode.ANCHOR_UNAVAILABLE]: HttpStatus.SERVICE_UNAVAILABLE, // verify cannot vouch for the chain
  [AuditErrorCode.RETENTION_TIMEOUT]: HttpStatus.SERVICE_UNAVAILABLE, // the database was slow or stalled; the next run carries on
  [AuditErrorCode.ANCHOR_DAMAGED]: HttpStatus.INTERNAL_SERVER_ERROR, // our anchor is broken: no retry helps until an operator repairs it
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
  /** When the writer tries its buffered rows again (the host's Retry-After); absent when it does not say. */
  readonly retryAfterMs?: number;

  constructor(message: string, options?: { cause?: unknown; retryAfterMs?: number }) {
    super(message, { cause: options?.cause });
    this.retryAfterMs = options?.retryAfterMs;
  }
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

/** The anchor store could not be asked (down, throttled, slow): verifying again later may succeed. */
export class AuditAnchorUnavailableError extends AuditError {
  readonly code = AuditErrorCode.ANCHOR_UNAVAILABLE;
  readonly codeName = 'AUDIT_ANCHOR_UNAVAILABLE';
  readonly severity = ErrorSeverity.TRANSIENT;
  /** When the store said it may answer again (the host's Retry-After): its failure's own, e.g. an open breaker's; absent when it does not say. */
  readonly retryAfterMs?: number;

  constructor(message: string, options?: { cause?: unknown; retryAfterMs?: number }) {
    super(message, { cause: options?.cause });
    this.retryAfterMs = options?.retryAfterMs;
  }
}

/**
 * The anchor store answered, and a chain's anchor cannot be used: deleted, corrupt or disabled (the store's
 * `isUnusable`; the Key Vault store's `AUDIT_ANCHOR_UNUSABLE`, 2011, is the `cause`). Verifying again finds the same
 * until an operator recovers, repairs or purges the anchor, and a deleted or rewritten anchor may be tampering: it is
 * never answered as a passing outage.
 */
export class AuditAnchorDamagedError extends AuditError {
  readonly code = AuditErrorCode.ANCHOR_DAMAGED;
  readonly codeName = 'AUDIT_ANCHOR_DAMAGED';
  readonly severity = ErrorSeverity.FATAL;
}

/**
 * An audit retention run stopped: PostgreSQL cancelled one of its statements past `retention.statementTimeoutMs`,
 * or did not answer one (its connection was closed: DATABASE_UNRESPONSIVE, the `cause`). The chain being pruned keeps
 * the rows that step would have deleted (unless its COMMIT went unanswered after taking effect); the next run
 * carries on from there.
 */
export class AuditRetentionTimeoutError extends AuditError {
  readonly code = AuditErrorCode.RETENTION_TIMEOUT;
  readonly codeName = 'AUDIT_RETENTION_TIMEOUT';
  readonly severity = ErrorSeverity.TRANSIENT;

  constructor(
    readonly statementTimeoutMs: number,
    options?: { cause?: unknown },
  ) {
    super(
      `Audit retention stopped: PostgreSQL cancelled one of its statements${statementTimeoutMs > 0 ? ` after ${statementTimeoutMs} ms` : ''}, or did not answer it and its ` +
        "connection was closed. Rows not deleted yet stay for the next run; if the database answers and a run needs longer, raise AuditModule's " +
        'retention.statementTimeoutMs (the stock host\'s AUDIT_RETENTION_STATEMENT_TIMEOUT_MS)',
      options,
    );
  }
}
