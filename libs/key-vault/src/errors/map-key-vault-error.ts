import { BrokenCircuitError, BulkheadRejectedError, IsolatedCircuitError, TaskCancelledError } from 'cockatiel';
import { KeyVaultErrorCode } from './key-vault-error-code';
import { KeyVaultError, type KeyVaultOperation } from './key-vault.error';
import { keyVaultMessage, safeToken } from './key-vault-message';

/*
 * cockatiel 3.2.1's own isTaskCancelledError / isIsolatedCircuitError test for the
 * `isBulkheadRejectedError` marker (a copy-paste bug), so a full bulkhead would pass for a timeout
 * and a real timeout for nothing. These check the right marker (or the class).
 */
const hasMarker = (e: unknown, cls: abstract new (...a: any[]) => Error, marker: string): boolean =>
  e instanceof cls || (e instanceof Error && marker in e);
export const isCockatielTimeout = (e: unknown): boolean => hasMarker(e, TaskCancelledError, 'isTaskCancelledError');
const isBrokenCircuit = (e: unknown): boolean =>
  hasMarker(e, BrokenCircuitError, 'isBrokenCircuitError') || hasMarker(e, IsolatedCircuitError, 'isIsolatedCircuitError');
const isBulkheadRejected = (e: unknown): boolean => hasMarker(e, BulkheadRejectedError, 'isBulkheadRejectedError');

export interface ErrorContext {
  operation: KeyVaultOperation;
  /** Kept on the error (not enumerable), never in its message. */
  secretName?: string;
  /** Per-attempt timeout, only used to word TIMEOUT messages. */
  timeoutMs?: number;
  /** How long the open breaker still fails calls fast (ms): a CIRCUIT_OPEN's `retryAfterMs`. Asked only for one. */
  breakerOpenForMs?: () => number | undefined;
}

/** Errors from @azure/identity: the credential could not produce a token. */
const IDENTITY_ERROR_NAMES = new Set([
  'CredentialUnavailableError',
  'AuthenticationError',
  'AggregateAuthenticationError',
  'AuthenticationRequiredError',
]);

/** Connection-level failures: the request may not have reached the vault; retrying is safe. */
const NETWORK_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'EAI_AGAIN',
  'ENOTFOUND',
  'UND_ERR_SOCKET',
  'REQUEST_SEND_ERROR',
]);

const TIMEOUT_CODES = new Set(['ETIMEDOUT', 'ESOCKETTIMEDOUT', 'UND_ERR_CONNECT_TIMEOUT']);

/** Connection failures before a request was written: it never reached the vault. */
const NOT_SENT_CODES = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENETDOWN', 'EAI_AGAIN', 'ENOTFOUND', 'UND_ERR_CONNECT_TIMEOUT']);

/** TLS trust failures are configuration problems (wrong CA), never transient. */
const TLS_CODES = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'CERT_UNTRUSTED',
]);

/**
 * What to do about a TLS failure, named by the lib's options: the error surfaces at the first vault call,
 * often in an embedding app's test, far from the options that caused it.
 */
function tlsDetail(code: string): string {
  if (code === 'CERT_HAS_EXPIRED') return `TLS ${code}: the vault's certificate has expired`;
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return `TLS ${code}: the vault's certificate does not name the vaultUrl host`;
  return `TLS ${code}: the vault's certificate is not trusted; for a local vault, pass its CA in the KeyVaultModule option tls.caCertPath or tls.caCertPem (the stock host's KEY_VAULT_CA_CERT_PATH)`;
}

/**
 * An https:// vaultUrl on a server or port that speaks plain HTTP: its answer is no TLS record. OpenSSL names
 * that by its text only (EPROTO), or by an ERR_SSL_* code in newer Node versions.
 */
function isPlainHttpAnswer(code: string | undefined, text: string): boolean {
  if (code === 'ERR_SSL_WRONG_VERSION_NUMBER' || code === 'ERR_SSL_PACKET_LENGTH_TOO_LONG') return true;
  return code === 'EPROTO' && /wrong version number|packet length too long/i.test(text);
}

