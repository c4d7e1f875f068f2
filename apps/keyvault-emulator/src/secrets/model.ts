import { ObjectRecord, VersionBase } from '../objects/model';

export { latestVersion } from '../objects/model';

/** One immutable-value version of a secret (attributes, tags and contentType can be updated). */
export interface SecretVersionRecord extends VersionBase {
  value: string;
  contentType?: string;
}

export type SecretRecord = ObjectRecord<SecretVersionRecord>;
