import { HttpException } from '@nestjs/common';
import { CredentialVaultError } from '@app/common';
import { KeyVaultError } from '@app/key-vault';

/** An identifier (class name, error code, request id), else undefined: never free text. */
function token(s: unknown): string | undefined {
  return typeof s === 'string' && /^[A-Za-z][A-Za-z0-9_.:-]{0,63}$/.test(s) ? s : undefined;
}

/** A request id Azure sent or was sent (a GUID), else undefined. */
function requestIdToken(s: unknown): string | undefined {
  return typeof s === 'string' && /^[A-Za-z0-9-]{1,64}$/.test(s) ? s : undefined;
}

/** Errors of the Azure SDK (transport, identity): their text and stacks are the SDK's, not ours. */
const AZURE_ERROR_NAMES = new Set(['RestError', 'CredentialUnavailableError', 'AuthenticationError', 'AggregateAuthenticationError', 'AuthenticationRequiredError']);

/** The SDK's transport error (the service's answer, or a connection failure): its text is the vault's. */
interface RestErrorLike {
  statusCode?: unknown;
  request?: { requestId?: unknown };
  response?: { headers?: { get?(name: string): string | undefined } };
}

/**
 * Error details for the HTTP 5xx and the gRPC INTERNAL log lines: only fields whose content we define.
 * Never a message: a typed error's may name a vault object (secret names carry the tenant), Azure's
 * repeats the request, and a bug's may quote data. Per error of the cause chain:
 * - `name`: the class; `code`: our stable code (with `codeName`, `severity`) or an identifier-shaped
 *   code of a foreign error (`ECONNRESET`, Azure's `SecretNotFound`/`Throttled`);
 * - a KeyVaultError: `operation`, the vault's HTTP `vaultStatus`, Azure's error code `azureCode`, `retryAfterMs`;
 * - an Azure RestError: `statusCode`, Azure's `x-ms-request-id` (`vaultRequestId`) and our
 *   `x-ms-client-request-id` (`clientRequestId`), which Azure support can look up;
 * - an untyped error other than Azure's (a bug): its stack frames, without the message line.
 */
export function errorLogFields(e: unknown, depth = 0): Record<string, unknown> {
  if (!(e instanceof Error)) return { name: typeof e };
  const out: Record<string, unknown> = { name: token(e.name) ?? 'Error' };
  const isAzure = AZURE_ERROR_NAMES.has(e.name);
  if (e instanceof CredentialVaultError) {
    out.code = e.code;
    out.codeName = token(e.codeName);
    out.severity = e.severity;
  } else {
    const code = (e as { code?: unknown }).code;
    out.code = typeof code === 'number' && Number.isInteger(code) ? code : token(code);
  }
  if (e instanceof KeyVaultError) {
    out.operation = e.operation;
    out.vaultStatus = e.statusCode;
    out.azureCode = token(e.azureCode);
    out.retryAfterMs = e.retryAfterMs;
  }
  if (e instanceof HttpException) out.statusCode = e.getStatus();
  if (e.name === 'RestError') {
    const rest = e as RestErrorLike;
    if (typeof rest.statusCode === 'number') out.statusCode = rest.statusCode;
    out.vaultRequestId = requestIdToken(rest.response?.headers?.get?.('x-ms-request-id'));
    out.clientRequestId = requestIdToken(rest.request?.requestId);
  }
  if (!(e instanceof CredentialVaultError) && !(e instanceof HttpException) && !isAzure && e.stack) {
    const frames = stackFrames(e);
    if (frames) out.stack = frames;
  }
  if (e.cause !== undefined && depth < 3) out.cause = errorLogFields(e.cause, depth + 1);
  for (const k of Object.keys(out)) if (out[k] === undefined) delete out[k];
  return out;
}

/** The `at ...` lines of a stack (code locations only): the first line repeats the message. */
function stackFrames(e: Error): string | undefined {
  const header = `${e.name}: ${e.message}`;
  const rest = e.stack!.startsWith(header) ? e.stack!.slice(header.length) : e.stack!;
  const frames = rest.split('\n').filter((l) => /^\s+at \S/.test(l)).slice(0, 8);
  return frames.length > 0 ? frames.map((l) => l.trim()).join('\n') : undefined;
}

/**
 * A failed start's error for its one log line: errorLogFields, plus the message (`reason`) of each error
 * of the cause chain that is not Azure's (whose text repeats the request). Start-up holds no credential
 * value, and without the text a failure like Nest's unresolved dependency or a port in use cannot be acted on.
 */
export function startFailureFields(e: unknown, depth = 0): Record<string, unknown> {
  const out = errorLogFields(e, 3); // depth 3: without its cause, added below with messages
  if (!(e instanceof Error)) return out;
  if (!AZURE_ERROR_NAMES.has(e.name) && !(e instanceof KeyVaultError)) out.reason = e.message.slice(0, 2000);
  if (e.cause !== undefined && depth < 3) out.cause = startFailureFields(e.cause, depth + 1);
  return out;
}
