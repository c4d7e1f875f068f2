import type { CredentialType } from '@app/credentials';

/**
 * Outbox event names of the rotation core. Delivered at least once: de-duplicate on the outbox event
 * id. Payloads carry ids and metadata, never a value.
 */
export const RotationEvents = {
  POLICY_CHANGED: 'rotation.policy_changed',
  /** A credential entered a warning threshold (`thresholdDays`) before its expiry. Once per credential version and threshold. */
  EXPIRING: 'credential.expiring',
  /** A credential is past its expiry (its status became `expired`). Once per credential version. */
  EXPIRED: 'credential.expired',
  /** A manual rotation fell due under the credential's policy. Once per credential version. */
  ROTATION_DUE: 'credential.rotation_due',
  /** An automatic rotation failed; the previous value stays current and the next run retries. */
  ROTATION_FAILED: 'credential.rotation_failed',
  REVOKED: 'credential.revoked',
  UNREVOKED: 'credential.unrevoked',
} as const;
export type RotationEventName = (typeof RotationEvents)[keyof typeof RotationEvents];

/** The credential an event is about (every `credential.*` event of the lib carries it). */
export interface CredentialNoticePayload {
  credentialId: string;
  tenantId: string;
  integrationId: string;
  connectionId: string;
  type: CredentialType;
  version: number;
  expiresAt: string | null;
  /** `credential.expiring` only. */
  thresholdDays?: number;
  /** `credential.rotation_due` only: when it fell due. */
  dueAt?: string;
  /** What the reader should do, in words: never a value. */
  action: string;
}
