import { HttpStatus } from '@nestjs/common';
import { CredentialVaultError, ErrorSeverity } from '@app/common';

/** Stable error codes of the credentials lib. Never renumber: callers and dashboards key on these. */
export enum CredentialErrorCode {
  /** Bad input (ids, value, tags, options of a call). Nothing was changed. */
  VALIDATION = 2001,
  /** No such credential for this tenant (another tenant's credential looks exactly like this). */
  NOT_FOUND = 2002,
  /** Compare-and-set failed: `expectedVersion` differs from the row version. Nothing was written. */
  CONFLICT = 2003,
  /** A live credential already exists for (integration, connection, type): rotate it instead. */
  ALREADY_EXISTS = 2004,
  /** The credential exists but the requested version does not. */
  VERSION_NOT_FOUND = 2005,
  /** The metadata points at a value the value store no longer has (deleted out of band). */
  VALUE_MISSING = 2006,
  /** Ciphertext failed authentication (tampered, wrong key, or bound to another credential). */
  INTEGRITY = 2007,
  /** Module options are invalid. */
  CONFIGURATION = 2008,
  /** The credential is revoked: its values are never served (un-revoke it explicitly first). */
  REVOKED = 2009,
  /** The credential (or the requested version) is past its expiry; pass `allowExpired` to read it anyway. */
  EXPIRED = 2010,
  /** An audit anchor in Key Vault that cannot be used (corrupt, soft-deleted) or refused for writing (`KeyVaultAuditAnchorStore`). */
  AUDIT_ANCHOR_UNUSABLE = 2011,
  /** The write took longer than its deadline between its value write and its commit: nothing committed, its value discarded. Retry. */
  WRITE_TOO_SLOW = 2012,
  /**
   * A revoke that did not finish: the credential is revoked (its value is not served), but writes of it kept committing
   * while its Key Vault versions were being disabled (or, raised by a host, its versions could not all be disabled), so
   * some may still be enabled. Revoke it again to finish.
   */
  REVOKE_INCOMPLETE = 2013,
  /** The tenant has no envelope data key to rotate (none of its values was ever sealed): nothing was written. */
  DATA_KEY_NOT_FOUND = 2014,
  /** The credential's slot used every Key Vault secret name generation (0..999,999): no further version can be written. */
  GENERATIONS_EXHAUSTED = 2015,
}

/** HTTP status of each code, composed by the host; a new code does not compile without one. */
export const CREDENTIAL_ERROR_HTTP_STATUS: Record<CredentialErrorCode, HttpStatus> = {
  [CredentialErrorCode.VALIDATION]: HttpStatus.BAD_REQUEST,
  [CredentialErrorCode.NOT_FOUND]: HttpStatus.NOT_FOUND, // also another tenant's credential: indistinguishable on purpose
  [CredentialErrorCode.CONFLICT]: HttpStatus.CONFLICT, // compare-and-set lost
  [CredentialErrorCode.ALREADY_EXISTS]: HttpStatus.CONFLICT, // rotate instead
  [CredentialErrorCode.VERSION_NOT_FOUND]: HttpStatus.NOT_FOUND,
  [CredentialErrorCode.VALUE_MISSING]: HttpStatus.INTERNAL_SERVER_ERROR, // metadata points at a missing value: our state is broken
  [CredentialErrorCode.INTEGRITY]: HttpStatus.INTERNAL_SERVER_ERROR, // ciphertext failed authentication
  [CredentialErrorCode.CONFIGURATION]: HttpStatus.INTERNAL_SERVER_ERROR,
  [CredentialErrorCode.REVOKED]: HttpStatus.CONFLICT, // the credential exists but its value is not served
  [CredentialErrorCode.EXPIRED]: HttpStatus.CONFLICT, // not served unless the caller opts in (allowExpired)
  [CredentialErrorCode.AUDIT_ANCHOR_UNUSABLE]: HttpStatus.INTERNAL_SERVER_ERROR, // our anchor is broken; verify answers it as AUDIT_ANCHOR_DAMAGED
  [CredentialErrorCode.WRITE_TOO_SLOW]: HttpStatus.SERVICE_UNAVAILABLE, // transient (a stalled database): retry
  [CredentialErrorCode.REVOKE_INCOMPLETE]: HttpStatus.CONFLICT, // revoked, vault versions not all disabled: revoke again
  [CredentialErrorCode.DATA_KEY_NOT_FOUND]: HttpStatus.NOT_FOUND, // a mistyped tenant id, most likely
  [CredentialErrorCode.GENERATIONS_EXHAUSTED]: HttpStatus.CONFLICT, // the slot's state: no retry helps
};

export abstract class CredentialError extends CredentialVaultError {
  abstract override readonly code: CredentialErrorCode;
}

