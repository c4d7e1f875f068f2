import type { EntityManager } from 'typeorm';
import { insertPlainRows, type StoredRow } from '../persistence/plain-insert';
import { OutboxEventEntity } from './outbox-event.entity';

/** A new outbox row, its payload already serialised (validation measured it). */
export interface NewOutboxRow {
  id: string;
  name: string;
  tenantId: string | null;
  payloadJson: string;
  createdAtMs: number;
}

/** The values the entity's transformers would store (a new row: due now, not attempted, not delivered). */
const stored = (r: NewOutboxRow): StoredRow<OutboxEventEntity> => ({
  id: r.id,
  name: r.name,
  tenantId: r.tenantId,
  payload: r.payloadJson,
  createdAt: r.createdAtMs,
  availableAt: r.createdAtMs,
  attempts: 0,
  lastError: null,
  deliveredAt: null,
});

/**
 * Inserts new outbox rows with plain SQL (`insertPlainRows`) in `m`'s transaction: TypeORM's insert
 * builder cost more than the database's work for a batch of events.
 */
export function insertOutboxRows(m: EntityManager, rows: NewOutboxRow[]): Promise<void> {
  return insertPlainRows(m, OutboxEventEntity, rows, stored);
}
