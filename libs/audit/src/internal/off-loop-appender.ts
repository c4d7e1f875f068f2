import type { Logger } from '@nestjs/common';
import { SqliteWriteWorker, describeError, type SqliteStatement } from '@app/common';
import type { DataSource } from 'typeorm';
import { linkRows } from './chain-link';
import { ChainWriter, exclusiveOfSharedConnection, isChainCollision } from './chain-writer';
import { ChainHeadCache } from './head-cache';
import type { PreparedEvent } from './prepare-event';
import { auditRowSqliteStatements } from './row-insert';

/**
 * SQLite file database (AuditModule `sqliteWriteWorker`): appends read batches through `SqliteWriteWorker`,
 * a worker thread with its own connection to the file, so their INSERT, COMMIT and fsync leave the event loop.
 * Only batches whose chains' heads this process knows (`ChainHeadCache`, from its own commits); the others,
 * and every batch once the worker is gone, go the locked way on the main connection (the writer's).
 */
export class OffLoopAppender {
  private worker?: SqliteWriteWorker;
  private readonly started: Promise<void>;

  /**
   * Starts the worker under the shared connection's gate: no transaction of ours is open then, so the
   * connection shows its own `synchronous` (a gated transaction runs with NORMAL until its own flush), which
   * the worker copies. `onStarted` runs once it is running; batches before that go on the main connection.
   */
  constructor(
    private readonly dataSource: DataSource,
    private readonly chains: ChainWriter,
    private readonly logger: Logger,
    onStarted: () => void,
  ) {
    this.started = exclusiveOfSharedConnection(chains, async () => {
      this.worker = SqliteWriteWorker.for(dataSource);
      if (this.worker) onStarted();
    }).catch((e: unknown) => {
      this.logger.warn(`The SQLite write worker did not start (${describeError(e)}); read batches are written on the main connection`);
    });
  }

  /** Whether batches can go to the worker now. */
  get running(): boolean {
    return this.worker?.running === true;
  }

  /**
   * Appends a batch when every chain's head is cached: the rows are linked to those heads and inserted and
   * committed (and flushed) by the worker's connection while this thread serves requests, all under the
   * shared connection's gate and the chain mutex — so only another process can have moved a head, and the
   * chain's unique index then refuses the whole batch. False when the batch must go the locked way: a head
   * unknown or moved, or the worker gone (a worker that died mid-batch leaves it unknown whether that batch
   * committed: its rows may then be there twice, never missing). Other failures are thrown.
   */
  append(heads: ChainHeadCache, byTenant: Map<string, PreparedEvent[]>, tenantIds: string[]): Promise<boolean> {
    const worker = this.worker;
    if (!worker?.running) return Promise.resolve(false);
    return exclusiveOfSharedConnection(this.chains, async () => {
      const cached = heads.lookup(tenantIds);
      if (!cached) return false;
      const rows = tenantIds.flatMap((t) => linkRows(byTenant.get(t)!, cached.heads.get(t)!));
      try {
        await worker.transaction(auditRowSqliteStatements(this.dataSource, rows));
      } catch (e) {
        heads.forget(tenantIds);
        if (!worker.running) {
          this.logger.warn(`The SQLite write worker stopped (${describeError(e)}); read batches are written on the main connection`);
          return false;
        }
        if (isChainCollision(e)) return false;
        throw e;
      }
      heads.remember(rows.map((r) => r.row), cached.versions);
      return true;
    });
  }

  /**
   * Runs `statements` in one transaction of the worker; false (nothing run) when it does not run. The caller
   * holds `exclusiveOfSharedConnection`, as `append` does.
   */
  async transaction(statements: SqliteStatement[]): Promise<boolean> {
    const worker = this.worker;
    if (!worker?.running) return false;
    await worker.transaction(statements);
    return true;
  }

  /** Once started, lets the worker finish what it was given and ends it. */
  async stop(): Promise<void> {
    await this.started;
    await this.worker?.stop();
  }
}
