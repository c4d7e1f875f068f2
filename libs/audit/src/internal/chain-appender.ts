import type { Logger } from '@nestjs/common';
import { NamedStatementRefusedError, isSessionEnded, type TransactionRunner } from '@app/common';
import type { DataSource, EntityManager } from 'typeorm';
import type { ResolvedAuditOptions } from '../audit.options';
import type { AuditRepository, ChainHead } from '../audit.repository';
import type { AuditLogEntry } from '../entities/audit-log-entry.entity';
import { linkRows } from './chain-link';
import { ChainWriter, chainLockKeys, isChainCollision } from './chain-writer';
import { ChainHeadCache } from './head-cache';
import { OffLoopAppender } from './off-loop-appender';
import type { PreparedEvent } from './prepare-event';
import { QueryIndexCatchUp, queryIndexesDeferred } from './query-index-catch-up';

/** What a locked attempt linked: its events and the id of its first row (set just before its INSERT). */
interface Linked {
  events?: Map<string, PreparedEvent[]>;
  first?: string;
}

/**
 * The writer's appends to the chains, and which way each goes: a `record()` in the caller's transaction or
 * its own (`inChainTransaction`), a read batch optimistically after cached heads (PostgreSQL), through the
 * write worker (`OffLoopAppender`, SQLite) or the locked way. Owns what those share: the head cache, the
 * write worker and the query indexes' catch-up, which learns of every row appended here.
 */
export class ChainAppender {
  /** Chain heads our commits left, for optimistic read batches (see `writeBatch`): PostgreSQL, SQLite with `offLoop`. */
  private heads?: ChainHeadCache;
  /** SQLite file database: read batches are written by a worker thread on its own connection (`sqliteWriteWorker`). */
  private offLoop?: OffLoopAppender;
  /** SQLite: moves appended rows into the query indexes in the background (query-index-catch-up.ts). */
  private catchUp?: QueryIndexCatchUp;
  /** PostgreSQL: read batches as a named statement (`preparedStatements`, until a pooler refuses one). */
  private prepared: boolean;
  /**
   * PostgreSQL: events whose statement lost its session (it may have committed unseen), each with the id of the
   * first row of every such statement (a delayed one may still land while the chain's head is the one it linked
   * to; at most one of them can). Kept across a failed batch: the buffer retries the same events, which look first.
   */
  private readonly maybeWritten = new WeakMap<PreparedEvent, string[]>();

  constructor(
    private readonly rows: AuditRepository,
    private readonly chains: ChainWriter,
    private readonly options: ResolvedAuditOptions,
    private readonly dataSource: DataSource,
    private readonly runner: TransactionRunner,
    /** The writer's: these lines name AuditWriter, as before the split. */
    private readonly logger: Logger,
  ) {
    this.prepared = options.preparedStatements;
    if (chains.optimisticAppend) this.heads = ChainHeadCache.for(dataSource);
  }

  /** Starts the write worker and the catch-up of what a crash left pending, where the database has them. */
  start(): void {
    if (this.options.sqliteWriteWorker && this.dataSource.options.type === 'better-sqlite3') {
      this.offLoop ??= new OffLoopAppender(this.dataSource, this.chains, this.logger, () => (this.heads ??= ChainHeadCache.for(this.dataSource)));
    }
    if (queryIndexesDeferred(this.dataSource)) {
      this.catchUp ??= QueryIndexCatchUp.onConnection(this.dataSource, this.chains, () => this.offLoop, this.logger);
      // All the rows a crash left pending (a chunk takes only as many as were appended since the last one).
      this.catchUp.kick(null);
    }
  }

  /** No chunk after the one in flight: the worker stops next, and the DataSource after us (the next start or query takes the rest). */
  async stop(): Promise<void> {
    await this.catchUp?.stop();
    await this.offLoop?.stop();
  }

  /** One `record()` row, in the caller's transaction when there is one (`inChainTransaction`). */
  appendEvent(event: PreparedEvent, manager?: EntityManager): Promise<AuditLogEntry[]> {
    return this.inChainTransaction([event.tenantId], (m) => this.append(m, event.tenantId, [event]), manager);
  }

  /** `recordMany()`'s rows: ONE head read per chain, under its lock, then one insert: N rows linked after each head. */
  appendEvents(byTenant: Map<string, PreparedEvent[]>, tenantIds: string[]): Promise<AuditLogEntry[]> {
    return this.inChainTransaction(tenantIds, (m) => this.appendAll(m, byTenant, tenantIds));
  }

