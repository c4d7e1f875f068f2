import type { NotificationEventName } from './notification.options';

/**
 * What a notification says, built from an outbox event's payload through an allow-list of fields:
 * ids and metadata, never a value (a payload field not listed here never reaches a channel).
 */
export interface NotificationFacts {
  credentialId?: string;
  integrationId?: string;
  connectionId?: string;
  /** Credential type (`api_key`, `webhook_secret`, ...). */
  type?: string;
  /** ISO 8601. */
  expiresAt?: string;
  thresholdDays?: number;
  /** ISO 8601: when a manual rotation fell due. */
  dueAt?: string;
  version?: number;
  previousVersion?: number;
  /** Revoke / un-revoke / failure reason as given by the operator or job (shortened). */
  reason?: string;
  severity?: string;
  /** A revoke that came again: why (`rotated_during_revoke`), and the version the first one revoked. */
  cause?: string;
  revokedVersion?: number;
  /** A failure's stable code (never its message). */
  errorCode?: string;
  /** Which step of a webhook-secret rotation failed, and after how many attempts. */
  step?: string;
  attempts?: number;
  actorId?: string;
}

export interface Notification {
  /** The outbox event id: the idempotency key (also the `webhook-id` and the e-mail Message-ID). */
  eventId: string;
  event: NotificationEventName;
  tenantId: string;
  occurredAt: Date;
  /** One line: what happened to which credential. */
  subject: string;
  /** A few sentences naming the credential, integration and connection. */
  summary: string;
  /** What the reader should do. */
  action: string;
  facts: NotificationFacts;
}

/** `delivered`, or `not_configured` when the tenant has nothing set up for this channel (recorded as skipped). */
export type NotifierOutcome = 'delivered' | 'not_configured';

/**
 * One way of telling a tenant. `send` throws on failure (then the channel is retried with backoff
 * and finally given up); it must not log or throw anything holding a value.
 */
export interface Notifier {
  /** Stable name, part of the delivery key: 1–32 of `a-z0-9_-`. */
  readonly channel: string;
  send(notification: Notification): Promise<NotifierOutcome>;
}

/** Final state of one (event, channel). */
export enum NotificationDeliveryStatus {
  PENDING = 'pending',
  DELIVERED = 'delivered',
  /** The tenant has nothing configured for the channel. */
  SKIPPED = 'skipped',
  /** Failed `retry.maxAttempts` times, or refused for good at once (an SMTP 5xx, an HTTP 4xx but 408/429, a redirect). */
  GIVEN_UP = 'given_up',
}
