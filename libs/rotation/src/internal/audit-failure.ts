import type { Logger } from '@nestjs/common';
import { type AuditActionName, auditErrorCode, AuditResult, type AuditService } from '@app/audit';
import { describeError, type OperationContext } from '@app/common';
import { CredentialExpiredError, CredentialNotFoundError, CredentialRevokedError, recordableId } from '@app/credentials';

/** A change of a credential this lib refused, or could not make, before (or instead of) the Credentials lib's write. */
export interface RefusedChange {
  action: AuditActionName;
  ctx: OperationContext;
  credentialId: string;
  error: unknown;
  details?: Record<string, unknown>;
}

/**
 * Its failure row (the error's code, never a value), best effort as the Credentials lib's failure rows: the refusal
 * stands if its row cannot be written (false). Not for a failure of the Credentials lib's own write, which audits itself.
 * Under the id as the Credentials lib records it (`recordableId`: in lower case, where the audit filter finds it).
 */
export async function auditRefusal(audit: AuditService, logger: Logger, r: RefusedChange): Promise<boolean> {
  try {
    await audit.record({ action: r.action, context: r.ctx, resource: recordableId(r.credentialId), result: refusalResult(r.error), errorCode: auditErrorCode(r.error), details: r.details });
    return true;
  } catch (e) {
    logger.warn(`could not audit a refused ${r.action} of credential ${r.credentialId}: ${describeError(e)}`);
    return false;
  }
}

/** `denied` for a credential the caller may not change as it is (missing, revoked, expired), as the Credentials lib's rows say. */
function refusalResult(error: unknown): AuditResult {
  const denied = error instanceof CredentialNotFoundError || error instanceof CredentialRevokedError || error instanceof CredentialExpiredError;
  return denied ? AuditResult.DENIED : AuditResult.FAILURE;
}
