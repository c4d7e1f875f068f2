import { OutboxEventEntity, TransactionRunner } from '@app/common';
import { NotificationDeliveryStatus } from '../notification.types';
import { NotificationDeliveryEntity } from './notification.entities';

export interface DeliveryKey {
  eventId: string;
  channel: string;
}

/**
 * Every SQL access to `cv_notification_deliveries`, on the host's TransactionRunner: reads through
 * `runner.read`, writes through `runner.run` (each its own short transaction; they join one if open).
 * The claim is a compare-and-set on `attempts`, so two deliveries of one event racing (a redelivery
 * while a slow attempt is still running elsewhere) never both send.
 */
export class NotificationDeliveryRepository {
  constructor(private readonly runner: TransactionRunner) {}

  /** The pending row of (event, channel), unless one exists already. */
  ensure(key: DeliveryKey & { tenantId: string; eventName: string }, now: Date): Promise<void> {
    const row: NotificationDeliveryEntity = {
      ...key,
      status: NotificationDeliveryStatus.PENDING,
      attempts: 0,
      nextAttemptAt: now,
      lastError: null,
      createdAt: now,
      updatedAt: now,
      finishedAt: null,
    };
    return this.runner.run(async () => {
      await this.runner.manager.createQueryBuilder().insert().into(NotificationDeliveryEntity).values(row).orIgnore().execute();
    });
  }

  find(key: DeliveryKey): Promise<NotificationDeliveryEntity | null> {
    return this.runner.read(() => this.runner.manager.findOne(NotificationDeliveryEntity, { where: { eventId: key.eventId, channel: key.channel } }));
  }

  listForEvent(eventId: string): Promise<NotificationDeliveryEntity[]> {
    return this.runner.read(() => this.runner.manager.find(NotificationDeliveryEntity, { where: { eventId }, order: { channel: 'ASC' } }));
  }

  /**
   * Takes attempt `seenAttempts + 1` of a pending, due row and leases it until `leaseUntil` (the
   * backoff before the next attempt if this one never reports back). False: someone else took it,
   * it is finished, or it is not due.
   */
  claim(key: DeliveryKey, seenAttempts: number, now: Date, leaseUntil: Date): Promise<boolean> {
    return this.runner.run(async () => {
      const result = await this.runner.manager
        .createQueryBuilder()
        .update(NotificationDeliveryEntity)
        .set({ attempts: seenAttempts + 1, nextAttemptAt: leaseUntil, updatedAt: now })
        .where('event_id = :eventId AND channel = :channel AND status = :pending AND attempts = :seen AND next_attempt_at <= :now', {
          ...key,
          pending: NotificationDeliveryStatus.PENDING,
          seen: seenAttempts,
          now: now.getTime(),
        })
        .execute();
      return result.affected === 1;
    });
  }

  /** Final state of a pending row: delivered, skipped or given up. */
  finish(key: DeliveryKey, status: Exclude<NotificationDeliveryStatus, NotificationDeliveryStatus.PENDING>, now: Date, lastError: string | null = null): Promise<void> {
    return this.runner.run(async () => {
      const set: Partial<NotificationDeliveryEntity> = { status, updatedAt: now, finishedAt: now };
      if (lastError !== null) set.lastError = lastError;
      await this.runner.manager
        .createQueryBuilder()
        .update(NotificationDeliveryEntity)
        .set(set)
        .where('event_id = :eventId AND channel = :channel AND status = :pending', { ...key, pending: NotificationDeliveryStatus.PENDING })
        .execute();
    });
  }

  /** A failed attempt that will be retried: not before `nextAttemptAt`. */
  recordFailure(key: DeliveryKey, now: Date, nextAttemptAt: Date, lastError: string): Promise<void> {
    return this.runner.run(async () => {
      await this.runner.manager
        .createQueryBuilder()
        .update(NotificationDeliveryEntity)
        .set({ lastError, nextAttemptAt, updatedAt: now })
        .where('event_id = :eventId AND channel = :channel AND status = :pending', { ...key, pending: NotificationDeliveryStatus.PENDING })
        .execute();
    });
  }

  /**
   * Deletes rows finished before `before`, except those of an outbox event still undelivered (another
   * handler of it may fail and bring it back, and the row is what keeps it from notifying twice).
   */
  pruneFinished(before: Date): Promise<number> {
    return this.runner.run(async () => {
      const result = await this.runner.manager
        .createQueryBuilder()
        .delete()
        .from(NotificationDeliveryEntity)
        .where('status <> :pending AND finished_at < :before', { pending: NotificationDeliveryStatus.PENDING, before: before.getTime() })
        // The outbox table by its metadata: schema-qualified when the DataSource names a schema (a bare
        // `cv_outbox` resolved through search_path, and failed wherever that is not the schema).
        .andWhere(`NOT EXISTS (SELECT 1 FROM ${this.outboxTable()} o WHERE o.id = event_id AND o.delivered_at IS NULL)`)
        .execute();
      return result.affected ?? 0;
    });
  }

  private outboxTable(): string {
    const connection = this.runner.manager.connection;
    const { schema, tableName } = connection.getMetadata(OutboxEventEntity);
    return schema ? `${connection.driver.escape(schema)}.${connection.driver.escape(tableName)}` : connection.driver.escape(tableName);
  }

  /** Rows per status (and channel), for metrics and the operator. */
  async countByStatus(tenantId?: string): Promise<Array<{ channel: string; status: string; count: number }>> {
    const rows = await this.runner.read(() => {
      const qb = this.runner.manager
        .createQueryBuilder(NotificationDeliveryEntity, 'd')
        .select('d.channel', 'channel')
        .addSelect('d.status', 'status')
        .addSelect('COUNT(*)', 'n')
        .groupBy('d.channel')
        .addGroupBy('d.status');
      if (tenantId) qb.where('d.tenant_id = :tenantId', { tenantId });
      return qb.getRawMany<{ channel: string; status: string; n: string | number }>();
    });
    return rows.map((r) => ({ channel: r.channel, status: r.status, count: Number(r.n) })).sort((a, b) => (a.channel + a.status).localeCompare(b.channel + b.status));
  }
}
