import { AsyncLocalStorage } from 'node:async_hooks';
import { Injectable, Logger } from '@nestjs/common';
import { DataSource, EntityManager, QueryRunnerAlreadyReleasedError, QueryRunnerProviderAlreadyReleasedError } from 'typeorm';
import { describeError } from '../errors';
import { TransactionGate } from '../lock/transaction-gate';
import { inSpan } from '../telemetry';
import { CommitNotDurableError, DatabaseConnectionLostError, TransactionRollbackOnlyError, WriteInReadError } from './persistence.errors';

/** What TypeORM throws for a query on a runner it released (here: because its connection failed mid-transaction). */
function isReleasedRunnerError(e: unknown): boolean {
  return e instanceof QueryRunnerAlreadyReleasedError || e instanceof QueryRunnerProviderAlreadyReleasedError;
}

/** A callback run once after the outermost transaction commits. */
export type AfterCommitCallback = () => unknown;

interface TransactionScope {
  kind: 'transaction';
  manager: EntityManager;
  afterCommit: AfterCommitCallback[];
  /** Set once the transaction settled: async work it started and that outlives it must not join it. */
  closed: boolean;
  /** A joined `run` threw: the transaction may only roll back. */
  failure?: { cause: unknown };
}

interface ReadScope {
  kind: 'read';
  closed: boolean;
}

type Scope = TransactionScope | ReadScope;

/**
 * The context shared by every runner of one DataSource. On Node 20 an enabled AsyncLocalStorage keeps
 * the async_hooks promise hooks on for every promise in the process (they were ~12% of a warm read's
 * CPU), so the storage is disabled whenever no scope is open and re-enabled by the next `storage.run`.
 * Same answers as never disabling it: once every scope is closed, any store it could still return is
 * a closed scope, which counts as none.
 */
interface AmbientContext {
  storage: AsyncLocalStorage<Scope | undefined>;
  /** Scopes opened and not yet closed (a queued transaction counts: it will run in this storage). */
  open: number;
}

/**
 * THE transaction idiom of every lib: `runner.run(work)` opens a transaction, or joins the one already
 * open in this async context, and repositories use `runner.manager`. The context travels in an
 * AsyncLocalStorage shared by every runner of one DataSource, so a transaction opened by one lib is
 * joined by code in another lib without an EntityManager ever crossing a lib boundary.
 *
 * Transactions open through the DataSource's `TransactionGate`: serialised on SQLite (one shared
 * connection — concurrent transactions would otherwise nest), a pass-through on PostgreSQL.
 *
 * Joining is flat (no SAVEPOINT): if a joined `run` throws, the whole transaction is marked
 * rollback-only, even when the caller catches the error — PostgreSQL would refuse to commit after a
 * failed statement anyway, and SQLite must not behave differently.
 */
@Injectable()
export class TransactionRunner {
  private static readonly contexts = new WeakMap<DataSource, AmbientContext>();

  private readonly logger = new Logger(TransactionRunner.name);
  private readonly context: AmbientContext;
  private readonly gate: TransactionGate;

  constructor(readonly dataSource: DataSource) {
    let context = TransactionRunner.contexts.get(dataSource);
    if (!context) {
      context = { storage: new AsyncLocalStorage<Scope | undefined>(), open: 0 };
      TransactionRunner.contexts.set(dataSource, context);
    }
    this.context = context;
    this.gate = TransactionGate.for(dataSource);
  }

  private get storage(): AsyncLocalStorage<Scope | undefined> {
    return this.context.storage;
  }

  /** Runs `work` in a transaction: the ambient one when there is one, else a new one committed when `work` resolves. */
  async run<T>(work: () => Promise<T>): Promise<T> {
    const scope = this.scope();
    if (scope?.kind === 'read') throw new WriteInReadError();
    if (scope) return this.joined(scope, work);

    return inSpan('db.transaction', { attributes: { 'db.system': this.dbSystem } }, () => this.runNew(work));
  }

  private get dbSystem(): string {
    const type = this.dataSource.options.type;
    return type === 'postgres' ? 'postgresql' : type;
  }

