import { Logger, OnApplicationBootstrap, OnModuleDestroy } from '@nestjs/common';
import type { EventEmitter2 } from '@nestjs/event-emitter';
import { In } from 'typeorm';
import { Clock, SystemClock } from '../clock';
import { describeError } from '../errors';
import { createDistributedLock } from '../lock/create-distributed-lock';
import type { DistributedLock } from '../lock/distributed-lock';
import { LOCK_KEYS, prefixedLockKey } from '../lock/lock-keys';
import { LockLostError } from '../lock/lock.errors';
import { outboxBackoffMs, ResolvedOutboxOptions } from '../persistence/persistence.options';
import { TransactionRunner } from '../persistence/transaction-runner';
import { withTimeout } from '../timeout';
import { OutboxEventEntity } from './outbox-event.entity';
import { OutboxHandlerRegistry } from './outbox-handler-registry';
import { OutboxNudge } from './outbox';
import { isOutboxDeferral, type OutboxEvent, type OutboxPayload } from './outbox.types';

export interface OutboxDispatcherDeps {
  runner: TransactionRunner;
  registry: OutboxHandlerRegistry;
  options: ResolvedOutboxOptions;
  /** One replica dispatches at a time. @default createDistributedLock(runner.dataSource) */
  lock?: DistributedLock;
  clock?: Clock;
  /** The in-process bus: every event is also emitted as `emitAsync(event.name, event)`. */
  events?: Pick<EventEmitter2, 'emitAsync'>;
  /** Jitter source (tests pin it). */
  random?: () => number;
}

/** What one `drain()` did. `acquired: false` means another replica (or drain) held the lock. */
export interface OutboxDrainResult {
  acquired: boolean;
  delivered: number;
  failed: number;
  pruned: number;
}

/**
 * Delivers outbox events at least once: after a local commit (nudge) and every `pollIntervalMs`, it
 * takes the DistributedLock (one replica at a time), claims due rows oldest first in batches and
 * hands each event to the registered handlers and the EventEmitter2 bus (as the registry maps it), each
 * awaited at most `handlerTimeoutMs`, one event at a time; the delivered ones of a batch are marked in one write. A
 * failure (a timeout included) pushes the event
 * back with exponential backoff and records only the error's name/code; a handler's `OutboxDeferral`
 * pushes it back to when that handler asked, quietly. Delivered rows are pruned after `retentionMs`.
 * No ordering guarantee across events (retries reorder them).
 */
