import { HttpStatus } from '@nestjs/common';
import { CredentialVaultError, ErrorSeverity } from '@app/common';

/**
 * Stable error codes of the keys lib (block `keys` of ERROR_CODE_RANGES). Never renumber. Failures of
 * the vault itself keep the gateway's `KeyVaultError` codes (429 → 1001, 401/403 → 1002/1010, 404 →
 * 1003 — also for another tenant's key —, vault-side bad input → 1004, timeout → 1005,
 * unavailable / breaker / bulkhead → 1006 / 1011 / 1012).
 */
export enum KeysErrorCode {
  /** The algorithm is not allowed here (RSA1_5 unless `allowRsa1_5`, or not one the lib supports). */
  ALGORITHM_NOT_ALLOWED = 10001,
  /** The algorithm does not fit the key (ES256 on an RSA key, ES384 on a P-256 key, RSA-OAEP on EC). */
  KEY_TYPE_MISMATCH = 10002,
  /** The key's `key_ops` do not include the operation. */
  KEY_OPERATION_NOT_PERMITTED = 10003,
  /** The key is disabled, expired or not valid yet. */
  KEY_NOT_USABLE = 10004,
  /** The request is malformed (name, size, curve, tags, digest length, paging...). Nothing was sent to the vault. */
  KEYS_VALIDATION = 10005,
  /** Invalid KeysModule options or a missing dependency. */
  KEYS_CONFIGURATION = 10006,
  /** The backup blob is not a key backup of this tenant. */
  INVALID_KEY_BACKUP = 10007,
  /** A key of that name exists: a new version comes from rotate, not create; a backup restores only under a free name. */
  KEY_ALREADY_EXISTS = 10008,
}

/** HTTP status of each code, composed by the host (a code without one does not compile). */
export const KEYS_ERROR_HTTP_STATUS: Record<KeysErrorCode, HttpStatus> = {
  [KeysErrorCode.ALGORITHM_NOT_ALLOWED]: HttpStatus.BAD_REQUEST,
  [KeysErrorCode.KEY_TYPE_MISMATCH]: HttpStatus.BAD_REQUEST,
  [KeysErrorCode.KEY_OPERATION_NOT_PERMITTED]: HttpStatus.BAD_REQUEST,
  [KeysErrorCode.KEY_NOT_USABLE]: HttpStatus.CONFLICT, // the key's state, not the request, must change
  [KeysErrorCode.KEYS_VALIDATION]: HttpStatus.BAD_REQUEST,
  [KeysErrorCode.KEYS_CONFIGURATION]: HttpStatus.INTERNAL_SERVER_ERROR,
  [KeysErrorCode.INVALID_KEY_BACKUP]: HttpStatus.BAD_REQUEST,
  [KeysErrorCode.KEY_ALREADY_EXISTS]: HttpStatus.CONFLICT,
};

const SEVERITY: Record<KeysErrorCode, ErrorSeverity> = {
  [KeysErrorCode.ALGORITHM_NOT_ALLOWED]: ErrorSeverity.CLIENT,
  [KeysErrorCode.KEY_TYPE_MISMATCH]: ErrorSeverity.CLIENT,
  [KeysErrorCode.KEY_OPERATION_NOT_PERMITTED]: ErrorSeverity.CLIENT,
  [KeysErrorCode.KEY_NOT_USABLE]: ErrorSeverity.CLIENT,
  [KeysErrorCode.KEYS_VALIDATION]: ErrorSeverity.CLIENT,
  [KeysErrorCode.KEYS_CONFIGURATION]: ErrorSeverity.CONFIGURATION,
  [KeysErrorCode.INVALID_KEY_BACKUP]: ErrorSeverity.CLIENT,
  [KeysErrorCode.KEY_ALREADY_EXISTS]: ErrorSeverity.CLIENT,
};

/**
 * Every error of the keys lib. Messages name the field or rule, never request data (key material,
 * plaintext, digests, signatures, tag values).
 */
export class KeysError extends CredentialVaultError {
  readonly codeName: string;
  readonly severity: ErrorSeverity;

  constructor(
    readonly code: KeysErrorCode,
    message: string,
    /** The request field at fault, when there is one. */
    readonly field?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.codeName = KeysErrorCode[code];
    this.severity = SEVERITY[code];
  }

  override toJSON(): Record<string, unknown> {
    return this.field === undefined ? super.toJSON() : { ...super.toJSON(), field: this.field };
  }
}

/** True when `e` is a `KeysError` (optionally: with this code). */
export function isKeysError(e: unknown, code?: KeysErrorCode): e is KeysError {
  return e instanceof KeysError && (code === undefined || e.code === code);
}
