import { HttpStatus } from '@nestjs/common';
import { CredentialVaultError, ErrorSeverity } from '@app/common';
import { KeyVaultErrorCode } from './key-vault-error-code';

/** Name of a `KeyVaultKeysProvider` operation (key management and cryptography). */
export type KeyVaultKeyOperationName =
  | 'createKey'
  | 'getKey'
  | 'listKeys'
  | 'listKeyVersions'
  | 'updateKeyProperties'
  | 'rotateKey'
  | 'deleteKey'
  | 'getDeletedKey'
  | 'recoverDeletedKey'
  | 'purgeDeletedKey'
  | 'backupKey'
  | 'restoreKeyBackup'
  | 'sign'
  | 'verify'
  | 'encrypt'
  | 'decrypt'
  | 'wrapKey'
  | 'unwrapKey';

const KEY_OPERATIONS: ReadonlySet<string> = new Set<KeyVaultKeyOperationName>([
  'createKey',
  'getKey',
  'listKeys',
  'listKeyVersions',
  'updateKeyProperties',
  'rotateKey',
  'deleteKey',
  'getDeletedKey',
  'recoverDeletedKey',
  'purgeDeletedKey',
  'backupKey',
  'restoreKeyBackup',
  'sign',
  'verify',
  'encrypt',
  'decrypt',
  'wrapKey',
  'unwrapKey',
]);

/** True for an operation of the keys side (its subject is a key, not a secret). */
export function isKeyOperation(operation: KeyVaultOperation): boolean {
  return KEY_OPERATIONS.has(operation);
}

/** Name of a `KeyVaultProvider` operation (also the `operation` label of the metrics). */
export type KeyVaultOperation =
  | 'setSecret'
  | 'getSecret'
  | 'updateSecretProperties'
  | 'listSecrets'
  | 'listSecretVersions'
  | 'deleteSecret'
  | 'getDeletedSecret'
  | 'listDeletedSecrets'
  | 'recoverDeletedSecret'
  | 'purgeDeletedSecret'
  | 'backupSecret'
  | 'restoreSecretBackup'
  | KeyVaultKeyOperationName
  | 'healthCheck'
  | 'configuration';

const SEVERITY: Record<KeyVaultErrorCode, ErrorSeverity> = {
  [KeyVaultErrorCode.RATE_LIMITED]: ErrorSeverity.TRANSIENT,
  [KeyVaultErrorCode.TIMEOUT]: ErrorSeverity.TRANSIENT,
  [KeyVaultErrorCode.SERVICE_UNAVAILABLE]: ErrorSeverity.TRANSIENT,
  [KeyVaultErrorCode.CIRCUIT_OPEN]: ErrorSeverity.TRANSIENT,
  [KeyVaultErrorCode.BULKHEAD_FULL]: ErrorSeverity.TRANSIENT,
  [KeyVaultErrorCode.OBJECT_BEING_DELETED]: ErrorSeverity.TRANSIENT,
  [KeyVaultErrorCode.OBJECT_BEING_RECOVERED]: ErrorSeverity.TRANSIENT,
  [KeyVaultErrorCode.OUTCOME_UNKNOWN]: ErrorSeverity.TRANSIENT,
  [KeyVaultErrorCode.CANCELLED]: ErrorSeverity.CLIENT,
  [KeyVaultErrorCode.UNAUTHORIZED]: ErrorSeverity.CONFIGURATION,
  [KeyVaultErrorCode.FORBIDDEN]: ErrorSeverity.CONFIGURATION,
  [KeyVaultErrorCode.CONFIGURATION]: ErrorSeverity.CONFIGURATION,
  [KeyVaultErrorCode.KEY_NOT_FOUND]: ErrorSeverity.CLIENT,
  [KeyVaultErrorCode.INVALID_REQUEST]: ErrorSeverity.CLIENT,
  [KeyVaultErrorCode.CONFLICT]: ErrorSeverity.CLIENT,
  [KeyVaultErrorCode.DELETE_UNDONE]: ErrorSeverity.CLIENT,
  [KeyVaultErrorCode.DELETED_BUT_RECOVERABLE]: ErrorSeverity.CLIENT,
  [KeyVaultErrorCode.DISABLED]: ErrorSeverity.CLIENT,
  [KeyVaultErrorCode.BACKUP_FAILED]: ErrorSeverity.CLIENT,
  [KeyVaultErrorCode.PURGE_PROTECTED]: ErrorSeverity.CLIENT,
  [KeyVaultErrorCode.INVALID_RESPONSE]: ErrorSeverity.FATAL,
  [KeyVaultErrorCode.UNKNOWN]: ErrorSeverity.FATAL,
};

/**
 * HTTP status of each code, composed by the host. The vault is an upstream of ours: its failures are
 * 5xx for our clients, except the ones the client caused (not found, bad request, conflicts).
 */
