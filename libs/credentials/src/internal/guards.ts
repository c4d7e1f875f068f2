import { AuditResult } from '@app/audit';
import { foldUuid, OperationContext, UUID_PATTERN } from '@app/common';
import { isKeyVaultError, KeyVaultErrorCode } from '@app/key-vault';
import { CREDENTIAL_TYPES, CredentialStatus, CredentialType } from '../credential-type';
import type { WriteOptions } from '../credential.types';
import type { CredentialEntity } from '../entities/credential.entity';
import {
  CredentialExpiredError,
  CredentialNotFoundError,
  CredentialRevokedError,
  CredentialValidationError,
} from '../errors/credential-errors';
import type { CredentialRepository } from '../persistence/credential.repository';
import { assertIdentifier, assertPositiveInt } from '../validation/identifiers';

/** Input checks and error classifications shared by the writer, the reader and the queries. */

export const UUID = UUID_PATTERN;

/** What errors and audit rows say for an id that is no credential id (the caller's text is never repeated). */
export const NOT_A_CREDENTIAL_ID = '(not a credential id)';

/**
 * `id` as errors and audit rows may name it: itself in lower case when it is a credential id (UUIDs are
 * case-insensitive; ids are stored, and the audit filter looks them up, in lower case), else a fixed marker. An app
 * that passes its route parameter straight through may pass anything, a pasted secret included.
 */
export function recordableId(id: unknown): string {
  return typeof id === 'string' && UUID.test(id) ? foldUuid(id) : NOT_A_CREDENTIAL_ID;
}

export function assertContext(ctx: OperationContext): void {
  if (!ctx || typeof ctx !== 'object') throw new CredentialValidationError('an OperationContext is required', 'ctx');
  assertIdentifier(ctx.tenantId, 'tenantId');
  if (!ctx.actor || typeof ctx.actor.id !== 'string' || ctx.actor.id.length === 0 || ctx.actor.id.length > 256) {
    throw new CredentialValidationError('ctx.actor.id must be a non-empty string of at most 256 characters', 'actor');
  }
}

/**
 * A public input's enum field, checked where the input enters the lib: the inputs take the enum member or its string
 * value (`'api_key'`), the same string at run time, so a checked one is the member. Anything else: VALIDATION.
 */
export function memberOf<E extends string>(members: readonly E[], value: unknown, field: string, message = `${field} must be one of ${members.join(', ')}`): E {
  if (!members.includes(value as E)) throw new CredentialValidationError(message, field);
  return value as E;
}

const STATUSES: readonly CredentialStatus[] = Object.values(CredentialStatus);

export function checkedType(type: unknown, field = 'type'): CredentialType {
  return memberOf(CREDENTIAL_TYPES, type, field);
}

export function checkedStatus(status: unknown, field = 'status'): CredentialStatus {
  return memberOf(STATUSES, status, field);
}

/** An optional list of statuses (a scan's `statuses`). */
export function checkedStatuses(statuses: unknown, fallback: CredentialStatus[]): CredentialStatus[] {
  if (statuses === undefined) return fallback;
  // Empty: no status to match (PostgreSQL would be sent `IN ()`, a syntax error).
  if (!Array.isArray(statuses) || statuses.length === 0) throw new CredentialValidationError(`statuses must be a non-empty list of ${STATUSES.join(', ')}`, 'statuses');
  return statuses.map((s) => checkedStatus(s, 'statuses'));
}

export function assertWriteOptions(options: WriteOptions): void {
  if (options?.expectedVersion !== undefined) assertPositiveInt(options.expectedVersion, 'expectedVersion');
  if (options?.inCommit !== undefined && typeof options.inCommit !== 'function') throw new CredentialValidationError('inCommit must be a function', 'inCommit');
}

// Refuses a change of a row under a reserved connection id (internal-credentials.ts); the Rotation lib calls it too.
export { assertChangeableCredential as assertChangeable } from '../internal-credentials';

/** The tenant's live row, else CredentialNotFoundError — the same for a missing id, a deleted one and another tenant's. */
export async function loadLive(rows: CredentialRepository, tenantId: string, id: string): Promise<CredentialEntity> {
  if (typeof id !== 'string' || !UUID.test(id)) throw new CredentialNotFoundError(NOT_A_CREDENTIAL_ID);
  const row = await rows.findById(tenantId, id);
  if (!row || row.status === CredentialStatus.DELETED) throw new CredentialNotFoundError(id);
  return row;
}

/** How a failed operation is audited: refusals are denials, everything else a failure. */
export function failureResult(e: unknown): AuditResult {
  // The caller left (a vault call dropped or aborted): not a failure, and no suspicious-activity count.
  if (isKeyVaultError(e, KeyVaultErrorCode.CANCELLED)) return AuditResult.CANCELLED;
  const denied = e instanceof CredentialNotFoundError || e instanceof CredentialRevokedError || e instanceof CredentialExpiredError;
  return denied ? AuditResult.DENIED : AuditResult.FAILURE;
}

/**
 * A read whose caller left before its vault call was sent: no value was read, by anyone, so no row (a read aborted
 * in the vault gets a `cancelled` one). Every value returned is still audited first.
 */
export function neverSent(e: unknown): boolean {
  return isKeyVaultError(e, KeyVaultErrorCode.CANCELLED) && e.sent !== true;
}
