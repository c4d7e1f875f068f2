import { insertPlainRows } from '@app/common';
import type { EntityManager, EntityTarget, ObjectLiteral } from 'typeorm';

/**
 * Inserts complete new rows of `entity` with plain SQL (`insertPlainRows`) in `m`'s transaction:
 * TypeORM's insert builder cost more CPU than the database's work for `storeMany` and a migration's
 * batches. Values go through the columns' transformers as in TypeORM's builder; a property left
 * undefined gets the column's literal default or NULL. Nothing is read back.
 */
export function insertRows<T extends ObjectLiteral>(m: EntityManager, entity: EntityTarget<T>, rows: readonly T[]): Promise<void> {
  return insertPlainRows(m, entity, rows);
}
