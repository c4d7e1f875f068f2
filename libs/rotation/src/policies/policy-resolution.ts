import type { CredentialType, CredentialTypeInput } from '@app/credentials';
import type { RotationPolicyEntity } from '../entities/rotation-policy.entity';
import { assertType } from '../internal/validation';
import type { EffectivePolicy, PolicySource, PolicyValues, RotationMode, RotationPolicyOverride } from './rotation-policy.types';

/** A policy's fields, each resolved (and overridden) on its own. */
export const POLICY_FIELDS: readonly (keyof PolicyValues)[] = ['rotateAfterDays', 'warnBeforeDays', 'rotation'];

/** The credential a policy is resolved for. */
export interface PolicySubject {
  id: string;
  tenantId: string;
  integrationId: string;
  /** `CredentialType.API_KEY` or `'api_key'`; the effective policy answers with the enum. */
  type: CredentialTypeInput;
}

/**
 * Resolves each field on its own, most specific level first: the credential's override, its
 * integration's for its type, its integration's for every type, the tenant's for its type, the
 * tenant's for every type, then the default of its type. A NULL field falls through to the next level.
 * A subject's type that is none is ROTATION_VALIDATION (field `type`): it has no default to fall back to.
 */
export function resolvePolicy(defaults: Readonly<Record<CredentialType, PolicyValues>>, rows: readonly RotationPolicyEntity[], subject: PolicySubject): EffectivePolicy {
  assertType(subject.type, 'type');
  const pick = (level: string, target: string, type: string) => rows.find((r) => r.tenantId === subject.tenantId && r.level === level && r.target === target && r.credentialType === type);
  const chain: [PolicySource['level'], RotationPolicyEntity | undefined][] = [
    ['credential', pick('credential', subject.id, '')],
    ['integration-type', pick('integration', subject.integrationId, subject.type)],
    ['integration', pick('integration', subject.integrationId, '')],
    ['tenant-type', pick('tenant', '', subject.type)],
    ['tenant', pick('tenant', '', '')],
  ];
  const values = { ...defaults[subject.type] } as PolicyValues;
  const sources = {} as Record<keyof PolicyValues, PolicySource>;
  for (const field of POLICY_FIELDS) {
    sources[field] = { level: 'default' };
    for (const [level, row] of chain) {
      const value = row?.[field];
      if (row && value !== null && value !== undefined) {
        (values as unknown as Record<string, unknown>)[field] = field === 'rotation' ? (value as RotationMode) : Number(value);
        sources[field] = { level, overrideId: row.id } as PolicySource;
        break;
      }
    }
  }
  return { credentialId: subject.id, tenantId: subject.tenantId, integrationId: subject.integrationId, type: subject.type, ...values, sources };
}

/** The public view of a stored override. */
export function toOverride(row: RotationPolicyEntity): RotationPolicyOverride {
  return {
    id: row.id,
    tenantId: row.tenantId,
    level: row.level as RotationPolicyOverride['level'],
    ...(row.target ? { target: row.target } : {}),
    ...(row.credentialType ? { credentialType: row.credentialType as CredentialType } : {}),
    rotateAfterDays: row.rotateAfterDays == null ? null : Number(row.rotateAfterDays),
    warnBeforeDays: row.warnBeforeDays == null ? null : Number(row.warnBeforeDays),
    rotation: (row.rotation as RotationMode | null) ?? null,
    createdAt: row.createdAt,
    updatedAt: row.updatedAt,
    updatedBy: row.updatedBy,
    rowVersion: Number(row.rowVersion),
  };
}
