import { CredentialVaultError } from '@app/common';

/** The `errorCode` of an error that is not a `CredentialVaultError` (its message may quote data: never stored). */
export const UNEXPECTED_ERROR_CODE = 'UNEXPECTED';

/**
 * An audit row's `errorCode` for an error: `<code>:<codeName>` (`1010:FORBIDDEN`), the one format of every writer, so
 * an auditor finds one code across libs (README, "Error codes").
 */
export function auditErrorCode(e: unknown): string {
  return e instanceof CredentialVaultError ? `${e.code}:${e.codeName}` : UNEXPECTED_ERROR_CODE;
}
