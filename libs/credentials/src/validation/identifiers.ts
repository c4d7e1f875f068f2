import { CredentialValidationError } from '../errors/credential-errors';
import { hasControlCharacter, IDENTIFIER_PATTERN, isWellFormedUnicode, TAG_KEY_PATTERN } from '@app/common';

/** Tenant, integration and connection ids (`@app/common`'s rule; exported here too, as it was before it moved there). */
export { IDENTIFIER_PATTERN };

/**
 * What a new integration or connection id must match: IDENTIFIER_PATTERN, not made only of dots. `.` and `..`
 * are path segments that URL clients and proxies resolve away (the connection's routes could not be reached)
 * and a traversal in any path built from them. Reads, deletes and revokes keep IDENTIFIER_PATTERN, so a row
 * stored under such an id before stays reachable to be cleaned up.
 */
export const NEW_IDENTIFIER_PATTERN = new RegExp(`^(?!\\.+$)${IDENTIFIER_PATTERN.source.slice(1)}`);
export const DOTS_ONLY_MESSAGE = 'must not be made only of dots ("." and ".." are path segments that URLs resolve away)';

export function isDotsOnly(value: string): boolean {
  return /^\.+$/.test(value);
}

export const MAX_TAGS = 15;
export const TAG_VALUE_MAX_LENGTH = 512;

export function assertIdentifier(value: unknown, field: string): asserts value is string {
  if (typeof value !== 'string' || !IDENTIFIER_PATTERN.test(value)) {
    const shown = typeof value === 'string' ? `${value.length} characters` : typeof value;
    throw new CredentialValidationError(
      `${field} must match ${IDENTIFIER_PATTERN.source} (letters, digits, . _ : @ -, 1–128 characters); got ${shown}`,
      field,
    );
  }
}

/** assertIdentifier, for an id a write is about to create (store, connect): also not made only of dots. */
export function assertNewIdentifier(value: unknown, field: string): asserts value is string {
  assertIdentifier(value, field);
  if (isDotsOnly(value)) throw new CredentialValidationError(`${field} ${DOTS_ONLY_MESSAGE}`, field);
}

/** Tags are metadata (never values): at most 15, keys per TAG_KEY_PATTERN, values ≤ 512 characters of one line (no control character, no lone surrogate). */
export function assertTags(tags: unknown, field = 'tags'): asserts tags is Record<string, string> {
  if (tags === null || typeof tags !== 'object' || Array.isArray(tags)) {
    throw new CredentialValidationError(`${field} must be an object of string values`, field);
  }
  const entries = Object.entries(tags as Record<string, unknown>);
  if (entries.length > MAX_TAGS) {
    throw new CredentialValidationError(`at most ${MAX_TAGS} tags are allowed, got ${entries.length}`, field);
  }
  // Messages name the tag's position, never its key or value: both come from the request.
  entries.forEach(([k, v], i) => {
    if (!TAG_KEY_PATTERN.test(k)) {
      throw new CredentialValidationError(`the key of tag #${i + 1} must match ${TAG_KEY_PATTERN.source}`, field);
    }
    // One line of text: a control character (NUL above all, which PostgreSQL cannot store) is refused as the value rule refuses it.
    if (typeof v !== 'string' || v.length > TAG_VALUE_MAX_LENGTH || !isWellFormedUnicode(v) || hasControlCharacter(v)) {
      throw new CredentialValidationError(`the value of tag #${i + 1} must be well-formed text of at most ${TAG_VALUE_MAX_LENGTH} characters without control characters`, field);
    }
  });
}

export function assertDate(value: unknown, field: string): asserts value is Date {
  if (!(value instanceof Date) || Number.isNaN(value.getTime())) {
    throw new CredentialValidationError(`${field} must be a valid Date`, field);
  }
}

/** Version numbers are 32-bit INTEGER columns: a larger number names no version (and PostgreSQL refuses it in a query). */
export const MAX_VERSION_NUMBER = 2_147_483_647;

export function assertPositiveInt(value: unknown, field: string): asserts value is number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
    throw new CredentialValidationError(`${field} must be a positive integer`, field);
  }
}
