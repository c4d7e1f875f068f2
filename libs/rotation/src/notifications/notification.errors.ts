import { HttpStatus } from '@nestjs/common';
import { CredentialVaultError, ErrorSeverity, type OutboxDeferral } from '@app/common';

/** Stable error codes of the rotation lib's notifications (3200..3299 of the rotation block). Never renumber. */
export enum NotificationErrorCode {
  /** Invalid `notifications` options of RotationModule. */
  NOTIFICATION_CONFIGURATION = 3201,
  /** Invalid tenant notification settings (URL, recipients, secret). */
  NOTIFICATION_SETTINGS_INVALID = 3202,
  /** A webhook target that is not allowed: not http(s), or private/loopback (SSRF guard). */
  NOTIFICATION_TARGET_FORBIDDEN = 3203,
  /** One channel failed to deliver (non-2xx, timeout, SMTP error). Retried with backoff, then given up; a permanent refusal is given up at once. */
  NOTIFICATION_DELIVERY_FAILED = 3204,
  /** Some channel of an event is still to be retried: the outbox delivers the event again later. */
  NOTIFICATION_DELIVERY_PENDING = 3205,
  /** The tenant has no webhook signing secret configured. */
  NOTIFICATION_SECRET_NOT_CONFIGURED = 3206,
  /** The settings changed since the caller read them (`expectedRowVersion`), or a concurrent update won. */
  NOTIFICATION_SETTINGS_CONFLICT = 3207,
}

/** HTTP status of each code, composed by the host; a new code does not compile without one. */
export const NOTIFICATION_ERROR_HTTP_STATUS: Record<NotificationErrorCode, HttpStatus> = {
  [NotificationErrorCode.NOTIFICATION_CONFIGURATION]: HttpStatus.INTERNAL_SERVER_ERROR,
  [NotificationErrorCode.NOTIFICATION_SETTINGS_INVALID]: HttpStatus.BAD_REQUEST,
  [NotificationErrorCode.NOTIFICATION_TARGET_FORBIDDEN]: HttpStatus.BAD_REQUEST, // a settings update naming a private target
  [NotificationErrorCode.NOTIFICATION_DELIVERY_FAILED]: HttpStatus.BAD_GATEWAY,
  [NotificationErrorCode.NOTIFICATION_DELIVERY_PENDING]: HttpStatus.SERVICE_UNAVAILABLE,
  [NotificationErrorCode.NOTIFICATION_SECRET_NOT_CONFIGURED]: HttpStatus.NOT_FOUND,
  [NotificationErrorCode.NOTIFICATION_SETTINGS_CONFLICT]: HttpStatus.CONFLICT,
};

export abstract class NotificationError extends CredentialVaultError {
  abstract override readonly code: NotificationErrorCode;
}

export class NotificationConfigurationError extends NotificationError {
  readonly code = NotificationErrorCode.NOTIFICATION_CONFIGURATION;
  readonly codeName = 'NOTIFICATION_CONFIGURATION';
  readonly severity = ErrorSeverity.CONFIGURATION;
  /** `path: message` lines, never an option's value (options carry the SMTP password). */
  readonly problems: string[];
  constructor(problems: string[] | string) {
    const list = Array.isArray(problems) ? problems : [problems];
    super(`Invalid RotationModule notifications options: ${list.join('; ')}`);
    this.problems = list;
  }
}

export class NotificationSettingsInvalidError extends NotificationError {
  readonly code = NotificationErrorCode.NOTIFICATION_SETTINGS_INVALID;
  readonly codeName = 'NOTIFICATION_SETTINGS_INVALID';
  readonly severity = ErrorSeverity.CLIENT;
  constructor(
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }
}

export class NotificationTargetForbiddenError extends NotificationError {
  readonly code = NotificationErrorCode.NOTIFICATION_TARGET_FORBIDDEN;
  readonly codeName = 'NOTIFICATION_TARGET_FORBIDDEN';
  readonly severity = ErrorSeverity.CLIENT;
  // The message never quotes the URL: its path or query may itself be a secret (chat webhooks).
  constructor(reason = 'the webhook URL targets a private, loopback or link-local address') {
    super(`Webhook target refused: ${reason}`);
  }
}

export class NotificationDeliveryFailedError extends NotificationError {
  readonly code = NotificationErrorCode.NOTIFICATION_DELIVERY_FAILED;
  readonly codeName = 'NOTIFICATION_DELIVERY_FAILED';
  /** Transient (retried with backoff) unless `permanent`: then a configuration problem, given up at once. */
  readonly severity: ErrorSeverity;
  constructor(
    readonly channel: string,
    /** What failed, without data: `http 503`, `timeout`, an SMTP response code. */
    readonly reason = 'failed',
    options?: { cause?: unknown; retryAfterMs?: number; permanent?: boolean },
  ) {
    super(`Notification channel "${channel}" failed: ${reason}`, options);
    this.retryAfterMs = options?.retryAfterMs;
    this.permanent = options?.permanent === true;
    this.severity = this.permanent ? ErrorSeverity.CONFIGURATION : ErrorSeverity.TRANSIENT;
  }

  /** How long the receiver asked to be left alone (its `Retry-After`), when it did. */
  readonly retryAfterMs?: number;
  /**
   * The receiver refused for good (an SMTP 5xx reply, an HTTP 4xx other than 408/429, a redirect):
   * the same send fails the same way until someone changes the settings, so it is not retried.
   */
  readonly permanent: boolean;
}

/**
 * Not a failure of the outbox delivery: channels wait out their own backoff (or a send still running).
 * An `OutboxDeferral`, so the outbox redelivers the event when the first of them is due (`retryAfterMs`),
 * or after its own backoff when that is unknown, without a warning (each channel failure was logged once).
 */
export class NotificationDeliveryPendingError extends NotificationError implements OutboxDeferral {
  readonly code = NotificationErrorCode.NOTIFICATION_DELIVERY_PENDING;
  readonly codeName = 'NOTIFICATION_DELIVERY_PENDING';
  readonly severity = ErrorSeverity.TRANSIENT;
  readonly outboxDeferred = true as const;
  constructor(
    readonly channels: string[] = [],
    /** When the first pending channel is due again, in ms from now; undefined when some channel's attempt is in flight here. */
    readonly retryAfterMs?: number,
  ) {
    super(`Notification channels still to retry: ${channels.join(', ') || '(none)'}`);
  }
}

export class NotificationSecretNotConfiguredError extends NotificationError {
  readonly code = NotificationErrorCode.NOTIFICATION_SECRET_NOT_CONFIGURED;
  readonly codeName = 'NOTIFICATION_SECRET_NOT_CONFIGURED';
  readonly severity = ErrorSeverity.CLIENT;
  constructor() {
    super('No webhook signing secret is configured for this tenant');
  }
}

export class NotificationSettingsConflictError extends NotificationError {
  readonly code = NotificationErrorCode.NOTIFICATION_SETTINGS_CONFLICT;
  readonly codeName = 'NOTIFICATION_SETTINGS_CONFLICT';
  readonly severity = ErrorSeverity.CLIENT;
  constructor() {
    super('The notification settings changed since they were read; read them again and retry');
  }
}
