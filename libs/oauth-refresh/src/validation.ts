import { IDENTIFIER_PATTERN } from '@app/common';
import { DOTS_ONLY_MESSAGE, isDotsOnly } from '@app/credentials';
import { OAuthRefreshValidationError } from './errors/oauth-refresh.errors';

export function assertIdentifier(value: unknown, field: string): asserts value is string {
  if (typeof value !== 'string' || !IDENTIFIER_PATTERN.test(value)) {
    throw new OAuthRefreshValidationError(`${field} must match ${IDENTIFIER_PATTERN.source}`, field);
  }
}

/** For an id a connect creates: also not made only of dots, as @app/credentials' store refuses it (reads keep assertIdentifier). */
export function assertNewIdentifier(value: unknown, field: string): asserts value is string {
  assertIdentifier(value, field);
  if (isDotsOnly(value)) throw new OAuthRefreshValidationError(`${field} ${DOTS_ONLY_MESSAGE}`, field);
}
