import { ErrorSeverity, retryAfterSeconds } from '@app/common';
import { KeyVaultErrorCode } from './key-vault-error-code';
import { codeNameOf, isKeyOperation, severityOf, type KeyVaultOperation } from './key-vault.error';

/**
 * What an operator can do about a code. Fixed text: a message never quotes the object's name (secret
 * names carry the tenant, key names a tenant hash) nor the vault's own text (which may repeat the request).
 */
const HINT: Partial<Record<KeyVaultErrorCode, string>> = {
  [KeyVaultErrorCode.UNAUTHORIZED]: "the vault refused the host's identity; check its credential",
  [KeyVaultErrorCode.FORBIDDEN]: "the host's identity lacks this permission (access policy or RBAC role)",
  [KeyVaultErrorCode.DISABLED]: 'the object or this version is disabled',
  [KeyVaultErrorCode.DELETED_BUT_RECOVERABLE]: 'the name is soft-deleted; recover or purge it first',
  [KeyVaultErrorCode.PURGE_PROTECTED]: 'the vault has purge protection',
  [KeyVaultErrorCode.CONFLICT]: 'a concurrent operation on the same object',
  [KeyVaultErrorCode.OBJECT_BEING_DELETED]: 'a delete or purge of the name is still completing',
  [KeyVaultErrorCode.OBJECT_BEING_RECOVERED]: 'a recover of the name is still completing',
  [KeyVaultErrorCode.DELETE_UNDONE]: 'the object was recovered (or created anew) while its deletion completed; it is live',
  [KeyVaultErrorCode.OUTCOME_UNKNOWN]: 'the vault may still have applied it: read the object before repeating the request',
  [KeyVaultErrorCode.CIRCUIT_OPEN]: 'the vault failed repeatedly; calls fail fast until the breaker half-opens',
  [KeyVaultErrorCode.BULKHEAD_FULL]: 'too many concurrent Key Vault calls queued',
  [KeyVaultErrorCode.CANCELLED]: 'the caller left',
};

/** An identifier (an Azure error code, a Node error code, an error class name), else undefined: never free text. */
export function safeToken(s: unknown): string | undefined {
  return typeof s === 'string' && /^[A-Za-z][A-Za-z0-9_.-]{0,63}$/.test(s) ? s : undefined;
}

/**
 * Each operation in its callers' words: what they asked for, not the SDK method the gateway called (a
 * library user or an HTTP client never called `getKey`).
 */
const DOING: Record<KeyVaultOperation, string> = {
  setSecret: 'writing the secret',
  getSecret: 'reading the secret',
  updateSecretProperties: "updating the secret's properties",
  listSecrets: 'listing the secrets',
  listSecretVersions: "listing the secret's versions",
  deleteSecret: 'deleting the secret',
  getDeletedSecret: 'reading the deleted secret',
  listDeletedSecrets: 'listing the deleted secrets',
  recoverDeletedSecret: 'recovering the deleted secret',
  purgeDeletedSecret: 'purging the deleted secret',
  backupSecret: 'backing up the secret',
  restoreSecretBackup: 'restoring the secret from its backup',
  createKey: 'creating the key',
  getKey: 'reading the key',
  listKeys: 'listing the keys',
  listKeyVersions: "listing the key's versions",
  updateKeyProperties: "updating the key's properties",
  rotateKey: 'rotating the key',
  deleteKey: 'deleting the key',
  getDeletedKey: 'reading the deleted key',
  recoverDeletedKey: 'recovering the deleted key',
  purgeDeletedKey: 'purging the deleted key',
  backupKey: 'backing up the key',
  restoreKeyBackup: 'restoring the key from its backup',
  sign: 'signing with the key',
  verify: 'verifying with the key',
  encrypt: 'encrypting with the key',
  decrypt: 'decrypting with the key',
  wrapKey: 'wrapping with the key',
  unwrapKey: 'unwrapping with the key',
  healthCheck: 'checking the vault',
  configuration: 'setting up the vault client',
};

/** What a KEY_NOT_FOUND of this operation did not find, in the same words. */
function notFoundHint(operation: KeyVaultOperation): string | undefined {
  if (operation === 'healthCheck' || operation === 'configuration') return undefined;
  return `no ${operation.includes('Deleted') ? 'deleted ' : ''}${isKeyOperation(operation) ? 'key' : 'secret'} of that name or version`;
}

export interface KeyVaultMessageFacts {
  /** What happened, in our words or identifiers only (e.g. `HTTP 404 SecretNotFound`, `ECONNRESET`). */
  detail?: string;
  retryAfterMs?: number;
  /** `failed` (default) or `refused` (checked before any call). */
  verb?: 'failed' | 'refused';
  /** Instead of the code's own hint, when the facts say more precisely what to do (or less, when they cannot tell). */
  hint?: string;
}

/**
 * The one wording of a `KeyVaultError` message: what failed in the caller's terms, the code name, what
 * happened, a hint and whether to retry, e.g. `Reading the secret failed: RATE_LIMITED (HTTP 429 Throttled); retry after 3 s`.
 */
export function keyVaultMessage(operation: KeyVaultOperation, code: KeyVaultErrorCode, facts: KeyVaultMessageFacts = {}): string {
  const notFound = code === KeyVaultErrorCode.KEY_NOT_FOUND ? notFoundHint(operation) : undefined;
  const why = [facts.detail, facts.hint ?? HINT[code] ?? notFound].filter((p) => p !== undefined && p !== '').join('; ');
  const retry =
    facts.retryAfterMs !== undefined
      ? `; retry after ${retryAfterSeconds(facts.retryAfterMs)} s`
      : severityOf(code) === ErrorSeverity.TRANSIENT
        ? '; retry later'
        : '';
  const doing = DOING[operation] ?? 'the vault call';
  const subject = doing.charAt(0).toUpperCase() + doing.slice(1);
  return `${subject} ${facts.verb === 'refused' ? 'was refused' : 'failed'}: ${codeNameOf(code)}${why ? ` (${why})` : ''}${retry}`;
}
