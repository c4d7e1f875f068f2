/**
 * Tenant, integration and connection ids, the one rule of every lib and the host: 1–128 characters of letters
 * (case-sensitive), digits and `.` `_` `:` `@` `-`. Enough for slugs, uuids, emails and provider account ids
 * (`acme.prod`, `github_app`, `user@example.com`, `urn:x:1`). Also re-exported by `@app/credentials`.
 */
export const IDENTIFIER_PATTERN = /^[A-Za-z0-9._:@-]{1,128}$/;

/**
 * A tag's key, the one rule of credential and key tags (`@app/credentials`, `@app/keys`): 1–128 letters, digits and
 * `.` `_` `:` `@` `/` `-`. Tag values keep each lib's own limit (a credential's 512 characters, a key's 256).
 */
export const TAG_KEY_PATTERN = /^[A-Za-z0-9._:@/-]{1,128}$/;
