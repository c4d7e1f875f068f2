import type { OperationContext } from '@app/common';
import { CredentialNotFoundError, type CredentialsService } from '@app/credentials';

/**
 * `id` when the signing secret credential it names is still there, else null. It is a credential of the tenant like
 * any other, which a credentials:write caller may delete: gone, it is no secret — "not configured" — for the settings
 * and the sender alike. A metadata read: no value store, no audit row, so a deleted one is never read (a denied read,
 * counted as suspicious activity, per notification).
 */
export async function liveSigningSecretId(credentials: CredentialsService, ctx: OperationContext, id: string | null | undefined): Promise<string | null> {
  if (!id) return null;
  try {
    await credentials.getMetadata(ctx, id);
    return id;
  } catch (e) {
    if (e instanceof CredentialNotFoundError) return null;
    throw e;
  }
}
