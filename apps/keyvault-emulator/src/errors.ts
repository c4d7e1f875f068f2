/**
 * Key Vault error responses: `{"error":{"code","message","innererror"?}}` with the service's real
 * statuses, codes and (where known from recorded sessions) messages.
 */
export interface KeyVaultErrorBody {
  error: { code: string; message: string; innererror?: { code: string } };
}

export class KeyVaultHttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly innerCode?: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'KeyVaultHttpError';
  }

  toBody(): KeyVaultErrorBody {
    const body: KeyVaultErrorBody = { error: { code: this.code, message: this.message } };
    if (this.innerCode) body.error.innererror = { code: this.innerCode };
    return body;
  }
}

/** The two kinds of vault object the emulator serves; they share lifecycle, paging and errors. */
export type ObjectKind = 'secret' | 'key';

const title = (kind: ObjectKind) => (kind === 'secret' ? 'Secret' : 'Key');

const HELP_NOT_FOUND = 'For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182';

export const errors = {
  badParameter: (message: string) => new KeyVaultHttpError(400, 'BadParameter', message),
  /**
   * The service's generic answer to a body property it refuses, naming none (double space and CRLF as sent): quoted for
   * more than 15 tags on a secret (hashicorp/terraform-provider-azurerm #16780) and on a certificate
   * (aztfmod/terraform-azurerm-caf #813).
   */
  invalidProperty: () => new KeyVaultHttpError(400, 'BadParameter', 'Property  has invalid value\r\n'),
  /** A secret value over the limit, as az quotes the service's answer ("(BadParameter) … Inner error: SecretTooLarge"). */
  secretTooLarge: (maxLength: number) =>
    new KeyVaultHttpError(400, 'BadParameter', `Secret is beyond the maximum permitted length of ${maxLength} characters.`, 'SecretTooLarge'),
  invalidName: (name: string) => new KeyVaultHttpError(400, 'BadParameter', `The request URI contains an invalid name: ${name}`),
  notFound: (kind: ObjectKind, nameOrId: string) =>
    new KeyVaultHttpError(
      404,
      kind === 'secret' ? 'SecretNotFound' : 'KeyNotFound',
      `A ${kind} with (name/id) ${nameOrId} was not found in this key vault. If you recently deleted this ${kind} you may be able to recover it using the correct recovery command. ${HELP_NOT_FOUND}`,
    ),
  deletedNotFound: (kind: ObjectKind, name: string) =>
    new KeyVaultHttpError(404, kind === 'secret' ? 'SecretNotFound' : 'KeyNotFound', `Deleted ${title(kind)} not found: ${name}`),
  disabled: (kind: ObjectKind, operation = 'get') =>
    new KeyVaultHttpError(403, 'Forbidden', `Operation ${operation} is not allowed on a disabled ${kind}.`, kind === 'secret' ? 'SecretDisabled' : 'KeyDisabled'),
  deletedButRecoverable: (kind: ObjectKind, name: string) =>
    new KeyVaultHttpError(
      409,
      'Conflict',
      `${title(kind)} ${name} is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the ${kind} can only be recovered or purged.`,
      'ObjectIsDeletedButRecoverable',
    ),
  /**
   * A purge sent before the delete completed: the service's words name no object (hashicorp/terraform-provider-azurerm
   * #10454, a secret; a key's "Key is …" is by analogy).
   */
  beingDeleted: (kind: ObjectKind) => new KeyVaultHttpError(409, 'Conflict', `${title(kind)} is currently being deleted.`, 'ObjectIsBeingDeleted'),
  /** A set or create of a name whose delete or purge is completing (azure-sdk-for-net #34322); a restore gets `restoreConflict`. */
  beingDeletedNoRecreate: (kind: ObjectKind, name: string) =>
    new KeyVaultHttpError(409, 'Conflict', `${title(kind)} ${name} is currently being deleted and cannot be re-created; retry later.`, 'ObjectIsBeingDeleted'),
  /** A set or create of a name whose recover is completing (azure-sdk-for-net #31581). */
  beingRecovered: (kind: ObjectKind, name: string) =>
    new KeyVaultHttpError(409, 'Conflict', `${title(kind)} ${name} is currently being recovered and cannot be re-created; retry later.`, 'ObjectIsBeingRecovered'),
  /**
   * The service's answer to a restore over a live name, and to one while the name's purge completes (recorded for secrets
   * and keys; `id`: the backup's latest version).
   */
  restoreConflict: (kind: ObjectKind, id: string) =>
    new KeyVaultHttpError(
      409,
      'Conflict',
      `There was a conflict restoring the ${kind} '${id}'. This can happen if either: a second ${kind} with the same name was created after the first ${kind} was deleted; thus trying to restore a ${kind} whose name is already in use. To fix this, rename the second ${kind} to something else so that the restore works. The second probable cause of this exception is when multiple operations are performed in parallel against the ${kind}. To avoid this error, perform operations against a ${kind} in a sequential manner.`,
    ),
  keyOperationForbidden: (operation: string) =>
    new KeyVaultHttpError(403, 'Forbidden', `Operation ${operation} is not permitted on this key.`, 'KeyOperationForbidden'),
  keyExpired: (operation: string) =>
    new KeyVaultHttpError(403, 'Forbidden', `Operation ${operation} is not allowed on an expired key.`, 'KeyExpired'),
  keyNotYetValid: (operation: string) =>
    new KeyVaultHttpError(403, 'Forbidden', `Operation ${operation} is not allowed on a key that is not yet valid.`, 'KeyNotYetValid'),
  purgeProtected: (vault: string) =>
    new KeyVaultHttpError(
      403,
      'Forbidden',
      `Operation "purge" is not allowed because purge protection is enabled for this vault. Key Vault service will automatically purge it after the retention period has passed.\r\nVault: ${vault};location=local`,
    ),
  corruptBackup: () => new KeyVaultHttpError(400, 'BadParameter', 'Backup blob contains invalid or corrupt version.'),
  tooManyVersionsForBackup: (kind: ObjectKind, name: string, count: number) =>
    new KeyVaultHttpError(
      400,
      'BadParameter',
      `${title(kind)} ${name} has ${count} versions; backup of an object with more than 500 versions is not supported.`,
    ),
  unauthorized: (message = 'AKV10000: Request is missing a Bearer, PoP, or MTLS_POP token.') => new KeyVaultHttpError(401, 'Unauthorized', message),
  throttled: (retryAfterSeconds?: number) =>
    new KeyVaultHttpError(
      429,
      'Throttled',
      'Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached',
      undefined,
      retryAfterSeconds !== undefined ? { 'Retry-After': String(retryAfterSeconds) } : {},
    ),
  internal: () =>
    new KeyVaultHttpError(500, 'InternalServerError', 'The service encountered an internal error. Please try again later.'),
  unavailable: (retryAfterSeconds?: number) =>
    new KeyVaultHttpError(
      503,
      'ServiceUnavailable',
      'The service is temporarily unavailable. Please try again later.',
      undefined,
      retryAfterSeconds !== undefined ? { 'Retry-After': String(retryAfterSeconds) } : {},
    ),
  methodNotAllowed: (method: string, path: string) =>
    new KeyVaultHttpError(405, 'BadParameter', `Method ${method} is not allowed on ${path}.`),
  notFoundRoute: (path: string) => new KeyVaultHttpError(404, 'NotFound', `The requested resource ${path} was not found.`),
};
