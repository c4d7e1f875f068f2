import { HttpStatus } from '@nestjs/common';
import { CredentialVaultError, ErrorSeverity } from '@app/common';

/**
 * Stable error codes of the webhook-secret part of the rotation lib (3100..3199). Never renumber.
 * No message ever holds a secret, a signature, a header value or a body: they reach HTTP clients and logs.
 */
export enum WebhookSecretErrorCode {
  /** Invalid module options (`webhooks` key of the RotationModule options). */
  WEBHOOK_CONFIGURATION = 3101,
  /** Invalid arguments (identifiers, body type, secret format). */
  WEBHOOK_VALIDATION = 3102,
  /** The connection has no (live) webhook secret. */
  WEBHOOK_SECRET_NOT_FOUND = 3103,
  /** The `webhook-id` header is missing or malformed. */
  WEBHOOK_MISSING_ID = 3110,
  /** The `webhook-timestamp` header is missing or not a decimal number of seconds. */
  WEBHOOK_MISSING_TIMESTAMP = 3111,
  /** The timestamp is older than the tolerance. */
  WEBHOOK_TIMESTAMP_TOO_OLD = 3112,
  /** The timestamp is further in the future than the tolerance. */
  WEBHOOK_TIMESTAMP_TOO_NEW = 3113,
  /** The `webhook-signature` header is missing or holds no `v1,` signature. */
  WEBHOOK_MISSING_SIGNATURE = 3114,
  /** No signature matches any live secret. */
  WEBHOOK_SIGNATURE_MISMATCH = 3115,
  /** No WebhookSecretUpdater is registered for the integration: the secret cannot be rotated automatically. */
  WEBHOOK_UPDATER_NOT_REGISTERED = 3120,
  /** The WebhookSecretUpdater failed; the previous secret stays current and the rotation is retried later. */
  WEBHOOK_UPDATE_FAILED = 3121,
  /** Another rotation of the same credential is in progress (on this or another replica). */
  WEBHOOK_ROTATION_IN_PROGRESS = 3122,
  /** The credential is not a webhook secret. */
  WEBHOOK_WRONG_CREDENTIAL_TYPE = 3123,
  /** A new secret is already staged (or an automatic rotation is pending): activate or discard it first. */
  WEBHOOK_SECRET_ALREADY_STAGED = 3124,
  /** Activate or discard, but no secret is staged. */
  WEBHOOK_NOTHING_STAGED = 3125,
  /** The staged secret waited longer than `stagedTtlMs` for its activation: it was discarded. */
  WEBHOOK_STAGED_SECRET_EXPIRED = 3126,
  /** The staged secret is not the one named by `rotationId` (someone discarded and staged again meanwhile). */
  WEBHOOK_STAGED_ROTATION_MISMATCH = 3127,
}

/** HTTP status of each code, composed by the host; a new code does not compile without one. */
export const WEBHOOK_SECRET_ERROR_HTTP_STATUS: Record<WebhookSecretErrorCode, HttpStatus> = {
  [WebhookSecretErrorCode.WEBHOOK_CONFIGURATION]: HttpStatus.INTERNAL_SERVER_ERROR,
  [WebhookSecretErrorCode.WEBHOOK_VALIDATION]: HttpStatus.BAD_REQUEST,
  [WebhookSecretErrorCode.WEBHOOK_SECRET_NOT_FOUND]: HttpStatus.NOT_FOUND,
  // A webhook that does not verify is the sender's problem: 401, like an unauthenticated request.
  [WebhookSecretErrorCode.WEBHOOK_MISSING_ID]: HttpStatus.BAD_REQUEST,
  [WebhookSecretErrorCode.WEBHOOK_MISSING_TIMESTAMP]: HttpStatus.BAD_REQUEST,
  [WebhookSecretErrorCode.WEBHOOK_TIMESTAMP_TOO_OLD]: HttpStatus.UNAUTHORIZED,
  [WebhookSecretErrorCode.WEBHOOK_TIMESTAMP_TOO_NEW]: HttpStatus.UNAUTHORIZED,
  [WebhookSecretErrorCode.WEBHOOK_MISSING_SIGNATURE]: HttpStatus.BAD_REQUEST,
  [WebhookSecretErrorCode.WEBHOOK_SIGNATURE_MISMATCH]: HttpStatus.UNAUTHORIZED,
  [WebhookSecretErrorCode.WEBHOOK_UPDATER_NOT_REGISTERED]: HttpStatus.CONFLICT,
  [WebhookSecretErrorCode.WEBHOOK_UPDATE_FAILED]: HttpStatus.BAD_GATEWAY,
  [WebhookSecretErrorCode.WEBHOOK_ROTATION_IN_PROGRESS]: HttpStatus.CONFLICT,
  [WebhookSecretErrorCode.WEBHOOK_WRONG_CREDENTIAL_TYPE]: HttpStatus.CONFLICT,
  [WebhookSecretErrorCode.WEBHOOK_SECRET_ALREADY_STAGED]: HttpStatus.CONFLICT,
  [WebhookSecretErrorCode.WEBHOOK_NOTHING_STAGED]: HttpStatus.CONFLICT,
  [WebhookSecretErrorCode.WEBHOOK_STAGED_SECRET_EXPIRED]: HttpStatus.GONE,
  [WebhookSecretErrorCode.WEBHOOK_STAGED_ROTATION_MISMATCH]: HttpStatus.CONFLICT,
};

