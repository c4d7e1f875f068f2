import type { EntityManager } from 'typeorm';
import { DatabaseUnresponsiveError } from './persistence.errors';

/**
 * Bounds on PostgreSQL work, so that a database that stops answering on connections already open (a hung or
 * stopped server, a stalled proxy or pooler, a network path that drops packets while the peer's kernel still
 * ACKs TCP keepalives) ends each caller's wait with an error instead of holding it, and its pool slot, until
 * the socket dies. All in milliseconds; 0 turns a bound off.
 */
export interface PostgresTimeouts {
  /**
   * Client side: a query with no answer after this long closes its connection (destroys the socket): the query
   * and any queued behind it fail with `DatabaseUnresponsiveError`, the pool slot is freed, and PostgreSQL rolls
   * back whatever that session had open once it hears of it. Keep it above `statementTimeoutMs`, so that a
   * server that is alive cancels its own statement first (a clean error; the connection is kept).
   */
  queryTimeoutMs: number;
  /** Server side (`statement_timeout`): a statement running (or waiting for a lock) this long is cancelled (SQLSTATE 57014). */
  statementTimeoutMs: number;
  /**
   * Server side (`idle_in_transaction_session_timeout`): a session idle inside an open transaction this long is
   * ended, releasing its locks — also when its client is gone behind a stalled network and cannot say so.
   */
  idleInTransactionTimeoutMs: number;
}

/** The node-postgres Client surface used here (no import of `pg`: it is an optional peer of the libs). */
interface PgClientLike {
  query(...args: unknown[]): unknown;
  connection?: { stream?: { destroy(error?: Error): void } };
}
type PgClientClass = new (...args: never[]) => PgClientLike;

/** Per-connection allowance on top of the deadline (see `withLongQueries`); shared by every copy of this module. */
const ALLOWANCE = Symbol.for('credential-vault.postgres.queryAllowanceMs');
/** Marks clients built by `postgresTimeoutOptions`. */
const DEADLINE = Symbol.for('credential-vault.postgres.queryDeadlineMs');
/** Queries sent and not answered yet, and since when the first of them has been the one PostgreSQL should be answering. */
const PENDING = Symbol.for('credential-vault.postgres.pendingQueries');
const SINCE = Symbol.for('credential-vault.postgres.pendingSince');

type DeadlineClient = PgClientLike & { [ALLOWANCE]?: number; [DEADLINE]?: number; [PENDING]?: number; [SINCE]?: number };

/**
 * Since when (epoch ms) a client of `postgresTimeoutOptions` has waited for the answer to its current query; undefined
 * when it waits for none (or was not built by it; cursors and streams are not counted). `postgresDriver` probes it.
 */
export function awaitingAnswerSince(client: unknown): number | undefined {
  const c = client as DeadlineClient;
  return c[PENDING] ? c[SINCE] : undefined;
}

/**
 * `extra` options for a TypeORM postgres DataSource (node-postgres pool options): the server-side timeouts as
 * startup parameters of every connection, and the client-side deadline as the pool's `Client` class (a subclass
 * of `Client`, which the host passes: `import { Client } from 'pg'`). The advisory-lock sessions
 * (`LockSessions`) copy the DataSource's pool options, so they get both.
 *
 * node-postgres' own `query_timeout` is not used: it rejects the caller but leaves the query active on the
 * connection, which goes back to the pool, and the next caller's queries wait behind it.
 */
export function postgresTimeoutOptions(Client: PgClientClass, timeouts: PostgresTimeouts): Record<string, unknown> {
  return {
    ...(timeouts.statementTimeoutMs > 0 ? { statement_timeout: timeouts.statementTimeoutMs } : {}),
    ...(timeouts.idleInTransactionTimeoutMs > 0 ? { idle_in_transaction_session_timeout: timeouts.idleInTransactionTimeoutMs } : {}),
    ...(timeouts.queryTimeoutMs > 0 ? { Client: clientWithQueryDeadline(Client, timeouts.queryTimeoutMs) } : {}),
  };
}