const NOT_TLS =
  "the vault did not answer in TLS: vaultUrl (the stock host's KEY_VAULT_URL) must be the vault's https:// address, not a plain-HTTP server or port";

/** The challenge names another resource than the vaultUrl host: what the emulator's and a custom domain's do. */
const CHALLENGE_MISMATCH =
  "the vault's authentication challenge does not match the vaultUrl host; for a local vault set the KeyVaultModule option " +
  "disableChallengeResourceVerification: true (the stock host's KEY_VAULT_DISABLE_CHALLENGE_RESOURCE_VERIFICATION), for Azure use the vault's own URL (https://<name>.vault.azure.net)";

const BACKUP_OPERATIONS: ReadonlySet<KeyVaultOperation> = new Set<KeyVaultOperation>(['backupSecret', 'restoreSecretBackup', 'backupKey', 'restoreKeyBackup']);

/** The service's text, read to classify a failure only: it never reaches the message. */
function serviceText(e: { message?: unknown }): string {
  return typeof e.message === 'string' ? e.message.replace(/\s+/g, ' ') : '';
}

/**
 * `Retry-After` in milliseconds from a response: `retry-after-ms` / `x-ms-retry-after-ms`
 * (milliseconds) or `Retry-After` (delta-seconds or an HTTP date). Undefined when absent or invalid.
 */
export function parseRetryAfterMs(
  headers: { get(name: string): string | undefined } | undefined,
  now: number = Date.now(),
): number | undefined {
  if (!headers) return undefined;
  for (const name of ['retry-after-ms', 'x-ms-retry-after-ms']) {
    const v = headers.get(name);
    if (v !== undefined && /^\s*\d+(\.\d+)?\s*$/.test(v)) return Math.ceil(Number(v));
  }
  const raw = headers.get('retry-after');
  if (raw === undefined) return undefined;
  const trimmed = raw.trim();
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Math.ceil(Number(trimmed) * 1000);
  const at = Date.parse(trimmed);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - now);
}

/** Inner codes of a 403 for a permission the identity lacks (RBAC, access policy; `AccessDenied` in older answers). */
const PERMISSION_DENIED = new Set(['ForbiddenByRbac', 'ForbiddenByPolicy', 'AccessDenied']);

/** The subset of `RestError` (@azure/core-rest-pipeline) we read. */
interface RestErrorLike extends Error {
  statusCode?: number;
  code?: string;
  response?: { headers: { get(name: string): string | undefined } };
  /** The parsed body; Key Vault puts the precise reason in `error.innererror` (e.g. 409 Conflict / ObjectIsBeingDeleted). */
  details?: { error?: { innerError?: { code?: unknown }; innererror?: { code?: unknown } } };
}

/** Same test as the SDK's own `isRestError` (an Error named RestError), without importing a transitive package. */
function isRestError(e: unknown): e is RestErrorLike {
  return e instanceof Error && e.name === 'RestError';
}

