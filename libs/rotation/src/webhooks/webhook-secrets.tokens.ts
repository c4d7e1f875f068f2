import { INTERNAL_CONNECTION_PREFIXES } from '@app/credentials';

/**
 * Tokens the webhook-secret part injects. RotationModule provides them: the resolved `webhooks`
 * options, and aliases of its Clock and DistributedLock (so the whole lib shares one of each).
 */
export const WEBHOOK_SECRETS_OPTIONS = Symbol('rotation:webhooks:options');
export const WEBHOOK_SECRETS_CLOCK = Symbol('rotation:webhooks:clock');
export const WEBHOOK_SECRETS_LOCK = Symbol('rotation:webhooks:lock');
/** Optional: a `WebhookRotationDuePolicy` (the policy service); without it the `rotateAfterMs` option decides. */
export const WEBHOOK_ROTATION_DUE_POLICY = Symbol('rotation:webhooks:due-policy');

/** Job name, actor of the work it does, and the pseudo connection ids of staging credentials. */
export const WEBHOOK_ROTATION_JOB = 'webhook-secret-rotation';
export const WEBHOOK_STAGING_CONNECTION_PREFIX = INTERNAL_CONNECTION_PREFIXES.stagedWebhookSecret;
export const WEBHOOK_STAGING_TAG = 'cv.rotation.pending-for';

/** Outbox events (ids and metadata only). */
export const WebhookSecretEvents = {
  ROTATED: 'webhook_secret.rotated',
  ROTATION_FAILED: 'webhook_secret.rotation_failed',
  /** A secret past its "rotate after" whose integration has no updater: an operator should stage and activate one. Once per credential version. */
  ROTATION_DUE: 'webhook_secret.rotation_due',
} as const;

/** The dedupe key (`cv_rotation_notices.notice`) of `webhook_secret.rotation_due`. */
export const WEBHOOK_ROTATION_DUE_NOTICE = 'webhook_rotation_due';

/** Audit action names of each step. */
export const WebhookAuditActions = {
  ENROLLED: 'webhook_secret.enrolled',
  PREPARED: 'webhook_secret.rotation_prepared',
  /** An operator staged a new secret (shown once) to install at the provider by hand. */
  STAGED: 'webhook_secret.staged',
  /** A staged or pending secret was discarded (by an operator, or by the job after `stagedTtlMs`). */
  DISCARDED: 'webhook_secret.staged_discarded',
  PUSHED: 'webhook_secret.pushed',
  PUSH_FAILED: 'webhook_secret.push_failed',
  /** A push landed after its rotation was superseded elsewhere (it outlived its lock session); the current secret is pushed again. */
  PUSH_SUPERSEDED: 'webhook_secret.push_superseded',
  ROTATED: 'webhook_secret.rotated',
  RETIRED: 'webhook_secret.retired',
} as const;

/** What decides when a webhook secret is due (the rotation policies implement it). */
export interface WebhookRotationDuePolicy {
  /**
   * Milliseconds after becoming current when the secret of this credential is due; `null` or 0:
   * never rotated automatically.
   */
  rotateAfterMs(ref: { tenantId: string; integrationId: string; connectionId: string; credentialId: string }): Promise<number | null>;
}
