import { CredentialType } from '@app/credentials';
import { PENDING_ROTATION_CONNECTION_PREFIX } from '../pending/pending-rotation-values';
import { WEBHOOK_STAGING_CONNECTION_PREFIX } from '../webhooks/webhook-secrets.tokens';

/** Connection id prefixes of the lib's own `custom_secret`s: a handler's pending rotation value, a staged webhook secret. */
const PSEUDO_CONNECTION_PREFIXES = [PENDING_ROTATION_CONNECTION_PREFIX, WEBHOOK_STAGING_CONNECTION_PREFIX] as const;

/**
 * Whether a credential is one of the lib's internal pseudo credentials, not one of the tenant's: the rotation check,
 * the expiry monitor and the due/expiring views leave them alone (no mint for them, no notice about them). Their
 * owners clean them up.
 */
export function isPseudoCredential(c: { type: CredentialType; connectionId: string }): boolean {
  return c.type === CredentialType.CUSTOM_SECRET && PSEUDO_CONNECTION_PREFIXES.some((p) => c.connectionId.startsWith(p));
}
