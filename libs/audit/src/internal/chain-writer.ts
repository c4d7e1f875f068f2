import type { FactoryProvider } from '@nestjs/common';
import { getDataSourceToken } from '@nestjs/typeorm';
import { ADVISORY_LOCK_NAMESPACES, KeyedMutex, TransactionGate, advisoryLockKey, isAdvisoryLockKey } from '@app/common';
import type { DataSource, EntityManager } from 'typeorm';
import { AUDIT_INDEX, AUDIT_TABLE } from '../entities/audit-log-entry.entity';

/** Attempts of a locked append that collided with an optimistic one (see `isChainCollision`). */
const COLLISION_ATTEMPTS = 5;
const SAVEPOINT = 'cv_audit_append';

/**
 * True when `e` is a unique violation of a chain's (tenant, sequence) index: another writer appended
 * the sequence we linked to, and nothing of our statement was inserted.
 */
export function isChainCollision(e: unknown): boolean {
  const d = ((e as { driverError?: unknown })?.driverError ?? e) as { code?: unknown; constraint?: unknown; message?: unknown } | undefined;
  if (d?.code === '23505') return d.constraint === AUDIT_INDEX.chain;
  // SQLite names the index's columns, not the index: only the chain's unique index has exactly these.
  return d?.code === 'SQLITE_CONSTRAINT_UNIQUE' && typeof d.message === 'string' && d.message.endsWith(SQLITE_CHAIN_COLUMNS);
}

const SQLITE_CHAIN_COLUMNS = `${AUDIT_TABLE}.tenant_id, ${AUDIT_TABLE}.sequence`;

/**
 * Keeps each tenant's chain linear: whoever appends holds the chain's lock from reading the head
 * until the row's transaction ends, so two writers never link to the same head.
 *
 * - PostgreSQL: `pg_advisory_xact_lock(hash('cv-audit-chain:'+tenant))` inside the writer's
 *   transaction — held across replicas, released by COMMIT/ROLLBACK (also the caller's).
 * - SQLite (one process, ONE shared connection): an in-process mutex makes "read head + insert"
 *   atomic for every writer; our own transactions also go through the process-wide
 *   `TransactionGate`, so they do not nest inside another lib's open transaction.
 *
 * On PostgreSQL a read batch may also append WITHOUT the lock (`optimisticAppend`: one autocommit
 * INSERT linked to a cached head, which the (tenant, sequence) unique index rejects whole when the
 * head moved). So the locked paths here retry an append that collided with such an insert: their
 * own transaction from the start, a caller's from a savepoint — the caller's transaction survives.
 */
export abstract class ChainWriter {
  /** Whether appends without the lock are allowed (they are safe only where locked ones retry collisions). */
  abstract readonly optimisticAppend: boolean;

  /** Runs `work` in a new transaction holding the locks of `tenantIds`. */
  abstract inOwnTransaction<T>(tenantIds: string[], work: (m: EntityManager) => Promise<T>): Promise<T>;

  /** Runs `work` in the caller's open transaction holding the locks of `tenantIds`. */
  abstract inCallerTransaction<T>(manager: EntityManager, tenantIds: string[], work: (m: EntityManager) => Promise<T>): Promise<T>;

  /** Runs read-only `work` on a stable view of the chains (no concurrent prune). */
  abstract consistentRead<T>(work: (m: EntityManager) => Promise<T>): Promise<T>;
  /** `consistentRead` for a caller inside `withMaintenance` (retention), which already keeps writers out on SQLite. */
  abstract readDuringMaintenance<T>(work: (m: EntityManager) => Promise<T>): Promise<T>;
}

class PostgresChainWriter extends ChainWriter {
  readonly optimisticAppend = true;

  constructor(private readonly dataSource: DataSource) {
    super();
  }

