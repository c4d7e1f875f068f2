import { CredentialType, type CredentialTypeInput } from '@app/credentials';

/** `automatic`: the rotation-check job rotates it (handler or generator); `manual`: it only says the rotation is due. */
export type RotationMode = 'automatic' | 'manual';
export const ROTATION_MODES: readonly RotationMode[] = ['automatic', 'manual'];

/** The three facts of a policy. `0` days means "never" (no rotation due / no expiry warning). */
export interface PolicyValues {
  /** Days after the last rotation (or creation) when a rotation falls due. 0: never. */
  rotateAfterDays: number;
  /** Days before expiry when warnings start (thresholds 30/14/7/1 at most this far out). 0: none. */
  warnBeforeDays: number;
  rotation: RotationMode;
}

/** The built-in defaults per credential type (issue #12). Module option `defaults` overrides them. */
export const DEFAULT_ROTATION_POLICIES: Readonly<Record<CredentialType, PolicyValues>> = {
  [CredentialType.OAUTH_ACCESS_TOKEN]: { rotateAfterDays: 0, warnBeforeDays: 0, rotation: 'automatic' }, // refreshed, not rotated
  [CredentialType.OAUTH_REFRESH_TOKEN]: { rotateAfterDays: 90, warnBeforeDays: 14, rotation: 'manual' },
  [CredentialType.API_KEY]: { rotateAfterDays: 90, warnBeforeDays: 14, rotation: 'manual' },
  [CredentialType.BASIC_AUTH_USERNAME]: { rotateAfterDays: 0, warnBeforeDays: 14, rotation: 'manual' },
  [CredentialType.BASIC_AUTH_PASSWORD]: { rotateAfterDays: 90, warnBeforeDays: 14, rotation: 'manual' },
  [CredentialType.CLIENT_CERTIFICATE]: { rotateAfterDays: 365, warnBeforeDays: 30, rotation: 'manual' },
  [CredentialType.CLIENT_PRIVATE_KEY]: { rotateAfterDays: 365, warnBeforeDays: 30, rotation: 'manual' },
  [CredentialType.WEBHOOK_SECRET]: { rotateAfterDays: 180, warnBeforeDays: 14, rotation: 'automatic' },
  [CredentialType.CUSTOM_SECRET]: { rotateAfterDays: 0, warnBeforeDays: 14, rotation: 'manual' },
};

/** Where a policy override applies. `credentialType` narrows a tenant or integration override to one type. */
export type PolicyLevel = 'tenant' | 'integration' | 'credential';
export const POLICY_LEVELS: readonly PolicyLevel[] = ['tenant', 'integration', 'credential'];

export interface PolicyScope {
  level: PolicyLevel;
  /** The integration id (level `integration`) or credential id (level `credential`); absent for `tenant`. */
  target?: string;
  /** Only for `tenant` and `integration` overrides: applies to this type only. Absent: every type. */
  credentialType?: CredentialType;
}

/** A scope as the inputs (`get`, `set`, `remove`) take it: `credentialType` also as its string value (`'api_key'`). */
export type PolicyScopeInput = Omit<PolicyScope, 'credentialType'> & { credentialType?: CredentialTypeInput };

/** A stored override: each field is optional — an absent one is inherited from the next level down. */
export interface RotationPolicyOverride extends PolicyScope {
  id: string;
  tenantId: string;
  rotateAfterDays: number | null;
  warnBeforeDays: number | null;
  rotation: RotationMode | null;
  createdAt: Date;
  updatedAt: Date;
  updatedBy: string;
  rowVersion: number;
}

/** Input of `setPolicy`: `null` clears a field (inherit it), absent leaves it as stored. */
export interface PolicyOverrideInput extends PolicyScopeInput {
  rotateAfterDays?: number | null;
  warnBeforeDays?: number | null;
  rotation?: RotationMode | null;
}

/** Which level gave a field its value, most specific first. */
export type PolicySource =
  | { level: 'credential'; overrideId: string }
  | { level: 'integration-type' | 'integration' | 'tenant-type' | 'tenant'; overrideId: string }
  | { level: 'default' };

/** The policy that applies to one credential, and for each field the level that won. */
export interface EffectivePolicy extends PolicyValues {
  credentialId: string;
  tenantId: string;
  integrationId: string;
  type: CredentialType;
  sources: Record<keyof PolicyValues, PolicySource>;
}
