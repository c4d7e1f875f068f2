import { Inject, Injectable, Optional } from '@nestjs/common';
import { EventEmitter2 } from '@nestjs/event-emitter';
import { NOTIFICATION_RESOLVED_OPTIONS } from '../notification.constants';
import type { ResolvedNotificationOptions } from '../notification.options';
import { NotificationChannels } from '../notification.options';
import type { Notification, Notifier, NotifierOutcome } from '../notification.types';

/**
 * The in-process bus: emits each `Notification` as `bus.eventName` (default `rotation.notification`)
 * on EventEmitter2, once per event id. A listener that throws fails the channel (retried).
 * Without `EventEmitterModule` in the host the channel is skipped.
 */
@Injectable()
export class EventBusNotifier implements Notifier {
  readonly channel = NotificationChannels.BUS;

  constructor(
    @Inject(NOTIFICATION_RESOLVED_OPTIONS) private readonly options: ResolvedNotificationOptions,
    @Optional() private readonly emitter?: EventEmitter2,
  ) {}

  async send(n: Notification): Promise<NotifierOutcome> {
    if (!this.emitter) return 'not_configured';
    await this.emitter.emitAsync(this.options.bus.eventName, n);
    return 'delivered';
  }
}
