/** What every version of a vault object (secret or key) has; the rest is kind-specific. */
export interface VersionBase {
  /** 32 lowercase hex characters. */
  version: string;
  tags?: Record<string, string>;
  enabled: boolean;
  /** Unix seconds. */
  nbf?: number;
  exp?: number;
  created: number;
  updated: number;
}

/** A named object with its versions and soft-delete state. */
export interface ObjectRecord<V extends VersionBase> {
  /** The casing the object was first created with; lookups are case-insensitive. */
  name: string;
  /** In creation order; the last one is the current version. */
  versions: V[];
  state: 'active' | 'deleted';
  /** Unix seconds, set while deleted. */
  deletedDate?: number;
  scheduledPurgeDate?: number;
  /**
   * Epoch ms at which the last delete/recover becomes visible (operationDelayMs). Until then the
   * object is neither readable in its old state nor in its new one, as in Azure.
   */
  visibleAt: number;
}

export function latestVersion<V extends VersionBase>(record: Pick<ObjectRecord<V>, 'versions'>): V {
  return record.versions[record.versions.length - 1];
}
