import type { FactoryProvider } from '@nestjs/common';
import { getDataSourceToken } from '@nestjs/typeorm';
import { ADVISORY_LOCK_NAMESPACES, KeyedMutex, TransactionGate, advisoryLockKey } from '@app/common';
import type { DataSource, EntityManager } from 'typeorm';

/**
 * Keeps each tenant's chain linear: whoever appends holds the chain's lock from reading the head
 * until the row's transaction ends, so two writers never link to the same head.
 *
 * - PostgreSQL: `pg_advisory_xact_lock(hash('cv-audit-chain:'+tenant))` inside the writer's
 *   transaction — held across replicas, released by COMMIT/ROLLBACK (also the caller's).
 * - SQLite (one process, ONE shared connection): an in-process mutex makes "read head + insert"
 *   atomic for every writer; our own transactions also go through the process-wide
 *   `TransactionGate`, so they do not nest inside another lib's open transaction.
 */
export abstract class ChainWriter {
  /** Runs `work` in a new transaction holding the locks of `tenantIds`. */
  abstract inOwnTransaction<T>(tenantIds: string[], work: (m: EntityManager) => Promise<T>): Promise<T>;

  /** Runs `work` in the caller's open transaction holding the locks of `tenantIds`. */
  abstract inCallerTransaction<T>(manager: EntityManager, tenantIds: string[], work: (m: EntityManager) => Promise<T>): Promise<T>;

  /** Runs read-only `work` on a stable view of the chains (no concurrent prune). */
  abstract consistentRead<T>(work: (m: EntityManager) => Promise<T>): Promise<T>;
}

class PostgresChainWriter extends ChainWriter {
  constructor(private readonly dataSource: DataSource) {
    super();
  }

  inOwnTransaction<T>(tenantIds: string[], work: (m: EntityManager) => Promise<T>): Promise<T> {
    return this.dataSource.transaction(async (m) => {
      await this.lock(m, tenantIds);
      return work(m);
    });
  }

  async inCallerTransaction<T>(manager: EntityManager, tenantIds: string[], work: (m: EntityManager) => Promise<T>): Promise<T> {
    await this.lock(manager, tenantIds);
    return work(manager);
  }

  consistentRead<T>(work: (m: EntityManager) => Promise<T>): Promise<T> {
    // One snapshot for the whole read: a prune committing meanwhile cannot tear it.
    return this.dataSource.transaction('REPEATABLE READ', work);
  }

  private async lock(m: EntityManager, tenantIds: string[]): Promise<void> {
    // Sorted, so two multi-chain writers never wait on each other in a cycle.
    for (const t of [...new Set(tenantIds)].sort()) {
      await m.query('SELECT pg_advisory_xact_lock($1::bigint)', [advisoryLockKey(t, ADVISORY_LOCK_NAMESPACES.auditChain)]);
    }
  }
}

class SerialChainWriter extends ChainWriter {
  private readonly mutex = new KeyedMutex();
  private readonly gate: TransactionGate;

  constructor(private readonly dataSource: DataSource) {
    super();
    this.gate = TransactionGate.for(dataSource);
  }

  inOwnTransaction<T>(_tenantIds: string[], work: (m: EntityManager) => Promise<T>): Promise<T> {
    // One connection: chains are not independent transactions here, so one lock for all of them.
    return this.gate.exclusive(() => this.mutex.runExclusive('chains', () => this.dataSource.transaction(work)));
  }

  inCallerTransaction<T>(manager: EntityManager, _tenantIds: string[], work: (m: EntityManager) => Promise<T>): Promise<T> {
    return this.mutex.runExclusive('chains', () => work(manager));
  }

  consistentRead<T>(work: (m: EntityManager) => Promise<T>): Promise<T> {
    return this.mutex.runExclusive('maintenance', () => work(this.dataSource.manager));
  }

  /** Prune takes this too, so a verify never sees half a prune. */
  maintenance<T>(work: () => Promise<T>): Promise<T> {
    return this.mutex.runExclusive('maintenance', work);
  }
}

/** Runs prune work exclusive with `consistentRead` where the database does not isolate it already. */
export function withMaintenance<T>(writer: ChainWriter, work: () => Promise<T>): Promise<T> {
  return writer instanceof SerialChainWriter ? writer.maintenance(work) : work();
}

/**
 * The ChainWriter of the default DataSource. One per AuditModule: writing, verifying and pruning
 * must share it, because on SQLite its mutexes are what keep them apart.
 */
export const CHAIN_WRITER_PROVIDER: FactoryProvider<ChainWriter> = {
  provide: ChainWriter,
  useFactory: (dataSource: DataSource): ChainWriter =>
    dataSource.options.type === 'postgres' ? new PostgresChainWriter(dataSource) : new SerialChainWriter(dataSource),
  inject: [getDataSourceToken()],
};
