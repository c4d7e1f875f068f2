import { errors, ObjectKind } from '../errors';

/** Key Vault object names (secrets and keys): 1-127 characters of `0-9a-zA-Z-`. */
export const OBJECT_NAME_PATTERN = /^[0-9a-zA-Z-]{1,127}$/;
/** Azure: up to 15 tags per object version. */
export const MAX_TAGS = 15;
/**
 * The longest tag name, and value, Azure documents per object kind: a secret's "512 character name and a 512 character
 * value" (about-secrets, "Secret tags"), a key's "256 character name and a 256 character value" (about-keys-details,
 * "Key tags").
 */
export const MAX_TAG_LENGTH: Record<ObjectKind, number> = { secret: 512, key: 256 };
/** Key Vault refuses to back up an object with more than this many versions. */
export const MAX_BACKUP_VERSIONS = 500;
export const VERSION_PATTERN = /^[0-9a-f]{32}$/;

export function isValidObjectName(name: string): boolean {
  return OBJECT_NAME_PATTERN.test(name);
}

export function assertObjectName(name: string): void {
  if (!isValidObjectName(name)) throw errors.invalidName(name);
}

export function assertTags(tags: unknown, kind: ObjectKind): asserts tags is Record<string, string> | undefined | null {
  const maxLength = MAX_TAG_LENGTH[kind];
  if (tags === undefined || tags === null) return;
  if (typeof tags !== 'object' || Array.isArray(tags)) throw errors.badParameter('The property "tags" must be an object of strings.');
  const entries = Object.entries(tags as Record<string, unknown>);
  if (entries.length > MAX_TAGS) {
    // A secret's answer is the service's (reported); what it answers for a key is unverified, so the key keeps ours.
    throw kind === 'secret' ? errors.invalidProperty() : errors.badParameter(`The number of tags (${entries.length}) exceeds the maximum of ${MAX_TAGS}.`);
  }
  for (const [key, value] of entries) {
    if (typeof value !== 'string') throw errors.badParameter(`Tag "${key.slice(0, 64)}" must have a string value.`);
    if (key.length === 0 || key.length > maxLength) {
      throw errors.badParameter(`Tag names must be 1 to ${maxLength} characters.`);
    }
    if (value.length > maxLength) {
      throw errors.badParameter(`Tag "${key.slice(0, 64)}" value exceeds the maximum length of ${maxLength} characters.`);
    }
  }
}

export interface AttributesInput {
  enabled?: boolean;
  nbf?: number;
  exp?: number;
}

/** Validates the `attributes` object of a set/update body (unknown properties are ignored, as Azure does). */
export function parseAttributes(raw: unknown): AttributesInput {
  if (raw === undefined || raw === null) return {};
  if (typeof raw !== 'object' || Array.isArray(raw)) throw errors.badParameter('The property "attributes" must be an object.');
  const a = raw as Record<string, unknown>;
  const out: AttributesInput = {};
  if (a.enabled !== undefined && a.enabled !== null) {
    if (typeof a.enabled !== 'boolean') throw errors.badParameter('The attribute "enabled" must be a boolean.');
    out.enabled = a.enabled;
  }
  for (const key of ['nbf', 'exp'] as const) {
    const v = a[key];
    if (v === undefined || v === null) continue;
    if (typeof v !== 'number' || !Number.isFinite(v)) throw errors.badParameter(`The attribute "${key}" must be a unix time in seconds.`);
    out[key] = Math.trunc(v);
  }
  return out;
}
