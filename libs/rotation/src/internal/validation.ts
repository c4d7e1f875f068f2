import { foldUuid, hasControlCharacter, isWellFormedUnicode, type OperationContext, UUID_PATTERN } from '@app/common';
import { CREDENTIAL_TYPES, IDENTIFIER_PATTERN, type CredentialType } from '@app/credentials';
import { RotationValidationError } from '../errors/rotation.errors';
import { POLICY_LEVELS, ROTATION_MODES, type PolicyScope, type PolicyScopeInput } from '../policies/rotation-policy.types';

export const MAX_DAYS = 3650;

export function assertContext(ctx: OperationContext): void {
  if (!ctx || typeof ctx.tenantId !== 'string' || !ctx.actor || typeof ctx.actor.id !== 'string') {
    throw new RotationValidationError('an operation context with a tenant id and an actor is required', 'context');
  }
  // Given but malformed (a CLI's --tenant): said so, not "required".
  assertIdentifier(ctx.tenantId, 'tenantId');
}

/**
 * A credential id (a UUID) as stored: in lower case, whatever case the caller gave (RFC 9562: UUIDs are
 * case-insensitive), before it is looked up, locked or recorded. Anything else: VALIDATION.
 */
export function checkedCredentialId(id: unknown, field = 'credentialId'): string {
  if (typeof id !== 'string' || !UUID_PATTERN.test(id)) throw new RotationValidationError(`${field} must be a credential id (a UUID)`, field);
  return foldUuid(id);
}

export function assertIdentifier(value: unknown, field: string): asserts value is string {
  if (typeof value !== 'string' || !IDENTIFIER_PATTERN.test(value)) {
    throw new RotationValidationError(`${field} must be 1-128 characters of A-Z a-z 0-9 . _ : @ -`, field);
  }
}

export function assertType(value: unknown, field = 'credentialType'): asserts value is CredentialType {
  if (!CREDENTIAL_TYPES.includes(value as CredentialType)) throw new RotationValidationError(`${field} must be one of ${CREDENTIAL_TYPES.join(', ')}`, field);
}

/** A policy scope, normalised to its stored key parts. */
export function scopeKey(scope: PolicyScopeInput): { level: PolicyScope['level']; target: string; credentialType: string } {
  if (!scope || !POLICY_LEVELS.includes(scope.level)) throw new RotationValidationError(`level must be one of ${POLICY_LEVELS.join(', ')}`, 'level');
  if (scope.level === 'tenant' && scope.target !== undefined && scope.target !== '') {
    throw new RotationValidationError('a tenant-level policy has no target', 'target');
  }
  if (scope.level === 'integration') assertIdentifier(scope.target, 'target');
  if (scope.level === 'credential') {
    checkedCredentialId(scope.target, 'target');
    if (scope.credentialType !== undefined) throw new RotationValidationError('a credential-level policy has no credentialType (the credential has one)', 'credentialType');
  }
  if (scope.credentialType !== undefined) assertType(scope.credentialType);
  const target = scope.level === 'tenant' ? '' : scope.level === 'credential' ? foldUuid(scope.target as string) : (scope.target as string);
  return { level: scope.level, target, credentialType: scope.credentialType ?? '' };
}

export function assertDays(value: unknown, field: string): void {
  if (value === null || value === undefined) return;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > MAX_DAYS) {
    throw new RotationValidationError(`${field} must be an integer number of days in 0..${MAX_DAYS} (0: never), or null to inherit`, field);
  }
}

export function assertMode(value: unknown): void {
  if (value === null || value === undefined) return;
  if (!ROTATION_MODES.includes(value as never)) throw new RotationValidationError(`rotation must be one of ${ROTATION_MODES.join(', ')}, or null to inherit`, 'rotation');
}

/** A free-text reason: bounded, one line, printable. */
export function assertReason(value: unknown, required: boolean): string | null {
  if (value === undefined || value === null || value === '') {
    if (required) throw new RotationValidationError('reason is required', 'reason');
    return null;
  }
  if (typeof value !== 'string' || value.length > 500 || hasControlCharacter(value) || !isWellFormedUnicode(value)) {
    throw new RotationValidationError('reason must be text of at most 500 characters without control characters', 'reason');
  }
  return value;
}
