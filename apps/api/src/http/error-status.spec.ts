import { CredentialVaultError, ErrorSeverity } from '@app/common';
import { statusForError } from './error-status';

function err(code: number, severity: ErrorSeverity, name = 'SomeError'): CredentialVaultError {
  class E extends CredentialVaultError {
    readonly code = code;
    readonly codeName = 'X';
    readonly severity = severity;
  }
  const e = new E('m');
  Object.defineProperty(e, 'name', { value: name });
  return e;
}

describe('statusForError', () => {
  it.each([
    [1001, 503],
    [1002, 502],
    [1003, 404],
    [1004, 400],
    [1005, 504],
    [1006, 503],
    [1008, 409],
    [1011, 503],
  ])('maps Key Vault code %i to HTTP %i', (code, status) => {
    expect(statusForError(err(code, ErrorSeverity.TRANSIENT))).toBe(status);
  });

  it('maps by error name, then by severity, for codes it does not list', () => {
    expect(statusForError(err(2002, ErrorSeverity.CLIENT, 'CredentialNotFoundError'))).toBe(404);
    expect(statusForError(err(2003, ErrorSeverity.CLIENT, 'CredentialConflictError'))).toBe(409);
    expect(statusForError(err(2999, ErrorSeverity.CLIENT))).toBe(400);
    expect(statusForError(err(2998, ErrorSeverity.TRANSIENT))).toBe(503);
    expect(statusForError(err(2997, ErrorSeverity.FATAL))).toBe(500);
  });
});
