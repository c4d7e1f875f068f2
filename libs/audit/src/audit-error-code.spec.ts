import { CredentialVaultError, ErrorSeverity } from '@app/common';
import { auditErrorCode } from './index';

class Refused extends CredentialVaultError {
  readonly code = 1010;
  readonly codeName = 'FORBIDDEN';
  readonly severity = ErrorSeverity.CONFIGURATION;
}

describe('auditErrorCode', () => {
  it('is `<code>:<codeName>` for a typed error, and never an untyped error’s message', () => {
    expect(auditErrorCode(new Refused('denied'))).toBe('1010:FORBIDDEN');
    expect(auditErrorCode(new Error('token=abc123 rejected'))).toBe('UNEXPECTED');
    expect(auditErrorCode(undefined)).toBe('UNEXPECTED');
  });
});
