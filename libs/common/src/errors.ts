import { errorCodeRangeOf } from './error-code-ranges';

/** How bad an error is for the caller: retry later, fix the request, or page someone. */
export enum ErrorSeverity {
  /** Transient: retrying later may succeed (throttling, timeouts, outages). */
  TRANSIENT = 'transient',
  /** The request itself is wrong; retrying it unchanged will fail again. */
  CLIENT = 'client',
  /** Configuration or permission problem an operator must fix. */
  CONFIGURATION = 'configuration',
  /** A bug or an unexpected state. */
  FATAL = 'fatal',
}

/**
 * Base of every typed error the libs throw. Libs never throw HttpException: the host maps `code`
 * to an HTTP status in one exception filter. Messages must never contain a credential value.
 */
export abstract class CredentialVaultError extends Error {
  abstract readonly code: number;
  abstract readonly codeName: string;
  abstract readonly severity: ErrorSeverity;

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }

  get retryable(): boolean {
    return this.severity === ErrorSeverity.TRANSIENT;
  }

  toJSON(): Record<string, unknown> {
    return { name: this.name, code: this.code, codeName: this.codeName, message: this.message, severity: this.severity };
  }
}

/**
 * A vault call refused for a reason every further call shares — the host's identity lacks a permission or is not
 * accepted (Key Vault's FORBIDDEN, UNAUTHORIZED, CONFIGURATION): a run stops calling the vault rather than failing
 * item after item, and an operator must act.
 */
export function isVaultRefusal(e: unknown): e is CredentialVaultError {
  return e instanceof CredentialVaultError && e.severity === ErrorSeverity.CONFIGURATION && errorCodeRangeOf(e.code) === 'keyVault';
}

/** The SQLSTATE of a database error: node-postgres' own, or the one TypeORM's `QueryFailedError` wraps. */
export function sqlState(e: unknown): string | undefined {
  const err = e as { code?: unknown; driverError?: { code?: unknown } } | null | undefined;
  const code = err?.driverError?.code ?? err?.code;
  return typeof code === 'string' ? code : undefined;
}

/** The error's name and code only: a message might quote data, and outbox rows and logs are read widely. */
export function describeError(e: unknown): string {
  const err = (e ?? {}) as { name?: unknown; code?: unknown; codeName?: unknown; driverError?: { code?: unknown } };
  const name = typeof err.name === 'string' && err.name ? err.name : typeof e;
  const code = err.codeName ?? err.code ?? err.driverError?.code;
  const text = code === undefined || code === null || code === '' ? name : `${name}(${String(code)})`;
  return text.slice(0, 200);
}