export abstract class WebhookSecretError extends CredentialVaultError {
  abstract override readonly code: WebhookSecretErrorCode;
}

export class WebhookSecretConfigurationError extends WebhookSecretError {
  readonly code = WebhookSecretErrorCode.WEBHOOK_CONFIGURATION;
  readonly codeName = 'WEBHOOK_CONFIGURATION';
  readonly severity = ErrorSeverity.CONFIGURATION;
}

export class WebhookSecretValidationError extends WebhookSecretError {
  readonly code = WebhookSecretErrorCode.WEBHOOK_VALIDATION;
  readonly codeName = 'WEBHOOK_VALIDATION';
  readonly severity = ErrorSeverity.CLIENT;
  constructor(
    message: string,
    readonly field: string,
  ) {
    super(message);
  }
}

export class WebhookSecretNotFoundError extends WebhookSecretError {
  readonly code = WebhookSecretErrorCode.WEBHOOK_SECRET_NOT_FOUND;
  readonly codeName = 'WEBHOOK_SECRET_NOT_FOUND';
  readonly severity = ErrorSeverity.CLIENT;
  constructor() {
    // Ids come from the request: the message names none.
    super('The connection has no webhook secret');
  }
}

/** Every way a webhook fails verification: one subclass (and code) per check. Nothing from the request is quoted. */
export abstract class WebhookVerificationError extends WebhookSecretError {
  readonly severity = ErrorSeverity.CLIENT;
}

export class WebhookMissingIdError extends WebhookVerificationError {
  readonly code = WebhookSecretErrorCode.WEBHOOK_MISSING_ID;
  readonly codeName = 'WEBHOOK_MISSING_ID';
  constructor() {
    super('The webhook-id header is missing or malformed');
  }
}

export class WebhookMissingTimestampError extends WebhookVerificationError {
  readonly code = WebhookSecretErrorCode.WEBHOOK_MISSING_TIMESTAMP;
  readonly codeName = 'WEBHOOK_MISSING_TIMESTAMP';
  constructor() {
    super('The webhook-timestamp header is missing or not a number of seconds');
  }
}

export class WebhookTimestampTooOldError extends WebhookVerificationError {
  readonly code = WebhookSecretErrorCode.WEBHOOK_TIMESTAMP_TOO_OLD;
  readonly codeName = 'WEBHOOK_TIMESTAMP_TOO_OLD';
  constructor(readonly toleranceSeconds: number) {
    super(`The webhook timestamp is more than ${toleranceSeconds} s old`);
  }
}

export class WebhookTimestampTooNewError extends WebhookVerificationError {
  readonly code = WebhookSecretErrorCode.WEBHOOK_TIMESTAMP_TOO_NEW;
  readonly codeName = 'WEBHOOK_TIMESTAMP_TOO_NEW';
  constructor(readonly toleranceSeconds: number) {
    super(`The webhook timestamp is more than ${toleranceSeconds} s in the future`);
  }
}

export class WebhookMissingSignatureError extends WebhookVerificationError {
  readonly code = WebhookSecretErrorCode.WEBHOOK_MISSING_SIGNATURE;
  readonly codeName = 'WEBHOOK_MISSING_SIGNATURE';
  constructor() {
    super('The webhook-signature header is missing or holds no v1 signature');
  }
}

export class WebhookSignatureMismatchError extends WebhookVerificationError {
  readonly code = WebhookSecretErrorCode.WEBHOOK_SIGNATURE_MISMATCH;
  readonly codeName = 'WEBHOOK_SIGNATURE_MISMATCH';
  constructor() {
    super('No webhook signature matches a live secret');
  }
}

