import { CredentialType } from './credential-type';

/**
 * Connection id prefixes reserved for the libs built on this one, which keep values of their own among a tenant's
 * credentials as `custom_secret`s: the Rotation lib's pending rotation values (`rotation-pending.<credential id>`) and
 * staged webhook secrets (`whsec-pending.<rotation id>`). Owned here so that the tenant-facing lists can leave them
 * out in SQL (keyset pages stay full) without this lib importing from those built on it.
 */
export const INTERNAL_CONNECTION_PREFIXES = {
  pendingRotationValue: 'rotation-pending.',
  stagedWebhookSecret: 'whsec-pending.',
} as const;

/** The one type an internal credential has. */
export const INTERNAL_CREDENTIAL_TYPE = CredentialType.CUSTOM_SECRET;

/** The prefixes, as a list (the repository's SQL filter). */
export const INTERNAL_PREFIX_LIST: readonly string[] = Object.values(INTERNAL_CONNECTION_PREFIXES);

/**
 * Whether a credential is one of the libs' internal ones, not one of the tenant's: `list`, `listExpiring`,
 * `statistics` and `listConnections` leave them out unless asked (`includeInternal`); they are read by id as any other.
 */
export function isInternalCredential(c: { type: CredentialType; connectionId: string }): boolean {
  return c.type === INTERNAL_CREDENTIAL_TYPE && INTERNAL_PREFIX_LIST.some((p) => c.connectionId.startsWith(p));
}

