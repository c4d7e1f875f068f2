import { Inject, Injectable, Logger, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import { Clock, CredentialVaultError, describeError, OutboxHandlerRegistrations, OutboxHandlerRegistry, type OutboxEvent } from '@app/common';
import { NotificationCounters } from './notification-counters';
import { buildNotification } from './notification-message';
import { NOTIFICATION_CLOCK, NOTIFICATION_RESOLVED_OPTIONS } from './notification.constants';
import { NotificationDeliveryFailedError, NotificationDeliveryPendingError } from './notification.errors';
import { retryDelayMs, type ResolvedNotificationOptions } from './notification.options';
import { NotificationDeliveryStatus, type Notification, type Notifier } from './notification.types';
import { NotifierRegistry } from './notifier.registry';
import { NotificationDeliveryRepository } from './persistence/notification-delivery.repository';

/** What one delivery pass did for one channel. */
export interface ChannelDeliveryResult {
  channel: string;
  status: NotificationDeliveryStatus;
  /** True when this pass sent (or skipped) it; false when an earlier delivery already had. */
  now: boolean;
}

/** Inside a pass: a pending channel's next attempt, in ms from now, when known (not while a send of it runs here). */
type ChannelOutcome = ChannelDeliveryResult & { redelivered?: true; dueInMs?: number };

/**
 * The outbox handler of notifications. Each notifiable event fans out to every channel in parallel;
 * `cv_notification_deliveries` holds one row per (event id, channel):
 *
 * - a row that is delivered, skipped or given up is never sent again (a redelivered event is a no-op);
 * - an attempt is claimed by compare-and-set on `attempts` before sending, and leased for `retry.leaseMs`
 *   (longer than a send can take), so a concurrent delivery of the same event never sends it too;
 * - a send is awaited at most `sendWaitMs`; one still running then finishes in the background (its
 *   row records the outcome) and the channel counts as pending, so a hanging receiver holds the
 *   outbox (one event at a time) for that long, not for its timeout;
 * - a failed channel stays pending with a backoff and this handler throws
 *   `NotificationDeliveryPendingError`, an `OutboxDeferral`: the outbox redelivers the event when the
 *   first pending channel is due (earlier it would find nothing to do), quietly — each failure is
 *   logged here, once. The channels already done are skipped, the others are not blocked;
 * - after `retry.maxAttempts` attempts it is given up (`given_up`); at once, for an error that cannot
 *   succeed by retrying (a permanent refusal: SMTP 5xx, HTTP 4xx but 408/429, a redirect, an SSRF refusal; `refused`).
 *
 * Sending is at least once per channel: a crash between a send and its row update sends again on the
 * next attempt, which is why `webhook-id` and the e-mail Message-ID are the event id.
 */
@Injectable()
export class NotificationDispatcher implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger('Notifications');
  private readonly outboxRegistrations = new OutboxHandlerRegistrations();
  private lastPruneMs = 0;
  private pruning?: Promise<unknown>;
  /** Sends that outlived `sendWaitMs`, finishing in the background. */
  private readonly background = new Set<Promise<unknown>>();
  private readonly finishedInBackground = new Set<string>();
  /** Channels whose send is running in the background here: their lease says nothing about when they finish. */
  private readonly sendingInBackground = new Set<string>();

  constructor(
    @Inject(NOTIFICATION_RESOLVED_OPTIONS) private readonly options: ResolvedNotificationOptions,
    @Inject(NOTIFICATION_CLOCK) private readonly clock: Clock,
    private readonly outboxHandlers: OutboxHandlerRegistry,
    private readonly notifiers: NotifierRegistry,
    private readonly deliveries: NotificationDeliveryRepository,
    private readonly counters: NotificationCounters,
  ) {}

  onModuleInit(): void {
    if (!this.options.enabled) return;
    // One handler, registered under each configured event name.
    this.outboxRegistrations.register(this.outboxHandlers, this.options.events, (event: OutboxEvent) => this.handle(event));
  }

  async onModuleDestroy(): Promise<void> {
    this.outboxRegistrations.unregisterAll();
    await Promise.allSettled([this.pruning, ...this.background]);
  }

  /** Deletes delivery rows finished more than `retentionMs` ago (see `NotificationDeliveryRepository.pruneFinished`). */
  prune(): Promise<number> {
    this.lastPruneMs = this.clock.now().getTime();
    return this.deliveries.pruneFinished(new Date(this.lastPruneMs - this.options.retentionMs));
  }

  /** Delivers `event` on every channel not yet done; throws when a channel is left to retry. */
  async handle(event: OutboxEvent): Promise<ChannelDeliveryResult[]> {
    const notification = buildNotification(event);
    if (!notification || !(this.options.events as string[]).includes(notification.event)) return [];
    if (notification.facts.type && this.options.mutedTypes[notification.event]?.includes(notification.facts.type)) return [];
    this.maybePrune();
    const settled = await Promise.allSettled(this.notifiers.list().map((n) => this.deliver(notification, n)));
    const failure = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    // A bookkeeping failure (database) of one channel: the others have finished; the outbox retries.
    if (failure) throw failure.reason;
    const outcomes = settled.map((s) => (s as PromiseFulfilledResult<ChannelOutcome>).value);
    // A redelivery only when the event came back with every channel done: the outbox also comes back for
    // a channel left to retry (or finished in the background), and then the done ones sent nothing twice.
    if (outcomes.every((o) => o.redelivered)) for (const o of outcomes) this.counters.record(o.channel, 'duplicate');
    const pending = outcomes.filter((o) => o.status === NotificationDeliveryStatus.PENDING);
    if (pending.length > 0) {
      // Due when the first channel is; unknown (the outbox's own backoff) while a send still runs here.
      const due = pending.map((o) => o.dueInMs);
      const retryAfterMs = due.every((ms): ms is number => ms !== undefined) ? Math.max(0, Math.min(...due)) : undefined;
      throw new NotificationDeliveryPendingError(pending.map((o) => o.channel), retryAfterMs);
    }
    return outcomes.map(({ channel, status, now }) => ({ channel, status, now }));
  }

  private async deliver(n: Notification, notifier: Notifier): Promise<ChannelOutcome> {
    const key = { eventId: n.eventId, channel: notifier.channel };
    const { maxAttempts } = this.options.retry;
    await this.deliveries.ensure({ ...key, tenantId: n.tenantId, eventName: n.event }, this.clock.now());
    // Asked before the read: a send that ends in the background while the row is read leaves that row showing its lease.
    const wasSending = this.sendingInBackground.has(keyOf(key));
    const row = await this.deliveries.find(key);
    if (!row) return { channel: key.channel, status: NotificationDeliveryStatus.PENDING, now: false };
    if (row.status !== NotificationDeliveryStatus.PENDING) {
      const done = { channel: key.channel, status: row.status as NotificationDeliveryStatus, now: false };
      // The outbox back for an event whose send finished in the background here: not a redelivery.
      return this.finishedInBackground.delete(keyOf(key)) ? done : { ...done, redelivered: true };
    }
    const now = this.clock.now();
    // Backing off, or an attempt in flight elsewhere (its lease has not run out: the retry of a crashed attempt).
    if (row.nextAttemptAt.getTime() > now.getTime()) {
      const dueInMs = wasSending || this.sendingInBackground.has(keyOf(key)) ? undefined : row.nextAttemptAt.getTime() - now.getTime();
      return { channel: key.channel, status: NotificationDeliveryStatus.PENDING, now: false, dueInMs };
    }
    if (row.attempts >= maxAttempts) {
      // The last attempt was claimed but never reported back before its lease ran out (a crash): the bound is spent.
      return this.giveUp(n, key, row.lastError ?? 'interrupted');
    }
    const attempt = row.attempts + 1;
    const leaseUntil = new Date(now.getTime() + Math.max(this.options.retry.leaseMs, retryDelayMs(this.options.retry, attempt)));
    if (!(await this.deliveries.claim(key, row.attempts, now, leaseUntil))) {
      return { channel: key.channel, status: NotificationDeliveryStatus.PENDING, now: false };
    }
    const attempt$ = this.attempt(n, notifier, key, attempt);
    const done = await settledWithin(attempt$, this.options.sendWaitMs);
    if (done) return done.result();
    // Still sending: it finishes (and records itself) in the background; the outbox comes back for the event.
    this.sendingInBackground.add(keyOf(key));
    const background = attempt$.then(
      (r) => void (r.status !== NotificationDeliveryStatus.PENDING && this.finishedInBackground.add(keyOf(key))),
      (e: unknown) => this.logger.error(`Notification ${n.eventId} (${n.event}) on ${key.channel}: recording the attempt failed: ${describeError(e)}`),
    );
    this.background.add(background);
    void background.finally(() => {
      this.background.delete(background);
      this.sendingInBackground.delete(keyOf(key));
    });
    if (this.finishedInBackground.size > 10_000) this.finishedInBackground.clear(); // only spares a misleading `duplicate` count
    return { channel: key.channel, status: NotificationDeliveryStatus.PENDING, now: true };
  }

  /** One claimed attempt: send, then record what happened (delivered, skipped, failed with a backoff, given up). */
  private async attempt(n: Notification, notifier: Notifier, key: { eventId: string; channel: string }, attempt: number): Promise<ChannelOutcome> {
    const { maxAttempts } = this.options.retry;
    let outcome: Awaited<ReturnType<Notifier['send']>>;
    try {
      outcome = await notifier.send(n);
    } catch (e) {
      // The reason (`http 503`, `timeout`, `smtp 535`) is data-free by construction, and tells the operator what to fix.
      const error = (e instanceof NotificationDeliveryFailedError ? `${describeError(e)}: ${e.reason}` : describeError(e)).slice(0, 200); // the column's width
      // A permanent refusal (a receiver's 4xx, an SMTP 5xx, an SSRF refusal): retrying only delays the give-up and hammers the receiver.
      if (e instanceof CredentialVaultError && !e.retryable) return this.giveUp(n, key, error, 'refused');
      if (attempt >= maxAttempts) return this.giveUp(n, key, error);
      const failedAt = this.clock.now();
      // A receiver's Retry-After (429, 503) is honoured up to retry.maxMs: retrying sooner only spent the attempts.
      const asked = e instanceof NotificationDeliveryFailedError ? Math.min(e.retryAfterMs ?? 0, this.options.retry.maxMs) : 0;
      const waitMs = Math.max(asked, retryDelayMs(this.options.retry, attempt));
      await this.deliveries.recordFailure(key, failedAt, new Date(failedAt.getTime() + waitMs), error);
      this.counters.record(key.channel, 'failed');
      this.logger.warn(`Notification ${n.eventId} (${n.event}) on ${key.channel} failed: attempt ${attempt}/${maxAttempts}, ${error}; retry in ${waitMs} ms`);
      return { channel: key.channel, status: NotificationDeliveryStatus.PENDING, now: true, dueInMs: waitMs };
    }
    const status = outcome === 'delivered' ? NotificationDeliveryStatus.DELIVERED : NotificationDeliveryStatus.SKIPPED;
    await this.deliveries.finish(key, status, this.clock.now());
    this.counters.record(key.channel, outcome === 'delivered' ? 'sent' : 'skipped');
    return { channel: key.channel, status, now: true };
  }

  /** In the background, at most once per `pruneEveryMs`, on the replica that dispatches. */
  private maybePrune(): void {
    if (this.pruning || this.clock.now().getTime() - this.lastPruneMs < this.options.pruneEveryMs) return;
    this.pruning = this.prune()
      .catch((e: unknown) => this.logger.warn(`Pruning notification deliveries failed: ${describeError(e)}`))
      .finally(() => (this.pruning = undefined));
  }

  /** Final: `given_up` when the attempts ran out, `refused` when the failure was permanent (same row state, told apart in the counts and the log). */
  private async giveUp(n: Notification, key: { eventId: string; channel: string }, error: string, outcome: 'given_up' | 'refused' = 'given_up'): Promise<ChannelDeliveryResult> {
    await this.deliveries.finish(key, NotificationDeliveryStatus.GIVEN_UP, this.clock.now(), error);
    this.counters.record(key.channel, outcome);
    const why = outcome === 'refused' ? 'refused permanently, not retried' : `retries exhausted (${this.options.retry.maxAttempts} attempts)`;
    this.logger.error(`Notification ${n.eventId} (${n.event}) for tenant ${n.tenantId} on ${key.channel} given up, ${why}: ${error}`);
    return { channel: key.channel, status: NotificationDeliveryStatus.GIVEN_UP, now: true };
  }
}

function keyOf(key: { eventId: string; channel: string }): string {
  return `${key.eventId}\u0000${key.channel}`;
}

/** `p`'s outcome when it settles within `ms`, else undefined (it keeps running). */
async function settledWithin<T>(p: Promise<T>, ms: number): Promise<{ result: () => T } | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ms)));
  try {
    return await Promise.race([p.then((v) => ({ result: () => v }), (e: unknown) => ({ result: (): T => { throw e; } })), timedOut]);
  } finally {
    clearTimeout(timer);
  }
}
