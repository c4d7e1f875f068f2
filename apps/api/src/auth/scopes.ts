import { IDENTIFIER_PATTERN } from '@app/common';

/**
 * What a caller may do. Reading a credential's value is its own scope: most callers (dashboards,
 * the connections screen) only ever need metadata.
 */
export enum Scope {
  CREDENTIALS_READ = 'credentials:read',
  CREDENTIALS_READ_VALUE = 'credentials:read-value',
  CREDENTIALS_WRITE = 'credentials:write',
  AUDIT_READ = 'audit:read',
  /** Rotation policies, history, upcoming expiries and due rotations. */
  ROTATION_READ = 'rotation:read',
  /** Change policies, rotate and roll back through the rotation lib. */
  ROTATION_WRITE = 'rotation:write',
  /** Emergency revoke and un-revoke. */
  CREDENTIALS_REVOKE = 'credentials:revoke',
  /** Key Vault keys: metadata and public keys, versions, list. */
  KEYS_READ = 'keys:read',
  /** Create, update, rotate, delete, recover, purge, back up and restore keys. */
  KEYS_WRITE = 'keys:write',
  /** Cryptographic operations with a key: sign, verify, encrypt, decrypt, wrap, unwrap. */
  KEYS_USE = 'keys:use',
  ADMIN = 'admin',
}

export const ALL_SCOPES = Object.values(Scope) as string[];

/** The tenant of the audit chain of refused authentications: every tenant's failures, so never a caller's own. */
export const UNAUTHENTICATED_TENANT = '_unauthenticated';
/** What a principal's tenant (API key entry, JWT claim) must be: an identifier the libs take, and not a reserved one. */
export const CALLER_TENANT_RULE = '1–128 letters, digits and . _ : @ -; not _unauthenticated';

export function isCallerTenant(tenant: string): boolean {
  return IDENTIFIER_PATTERN.test(tenant) && tenant !== UNAUTHENTICATED_TENANT;
}

/** The authenticated caller of one request. Services get tenant + actor from it, never from the body. */
export interface Principal {
  /** `jwt:<sub>` or `api-key:<id>`. */
  id: string;
  tenantId: string;
  scopes: ReadonlySet<string>;
  method: 'jwt' | 'api-key';
}

export function hasScope(p: Principal, scope: Scope): boolean {
  return p.scopes.has(scope) || p.scopes.has(Scope.ADMIN);
}