function clientWithQueryDeadline(Base: PgClientClass, deadlineMs: number): PgClientClass {
  const Bounded = class extends Base {
    override query(...args: unknown[]): unknown {
      const self = this as DeadlineClient;
      const ms = deadlineMs + (self[ALLOWANCE] ?? 0);
      // Cursors and streams (a `submit` method) are read at their consumer's pace: not bounded here.
      const config = args[0] as { submit?: unknown } | null | undefined;
      if (!Number.isFinite(ms) || (typeof config === 'object' && config !== null && typeof config.submit === 'function')) return super.query(...args);
      const timer = setTimeout(() => self.connection?.stream?.destroy(new DatabaseUnresponsiveError(ms)), ms);
      // node-postgres answers a client's queries in order: when one ends, the next one queued is the one awaited.
      if (!self[PENDING]) self[SINCE] = Date.now();
      self[PENDING] = (self[PENDING] ?? 0) + 1;
      const done = () => {
        clearTimeout(timer);
        self[PENDING] = Math.max(0, (self[PENDING] ?? 1) - 1);
        self[SINCE] = Date.now();
      };
      const last = args.length - 1;
      if (typeof args[last] === 'function') {
        const callback = args[last] as (...r: unknown[]) => void;
        args[last] = (...r: unknown[]) => {
          done();
          callback(...r);
        };
        return super.query(...args);
      }
      const result = super.query(...args);
      if (result && typeof (result as Promise<unknown>).then === 'function') (result as Promise<unknown>).then(done, done);
      else done();
      return result;
    }
  };
  (Bounded.prototype as DeadlineClient)[DEADLINE] = deadlineMs;
  return Bounded as unknown as PgClientClass;
}

/**
 * Runs `work` while the queries of `client` (a node-postgres Client, e.g. what a TypeORM query runner's
 * `connect()` resolves to) may take `extraMs` longer than the deadline (`Infinity`: no deadline). For waits
 * that are long by design (a lock wait with its own `lock_timeout`, a migration). A client without a deadline
 * is left as it is.
 */
export async function withLongQueries<T>(client: unknown, extraMs: number, work: () => Promise<T>): Promise<T> {
  const c = client as DeadlineClient | null | undefined;
  if (!c || typeof c !== 'object' || c[DEADLINE] === undefined) return work();
  const previous = c[ALLOWANCE];
  c[ALLOWANCE] = Math.max(previous ?? 0, extraMs);
  try {
    return await work();
  } finally {
    if (previous === undefined) delete c[ALLOWANCE];
    else c[ALLOWANCE] = previous;
  }
}

/**
 * Runs `work` inside `manager`'s transaction under bounds of its own, for work that is long by nature and runs
 * rarely (audit retention deleting a large prefix of a chain): PostgreSQL cancels a statement after `timeoutMs`
 * (`SET LOCAL statement_timeout`, so it ends with the transaction: 57014), and a query unanswered for `timeoutMs`
 * plus the connection's own deadline closes its connection (`DatabaseUnresponsiveError`) — above the server's
 * bound, so a server that is alive cancels first. `timeoutMs` 0 lifts both: a stall is then bounded only by TCP
 * keepalive. No-op on other databases. Throws when `manager` is not in a transaction.
 */
export async function withStatementTimeout<T>(manager: EntityManager, timeoutMs: number, work: () => Promise<T>): Promise<T> {
  if (manager.connection.options.type !== 'postgres') return work();
  const runner = manager.queryRunner;
  if (!runner?.isTransactionActive) throw new Error('withStatementTimeout needs a transaction: SET LOCAL would not outlive its statement');
  if (!Number.isInteger(timeoutMs) || timeoutMs < 0) throw new Error(`withStatementTimeout: timeoutMs must be an integer ≥ 0, got ${timeoutMs}`);
  const client = await runner.connect();
  await manager.query(`SET LOCAL statement_timeout = ${timeoutMs}`);
  return withLongQueries(client, timeoutMs > 0 ? timeoutMs : Number.POSITIVE_INFINITY, work);
}