  private async runNew<T>(work: () => Promise<T>): Promise<T> {
    const tx: TransactionScope = { kind: 'transaction', manager: this.dataSource.manager, afterCommit: [], closed: false };
    let result: T;
    let committing = false;
    try {
      result = await this.scoped(tx, () =>
        this.gate.transaction(async (manager) => {
          tx.manager = manager;
          let value: T;
          try {
            value = await this.storage.run(tx, work);
          } catch (e) {
            // TypeORM releases the session's runner when its connection fails (pg_terminate_backend, a failover):
            // every later query says only "already released". Before our COMMIT, PostgreSQL rolled it all back.
            if (manager.queryRunner?.isReleased && isReleasedRunnerError(e)) throw new DatabaseConnectionLostError({ cause: e });
            throw e;
          }
          // Thrown inside the callback so that TypeORM rolls back instead of committing.
          if (tx.failure) throw new TransactionRollbackOnlyError({ cause: tx.failure.cause });
          committing = true;
          return value;
        }),
      );
    } catch (e) {
      // Committed and visible, only not known durable: what depends on the commit (a cache invalidation) still runs.
      if (e instanceof CommitNotDurableError) await this.runCallbacks(tx.afterCommit);
      // The session was lost after the work, before COMMIT could be sent: not committed.
      if (committing && isReleasedRunnerError(e)) throw new DatabaseConnectionLostError({ cause: e });
      throw e;
    }
    await this.runCallbacks(tx.afterCommit);
    return result;
  }

  /**
   * Counts `scope` open while `body` runs and closes it when `body` settles (or throws synchronously);
   * the last scope to close disables the storage. Never disabled while a scope is open: `disable()`
   * would hide every open scope's store.
   */
  private async scoped<T>(scope: Scope, body: () => Promise<T>): Promise<T> {
    this.context.open++;
    try {
      return await body();
    } finally {
      scope.closed = true;
      if (--this.context.open === 0) this.storage.disable();
    }
  }

  /**
   * The ambient transaction's manager, else the DataSource's default manager. Repositories use only
   * this. Outside a transaction on SQLite, wrap reads in `read()` so they never see uncommitted rows.
   */
  get manager(): EntityManager {
    const scope = this.scope();
    return scope?.kind === 'transaction' ? scope.manager : this.dataSource.manager;
  }

  /**
   * A read outside any transaction. On SQLite it waits until no transaction is open on the shared
   * connection (a plain read there would see another caller's uncommitted rows); a pass-through on
   * PostgreSQL. Inside a `run` or another `read` it just runs. `work` must not write.
   */
  read<T>(work: () => Promise<T>): Promise<T> {
    if (this.scope()) return work();
    // The read scope also exists on PostgreSQL, so that a write inside a read fails the same way there.
    const scope: ReadScope = { kind: 'read', closed: false };
    const inScope = () => this.storage.run(scope, work);
    return this.scoped(scope, () => (this.gate.serialises ? this.gate.exclusive(inScope) : inScope()));
  }

  /**
   * `read` for SYNCHRONOUS work (one better-sqlite3 statement on the driver): run at once when a scope is
   * open in this context (it reads that transaction's view, as `read` would) or when the gate is idle —
   * nothing can run between that check and the statement, so no scope is needed, and none is opened (the
   * scope's AsyncLocalStorage run switches the promise hooks on: ~15 µs of a metadata read). Otherwise,
   * exactly `read`.
   */
  readSync<T>(work: () => T): T | Promise<T> {
    if (this.scope() || this.gate.idleNow()) return work();
    return this.read(async () => work());
  }

  /**
   * Runs `fn` once after the outermost transaction commits — never on rollback. Outside a transaction
   * it runs at once. Errors are logged, not thrown: the change is already committed. `run` resolves
   * after its callbacks settle, so a cache invalidated here is invalid when the caller continues.
   */
  afterCommit(fn: AfterCommitCallback): void {
    const scope = this.scope();
    if (scope?.kind === 'transaction') {
      scope.afterCommit.push(fn);
      return;
    }
    void this.runCallbacks([fn]);
  }

  /**
   * Runs `fn` outside any ambient transaction or read — for background work started from inside a
   * transaction (a dispatcher loop, a cache refill) that must neither join it nor wait for it.
   */
  detached<T>(fn: () => T): T {
    // Not `exit()`: on Node 20 it disables and re-enables the storage, switching the process-wide hooks
    // twice. An undefined store hides the scope the same way, and costs nothing when no scope is open.
    return this.storage.run(undefined, fn);
  }

  inTransaction(): boolean {
    return this.scope()?.kind === 'transaction';
  }

  private async joined<T>(scope: TransactionScope, work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (e) {
      scope.failure ??= { cause: e };
      throw e;
    }
  }

  private scope(): Scope | undefined {
    const scope = this.storage.getStore();
    return scope && !scope.closed ? scope : undefined;
  }

  private async runCallbacks(callbacks: AfterCommitCallback[]): Promise<void> {
    for (const fn of callbacks) {
      try {
        // Outside the finished transaction's context: a callback may open transactions of its own.
        await this.detached(fn);
      } catch (e) {
        // Class and code only: a callback's error message may quote the data it was handling.
        this.logger.error(`An after-commit callback failed: ${describeError(e)}`);
      }
    }
  }
}
