import { createHash } from 'node:crypto';

/*
 * A tenant's key `name` lives in the vault as `<prefix>-key-<t>-<name>`, where <t> is the first 24
 * hex characters (96 bits) of SHA-256(tenantId). The vault name is derived from the caller's tenant
 * on every call, so a tenant can only ever address names under its own <t>: another tenant's key is
 * simply a name that does not exist for it (404, indistinguishable from a missing key). <t> has a
 * fixed length, so the tenant's name is everything after the fourth field (names may contain '-').
 */
const TENANT_HASH_CHARS = 24;

export function tenantKeyScope(tenantId: string, prefix: string): string {
  const t = createHash('sha256').update(tenantId, 'utf8').digest('hex').slice(0, TENANT_HASH_CHARS);
  return `${prefix}-key-${t}-`;
}

/** The vault key name of a tenant's key. */
export function tenantKeyVaultName(tenantId: string, name: string, prefix: string): string {
  return `${tenantKeyScope(tenantId, prefix)}${name}`;
}

/** The tenant's own name of a vault key, or undefined when the vault key is not the tenant's. */
export function tenantKeyNameOf(vaultName: string, tenantId: string, prefix: string): string | undefined {
  const scope = tenantKeyScope(tenantId, prefix);
  // The vault compares names case-insensitively; our scope is lowercase.
  return vaultName.toLowerCase().startsWith(scope) && vaultName.length > scope.length ? vaultName.slice(scope.length) : undefined;
}