export class CredentialValidationError extends CredentialError {
  readonly code = CredentialErrorCode.VALIDATION;
  readonly codeName = 'VALIDATION';
  readonly severity = ErrorSeverity.CLIENT;
  /** Which input field is wrong (`value`, `tags`, `integrationId`, ...). */
  readonly field?: string;
  constructor(message: string, field?: string, options?: { cause?: unknown }) {
    super(message, options);
    this.field = field;
  }
  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), field: this.field };
  }
}

export class CredentialNotFoundError extends CredentialError {
  readonly code = CredentialErrorCode.NOT_FOUND;
  readonly codeName = 'NOT_FOUND';
  readonly severity = ErrorSeverity.CLIENT;
  constructor(readonly credentialId: string) {
    super(`Credential ${credentialId} not found`);
  }
}

export class CredentialConflictError extends CredentialError {
  readonly code = CredentialErrorCode.CONFLICT;
  readonly codeName = 'CONFLICT';
  readonly severity = ErrorSeverity.CLIENT;
  /** `expectedVersion`: the caller's own; undefined when it sent none and the write lost its retries to other writes. */
  constructor(
    readonly credentialId: string,
    readonly expectedVersion: number | undefined,
    readonly actualVersion: number | undefined,
  ) {
    super(
      expectedVersion === undefined
        ? // No precondition to name: say what happened.
          `Credential ${credentialId} was not changed: another change of it committed first (now row version ${actualVersion ?? '?'}); ` +
            'retry, or read it to see that change'
        : `Credential ${credentialId} was changed concurrently (expected row version ${expectedVersion}, found ${actualVersion ?? '?'}); re-read it and retry`,
    );
  }
  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), expectedVersion: this.expectedVersion, actualVersion: this.actualVersion };
  }
}

export class CredentialAlreadyExistsError extends CredentialError {
  readonly code = CredentialErrorCode.ALREADY_EXISTS;
  readonly codeName = 'ALREADY_EXISTS';
  readonly severity = ErrorSeverity.CLIENT;
  constructor(readonly existingId: string) {
    super(`A credential of this type already exists for this connection (${existingId}); rotate it instead`);
  }
}

export class CredentialVersionNotFoundError extends CredentialError {
  readonly code = CredentialErrorCode.VERSION_NOT_FOUND;
  readonly codeName = 'VERSION_NOT_FOUND';
  readonly severity = ErrorSeverity.CLIENT;
  constructor(
    readonly credentialId: string,
    readonly version: number,
  ) {
    super(`Credential ${credentialId} has no version ${version}`);
  }
}

export class CredentialValueMissingError extends CredentialError {
  readonly code = CredentialErrorCode.VALUE_MISSING;
  readonly codeName = 'VALUE_MISSING';
  readonly severity = ErrorSeverity.FATAL;
}

export class CredentialIntegrityError extends CredentialError {
  readonly code = CredentialErrorCode.INTEGRITY;
  readonly codeName = 'INTEGRITY';
  readonly severity = ErrorSeverity.FATAL;
}

export class CredentialsConfigurationError extends CredentialError {
  readonly code = CredentialErrorCode.CONFIGURATION;
  readonly codeName = 'CREDENTIALS_CONFIGURATION';
  readonly severity = ErrorSeverity.CONFIGURATION;
}

export class CredentialRevokedError extends CredentialError {
  readonly code = CredentialErrorCode.REVOKED;
  readonly codeName = 'REVOKED';
  readonly severity = ErrorSeverity.CLIENT;
  constructor(
    readonly credentialId: string,
    message = `Credential ${credentialId} is revoked; its value is not served`,
  ) {
    super(message);
  }
}

export class CredentialExpiredError extends CredentialError {
  readonly code = CredentialErrorCode.EXPIRED;
  readonly codeName = 'EXPIRED';
  readonly severity = ErrorSeverity.CLIENT;
  constructor(
    readonly credentialId: string,
    readonly expiredAt: Date | null,
  ) {
    super(
      `Credential ${credentialId} expired${expiredAt ? ` at ${expiredAt.toISOString()}` : ''}; its value is not served unless the caller opts in with allowExpired`,
    );
  }
}

/**
 * An audit anchor that cannot be used: unreadable, malformed, or deleted (or, on write, invalid). Verification
 * must not pass over it. Its message never names the anchor's secret (it reaches API clients through verify);
 * the store's warning log line does, for the operator who has to recover or repair it.
 */
export class AuditAnchorStoreError extends CredentialError {
  readonly code = CredentialErrorCode.AUDIT_ANCHOR_UNUSABLE;
  readonly codeName = 'AUDIT_ANCHOR_UNUSABLE';
  // Not transient: retrying reads the same broken anchor until an operator recovers, purges or repairs it.
  readonly severity = ErrorSeverity.FATAL;
}

