import type { CredentialStatus } from '../credential-type';
import type { UpdateMetadataInput } from '../credential.types';
import type { CredentialEntity } from '../entities/credential.entity';

/** The metadata fields an update may give. */
export type MetadataField = 'tags' | 'expiresAt' | 'status';

/**
 * The `given` fields of an update whose value differs from the stored row's: tags whatever the order of their keys,
 * `expiresAt` to the millisecond (as stored), `status` (already checked) against the stored status. None: nothing to write.
 */
export function changedMetadataFields(given: readonly MetadataField[], input: UpdateMetadataInput, status: CredentialStatus | undefined, row: CredentialEntity): MetadataField[] {
  return given.filter((k) =>
    k === 'tags' ? !sameTags(input.tags!, row.tags) : k === 'expiresAt' ? epochMs(input.expiresAt ?? null) !== epochMs(row.expiresAt) : status !== row.status,
  );
}

/** Two tag sets are the same whatever the order of their keys. */
function sameTags(a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => Object.hasOwn(b, k) && a[k] === b[k]);
}

function epochMs(date: Date | null): number | null {
  return date === null ? null : date.getTime();
}