function errorCodeOf(e: unknown): string | undefined {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

function fromRestError(e: RestErrorLike, ctx: ErrorContext): KeyVaultError {
  const status = e.statusCode;
  const azureCode = safeToken(e.code);
  const innerCode = safeToken(e.details?.error?.innerError?.code ?? e.details?.error?.innererror?.code);
  const msg = serviceText(e);
  const base = { operation: ctx.operation, secretName: ctx.secretName, statusCode: status, azureCode, cause: e };
  const detail = status === undefined ? (azureCode ?? 'no response') : `HTTP ${status}${azureCode ? ` ${azureCode}` : ''}`;
  const make = (code: KeyVaultErrorCode, extra: { retryAfterMs?: number } = {}, why = detail) =>
    new KeyVaultError(code, keyVaultMessage(ctx.operation, code, { detail: why, retryAfterMs: extra.retryAfterMs }), { ...base, ...extra });

  if (status === undefined) {
    const netCode = azureCode ?? '';
    if (TLS_CODES.has(netCode)) return make(KeyVaultErrorCode.CONFIGURATION, {}, tlsDetail(netCode));
    if (isPlainHttpAnswer(netCode, msg)) return make(KeyVaultErrorCode.CONFIGURATION, {}, `${netCode}: ${NOT_TLS}`);
    if (TIMEOUT_CODES.has(netCode)) return make(KeyVaultErrorCode.TIMEOUT);
    if (NETWORK_CODES.has(netCode) || /socket hang up|ECONNRESET|ECONNREFUSED/i.test(msg)) {
      return make(KeyVaultErrorCode.SERVICE_UNAVAILABLE);
    }
    return make(KeyVaultErrorCode.UNKNOWN);
  }

  const retryAfterMs = parseRetryAfterMs(e.response?.headers);
  const isBackup = BACKUP_OPERATIONS.has(ctx.operation);
  const isPurge = ctx.operation === 'purgeDeletedSecret' || ctx.operation === 'purgeDeletedKey';
  switch (true) {
    case status === 429:
      return make(KeyVaultErrorCode.RATE_LIMITED, { retryAfterMs });
    case status === 401:
      return make(KeyVaultErrorCode.UNAUTHORIZED);
    case status === 403:
      // The inner code first: Azure's RBAC message quotes the resource's path, whose name may say "disabled".
      if (innerCode !== undefined && PERMISSION_DENIED.has(innerCode)) return make(KeyVaultErrorCode.FORBIDDEN);
      if (/disabled/i.test(msg) || /disabled/i.test(azureCode ?? '') || /disabled/i.test(innerCode ?? '')) return make(KeyVaultErrorCode.DISABLED);
      if (isPurge && /purge protection/i.test(msg)) {
        return make(KeyVaultErrorCode.PURGE_PROTECTED);
      }
      return make(KeyVaultErrorCode.FORBIDDEN);
    case status === 404:
      return make(KeyVaultErrorCode.KEY_NOT_FOUND);
    case status === 408:
      return make(KeyVaultErrorCode.TIMEOUT);
    case status === 409:
      if (/ObjectIsDeletedButRecoverable/i.test(azureCode ?? '') || /deleted but recoverable/i.test(msg)) {
        return make(KeyVaultErrorCode.DELETED_BUT_RECOVERABLE);
      }
      if ([azureCode, innerCode].includes('ObjectIsBeingDeleted') || /currently being deleted/i.test(msg)) return make(KeyVaultErrorCode.OBJECT_BEING_DELETED);
      if ([azureCode, innerCode].includes('ObjectIsBeingRecovered') || /currently being recovered/i.test(msg)) return make(KeyVaultErrorCode.OBJECT_BEING_RECOVERED);
      return make(KeyVaultErrorCode.CONFLICT);
    case status === 400 && isPurge && /purge protection/i.test(msg):
      return make(KeyVaultErrorCode.PURGE_PROTECTED);
    case status === 400:
      return make(isBackup ? KeyVaultErrorCode.BACKUP_FAILED : KeyVaultErrorCode.INVALID_REQUEST);
    case status >= 500:
      return make(KeyVaultErrorCode.SERVICE_UNAVAILABLE, { retryAfterMs });
    case status >= 400:
      return make(KeyVaultErrorCode.INVALID_REQUEST);
    default:
      return make(KeyVaultErrorCode.UNKNOWN);
  }
}

/**
 * Maps anything thrown while talking to Key Vault to a `KeyVaultError`:
 *
 * | source | code |
 * |---|---|
 * | 429 | RATE_LIMITED (with `retryAfterMs`) |
 * | 401, identity errors (CredentialUnavailableError, AuthenticationError, ...) | UNAUTHORIZED |
 * | 403 on a disabled secret / 403 otherwise | DISABLED / FORBIDDEN |
 * | 403/400 "purge protection" on purge | PURGE_PROTECTED |
 * | 404 | KEY_NOT_FOUND |
 * | 400 | INVALID_REQUEST (BACKUP_FAILED for backup/restore) |
 * | 409 ObjectIsDeletedButRecoverable / ObjectIsBeingDeleted / ObjectIsBeingRecovered / other 409 | DELETED_BUT_RECOVERABLE / OBJECT_BEING_DELETED / OBJECT_BEING_RECOVERED / CONFLICT |
 * | 5xx, ECONNRESET, ECONNREFUSED, socket hang up | SERVICE_UNAVAILABLE |
 * | 408, ETIMEDOUT, aborts, cockatiel timeouts | TIMEOUT |
 * | untrusted TLS certificate, a plain-HTTP answer to TLS, challenge resource mismatch | CONFIGURATION |
 * | open circuit breaker / full bulkhead | CIRCUIT_OPEN (with `retryAfterMs`: until a trial call is let through) / BULKHEAD_FULL |
 */
export function toKeyVaultError(e: unknown, ctx: ErrorContext): KeyVaultError {
  if (e instanceof KeyVaultError) return e;
  const fail = (code: KeyVaultErrorCode, detail?: string) =>
    new KeyVaultError(code, keyVaultMessage(ctx.operation, code, { detail }), { operation: ctx.operation, secretName: ctx.secretName, cause: e });

  if (isCockatielTimeout(e) || (e instanceof Error && e.name === 'AbortError')) {
    return fail(KeyVaultErrorCode.TIMEOUT, `no answer${ctx.timeoutMs === undefined ? '' : ` after ${ctx.timeoutMs} ms`}`);
  }
  if (isBrokenCircuit(e)) {
    // When the breaker lets a trial call through: the caller can wait that long instead of asking again and again.
    // Always said: 0 when the break ended as this call was refused, or when it cannot tell (a trial in flight, isolated).
    const retryAfterMs = ctx.breakerOpenForMs?.() ?? 0;
    const code = KeyVaultErrorCode.CIRCUIT_OPEN;
    return new KeyVaultError(code, keyVaultMessage(ctx.operation, code, { retryAfterMs }), { operation: ctx.operation, secretName: ctx.secretName, cause: e, retryAfterMs });
  }
  if (isBulkheadRejected(e)) return fail(KeyVaultErrorCode.BULKHEAD_FULL);
  if (isRestError(e)) return fromRestError(e, ctx);
  // The identity's own text stays in `cause` (the logs): it can quote tenant and client ids.
  if (e instanceof Error && IDENTITY_ERROR_NAMES.has(e.name)) return fail(KeyVaultErrorCode.UNAUTHORIZED, e.name);
  if (e instanceof Error && /challenge resource .* does not match|challenge contains invalid scope/i.test(e.message)) {
    return fail(KeyVaultErrorCode.CONFIGURATION, CHALLENGE_MISMATCH);
  }
  const code = errorCodeOf(e);
  if (code !== undefined) {
    if (TLS_CODES.has(code)) return fail(KeyVaultErrorCode.CONFIGURATION, tlsDetail(code));
    if (isPlainHttpAnswer(code, e instanceof Error ? e.message : '')) return fail(KeyVaultErrorCode.CONFIGURATION, `${code}: ${NOT_TLS}`);
    if (TIMEOUT_CODES.has(code)) return fail(KeyVaultErrorCode.TIMEOUT, code);
    if (NETWORK_CODES.has(code)) return fail(KeyVaultErrorCode.SERVICE_UNAVAILABLE, code);
  }
  return fail(KeyVaultErrorCode.UNKNOWN, e instanceof Error ? (safeToken(e.name) ?? 'Error') : typeof e);
}

/**
 * Whether a failed call may still have taken effect in the vault: no answer (a timeout, a connection lost
 * after the request went out), a 5xx, or a 2xx answer we could not use. A 429 or 4xx answer, an open
 * breaker, a full bulkhead and a connection never made prove it did not. For writes that are not
 * idempotent (a Create Key on an existing name adds a version), only those are retried.
 */
export function mayHaveTakenEffect(e: unknown): boolean {
  if (isCockatielTimeout(e)) return true;
  if (!(e instanceof KeyVaultError)) return true;
  const netCode = e.statusCode === undefined ? (e.azureCode ?? errorCodeOf(e.cause)) : undefined;
  switch (e.code) {
    case KeyVaultErrorCode.TIMEOUT:
    case KeyVaultErrorCode.SERVICE_UNAVAILABLE:
      return netCode === undefined || !NOT_SENT_CODES.has(netCode);
    case KeyVaultErrorCode.INVALID_RESPONSE:
    case KeyVaultErrorCode.UNKNOWN:
      return true;
    default:
      return false;
  }
}
