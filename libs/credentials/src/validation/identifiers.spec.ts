import { CredentialValidationError } from '../errors/credential-errors';
import { assertIdentifier, assertNewIdentifier, NEW_IDENTIFIER_PATTERN } from './identifiers';

describe('identifiers', () => {
  it('a new id made only of dots is refused (clients resolve "." and ".." path segments away), naming the field', () => {
    for (const id of ['.', '..', '...']) {
      expect(() => assertNewIdentifier(id, 'connectionId')).toThrow(CredentialValidationError);
      expect(() => assertNewIdentifier(id, 'connectionId')).toThrow(/^connectionId must not be made only of dots/);
      expect(NEW_IDENTIFIER_PATTERN.test(id)).toBe(false);
    }
    const e = (() => {
      try {
        assertNewIdentifier('..', 'integrationId');
      } catch (err) {
        return err as CredentialValidationError;
      }
    })();
    expect(e).toMatchObject({ codeName: 'VALIDATION', field: 'integrationId' });
  });

  it('a new id with dots among other characters, and the old rules, stand as they were', () => {
    for (const id of ['.a', 'a.', '..a', 'acme.prod', 'user@example.com', 'x'.repeat(128)]) {
      expect(() => assertNewIdentifier(id, 'connectionId')).not.toThrow();
      expect(NEW_IDENTIFIER_PATTERN.test(id)).toBe(true);
    }
    for (const bad of ['', 'a/b', 'x'.repeat(129), 42]) expect(() => assertNewIdentifier(bad, 'connectionId')).toThrow(CredentialValidationError);
  });

  it('an existing id made only of dots is still named by reads, deletes and revokes (assertIdentifier)', () => {
    expect(() => assertIdentifier('.', 'connectionId')).not.toThrow();
    expect(() => assertIdentifier('..', 'connectionId')).not.toThrow();
  });
});
