import type { OperationContext } from '@app/common';
import { CredentialNotFoundError, CredentialStatus, type CredentialMetadata, type CredentialsService } from '@app/credentials';

/**
 * `id` when the signing secret credential it names is still there, else null. It is a credential of the tenant like
 * any other, which a credentials:write caller may delete: gone, it is no secret — "not configured" — for the settings
 * and the sender alike. A metadata read: no value store, no audit row, so a deleted one is never read (a denied read,
 * counted as suspicious activity, per notification).
 */
export async function liveSigningSecretId(credentials: CredentialsService, ctx: OperationContext, id: string | null | undefined): Promise<string | null> {
  return (await signingSecretMetadata(credentials, ctx, id))?.id ?? null;
}

/**
 * For the sender: `id` when its value can be read now, else null. A revoked secret (a tenant revokes one that leaked)
 * or an expired one is refused at every read — a denied read row per notification, suspicious activity after five —
 * so it is not read: the webhook is "not configured" until it is un-revoked or replaced. The settings still name it
 * (liveSigningSecretId): a new secret rotates into it, un-revoked it signs again.
 */
export async function servableSigningSecretId(credentials: CredentialsService, ctx: OperationContext, id: string | null | undefined): Promise<string | null> {
  const metadata = await signingSecretMetadata(credentials, ctx, id);
  // The metadata reads `expired` once expiresAt has passed, as the value read decides.
  return metadata && metadata.status !== CredentialStatus.REVOKED && metadata.status !== CredentialStatus.EXPIRED ? metadata.id : null;
}

async function signingSecretMetadata(credentials: CredentialsService, ctx: OperationContext, id: string | null | undefined): Promise<CredentialMetadata | null> {
  if (!id) return null;
  try {
    return await credentials.getMetadata(ctx, id);
  } catch (e) {
    if (e instanceof CredentialNotFoundError) return null;
    throw e;
  }
}
