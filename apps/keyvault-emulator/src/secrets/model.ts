/** One immutable-value version of a secret (attributes, tags and contentType can be updated). */
export interface SecretVersionRecord {
  /** 32 lowercase hex characters. */
  version: string;
  value: string;
  contentType?: string;
  tags?: Record<string, string>;
  enabled: boolean;
  /** Unix seconds; informational only (Azure does not enforce nbf/exp). */
  nbf?: number;
  exp?: number;
  created: number;
  updated: number;
}

export interface SecretRecord {
  /** The casing the secret was first created with; lookups are case-insensitive. */
  name: string;
  /** In creation order; the last one is the current version. */
  versions: SecretVersionRecord[];
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

export function latestVersion(record: SecretRecord): SecretVersionRecord {
  return record.versions[record.versions.length - 1];
}