export class WebhookSecretUpdaterNotRegisteredError extends WebhookSecretError {
  readonly code = WebhookSecretErrorCode.WEBHOOK_UPDATER_NOT_REGISTERED;
  readonly codeName = 'WEBHOOK_UPDATER_NOT_REGISTERED';
  readonly severity = ErrorSeverity.CONFIGURATION;
  constructor(readonly integrationId: string) {
    super(
      // Embedding apps have the service, the reference host's users its routes and CLI: both ways are named.
      'No WebhookSecretUpdater is registered for this integration (WebhookSecretUpdaterRegistry.register()): stage a new secret, install it at the provider and activate it instead (WebhookSecretsService.stageConnection(), then activateConnection(); the reference host: POST …/secret/stage, then …/secret/activate, or cli webhook:rotate --stage, then --activate)',
    );
  }
}

export class WebhookSecretUpdateFailedError extends WebhookSecretError {
  readonly code = WebhookSecretErrorCode.WEBHOOK_UPDATE_FAILED;
  readonly codeName = 'WEBHOOK_UPDATE_FAILED';
  readonly severity = ErrorSeverity.TRANSIENT;
  constructor(
    readonly credentialId: string,
    options?: { cause?: unknown },
  ) {
    super(`The webhook secret of credential ${credentialId} could not be pushed to the provider; the previous secret stays current and the rotation is retried later`, options);
  }
}

export class WebhookRotationInProgressError extends WebhookSecretError {
  readonly code = WebhookSecretErrorCode.WEBHOOK_ROTATION_IN_PROGRESS;
  readonly codeName = 'WEBHOOK_ROTATION_IN_PROGRESS';
  readonly severity = ErrorSeverity.TRANSIENT;
  constructor(readonly credentialId: string) {
    super(`Another rotation of credential ${credentialId} is in progress; retry later`);
  }
}

export class NotAWebhookSecretError extends WebhookSecretError {
  readonly code = WebhookSecretErrorCode.WEBHOOK_WRONG_CREDENTIAL_TYPE;
  readonly codeName = 'NOT_A_WEBHOOK_SECRET';
  readonly severity = ErrorSeverity.CLIENT;
  constructor(readonly credentialId: string) {
    super(`Credential ${credentialId} is not a webhook secret`);
  }
}

export class WebhookSecretAlreadyStagedError extends WebhookSecretError {
  readonly code = WebhookSecretErrorCode.WEBHOOK_SECRET_ALREADY_STAGED;
  readonly codeName = 'WEBHOOK_SECRET_ALREADY_STAGED';
  readonly severity = ErrorSeverity.CLIENT;
  constructor(
    readonly credentialId: string,
    readonly rotationId: string,
  ) {
    super(`A new secret of credential ${credentialId} is already staged (rotation ${rotationId}): activate it or discard it first`);
  }
}

export class WebhookNothingStagedError extends WebhookSecretError {
  readonly code = WebhookSecretErrorCode.WEBHOOK_NOTHING_STAGED;
  readonly codeName = 'WEBHOOK_NOTHING_STAGED';
  readonly severity = ErrorSeverity.CLIENT;
  constructor(
    readonly credentialId: string,
    why = 'stage one first',
  ) {
    super(`No new secret of credential ${credentialId} is staged: ${why}`);
  }
}

export class WebhookStagedSecretExpiredError extends WebhookSecretError {
  readonly code = WebhookSecretErrorCode.WEBHOOK_STAGED_SECRET_EXPIRED;
  readonly codeName = 'WEBHOOK_STAGED_SECRET_EXPIRED';
  readonly severity = ErrorSeverity.CLIENT;
  constructor(
    readonly credentialId: string,
    readonly rotationId: string,
  ) {
    super(`The staged secret of credential ${credentialId} (rotation ${rotationId}) was not activated in time and was discarded; the current secret stays current — stage a new one`);
  }
}

export class WebhookStagedRotationMismatchError extends WebhookSecretError {
  readonly code = WebhookSecretErrorCode.WEBHOOK_STAGED_ROTATION_MISMATCH;
  readonly codeName = 'WEBHOOK_STAGED_ROTATION_MISMATCH';
  readonly severity = ErrorSeverity.CLIENT;
  constructor(readonly credentialId: string) {
    // The caller's rotation id is not repeated; the staged one is the server's own id.
    super(`The secret staged for credential ${credentialId} is not the rotation given; list the versions to see the staged one`);
  }
}