  async inOwnTransaction<T>(tenantIds: string[], work: (m: EntityManager) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.dataSource.transaction(async (m) => {
          if (tenantIds.length > 0) await m.query(lockStatements(tenantIds));
          return work(m);
        });
      } catch (e) {
        if (attempt >= COLLISION_ATTEMPTS || !isChainCollision(e)) throw e;
      }
    }
  }

  async inCallerTransaction<T>(manager: EntityManager, tenantIds: string[], work: (m: EntityManager) => Promise<T>): Promise<T> {
    // The savepoint goes with the locks (one round trip): a collision must not abort the caller's transaction.
    await manager.query([...(tenantIds.length > 0 ? [lockStatements(tenantIds)] : []), `SAVEPOINT ${SAVEPOINT}`].join('; '));
    for (let attempt = 1; ; attempt++) {
      try {
        const result = await work(manager);
        await manager.query(`RELEASE SAVEPOINT ${SAVEPOINT}`);
        return result;
      } catch (e) {
        if (attempt >= COLLISION_ATTEMPTS || !isChainCollision(e)) throw e;
        await manager.query(`ROLLBACK TO SAVEPOINT ${SAVEPOINT}`);
      }
    }
  }

  consistentRead<T>(work: (m: EntityManager) => Promise<T>): Promise<T> {
    // One snapshot for the whole read: a prune committing meanwhile cannot tear it.
    return this.dataSource.transaction('REPEATABLE READ', work);
  }
  readDuringMaintenance<T>(work: (m: EntityManager) => Promise<T>): Promise<T> {
    return this.consistentRead(work);
  }

}

/**
 * The advisory-lock key of each chain, in the one order every writer takes them (by tenant id), so two
 * multi-chain writers never wait on each other in a cycle. Integers we computed, checked before use.
 */
export function chainLockKeys(tenantIds: string[]): string[] {
  return [...new Set(tenantIds)].sort().map((t) => {
    const key = advisoryLockKey(t, ADVISORY_LOCK_NAMESPACES.auditChain);
    if (!isAdvisoryLockKey(key)) throw new Error('advisory lock key is not an integer');
    return key;
  });
}

/**
 * `pg_advisory_xact_lock` of each chain (`chainLockKeys`), as ONE multi-statement text (no bind
 * parameters, so one round trip for any number of chains).
 */
export function lockStatements(tenantIds: string[]): string {
  return chainLockKeys(tenantIds)
    .map((key) => `SELECT pg_advisory_xact_lock('${key}'::bigint)`)
    .join('; ');
}

class SerialChainWriter extends ChainWriter {
  /** One connection behind a mutex: no one appends concurrently, so nothing to gain. */
  readonly optimisticAppend = false;
  private readonly mutex = new KeyedMutex();
  private readonly gate: TransactionGate;

  constructor(private readonly dataSource: DataSource) {
    super();
    this.gate = TransactionGate.for(dataSource);
  }

  inOwnTransaction<T>(_tenantIds: string[], work: (m: EntityManager) => Promise<T>): Promise<T> {
    // One connection: chains are not independent transactions here, so one lock for all of them.
    // Through the gate's `transaction`: durable when it resolves (the commit's flush is off the event loop).
    return this.gate.transaction((m) => this.mutex.runExclusive('chains', () => work(m)));
  }

  inCallerTransaction<T>(manager: EntityManager, _tenantIds: string[], work: (m: EntityManager) => Promise<T>): Promise<T> {
    return this.mutex.runExclusive('chains', () => work(manager));
  }

  consistentRead<T>(work: (m: EntityManager) => Promise<T>): Promise<T> {
    return this.mutex.runExclusive('maintenance', () => work(this.dataSource.manager));
  }
  readDuringMaintenance<T>(work: (m: EntityManager) => Promise<T>): Promise<T> {
    // The caller holds the maintenance mutex (`consistentRead` would wait for it): read directly.
    return work(this.dataSource.manager);
  }


  /** See `exclusiveOfSharedConnection`. */
  exclusiveOfConnection<T>(work: () => Promise<T>): Promise<T> {
    return this.gate.exclusive(() => this.mutex.runExclusive('chains', work));
  }

  /** Prune takes this too, so a verify never sees half a prune. */
  maintenance<T>(work: () => Promise<T>): Promise<T> {
    return this.mutex.runExclusive('maintenance', work);
  }
}

/**
 * Runs `work` — a write of the chains on ANOTHER connection of the same SQLite file (`SqliteWriteWorker`)
 * — while no transaction is open on the shared connection and no append holds the chains here: the
 * worker's write then never overlaps one of ours (SQLite lets one connection write at a time, and a
 * transaction of ours that had read before the worker committed could not write after it).
 */
export function exclusiveOfSharedConnection<T>(writer: ChainWriter, work: () => Promise<T>): Promise<T> {
  if (!(writer instanceof SerialChainWriter)) throw new Error('exclusiveOfSharedConnection is for the SQLite chain writer');
  return writer.exclusiveOfConnection(work);
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
