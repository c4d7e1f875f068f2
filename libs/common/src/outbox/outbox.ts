import { randomUUID } from 'node:crypto';
import { IsNull } from 'typeorm';
import { Clock, SystemClock } from '../clock';
import { OutboxInvalidEventError, OutboxNoTransactionError } from '../persistence/persistence.errors';
import { TransactionRunner } from '../persistence/transaction-runner';
import { OutboxEventEntity } from './outbox-event.entity';
import { insertOutboxRows, type NewOutboxRow } from './outbox-insert';
import type { OutboxEventInput } from './outbox.types';

/** Anything `Outbox.add` can wake up after commit (the local `OutboxDispatcher`). */
export abstract class OutboxNudge {
  abstract nudge(): void;
}

const DEFAULT_MAX_PAYLOAD_BYTES = 16_384;

/** What the outbox has not delivered yet, across every replica (operators' metrics). */
export interface OutboxBacklog {
  /** Events not yet delivered to every handler. */
  pending: number;
  /** Of those, events whose delivery has failed at least once (backing off). */
  retrying: number;
  /** When the oldest of them was added; null when none is pending. */
  oldestCreatedAt: Date | null;
}

/**
 * Writes events into the transactional outbox, in the ambient `TransactionRunner` transaction, so an
 * event commits (or rolls back) with the change it announces. After commit it nudges the local
 * dispatcher, which delivers at least once. Built by `PersistenceModule` (or by hand: `new Outbox(runner, clock, dispatcher)`).
 */
export class Outbox {
  private readonly clock: Clock;

  constructor(
    private readonly runner: TransactionRunner,
    clock?: Clock,
    private readonly dispatcher?: OutboxNudge,
    private readonly maxPayloadBytes = DEFAULT_MAX_PAYLOAD_BYTES,
  ) {
    this.clock = clock ?? new SystemClock();
  }

  /**
   * Adds `event` to the ambient transaction and returns its id (the idempotency key handlers see).
   * Throws `OutboxNoTransactionError` outside `runner.run()`, `OutboxInvalidEventError` on a bad event.
   */
  async add(event: OutboxEventInput): Promise<string> {
    const [id] = await this.addMany([event]);
    return id;
  }

  /**
   * `add` for several events, in one multi-row INSERT (a change announcing many events pays one
   * statement, not one each): every event is checked before any is written, so a bad one adds none.
   * Returns their ids in order.
   */
  async addMany(events: OutboxEventInput[]): Promise<string[]> {
    if (!Array.isArray(events)) throw new OutboxInvalidEventError('Invalid outbox events: expected an array');
    const payloads = events.map((event) => this.validate(event));
    if (!this.runner.inTransaction()) throw new OutboxNoTransactionError(events[0]?.name ?? '(none)');
    if (events.length === 0) return [];
    const createdAtMs = this.clock.now().getTime();
    const rows: NewOutboxRow[] = events.map((event, i) => ({ id: randomUUID(), name: event.name, tenantId: event.tenantId ?? null, payloadJson: payloads[i], createdAtMs }));
    await insertOutboxRows(this.runner.manager, rows);
    if (this.dispatcher) {
      const dispatcher = this.dispatcher;
      this.runner.afterCommit(() => dispatcher.nudge());
    }
    return rows.map((r) => r.id);
  }

  /**
   * Marks an event delivered that its producer handled itself (at once, after its commit): the dispatcher no longer
   * delivers it. A delivery claimed already still runs; its handler asks `isDelivered` and has nothing to do. Only for an
   * event no one else needs: a lib's own work, whose handler is the producer's and which is off the bus. Idempotent.
   */
  async markDelivered(id: string): Promise<void> {
    const deliveredAt = this.clock.now();
    // Writes go through run(): on SQLite an ungated write would land in another caller's open transaction.
    await this.runner.run(() => this.runner.manager.update(OutboxEventEntity, { id, deliveredAt: IsNull() }, { deliveredAt }));
  }

  /** Whether an event is delivered — by the dispatcher or `markDelivered` — or gone (pruned, delivered long ago). */
  async isDelivered(id: string): Promise<boolean> {
    const row = await this.runner.read(() => this.runner.manager.getRepository(OutboxEventEntity).findOne({ where: { id }, select: { id: true, deliveredAt: true } }));
    return !row || row.deliveredAt !== null;
  }

  /**
   * The undelivered events (one query on the partial index of pending rows): a backlog that keeps growing, or an
   * oldest event that keeps ageing, means no replica is delivering or a handler keeps failing.
   */
  async backlog(): Promise<OutboxBacklog> {
    const raw = await this.runner.read(() =>
      this.runner.manager
        .createQueryBuilder(OutboxEventEntity, 'o')
        .select('COUNT(*)', 'pending')
        .addSelect('SUM(CASE WHEN o.attempts > 0 THEN 1 ELSE 0 END)', 'retrying')
        .addSelect('MIN(o.createdAt)', 'oldest')
        .where('o.deliveredAt IS NULL')
        .getRawOne<{ pending: string | number; retrying: string | number | null; oldest: string | number | null }>(),
    );
    return {
      pending: Number(raw?.pending ?? 0),
      retrying: Number(raw?.retrying ?? 0),
      oldestCreatedAt: raw?.oldest === null || raw?.oldest === undefined ? null : new Date(Number(raw.oldest)),
    };
  }

  /** Checks an event; returns its payload as JSON (what the row stores). */
  private validate(event: OutboxEventInput): string {
    const problems: string[] = [];
    let json = '';
    if (typeof event?.name !== 'string' || event.name.length === 0 || event.name.length > 128) {
      problems.push('name must be a string of 1 to 128 characters');
    }
    if (event?.tenantId != null && (typeof event.tenantId !== 'string' || event.tenantId.length === 0 || event.tenantId.length > 128)) {
      problems.push('tenantId must be null or a string of 1 to 128 characters');
    }
    const payload = event?.payload;
    if (payload === null || typeof payload !== 'object' || Array.isArray(payload)) {
      problems.push('payload must be a JSON object');
    } else {
      try {
        json = JSON.stringify(payload);
      } catch {
        problems.push('payload must be serialisable as JSON');
      }
      if (Buffer.byteLength(json, 'utf8') > this.maxPayloadBytes) problems.push(`payload must be at most ${this.maxPayloadBytes} bytes of JSON (ids and metadata only)`);
    }
    if (problems.length > 0) {
      const name = typeof event?.name === 'string' ? event.name.slice(0, 128) : '?';
      throw new OutboxInvalidEventError(`Invalid outbox event "${name}": ${problems.join('; ')}`);
    }
    return json;
  }
}