/**
 * A write whose commit came later than `VALUE_COMMIT_DEADLINE_MS` after its value write (a stalled database, say): it
 * is rolled back and its value discarded, so the orphan-versions job can never disable a value that commits later.
 */
export class CredentialWriteTooSlowError extends CredentialError {
  readonly code = CredentialErrorCode.WRITE_TOO_SLOW;
  readonly codeName = 'WRITE_TOO_SLOW';
  readonly severity = ErrorSeverity.TRANSIENT;
  constructor(
    readonly credentialId: string,
    readonly elapsedMs: number,
    readonly deadlineMs: number,
  ) {
    super(`The write of credential ${credentialId} reached its commit ${elapsedMs} ms after its value write (deadline ${deadlineMs} ms): nothing was committed; retry`);
  }
}

/**
 * A revoke that looked at the credential `REVOKE_PASSES` times and found a write committed each time (not an
 * optimistic-concurrency miss: the caller set no precondition). The credential is revoked, so its value is not served;
 * the Key Vault versions of a write that committed meanwhile may not all be disabled yet. Calling revoke again finishes
 * it. The message names the credential only: never a value, a vault secret name or a version.
 */
export class CredentialRevokeIncompleteError extends CredentialError {
  readonly code = CredentialErrorCode.REVOKE_INCOMPLETE;
  readonly codeName = 'REVOKE_INCOMPLETE';
  // Not the caller's mistake, and another call finishes it.
  readonly severity = ErrorSeverity.TRANSIENT;
  /**
   * `why`: writes of it kept committing (the lib's revoke), or `versions-not-all-disabled` — a host that revoked and was
   * told only that its Key Vault versions were not all disabled (the rotation lib's `vaultFailures`: a vault failure, or
   * this error of the lib's revoke, caught alike), so it names no cause.
   */
  constructor(
    readonly credentialId: string,
    readonly why: 'writes-kept-committing' | 'versions-not-all-disabled' = 'writes-kept-committing',
  ) {
    super(
      `Credential ${credentialId} is revoked (its value is not served), but the revoke did not finish: ` +
        (why === 'versions-not-all-disabled'
          ? 'its Key Vault versions could not all be disabled'
          : 'writes of it kept committing while its Key Vault versions were being disabled') +
        ', so some may still be enabled. Revoke it again to finish',
    );
  }
  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), why: this.why };
  }
}

/**
 * `DataKeyService.rotate` of a tenant that has no data key: most likely a mistyped tenant id, which would otherwise get
 * a data key of its own. A tenant's first data key is made with its first envelope value. Or its data key secret is
 * soft-deleted at the vault (the message says so: recover it). Nothing was written.
 */
export class DataKeyNotFoundError extends CredentialError {
  readonly code = CredentialErrorCode.DATA_KEY_NOT_FOUND;
  readonly codeName = 'DATA_KEY_NOT_FOUND';
  readonly severity = ErrorSeverity.CLIENT;
  constructor(
    readonly tenantId: string,
    { softDeleted = false }: { softDeleted?: boolean } = {},
  ) {
    super(
      softDeleted
        ? `tenant ${tenantId} has no data key in use: its data key secret is soft-deleted in Key Vault (recover it there: the tenant's envelope values cannot be read until then); nothing was written`
        : `tenant ${tenantId} has no data key: no envelope value was ever stored for it (check the tenant id; a tenant's first data key is made with its first envelope value); nothing was written`,
    );
  }
}

/**
 * A vault write whose secret name would need a generation past `MAX_GENERATION` (999,999: the names reserve six digits
 * for it, `--g999999`). Each generation holds up to `vault.maxVersionsPerGeneration` versions and a re-store of the slot
 * starts at its highest generation, so the slot (tenant, integration, type, connection) can take no further version:
 * a store under another connection id can. Nothing was written. The message names the credential (when known) and the
 * generation, never the secret name (it carries the tenant).
 */
export class CredentialGenerationsExhaustedError extends CredentialError {
  readonly code = CredentialErrorCode.GENERATIONS_EXHAUSTED;
  readonly codeName = 'GENERATIONS_EXHAUSTED';
  // Retrying unchanged fails again: only a store under another connection id gets fresh names.
  readonly severity = ErrorSeverity.CLIENT;
  constructor(
    readonly generation: number,
    readonly maxGeneration: number,
    readonly credentialId?: string,
  ) {
    super(
      `${credentialId === undefined ? 'A credential' : `Credential ${credentialId}`} has used every Key Vault secret name generation ` +
        `(0..${maxGeneration}; generation ${generation} has no name): no further version of it can be written; nothing was written`,
    );
  }
  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), generation: this.generation, maxGeneration: this.maxGeneration };
  }
}
