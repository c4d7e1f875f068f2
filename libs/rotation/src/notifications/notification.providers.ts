import type { Provider } from '@nestjs/common';
import { Clock, libClock, PERSISTENCE_RESOLVED_OPTIONS, TransactionRunner, type ResolvedPersistenceOptions } from '@app/common';
import { NotificationCounters } from './notification-counters';
import { NOTIFICATION_CLOCK, NOTIFICATION_OPTIONS, NOTIFICATION_RESOLVED_OPTIONS } from './notification.constants';
import { NotificationDispatcher } from './notification.dispatcher';
import { notificationHostOptions, resolveNotificationOptions, type NotificationOptions } from './notification.options';
import { NotifierRegistry } from './notifier.registry';
import { EmailNotifier } from './notifiers/email.notifier';
import { EventBusNotifier } from './notifiers/event-bus.notifier';
import { WebhookNotifier } from './notifiers/webhook.notifier';
import { NotificationDeliveryRepository } from './persistence/notification-delivery.repository';
import { NotificationSettingsRepository } from './persistence/notification-settings.repository';
import { NotificationSettingsService } from './settings/notification-settings.service';

/**
 * Everything the notifications need inside RotationModule. Needs from the host: PersistenceModule
 * (TransactionRunner, OutboxHandlerRegistry), CredentialsService and AuditService (global), optionally
 * EventEmitter2 and a global Clock. RotationModule provides `NOTIFICATION_OPTIONS` (its `notifications`
 * options, raw or resolved) and may override `NOTIFICATION_CLOCK` by listing a provider after these.
 */
export const NOTIFICATION_PROVIDERS: Provider[] = [
  {
    // Validated once, at bootstrap (idempotent, so resolved options may be passed again), against the host's outbox too.
    provide: NOTIFICATION_RESOLVED_OPTIONS,
    useFactory: (options?: NotificationOptions, persistence?: ResolvedPersistenceOptions) => resolveNotificationOptions(options, notificationHostOptions(persistence)),
    inject: [{ token: NOTIFICATION_OPTIONS, optional: true }, { token: PERSISTENCE_RESOLVED_OPTIONS, optional: true }],
  },
  {
    provide: NOTIFICATION_CLOCK,
    useFactory: (host?: Clock) => libClock(undefined, host),
    inject: [{ token: Clock, optional: true }],
  },
  { provide: NotificationDeliveryRepository, useFactory: (runner: TransactionRunner) => new NotificationDeliveryRepository(runner), inject: [TransactionRunner] },
  { provide: NotificationSettingsRepository, useFactory: (runner: TransactionRunner) => new NotificationSettingsRepository(runner), inject: [TransactionRunner] },
  NotificationCounters,
  EventBusNotifier,
  WebhookNotifier,
  EmailNotifier,
  NotifierRegistry,
  NotificationDispatcher,
  NotificationSettingsService,
];

/** What RotationModule should export of the notifications. */
export const NOTIFICATION_EXPORTS = [NotificationSettingsService, NotifierRegistry, NotificationCounters, NotificationDispatcher];
