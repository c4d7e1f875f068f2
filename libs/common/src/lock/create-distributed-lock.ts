import type { DataSource } from 'typeorm';
import { DistributedLock } from './distributed-lock';
import { InProcessLock } from './in-process-lock';
import { PostgresAdvisoryLock } from './postgres-advisory-lock';

/**
 * Picks the lock for a DataSource: PostgreSQL advisory locks (exclusive across replicas) for
 * `postgres`, an in-process lock otherwise (SQLite = one process). Typical host wiring:
 * `{ provide: DistributedLock, useFactory: createDistributedLock, inject: [DataSource] }`.
 */
export function createDistributedLock(dataSource: DataSource): DistributedLock {
  return dataSource.options.type === 'postgres' ? new PostgresAdvisoryLock(dataSource) : new InProcessLock();
}
