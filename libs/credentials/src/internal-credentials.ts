import { CredentialType, type CredentialTypeInput } from './credential-type';
import { CredentialValidationError } from './errors/credential-errors';

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
 * Whether a connection id is under a reserved prefix. Only a write that says it is internal (`StoreOptions.internal`)
 * stores a credential under one, of any type: a tenant's row there would be hidden from its lists, and could pass for
 * one of the libs' own (a pending rotation value the next rotation writes as the credential's value).
 */
export function isReservedConnectionId(connectionId: string): boolean {
  return INTERNAL_PREFIX_LIST.some((p) => connectionId.startsWith(p));
}

/** Why a store under a reserved connection id is refused (never repeats the id: it came from the caller). */
export const RESERVED_CONNECTION_MESSAGE = `connectionId must not start with ${INTERNAL_PREFIX_LIST.join(' or ')}: reserved for the credentials the libs keep themselves`;

/**
 * Why a change of a credential under a reserved connection id is refused. Such a row is one of the libs' own (or a
 * tenant's from before the reservation): its tags are what those libs trust (a pending value's `cv.rotation.minted-for`),
 * so only a delete or a revoke of it is anyone else's to make.
 */
export const RESERVED_CREDENTIAL_CHANGE_MESSAGE = `the credential's connectionId starts with ${INTERNAL_PREFIX_LIST.join(' or ')}, reserved for the credentials the libs keep themselves: it can only be deleted or revoked`;

/**
 * Whether a credential is one of the libs' internal ones, not one of the tenant's: `list`, `listExpiring`,
 * `statistics` and `listConnections` leave them out unless asked (`includeInternal`); they are read by id as any other.
 * `type` may be the string value; a string that is no type is simply not internal (a question, not an input to refuse).
 */
export function isInternalCredential(c: { type: CredentialTypeInput; connectionId: string }): boolean {
  return c.type === INTERNAL_CREDENTIAL_TYPE && isReservedConnectionId(c.connectionId);
}

/**
 * Refuses a change (rotate, rollback, tags, expiry, a status other than revoked, un-revoke) of a credential under a
 * reserved connection id, before anything is written — and before a rotation handler mints (the Rotation lib). No lib
 * changes its internal rows but by delete and revoke, which stay open.
 */
export function assertChangeableCredential(c: { connectionId: string }): void {
  if (isReservedConnectionId(c.connectionId)) throw new CredentialValidationError(RESERVED_CREDENTIAL_CHANGE_MESSAGE, 'connectionId');
}