  /**
   * Appends `events` to the chain of `tenantId`; the caller holds the chain lock. `head` saves the
   * head read when the caller has just read it (null: the chain is empty).
   */
  async append(m: EntityManager, tenantId: string, events: PreparedEvent[], head?: ChainHead | null): Promise<AuditLogEntry[]> {
    const rows = linkRows(events, head === undefined ? await this.rows.head(tenantId, m) : head);
    await this.rows.insert(rows, m);
    this.catchUp?.noteAppended(rows.length);
    return rows.map((r) => r.row);
  }

  /** Forgets the cached heads of `tenantIds` (retention deleted from their chains). */
  forgetHeads(tenantIds: Iterable<string>): void {
    this.heads?.forget(tenantIds);
  }

  /**
   * Writes a read batch; committed when it returns. Always on its own (buffered reads of many callers
   * never join one caller's transaction). PostgreSQL, when every chain's head is cached: ONE round trip
   * taking the chains' locks and inserting rows linked to those heads, without a head read. Had another writer appended meanwhile,
   * the (tenant, sequence) unique index rejects the whole statement and the batch goes the locked way
   * (lock, head read, insert, commit), which refreshes the cache. SQLite with the write worker: `OffLoopAppender.append`.
   *
   * The session of the optimistic statement may end while it runs (terminated, a reset socket): an autocommit
   * INSERT whose answer was lost may have committed. The locked way then first looks for that statement's first
   * row (one statement: all of its rows or none) under the chains' locks, which that statement held until it ended —
   * found, those events are done; else they are appended. Neither twice nor refused for a session another can
   * replace. A locked attempt whose session ends is settled so once more; a second loss fails the batch (the failing
   * state). Events whose statement failed so that it may have committed (a lost session, a query deadline) stay
   * marked with the first row's id of every such statement (`maybeWritten`) until written: the buffer's retry of a
   * failed batch looks for them first too.
   */
  async writeBatch(byTenant: Map<string, PreparedEvent[]>): Promise<void> {
    const tenantIds = [...byTenant.keys()];
    if (this.offLoop?.running) {
      if (await this.offLoop.append(this.heads!, byTenant, tenantIds)) {
        let rows = 0;
        for (const events of byTenant.values()) rows += events.length;
        this.catchUp?.noteAppended(rows);
        return;
      }
    } else if (this.chains.optimisticAppend && !this.unsettled(byTenant)) {
      const cached = this.heads?.lookup(tenantIds);
      if (cached) {
        const rows = tenantIds.flatMap((t) => linkRows(byTenant.get(t)!, cached.heads.get(t)!));
        try {
          // The chains' locks go in the same round trip: locked writers (head read, then insert) must not
          // be overtaken between their two statements, or several replicas' batches could starve them.
          const postgresLocks = { keys: chainLockKeys(tenantIds), prepared: this.prepared };
          await this.rows.insert(rows, this.dataSource.manager, { postgresLocks });
          this.heads!.remember(rows.map((r) => r.row), cached.versions);
          return;
        } catch (e) {
          this.heads!.forget(tenantIds);
          if (e instanceof NamedStatementRefusedError) this.stopPreparing(e);
          else if (!isChainCollision(e)) {
            // Nothing ran, or it collided (rolled back); any other failure may have come after its commit (a lost
            // answer, a query deadline): its retry, now or the buffer's, looks first.
            this.markMaybeWritten(byTenant, rows[0].row.id);
            if (!isSessionEnded(e)) throw e;
          }
        }
      }
    }
    const versions = this.heads?.versions(tenantIds);
    let linked: Linked = {};
    const locked = () =>
      this.chains.inOwnTransaction(tenantIds, async (m) => {
        const todo = await this.notWritten(byTenant, m);
        return todo.size === 0 ? [] : this.appendAll(m, todo, [...todo.keys()], (linked = { events: todo }));
      });
    let rows: AuditLogEntry[];
    try {
      rows = await locked();
    } catch (e) {
      // The same for the locked way (its COMMIT's answer may be what was lost); a lost session is settled once more.
      this.markLinked(linked);
      if (!isSessionEnded(e)) throw e;
      linked = {};
      try {
        rows = await locked();
      } catch (again) {
        this.markLinked(linked);
        throw again;
      }
    }
    if (versions) this.heads!.remember(rows, versions);
  }

