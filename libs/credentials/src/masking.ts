import { CredentialType, type CredentialTypeInput } from './credential-type';
import { checkedType } from './internal/guards';

/** Values shorter than this show no suffix at all. */
export const MASK_MIN_VALUE_LENGTH = 12;
/** At most this many trailing characters are ever shown. */
export const MASK_SUFFIX_LENGTH = 3;
export const MASK_PREFIX = '***';

/** PEM material ends with `-----END ...-----`: a suffix says nothing, and for keys we show nothing. */
const NO_SUFFIX_TYPES = new Set([CredentialType.CLIENT_CERTIFICATE, CredentialType.CLIENT_PRIVATE_KEY]);

/** A suffix is shown only when it is visible text: no NUL (PostgreSQL text cannot hold it), controls, format characters or spaces. */
const VISIBLE = /^[\p{L}\p{M}\p{N}\p{P}\p{S}]+$/u;

/**
 * The hint kept in metadata for masked display: the last 3 characters of a value of at least 12
 * characters when they are visible text, else null. Computed once at write time so listing
 * connections never reads a value.
 */
export function valueHint(type: CredentialType, value: string): string | null {
  if (NO_SUFFIX_TYPES.has(type)) return null;
  const chars = Array.from(value);
  if (chars.length < MASK_MIN_VALUE_LENGTH) return null;
  const suffix = chars.slice(-MASK_SUFFIX_LENGTH).join('');
  return VISIBLE.test(suffix) ? suffix : null;
}

/** `***4f2` from a hint, `***` when there is none. */
export function maskFromHint(hint: string | null | undefined): string {
  return hint ? `${MASK_PREFIX}${hint}` : MASK_PREFIX;
}

/** Masks a value directly (for callers that hold one). A type that is none: VALIDATION (field `type`). */
export function maskValue(type: CredentialTypeInput, value: string): string {
  return maskFromHint(valueHint(checkedType(type), value));
}
