/** One entry of a credential's rotation history (never a value). */
export interface RotationHistoryEntry {
  id: string;
  credentialId: string;
  action: 'rotate' | 'rollback' | 'revoke' | 'unrevoke';
  /** `given` (caller gave the value), `handler`, `generator`, `rollback`, `revoke`, `unrevoke`. */
  method: string;
  fromVersion: number | null;
  toVersion: number | null;
  actor: string;
  reason: string | null;
  severity: string | null;
  at: Date;
}
