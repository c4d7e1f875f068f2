import { HttpStatus } from '@nestjs/common';
import { CredentialVaultError, ErrorSeverity, describeProblems, type OptionsProblem } from '@app/common';
import type { MigrationSummary } from '../runner/migration.types';

/** Stable error codes of the migration lib (8001..). Never renumber. */
export enum MigrationErrorCode {
  /** Invalid module or run options (keys, batch size, concurrency, source mapping). */
  CONFIGURATION = 8001,
  /** The legacy source could not be read or written (database, file). */
  SOURCE = 8002,
  /** A legacy field is not `iv:authTag:ciphertext` in hex or base64 with the AES-GCM sizes. */
  LEGACY_FORMAT = 8003,
  /** No legacy key verified the auth tag: tampered ciphertext or an unknown key. Never imported. */
  LEGACY_AUTH_TAG = 8004,
  /** The value read back from the vault differs from the legacy one. */
  VERIFICATION = 8005,
  /** A live credential with the same (tenant, integration, connection, type) holds another value. */
  CONFLICT = 8006,
  /** The vault refused a write for a permission or identity the host lacks: the run stopped (resumable). */
  VAULT_REFUSED = 8007,
  /** The vault stayed unavailable (its client's breaker open, 5xx, timeouts) longer than `maxVaultOutageMs`: the run stopped (resumable). */
  VAULT_UNAVAILABLE = 8008,
}

/** HTTP status of each code, composed by the host; a new code does not compile without one. */
export const MIGRATION_ERROR_HTTP_STATUS: Record<MigrationErrorCode, HttpStatus> = {
  [MigrationErrorCode.CONFIGURATION]: HttpStatus.INTERNAL_SERVER_ERROR,
  [MigrationErrorCode.SOURCE]: HttpStatus.BAD_GATEWAY,
  [MigrationErrorCode.LEGACY_FORMAT]: HttpStatus.UNPROCESSABLE_ENTITY,
  [MigrationErrorCode.LEGACY_AUTH_TAG]: HttpStatus.UNPROCESSABLE_ENTITY,
  [MigrationErrorCode.VERIFICATION]: HttpStatus.INTERNAL_SERVER_ERROR,
  [MigrationErrorCode.CONFLICT]: HttpStatus.CONFLICT,
  [MigrationErrorCode.VAULT_REFUSED]: HttpStatus.BAD_GATEWAY, // our identity's permissions, as the vault's own FORBIDDEN
  [MigrationErrorCode.VAULT_UNAVAILABLE]: HttpStatus.SERVICE_UNAVAILABLE, // as the vault client's own CIRCUIT_OPEN
};

/** Messages never hold a value, a key or ciphertext: they reach reports, logs and events. */
export abstract class MigrationError extends CredentialVaultError {
  abstract override readonly code: MigrationErrorCode;
}

export class MigrationConfigurationError extends MigrationError {
  readonly code = MigrationErrorCode.CONFIGURATION;
  readonly codeName = 'MIGRATION_CONFIGURATION';
  readonly severity = ErrorSeverity.CONFIGURATION;
  readonly problems: OptionsProblem[];
  /**
   * A list of problems of `subject` (the module's options, or a legacy mapping), or one whole sentence
   * from the module's start-up checks (a host module or the tables missing), which is no options problem.
   */
  constructor(problems: OptionsProblem[] | string, subject = 'MigrationModule options') {
    const list = typeof problems === 'string' ? [{ path: '(module)', message: problems }] : problems;
    super(typeof problems === 'string' ? problems : `Invalid ${subject}:\n  - ${describeProblems(list).join('\n  - ')}`);
    this.problems = list;
  }
}

export class LegacySourceError extends MigrationError {
  readonly code = MigrationErrorCode.SOURCE;
  readonly codeName = 'LEGACY_SOURCE';
  readonly severity = ErrorSeverity.TRANSIENT;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

export class LegacyFormatError extends MigrationError {
  readonly code = MigrationErrorCode.LEGACY_FORMAT;
  readonly codeName = 'LEGACY_FORMAT';
  readonly severity = ErrorSeverity.CLIENT;
}

export class LegacyAuthTagError extends MigrationError {
  readonly code = MigrationErrorCode.LEGACY_AUTH_TAG;
  readonly codeName = 'LEGACY_AUTH_TAG';
  readonly severity = ErrorSeverity.CLIENT;
  constructor(readonly keysTried: number) {
    super(`the auth tag did not verify under any of the ${keysTried} legacy key(s): tampered data or an unknown key`);
  }
}

export class MigrationVerificationError extends MigrationError {
  readonly code = MigrationErrorCode.VERIFICATION;
  readonly codeName = 'MIGRATION_VERIFICATION';
  readonly severity = ErrorSeverity.FATAL;
  constructor(readonly credentialId: string) {
    super('the value read back from the vault differs from the legacy value');
  }
}

export class MigrationConflictError extends MigrationError {
  readonly code = MigrationErrorCode.CONFLICT;
  readonly codeName = 'MIGRATION_CONFLICT';
  readonly severity = ErrorSeverity.CLIENT;
  /** `credentialId`: the live credential; null in a dry run, where an earlier legacy row's field would hold the slot. */
  constructor(readonly credentialId: string | null) {
    super('a live credential of this connection and type already holds a different value');
  }
}

/**
 * The run stopped early, for a reason every further vault call would share (8007, 8008): resumable. `summary` is what it
 * did up to the stop (its `stopped` naming this error), set by the runner — what the CLI prints and writes as its report.
 */
export abstract class MigrationStoppedError extends MigrationError {
  summary?: MigrationSummary;
}

/**
 * The vault refused a write for a reason every further write shares (FORBIDDEN, UNAUTHORIZED): the run stops
 * after the writes in flight instead of failing every connection. Nothing is marked; the next run resumes.
 */
export class MigrationVaultRefusedError extends MigrationStoppedError {
  readonly code = MigrationErrorCode.VAULT_REFUSED;
  readonly codeName = 'MIGRATION_VAULT_REFUSED';
  readonly severity = ErrorSeverity.CONFIGURATION;
  constructor(vaultCode: string, readonly migrated: number, options: { cause: unknown }) {
    super(
      `the vault refused a write (${vaultCode}: the host's identity lacks the permission to set secrets); the run stopped after ${migrated} connection(s) migrated, which the next run skips — grant the permission and run again`,
      options,
    );
  }
}

/**
 * The vault stayed unavailable — its writes failing fast with the vault client's circuit breaker open (CIRCUIT_OPEN), or
 * failing with 5xx or timeouts past the client's retries — for longer than `maxVaultOutageMs`, the run having waited for
 * it: the run stops after the writes in flight instead of reporting every connection left as failed. What committed keeps
 * its checkpoint; the next run, once the vault answers again, migrates the rest.
 */
export class MigrationVaultUnavailableError extends MigrationStoppedError {
  readonly code = MigrationErrorCode.VAULT_UNAVAILABLE;
  readonly codeName = 'MIGRATION_VAULT_UNAVAILABLE';
  readonly severity = ErrorSeverity.TRANSIENT;
  constructor(vaultCode: string, readonly migrated: number, readonly maxVaultOutageMs: number, options: { cause: unknown }) {
    super(`the vault stayed unavailable (${vaultCode}) for longer than maxVaultOutageMs (${maxVaultOutageMs} ms); ${stoppedAfter(migrated)} — run again once the vault is back`, options);
  }
}

function stoppedAfter(migrated: number): string {
  return `the run stopped after ${migrated} connection(s) migrated, which the next run skips`;
}
