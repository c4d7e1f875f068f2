/**
 * Tenant, integration and connection ids, the one rule of every lib and the host: 1–128 characters of letters
 * (case-sensitive), digits and `.` `_` `:` `@` `-`. Enough for slugs, uuids, emails and provider account ids
 * (`acme.prod`, `github_app`, `user@example.com`, `urn:x:1`). Also re-exported by `@app/credentials`.
 */
export const IDENTIFIER_PATTERN = /^[A-Za-z0-9._:@-]{1,128}$/;
