import type { Provider } from '@nestjs/common';
import { CreateWebhookSecretVersions1800000000100 } from './persistence/1800000000100-create-webhook-secret-versions';
import { WebhookStagedOverRowVersion1960000000000 } from './persistence/1960000000000-webhook-staged-over-row-version';
import { WebhookSecretVersionEntity } from './persistence/webhook-secret-version.entity';
import { WebhookSecretVersionRepository } from './persistence/webhook-secret-version.repository';
import { WebhookSecretKeyring } from './webhook-secret-keyring';
import { WebhookSecretRotationJob } from './webhook-secret-rotation.job';
import { WebhookLostLockRecovery } from './webhook-lost-lock-recovery';
import { WebhookRotationLock } from './webhook-rotation-lock';
import { WebhookRotationRecorder } from './webhook-rotation-recorder';
import { WebhookRotationSteps } from './webhook-rotation-steps';
import { WebhookSecretEndedCleanup } from './webhook-secret-ended-cleanup';
import { WebhookSecretRotator } from './webhook-secret-rotator';
import { WebhookSecretStates } from './webhook-secret-states';
import { WebhookSecretUpdaterRegistry } from './webhook-secret-updater';
import { WebhookSecretsService } from './webhook-secrets.service';
import { WEBHOOK_WIRING } from './webhook-secrets.providers';

/** The services alone, for a host (or a test) that provides the four WEBHOOK_* tokens itself. */
export const WEBHOOK_CORE_PROVIDERS: Provider[] = [
  WebhookSecretVersionRepository,
  WebhookSecretStates,
  WebhookSecretKeyring,
  WebhookSecretUpdaterRegistry,
  // The rotator's collaborators (internal: not exported from this index).
  WebhookRotationLock,
  WebhookRotationRecorder,
  WebhookRotationSteps,
  WebhookLostLockRecovery,
  WebhookSecretRotator,
  WebhookSecretsService,
  WebhookSecretRotationJob,
  // A revoke by a bare status change, or a delete, discards the staged successor (the credential's outbox event).
  WebhookSecretEndedCleanup,
];

/**
 * Webhook secrets (issue #12): Standard Webhooks signing/verification and the two-phase rotation.
 *
 * RotationModule spreads `WEBHOOK_PROVIDERS` into its providers and exports. They include the
 * wiring (`WEBHOOK_WIRING`): the options come from the `webhooks` key of the RotationModule options
 * (`WebhookSecretsOptions`, validated at bootstrap), the Clock and lock are ROTATION_CLOCK and
 * ROTATION_LOCK, and "rotate after" comes from RotationPolicyService (a webhook secret's effective
 * policy). The host registers `WEBHOOK_ENTITIES` and `WEBHOOK_MIGRATIONS` (part of ROTATION_ENTITIES/_MIGRATIONS).
 */
export const WEBHOOK_PROVIDERS: Provider[] = [...WEBHOOK_WIRING, ...WEBHOOK_CORE_PROVIDERS];

/** TypeORM entities of the webhook-secret versions table (the host registers them with the others). */
export const WEBHOOK_ENTITIES = [WebhookSecretVersionEntity];

/** Migrations of the webhook-secret versions table. */
export const WEBHOOK_MIGRATIONS = [CreateWebhookSecretVersions1800000000100, WebhookStagedOverRowVersion1960000000000];

export { WebhookSecretVersionEntity, WebhookSecretState } from './persistence/webhook-secret-version.entity';
export { CreateWebhookSecretVersions1800000000100 } from './persistence/1800000000100-create-webhook-secret-versions';
export { WebhookStagedOverRowVersion1960000000000 } from './persistence/1960000000000-webhook-staged-over-row-version';
export {
  generateWebhookSecret,
  signWebhookPayload,
  verifyWebhookPayload,
  webhookSecretKey,
  webhookSignatureBytes,
  WEBHOOK_SECRET_PREFIX,
  WEBHOOK_SECRET_BYTES,
  WEBHOOK_ID_HEADER,
  WEBHOOK_TIMESTAMP_HEADER,
  WEBHOOK_SIGNATURE_HEADER,
  MAX_SIGNATURES_CHECKED,
  type WebhookBody,
  type WebhookHeaders,
  type IncomingWebhookHeaders,
  type VerifiedWebhook,
} from './standard-webhooks';
export {
  WebhookSecretErrorCode,
  WEBHOOK_SECRET_ERROR_HTTP_STATUS,
  WebhookSecretError,
  WebhookSecretConfigurationError,
  WebhookSecretValidationError,
  WebhookSecretNotFoundError,
  WebhookVerificationError,
  WebhookMissingIdError,
  WebhookMissingTimestampError,
  WebhookTimestampTooOldError,
  WebhookTimestampTooNewError,
  WebhookMissingSignatureError,
  WebhookSignatureMismatchError,
  WebhookSecretUpdaterNotRegisteredError,
  WebhookSecretUpdateFailedError,
  WebhookRotationInProgressError,
  NotAWebhookSecretError,
  WebhookSecretAlreadyStagedError,
  WebhookNothingStagedError,
  WebhookStagedSecretExpiredError,
  WebhookStagedRotationMismatchError,
} from './webhook-secret.errors';
export {
  webhookSecretsOptionsSchema,
  resolveWebhookSecretsOptions,
  DEFAULT_WEBHOOK_SECRETS_OPTIONS,
  type WebhookSecretsOptions,
  type ResolvedWebhookSecretsOptions,
} from './webhook-secrets.options';
export {
  WEBHOOK_SECRETS_OPTIONS,
  WEBHOOK_SECRETS_CLOCK,
  WEBHOOK_SECRETS_LOCK,
  WEBHOOK_ROTATION_DUE_POLICY,
  WEBHOOK_ROTATION_JOB,
  WEBHOOK_ROTATION_DUE_NOTICE,
  WEBHOOK_STAGING_TAG,
  WebhookSecretEvents,
  WebhookAuditActions,
  type WebhookRotationDuePolicy,
} from './webhook-secrets.tokens';
export { WebhookSecretUpdaterRegistry, type WebhookSecretUpdater, type WebhookSecretUpdate } from './webhook-secret-updater';
export { WebhookSecretKeyring, type WebhookTarget, type WebhookSecretSet } from './webhook-secret-keyring';
export {
  WebhookSecretRotator,
  type WebhookRotationResult,
  type WebhookRotateOptions,
  type WebhookRotationCaller,
  type StagedWebhookSecret,
  type WebhookDiscardResult,
} from './webhook-secret-rotator';
export { WebhookSecretRotationJob, type WebhookRotationRunSummary } from './webhook-secret-rotation.job';
export { WebhookSecretsService, type VerifiedWebhookResult, type WebhookSecretVersionView } from './webhook-secrets.service';
export { WebhookSecretVersionRepository } from './persistence/webhook-secret-version.repository';
export { WebhookSecretStates } from './webhook-secret-states';
export { PolicyServiceDuePolicy, WEBHOOK_WIRING } from './webhook-secrets.providers';