export class OutboxDispatcher extends OutboxNudge implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger(OutboxDispatcher.name);
  private readonly runner: TransactionRunner;
  private readonly registry: OutboxHandlerRegistry;
  private readonly options: ResolvedOutboxOptions;
  private readonly lock: DistributedLock;
  private readonly clock: Clock;
  private readonly events?: Pick<EventEmitter2, 'emitAsync'>;
  private readonly random: () => number;
  readonly lockKey: string;

  private started = false;
  private stopping = false;
  private inFlight?: Promise<void>;
  private again = false;
  private pollTimer?: NodeJS.Timeout;
  private retryTimer?: NodeJS.Timeout;
  private lastPruneMs = Number.NEGATIVE_INFINITY;

  constructor(deps: OutboxDispatcherDeps) {
    super();
    this.runner = deps.runner;
    this.registry = deps.registry;
    this.options = deps.options;
    this.lock = deps.lock ?? createDistributedLock(deps.runner.dataSource);
    this.clock = deps.clock ?? new SystemClock();
    this.events = deps.events;
    this.random = deps.random ?? Math.random;
    // Advisory locks are database-wide: hosts in different schemas of one database must not exclude each other.
    const schema = (deps.runner.dataSource.options as { schema?: string }).schema;
    this.lockKey = deps.options.lockKey ?? (schema ? prefixedLockKey('outboxDispatcherInSchema', schema) : LOCK_KEYS.outboxDispatcher);
  }

  onApplicationBootstrap(): void {
    this.start();
  }

  async onModuleDestroy(): Promise<void> {
    await this.stop();
  }

  /** Starts polling (if configured) and delivers what a previous process left behind. No-op when `dispatch` is off. */
  start(): void {
    if (!this.options.dispatch || this.started || this.stopping) return;
    this.started = true;
    if (this.options.pollIntervalMs > 0) {
      this.pollTimer = setInterval(() => this.nudge(), this.options.pollIntervalMs);
      this.pollTimer.unref();
    }
    this.nudge();
  }

  /** Stops the timers and waits for the batch in flight. The dispatcher cannot be restarted. */
  async stop(): Promise<void> {
    this.stopping = true;
    clearInterval(this.pollTimer);
    clearTimeout(this.retryTimer);
    await this.inFlight;
  }

  /** Asks for a drain soon (coalesced: one drain at a time, one more if nudged meanwhile). Never throws. */
  nudge(): void {
    if (!this.started || this.stopping) return;
    if (this.inFlight) {
      this.again = true;
      return;
    }
    // Detached: a nudge from inside a transaction must not make the dispatcher join it.
    this.inFlight = this.runner.detached(() => this.loop()).finally(() => {
      this.inFlight = undefined;
    });
  }

  /**
   * One pass under the lock: batch after batch until nothing is due, then pruning when it is time. Rejects with
   * `LockLostError` (LOCK_LOST) when the lock's session ended meanwhile: the event in flight was settled, no other was
   * started (the replica that took the lock, or the next pass, delivers them).
   */
  async drain(): Promise<OutboxDrainResult> {
    const result: OutboxDrainResult = { acquired: false, delivered: 0, failed: 0, pruned: 0 };
    const outcome = await this.lock.tryRun(this.lockKey, async (held) => {
      for (;;) {
        held.throwIfAborted();
        const batch = await this.claim();
        await this.deliverBatch(batch, held, result);
        if (batch.length < this.options.batchSize || this.stopping) break;
      }
      if (this.clock.nowMs() - this.lastPruneMs >= this.options.pruneEveryMs) {
        held.throwIfAborted();
        result.pruned = await this.prune();
        this.lastPruneMs = this.clock.nowMs();
      }
    });
    result.acquired = outcome.acquired;
    return result;
  }

  /** Deletes rows delivered more than `retentionMs` ago; returns how many. */
  async prune(): Promise<number> {
    const cutoff = this.clock.nowMs() - this.options.retentionMs;
    const res = await this.runner.run(() =>
      this.runner.manager
        .createQueryBuilder()
        .delete()
        .from(OutboxEventEntity)
        .where('delivered_at IS NOT NULL AND delivered_at < :cutoff', { cutoff })
        .execute(),
    );
    return res.affected ?? 0;
  }

  private async loop(): Promise<void> {
    do {
      this.again = false;
      try {
        const result = await this.drain();
        if (!result.acquired) this.retryLater();
      } catch (e) {
        if (e instanceof LockLostError) {
          // The rest is still due; if no replica took the lock (a restart ended the session), nothing else may nudge.
          this.logger.warn(`Outbox dispatch stopped: ${describeError(e)}; the rest is delivered by the next pass`);
          this.retryLater();
        } else this.logger.error(`Outbox dispatch failed: ${describeError(e)}`);
      }
    } while (this.again && !this.stopping);
  }

  /** Another replica holds the lock and may have finished its pass before our event committed. */
  private retryLater(): void {
    if (this.retryTimer || this.stopping) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.nudge();
    }, this.options.lockRetryMs);
    this.retryTimer.unref();
  }

  /**
   * Delivers a claimed batch one event at a time and marks the delivered ones in few writes: together when the batch
   * ends, sooner once the first of them waited MARK_DELIVERED_WITHIN_MS (slow handlers), at once when the lock is lost
   * (the replica taking it would claim them: not only after the event in flight, up to handlerTimeoutMs later), and
   * before an error leaves. One write per event was nearly all of a pass's time, and a write queues behind the writers
   * of the moment (SQLite's gate, the pool) once per event. A crash before the mark redelivers those events (at least
   * once, as a crash between a handler and its mark always did); this process claims its next batch only after the
   * mark, so it never delivers one twice itself.
   */
  private async deliverBatch(batch: OutboxEventEntity[], held: AbortSignal, result: OutboxDrainResult): Promise<void> {
    const delivered: string[] = [];
    let firstAtMs = 0;
    let markedOnLoss: Promise<void> | undefined;
    // Detached: `held` aborts in the context of whoever ended the lock (its session's socket), maybe a transaction's.
    const onLoss = () => (markedOnLoss = this.runner.detached(() => this.markDeliveredOrWarn(delivered.splice(0))));
    held.addEventListener('abort', onLoss, { once: true });
    try {
      for (const row of batch) {
        if (this.stopping) break; // stop() waits for one event, not the rest of the batch
        held.throwIfAborted(); // unlocked, it could deliver the event the other replica delivers too
        if (!(await this.deliver(row))) {
          result.failed++;
        } else {
          result.delivered++;
          if (delivered.push(row.id) === 1) firstAtMs = this.clock.nowMs();
        }
        if (delivered.length > 0 && this.clock.nowMs() - firstAtMs >= MARK_DELIVERED_WITHIN_MS) await this.markTaken(delivered);
      }
      await this.markTaken(delivered);
    } catch (e) {
      await this.markDeliveredOrWarn(delivered.splice(0));
      throw e;
    } finally {
      held.removeEventListener('abort', onLoss);
      await markedOnLoss;
    }
  }

  /**
   * Marks the ids `pending` holds, taken out of it first (a mark at lock loss meanwhile takes only later ones, never
   * the same); put back when the mark fails, so that the way out tries them once more.
   */
  private async markTaken(pending: string[]): Promise<void> {
    const ids = pending.splice(0);
    try {
      await this.markDelivered(ids);
    } catch (e) {
      pending.unshift(...ids);
      throw e;
    }
  }

  /** `markDelivered` on the way out (an error, a lost lock): a failure is a warning, those events are delivered again. */
  private markDeliveredOrWarn(ids: string[]): Promise<void> {
    return this.markDelivered(ids).catch((markError: unknown) =>
      this.logger.warn(`Outbox: ${ids.length} delivered event(s) not marked (${describeError(markError)}); they are delivered again`),
    );
  }

  /** One UPDATE for events every handler took. */
  private async markDelivered(ids: string[]): Promise<void> {
    if (ids.length === 0) return;
    const deliveredAt = new Date(this.clock.nowMs());
    // Writes go through run(): on SQLite an ungated write would land in another caller's open transaction.
    await this.runner.run(() => this.runner.manager.update(OutboxEventEntity, { id: In(ids) }, { deliveredAt }));
  }

  private claim(): Promise<OutboxEventEntity[]> {
    const now = this.clock.nowMs();
    // Through read(): on SQLite a row of a transaction still open must not be claimed.
    return this.runner.read(() =>
      this.runner.manager
        .getRepository(OutboxEventEntity)
        .createQueryBuilder('o')
        .where('o.deliveredAt IS NULL')
        .andWhere('o.availableAt <= :now', { now })
        .orderBy('o.availableAt', 'ASC')
        .addOrderBy('o.createdAt', 'ASC')
        .addOrderBy('o.id', 'ASC')
        .limit(this.options.batchSize)
        .getMany(),
    );
  }

  /** Delivers one event to every handler and the bus; true when all succeeded (the caller marks it), else backs it off. */
  private async deliver(row: OutboxEventEntity): Promise<boolean> {
    const event: OutboxEvent = Object.freeze({
      id: row.id,
      name: row.name,
      tenantId: row.tenantId,
      payload: row.payload as OutboxPayload,
      createdAt: row.createdAt,
      attempts: row.attempts,
    });
    const failures: unknown[] = [];
    // Every handler gets its try even when one fails, so one broken handler does not starve the others.
    // Each bounded by handlerTimeoutMs: one that hangs would hold every event behind it, the lock and stop().
    const { handlerTimeoutMs } = this.options;
    for (const handler of this.registry.handlersFor(row.name)) {
      try {
        await withTimeout(Promise.resolve().then(() => handler(event)), handlerTimeoutMs);
      } catch (e) {
        failures.push(e);
      }
    }
    if (this.events && this.registry.isOnBus(row.name)) {
      const events = this.events;
      try {
        await withTimeout(Promise.resolve().then(() => events.emitAsync(row.name, this.registry.busPayloadFor(event))), handlerTimeoutMs);
      } catch (e) {
        failures.push(e);
      }
    }
    if (failures.length === 0) return true;
    const now = this.clock.nowMs();
    const attempts = row.attempts + 1;
    const backoff = outboxBackoffMs(attempts, this.options.backoff, this.random);
    // Back when the first handler can make progress: a deferral when it asked, any other failure after the backoff.
    const delay = Math.min(...failures.map((e) => (isOutboxDeferral(e) ? deferredMs(e, backoff) : backoff)));
    const failed = failures.find((e) => !isOutboxDeferral(e));
    const lastError = describeError(failed ?? failures[0]);
    if (failed !== undefined) this.logger.warn(`Outbox event ${row.id} (${row.name}) failed delivery #${attempts}: ${lastError}; retry in ${delay} ms`);
    // Expected: the handler waits out a step of its own, and logs its own failures.
    else this.logger.debug(`Outbox event ${row.id} (${row.name}) deferred by its handler (#${attempts}: ${lastError}); redelivered in ${delay} ms`);
    await this.runner.run(() =>
      this.runner.manager.update(OutboxEventEntity, { id: row.id }, { attempts, availableAt: new Date(now + delay), lastError }),
    );
    return false;
  }
}

/** Delivered events wait at most this long for their mark while slow handlers hold the rest of their batch. */
const MARK_DELIVERED_WITHIN_MS = 1000;

/** A day: a handler asking for longer (a bug, a clock jump) still sees its event again within one. */
const MAX_DEFERRAL_MS = 86_400_000;

/** How long a deferral asks to wait: its `retryAfterMs` (1 ms .. a day), else the usual backoff. */
function deferredMs(deferral: { retryAfterMs?: number }, backoff: number): number {
  const asked = deferral.retryAfterMs;
  if (typeof asked !== 'number' || !Number.isFinite(asked)) return backoff;
  return Math.min(MAX_DEFERRAL_MS, Math.max(1, Math.ceil(asked)));
}
