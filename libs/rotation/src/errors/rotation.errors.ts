import { HttpStatus } from '@nestjs/common';
import { CredentialVaultError, ErrorSeverity } from '@app/common';

/**
 * Stable error codes of the rotation core (3001..3099). The webhooks part uses 3100..3199 and the
 * notifications part 3200..3299, each with its own enum. Never renumber.
 */
export enum RotationErrorCode {
  /** Invalid module options. */
  CONFIGURATION = 3001,
  /** Invalid arguments (policy fields, scope, reason, severity...). */
  VALIDATION = 3002,
  /** No policy override exists at that scope. */
  POLICY_NOT_FOUND = 3003,
  /** No RotationHandler or value generator can mint a new value for this credential. */
  NO_ROTATION_HANDLER = 3004,
  /** A RotationHandler failed to mint a new value at the provider; the previous value stays current. */
  ROTATION_FAILED = 3005,
  /** Another rotation or revoke of the same credential is in progress (on this or another replica). */
  ROTATION_IN_PROGRESS = 3006,
  /** Un-revoke of a credential that is not revoked. */
  NOT_REVOKED = 3007,
  /** Nothing matched the revoke target (no live credential of the connection, integration or tenant). */
  NOTHING_TO_REVOKE = 3008,
  /** The policy override changed since the caller read it (compare-and-set with expectedVersion): read it again. */
  POLICY_CONFLICT = 3009,
}

/** HTTP status of each code, composed by the host; a new code does not compile without one. */
export const ROTATION_ERROR_HTTP_STATUS: Record<RotationErrorCode, HttpStatus> = {
  [RotationErrorCode.CONFIGURATION]: HttpStatus.INTERNAL_SERVER_ERROR,
  [RotationErrorCode.VALIDATION]: HttpStatus.BAD_REQUEST,
  [RotationErrorCode.POLICY_NOT_FOUND]: HttpStatus.NOT_FOUND,
  [RotationErrorCode.NO_ROTATION_HANDLER]: HttpStatus.CONFLICT, // give a value, or register a handler
  [RotationErrorCode.ROTATION_FAILED]: HttpStatus.BAD_GATEWAY, // the provider failed
  [RotationErrorCode.ROTATION_IN_PROGRESS]: HttpStatus.CONFLICT,
  [RotationErrorCode.NOT_REVOKED]: HttpStatus.CONFLICT,
  [RotationErrorCode.NOTHING_TO_REVOKE]: HttpStatus.NOT_FOUND,
  [RotationErrorCode.POLICY_CONFLICT]: HttpStatus.CONFLICT,
};

export abstract class RotationError extends CredentialVaultError {
  abstract override readonly code: RotationErrorCode;
}

export class RotationConfigurationError extends RotationError {
  readonly code = RotationErrorCode.CONFIGURATION;
  readonly codeName = 'ROTATION_CONFIGURATION';
  readonly severity = ErrorSeverity.CONFIGURATION;
}

export class RotationValidationError extends RotationError {
  readonly code = RotationErrorCode.VALIDATION;
  readonly codeName = 'ROTATION_VALIDATION';
  readonly severity = ErrorSeverity.CLIENT;
  constructor(
    message: string,
    readonly field: string,
  ) {
    super(message);
  }
}

export class RotationPolicyNotFoundError extends RotationError {
  readonly code = RotationErrorCode.POLICY_NOT_FOUND;
  readonly codeName = 'POLICY_NOT_FOUND';
  readonly severity = ErrorSeverity.CLIENT;
  constructor(readonly scope: string) {
    super('No rotation policy override exists at that scope');
  }
}

export class NoRotationHandlerError extends RotationError {
  readonly code = RotationErrorCode.NO_ROTATION_HANDLER;
  readonly codeName = 'NO_ROTATION_HANDLER';
  readonly severity = ErrorSeverity.CLIENT;
  constructor(
    readonly credentialId: string,
    readonly integrationId: string,
    readonly type: string,
  ) {
    // The message names no id from the request: it reaches HTTP clients (the fields keep them).
    super('No rotation handler is registered for the credential\'s integration or type and no value generator can make a value: give the new value, or register a RotationHandler');
  }
}

export class RotationFailedError extends RotationError {
  readonly code = RotationErrorCode.ROTATION_FAILED;
  readonly codeName = 'ROTATION_FAILED';
  readonly severity = ErrorSeverity.TRANSIENT;
  constructor(
    readonly credentialId: string,
    options?: { cause?: unknown },
  ) {
    super(`The rotation handler could not mint a new value; the previous value stays current`, options);
  }
}

export class RotationInProgressError extends RotationError {
  readonly code = RotationErrorCode.ROTATION_IN_PROGRESS;
  readonly codeName = 'ROTATION_IN_PROGRESS';
  readonly severity = ErrorSeverity.TRANSIENT;
  constructor(readonly credentialId: string) {
    super('Another rotation or revoke of this credential is in progress; retry later');
  }
}

export class CredentialNotRevokedError extends RotationError {
  readonly code = RotationErrorCode.NOT_REVOKED;
  readonly codeName = 'NOT_REVOKED';
  readonly severity = ErrorSeverity.CLIENT;
  constructor(readonly credentialId: string) {
    super('The credential is not revoked');
  }
}

export class NothingToRevokeError extends RotationError {
  readonly code = RotationErrorCode.NOTHING_TO_REVOKE;
  readonly codeName = 'NOTHING_TO_REVOKE';
  readonly severity = ErrorSeverity.CLIENT;
  constructor(readonly target: string) {
    super('No live credential matches the revoke target');
  }
}

/** A stale `expectedVersion`, or another writer won the compare-and-set: nothing was written. */
export class RotationPolicyConflictError extends RotationError {
  readonly code = RotationErrorCode.POLICY_CONFLICT;
  readonly codeName = 'POLICY_CONFLICT';
  readonly severity = ErrorSeverity.CLIENT;
}