export const KEY_VAULT_ERROR_HTTP_STATUS: Record<KeyVaultErrorCode, HttpStatus> = {
  [KeyVaultErrorCode.RATE_LIMITED]: HttpStatus.SERVICE_UNAVAILABLE, // the client may retry after Retry-After
  [KeyVaultErrorCode.UNAUTHORIZED]: HttpStatus.BAD_GATEWAY, // our identity was refused: an operator problem
  [KeyVaultErrorCode.KEY_NOT_FOUND]: HttpStatus.NOT_FOUND,
  [KeyVaultErrorCode.INVALID_REQUEST]: HttpStatus.BAD_REQUEST,
  [KeyVaultErrorCode.TIMEOUT]: HttpStatus.GATEWAY_TIMEOUT,
  [KeyVaultErrorCode.SERVICE_UNAVAILABLE]: HttpStatus.SERVICE_UNAVAILABLE,
  [KeyVaultErrorCode.CONFLICT]: HttpStatus.CONFLICT,
  [KeyVaultErrorCode.DELETED_BUT_RECOVERABLE]: HttpStatus.CONFLICT,
  [KeyVaultErrorCode.DISABLED]: HttpStatus.FORBIDDEN,
  [KeyVaultErrorCode.FORBIDDEN]: HttpStatus.BAD_GATEWAY, // our permissions, not the client's
  [KeyVaultErrorCode.CIRCUIT_OPEN]: HttpStatus.SERVICE_UNAVAILABLE,
  [KeyVaultErrorCode.BULKHEAD_FULL]: HttpStatus.SERVICE_UNAVAILABLE,
  [KeyVaultErrorCode.CONFIGURATION]: HttpStatus.INTERNAL_SERVER_ERROR,
  [KeyVaultErrorCode.BACKUP_FAILED]: HttpStatus.BAD_REQUEST,
  [KeyVaultErrorCode.PURGE_PROTECTED]: HttpStatus.CONFLICT,
  [KeyVaultErrorCode.INVALID_RESPONSE]: HttpStatus.BAD_GATEWAY, // the upstream's answer is unusable
  [KeyVaultErrorCode.OBJECT_BEING_DELETED]: HttpStatus.CONFLICT, // the name is in transition: the same request works in a few seconds
  [KeyVaultErrorCode.OBJECT_BEING_RECOVERED]: HttpStatus.CONFLICT, // likewise
  [KeyVaultErrorCode.DELETE_UNDONE]: HttpStatus.CONFLICT, // another client's recover met the delete: not repeated blindly
  [KeyVaultErrorCode.OUTCOME_UNKNOWN]: HttpStatus.GATEWAY_TIMEOUT, // the upstream did not answer: the client reads the object before repeating
  // nginx's "499 Client Closed Request": nobody reads it; it keeps logs and metrics from calling the client's leaving a failure of ours.
  [KeyVaultErrorCode.CANCELLED]: 499 as HttpStatus,
  [KeyVaultErrorCode.UNKNOWN]: HttpStatus.INTERNAL_SERVER_ERROR,
};

/**
 * A codeName is unique across every lib (HTTP bodies, metrics labels and health details carry it):
 * the enum member names that other libs also use get this lib's prefix.
 */
const PREFIXED_CODE_NAME: Partial<Record<KeyVaultErrorCode, string>> = {
  [KeyVaultErrorCode.CONFLICT]: 'KEY_VAULT_CONFLICT',
  [KeyVaultErrorCode.CONFIGURATION]: 'KEY_VAULT_CONFIGURATION',
};

/** The `codeName` a code always has. */
export function codeNameOf(code: KeyVaultErrorCode): string {
  return PREFIXED_CODE_NAME[code] ?? KeyVaultErrorCode[code] ?? 'UNKNOWN';
}

/** The severity a code always has (stable: callers may branch on it). */
export function severityOf(code: KeyVaultErrorCode): ErrorSeverity {
  return SEVERITY[code];
}

export interface KeyVaultErrorDetails {
  operation: KeyVaultOperation;
  /** The secret's name, or the key's for a key operation (kept off the message and out of `toJSON`). */
  secretName?: string;
  /** HTTP status returned by the vault, when there was a response. */
  statusCode?: number;
  /** The service's own error code string, e.g. `SecretNotFound`, `Conflict`, `Throttled`. */
  azureCode?: string;
  /** How long the vault asked us to wait (from `Retry-After`), in milliseconds. */
  retryAfterMs?: number;
  /** CANCELLED only: whether the request had been sent to the vault (a read aborted in flight, or a shared read the caller left). */
  sent?: boolean;
  cause?: unknown;
}

/**
 * Every failure of the key-vault lib. The message (`keyVaultMessage`) says what failed in the caller's
 * terms, the code and the HTTP status or the Azure error code, never the object's name (it carries the
 * tenant) nor the vault's own text (it may repeat the request); the original error (RestError, identity error,
 * cockatiel error) is kept as `cause`.
 */
export class KeyVaultError extends CredentialVaultError {
  readonly code: KeyVaultErrorCode;
  readonly codeName: string;
  readonly severity: ErrorSeverity;
  readonly operation: KeyVaultOperation;
  /** For the caller that passed it; not enumerable, so log serializers and `toJSON` leave it out. */
  declare readonly secretName?: string;
  readonly statusCode?: number;
  readonly azureCode?: string;
  readonly retryAfterMs?: number;
  /**
   * CANCELLED only: `true` when the request had reached the vault (a read aborted in flight) or the caller left a read
   * shared with others that had begun for it, `false` when it was never sent (`callerLeftError`'s stages).
   */
  readonly sent?: boolean;

  constructor(code: KeyVaultErrorCode, message: string, details: KeyVaultErrorDetails) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.code = code;
    this.codeName = codeNameOf(code);
    this.severity = severityOf(code);
    this.operation = details.operation;
    Object.defineProperty(this, 'secretName', { value: details.secretName, enumerable: false });
    this.statusCode = details.statusCode;
    this.azureCode = details.azureCode;
    this.retryAfterMs = details.retryAfterMs;
    if (details.sent !== undefined) this.sent = details.sent;
  }

  override toJSON(): Record<string, unknown> {
    return {
      ...super.toJSON(),
      operation: this.operation,
      statusCode: this.statusCode,
      azureCode: this.azureCode,
      retryAfterMs: this.retryAfterMs,
    };
  }
}

/** True when `e` is a `KeyVaultError` (optionally: with this code). */
export function isKeyVaultError(e: unknown, code?: KeyVaultErrorCode): e is KeyVaultError {
  return e instanceof KeyVaultError && (code === undefined || e.code === code);
}
