/**
 * Tenant, integration and connection ids, the one rule of every lib and the host: 1–128 characters of letters
 * (case-sensitive), digits and `.` `_` `:` `@` `-`. Enough for slugs, uuids, emails and provider account ids
 * (`acme.prod`, `github_app`, `user@example.com`, `urn:x:1`). Also re-exported by `@app/credentials`.
 */
export const IDENTIFIER_PATTERN = /^[A-Za-z0-9._:@-]{1,128}$/;

/** A UUID (RFC 9562) in either case: the shape of a credential id and of a staged webhook secret's rotation id. */
export const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * `value` as the libs store and compare a UUID: in lower case when it is one (UUIDs are case-insensitive, RFC 9562;
 * the libs write them in lower case and look them up as given), else unchanged, for the caller's own check to refuse.
 * For credential and rotation ids at a lib's entry point only: tenant, integration and connection ids are
 * case-sensitive (IDENTIFIER_PATTERN), UUID-shaped or not.
 */
export function foldUuid<T>(value: T): T {
  return (typeof value === 'string' && UUID_PATTERN.test(value) ? value.toLowerCase() : value) as T;
}

/**
 * A tag's key, the one rule of credential and key tags (`@app/credentials`, `@app/keys`): 1–128 letters, digits and
 * `.` `_` `:` `@` `/` `-`. Tag values keep each lib's own limit (a credential's 512 characters, a key's 256).
 */
export const TAG_KEY_PATTERN = /^[A-Za-z0-9._:@/-]{1,128}$/;
