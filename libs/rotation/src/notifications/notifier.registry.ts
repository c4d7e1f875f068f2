import { Inject, Injectable } from '@nestjs/common';
import { NOTIFICATION_RESOLVED_OPTIONS } from './notification.constants';
import { NotificationConfigurationError } from './notification.errors';
import type { ResolvedNotificationOptions } from './notification.options';
import type { Notifier } from './notification.types';
import { EmailNotifier } from './notifiers/email.notifier';
import { EventBusNotifier } from './notifiers/event-bus.notifier';
import { WebhookNotifier } from './notifiers/webhook.notifier';

const CHANNEL_PATTERN = /^[a-z0-9_-]{1,32}$/;

/**
 * The channels every notifiable event fans out to: the built-ins switched on in the options, plus any
 * `register`ed by the host (a chat integration, a pager) before the first event.
 */
@Injectable()
export class NotifierRegistry {
  private readonly notifiers = new Map<string, Notifier>();

  constructor(
    @Inject(NOTIFICATION_RESOLVED_OPTIONS) options: ResolvedNotificationOptions,
    bus: EventBusNotifier,
    webhook: WebhookNotifier,
    email: EmailNotifier,
  ) {
    if (options.bus.enabled) this.register(bus);
    if (options.webhook.enabled) this.register(webhook);
    if (options.email.enabled) this.register(email);
  }

  /** Adds a channel; its name is part of the delivery key, so keep it stable. Returns a remover. */
  register(notifier: Notifier): () => void {
    if (!CHANNEL_PATTERN.test(notifier?.channel ?? '')) throw new NotificationConfigurationError('a notifier channel must be 1-32 of a-z 0-9 _ -');
    if (this.notifiers.has(notifier.channel)) throw new NotificationConfigurationError(`notifier channel "${notifier.channel}" is already registered`);
    this.notifiers.set(notifier.channel, notifier);
    return () => {
      if (this.notifiers.get(notifier.channel) === notifier) this.notifiers.delete(notifier.channel);
    };
  }

  list(): Notifier[] {
    return [...this.notifiers.values()];
  }

  channels(): string[] {
    return [...this.notifiers.keys()];
  }
}