  /** Whether some event of the batch may have been written by a statement whose session was lost. */
  private unsettled(byTenant: Map<string, PreparedEvent[]>): boolean {
    for (const events of byTenant.values()) for (const e of events) if (this.maybeWritten.has(e)) return true;
    return false;
  }

  private markMaybeWritten(byTenant: Map<string, PreparedEvent[]>, firstRowId: string): void {
    for (const events of byTenant.values()) {
      for (const e of events) {
        const ids = this.maybeWritten.get(e);
        if (ids) ids.push(firstRowId);
        else this.maybeWritten.set(e, [firstRowId]);
      }
    }
  }

  /** A locked attempt lost its session after it linked (and may have inserted and committed) these events' rows. */
  private markLinked({ events, first }: Linked): void {
    if (events && first !== undefined) this.markMaybeWritten(events, first);
  }

  /**
   * The batch's events less those a lost statement did write: under the chains' locks — which such a statement
   * held until it ended — its first row is looked for (one statement: all of its rows or none).
   */
  private async notWritten(byTenant: Map<string, PreparedEvent[]>, m: EntityManager): Promise<Map<string, PreparedEvent[]>> {
    // The common case (no lost statement): the batch as it is, not a copy of it per locked attempt.
    if (!this.unsettled(byTenant)) return byTenant;
    const found = new Map<string, boolean>();
    const written = async (ids: string[]) => {
      for (const id of ids) {
        if (!found.has(id)) found.set(id, await this.rows.exists(id, m));
        if (found.get(id)) return true;
      }
      return false;
    };
    const todo = new Map<string, PreparedEvent[]>();
    for (const [t, events] of byTenant) {
      const left: PreparedEvent[] = [];
      for (const e of events) {
        const ids = this.maybeWritten.get(e);
        if (ids && (await written(ids))) continue;
        left.push(e);
      }
      if (left.length > 0) todo.set(t, left);
    }
    return todo;
  }

  /** Appends each chain's events after its head, read once for all chains; the caller holds their locks. */
  private async appendAll(m: EntityManager, byTenant: Map<string, PreparedEvent[]>, tenantIds: string[], linked?: Linked): Promise<AuditLogEntry[]> {
    const heads = await this.rows.heads(tenantIds, m);
    const rows = tenantIds.flatMap((t) => linkRows(byTenant.get(t)!, heads.get(t) ?? null));
    if (linked && rows.length > 0) linked.first = rows[0].row.id;
    await this.rows.insert(rows, m);
    this.catchUp?.noteAppended(rows.length);
    return rows.map((r) => r.row);
  }

  /**
   * Runs `write` under the chain locks of `tenantIds` in the caller's open transaction when there is
   * one — the manager it passed (the older way), else the ambient `runner.run` transaction — and in a
   * transaction of its own otherwise. The ONE place that decides which EntityManager a `record()`
   * writes with. Only our own commits teach the head cache: a caller's transaction may still roll back.
   */
  private async inChainTransaction(
    tenantIds: string[],
    write: (m: EntityManager) => Promise<AuditLogEntry[]>,
    manager?: EntityManager,
  ): Promise<AuditLogEntry[]> {
    const given = manager?.queryRunner?.isTransactionActive ? manager : undefined;
    const caller = given ?? (this.runner.inTransaction() ? this.runner.manager : undefined);
    if (caller) {
      this.heads?.forget(tenantIds);
      return this.chains.inCallerTransaction(caller, tenantIds, write);
    }
    const versions = this.heads?.versions(tenantIds);
    const rows = await this.chains.inOwnTransaction(tenantIds, write);
    if (versions) this.heads!.remember(rows, versions);
    return rows;
  }

  /**
   * A pooler lost the named statement (nothing of it ran): this process goes on with the simple query,
   * which is as safe, and says so once; the batch itself goes the locked way. Failing every read batch
   * (fail-closed) for a setting would be an outage.
   */
  private stopPreparing(e: NamedStatementRefusedError): void {
    this.prepared = false;
    // The message is our own fixed text (no value from the batch): it names the pooler and the option.
    this.logger.warn(`Read batches now go as simple queries in this process. ${e.message}`);
  }
}
