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
