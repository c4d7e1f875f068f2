import { NotificationDeliveryEntity, NotificationSettingsEntity } from './persistence/notification.entities';
import { CreateNotifications1800000003200, IndexNotificationDeliveriesFinished1800000003201 } from './persistence/notification.migrations';

// Notifications part of RotationModule (issue #12): the module owner spreads NOTIFICATION_PROVIDERS
// (and exports NOTIFICATION_EXPORTS), and registers the entities and migrations with the host's.
export { NOTIFICATION_PROVIDERS, NOTIFICATION_EXPORTS } from './notification.providers';

/** TypeORM entities: `cv_notification_deliveries`, `cv_notification_settings`. */
export const NOTIFICATION_ENTITIES: (new (...args: any[]) => object)[] = [NotificationDeliveryEntity, NotificationSettingsEntity];
/** Their migrations (SQLite and PostgreSQL). */
export const NOTIFICATION_MIGRATIONS: (new (...args: any[]) => object)[] = [CreateNotifications1800000003200, IndexNotificationDeliveriesFinished1800000003201];

export { NotificationDeliveryEntity, NotificationSettingsEntity, CreateNotifications1800000003200, IndexNotificationDeliveriesFinished1800000003201 };
export {
  NOTIFICATION_OPTIONS,
  NOTIFICATION_RESOLVED_OPTIONS,
  NOTIFICATION_CLOCK,
  NOTIFICATION_WEBHOOK_SECRET_INTEGRATION,
  NOTIFICATION_WEBHOOK_SECRET_CONNECTION,
  NOTIFICATION_SETTINGS_AUDIT_ACTION,
} from './notification.constants';
export {
  NotificationErrorCode,
  NOTIFICATION_ERROR_HTTP_STATUS,
  NotificationError,
  NotificationConfigurationError,
  NotificationSettingsInvalidError,
  NotificationTargetForbiddenError,
  NotificationDeliveryFailedError,
  NotificationDeliveryPendingError,
  NotificationSecretNotConfiguredError,
  NotificationSettingsConflictError,
} from './notification.errors';
export {
  NotificationEvents,
  NOTIFICATION_EVENT_NAMES,
  NotificationChannels,
  notificationOptionsSchema,
  resolveNotificationOptions,
  notificationHostOptions,
  DEFAULT_NOTIFICATION_SEND_WAIT_MS,
  NOTIFICATION_SEND_WAIT_HEADROOM_MS,
  retryDelayMs,
  type NotificationEventName,
  type NotificationHostOptions,
  type NotificationOptions,
  type ResolvedNotificationOptions,
} from './notification.options';
export { NotificationDeliveryStatus, type Notification, type NotificationFacts, type Notifier, type NotifierOutcome } from './notification.types';
export { buildNotification, notificationText } from './notification-message';
export { NOTIFICATION_OUTCOMES, NotificationCounters, type NotificationOutcome, type NotificationCounterListener } from './notification-counters';
export { NotificationDispatcher, type ChannelDeliveryResult } from './notification.dispatcher';
export { NotifierRegistry } from './notifier.registry';
export { EventBusNotifier } from './notifiers/event-bus.notifier';
export { WebhookNotifier, notificationWebhookBody, type NotificationWebhookBody } from './notifiers/webhook.notifier';
export { EmailNotifier } from './notifiers/email.notifier';
export { isPrivateAddress, parseWebhookUrl, assertPublicTarget } from './notifiers/ssrf-guard';
export { standardWebhookHeaders } from './notifiers/standard-webhook-signature';
export { NotificationDeliveryRepository } from './persistence/notification-delivery.repository';
export { NotificationSettingsRepository } from './persistence/notification-settings.repository';
export {
  NotificationSettingsService,
  MAX_EMAIL_RECIPIENTS,
  type NotificationSettingsView,
  type UpdateNotificationSettingsInput,
  type UpdateNotificationSettingsResult,
} from './settings/notification-settings.service';
