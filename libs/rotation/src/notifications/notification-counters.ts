import { Injectable } from '@nestjs/common';

/** What happened to one (event, channel) attempt. */
export const NOTIFICATION_OUTCOMES = ['sent', 'skipped', 'failed', 'given_up', 'refused', 'duplicate'] as const;
export type NotificationOutcome = (typeof NOTIFICATION_OUTCOMES)[number];

export type NotificationCounterListener = (channel: string, outcome: NotificationOutcome) => void;

/**
 * In-process counts per channel and outcome, since start: `sent`, `skipped` (channel not set up for
 * the tenant), `failed` (an attempt failed and will be retried), `given_up` (bound reached),
 * `refused` (given up at once: a permanent refusal that retrying cannot fix, such as an SMTP 550 or an
 * HTTP 404) and `duplicate` (a redelivered event found every channel done). The host turns them into metrics with
 * `onRecord` (e.g. a prom-client counter `notifications_total{channel,outcome}`).
 */
@Injectable()
export class NotificationCounters {
  private readonly counts = new Map<string, number>();
  private readonly listeners: NotificationCounterListener[] = [];

  record(channel: string, outcome: NotificationOutcome): void {
    const key = `${channel}\u0000${outcome}`;
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
    for (const l of this.listeners) {
      try {
        l(channel, outcome);
      } catch {
        // a metrics listener must not fail a delivery
      }
    }
  }

  onRecord(listener: NotificationCounterListener): () => void {
    this.listeners.push(listener);
    return () => {
      const i = this.listeners.indexOf(listener);
      if (i >= 0) this.listeners.splice(i, 1);
    };
  }

  get(channel: string, outcome: NotificationOutcome): number {
    return this.counts.get(`${channel}\u0000${outcome}`) ?? 0;
  }

  snapshot(): Array<{ channel: string; outcome: NotificationOutcome; count: number }> {
    return [...this.counts].map(([key, count]) => {
      const [channel, outcome] = key.split('\u0000');
      return { channel, outcome: outcome as NotificationOutcome, count };
    });
  }
}
