import { ErrorSeverity } from '@app/common';
import { KeyVaultErrorCode } from './key-vault-error-code';
import { codeNameOf, severityOf, type KeyVaultOperation } from './key-vault.error';

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
  [KeyVaultErrorCode.OUTCOME_UNKNOWN]: 'the vault may still have applied it: read the object before repeating the request',
  [KeyVaultErrorCode.CIRCUIT_OPEN]: 'the vault failed repeatedly; calls fail fast until the breaker half-opens',
  [KeyVaultErrorCode.BULKHEAD_FULL]: 'too many concurrent Key Vault calls queued',
  [KeyVaultErrorCode.CANCELLED]: 'the caller left',
};

/** An identifier (an Azure error code, a Node error code, an error class name), else undefined: never free text. */
export function safeToken(s: unknown): string | undefined {
  return typeof s === 'string' && /^[A-Za-z][A-Za-z0-9_.-]{0,63}$/.test(s) ? s : undefined;
}

export interface KeyVaultMessageFacts {
  /** What happened, in our words or identifiers only (e.g. `HTTP 404 SecretNotFound`, `ECONNRESET`). */
  detail?: string;
  retryAfterMs?: number;
  /** `failed` (default) or `refused` (checked before any call). */
  verb?: 'failed' | 'refused';
}

/**
 * The one wording of a `KeyVaultError` message: operation, code name, what happened, a hint and
 * whether to retry, e.g. `Key Vault getSecret failed: RATE_LIMITED (HTTP 429 Throttled); retry after 3 s`.
 */
export function keyVaultMessage(operation: KeyVaultOperation, code: KeyVaultErrorCode, facts: KeyVaultMessageFacts = {}): string {
  const why = [facts.detail, HINT[code]].filter((p) => p !== undefined && p !== '').join('; ');
  const retry =
    facts.retryAfterMs !== undefined
      ? `; retry after ${Math.max(1, Math.ceil(facts.retryAfterMs / 1000))} s`
      : severityOf(code) === ErrorSeverity.TRANSIENT
        ? '; retry later'
        : '';
  return `Key Vault ${operation} ${facts.verb ?? 'failed'}: ${codeNameOf(code)}${why ? ` (${why})` : ''}${retry}`;
}
