import { Logger } from '@nestjs/common';
import type { DataSource } from 'typeorm';
import { LockSessions } from '../lock/lock-sessions';
import { POSTGRES_POOL_NAME } from './postgres-pool-name';
import { DatabasePoolExhaustedError, DatabaseUnresponsiveError, PersistenceErrorCode } from './persistence.errors';
import { awaitingAnswerSince } from './postgres-timeouts';

/**
 * pg-pool's error for a caller that waited `connectionTimeoutMillis` in its queue: the pool was full, of busy
 * connections or of connections still being opened (a server slow to accept, which is not a pool too small).
 */
const POOL_WAIT_TIMEOUT = 'timeout exceeded when trying to connect';

/** pg-pool's size when none is set. */
const PG_POOL_DEFAULT_MAX = 10;

/** How long the liveness check of an idle connection may wait when the pool sets no `connectionTimeoutMillis`. */
const DEFAULT_CHECK_WAIT_MS = 10_000;

const logger = new Logger('PostgresPool');

type Callback = (err: Error | undefined, client?: unknown, done?: unknown) => void;

/** The pg-pool surface used here (no import of `pg`: it is an optional peer of the libs). */
interface PgPoolLike {
  readonly totalCount: number;
  readonly idleCount: number;
  readonly waitingCount: number;
  readonly options: { max?: number; connectionTimeoutMillis?: number };
  connect(callback?: Callback): unknown;
  end(...args: unknown[]): unknown;
  on(event: string, listener: (client: PgEventClient) => void): unknown;
}
interface PgEventClient {
  once(event: 'end', listener: () => void): unknown;
  on(event: 'error', listener: (e: unknown) => void): unknown;
  removeListener(event: 'error', listener: (e: unknown) => void): unknown;
  query(sql: string): Promise<unknown>;
  /** The backend's pid (BackendKeyData); a pooler in between gives one of its own. */
  processID?: number | null;
  /** node-postgres' protocol connection (absent from pg-native clients, which are left unchecked). */
  connection?: {
    on(event: 'readyForQuery' | 'error', listener: (e?: unknown) => void): unknown;
    stream?: { destroy(error?: Error): void };
  };
}
interface PgProbeClient {
  connect(): Promise<unknown>;
  query(sql: string, values: unknown[]): Promise<{ rows: Array<{ state: string | null }> }>;
  end(): Promise<void>;
  on(event: 'error', listener: (e: unknown) => void): unknown;
}
type PgPoolClass = new (...args: never[]) => PgPoolLike;
type Release = (error?: Error) => void;

/**
 * Connections a pool of `postgresDriver` closed instead of handing them out, by why: `stall`, not heard from since a
 * query of the driver met its deadline (or a liveness check went unanswered); `idle_check`, idle `idleCheckMs` or more
 * and its `SELECT 1` went unanswered.
 */
export interface PostgresConnectionsReplaced {
  stall: number;
  idle_check: number;
}

export interface PostgresDriverOptions {
  /**
   * A connection not heard from for this long is checked with a round trip (`SELECT 1`, which may wait the pool's
   * `connectionTimeoutMillis`) before it is handed out, and closed instead when it does not answer: a stall that
   * no query met can leave an idle connection on a dead path. Busy pools never wait this long between uses, so
   * their checkouts cost nothing. 0: no check (connections are still closed after a stall was seen).
   * @default 5000
   */
  idleCheckMs?: number;
  /**
   * Connections replaced are logged as one warning per pool for each this long (from the first one), with how many
   * and why: a stall closes every idle connection as it is taken, and that is one event, not one line per connection.
   * A pool that ends logs what it has not logged yet.
   * @default 10000
   */
  replacedLogWindowMs?: number;
  /**
   * A query of a connection (of `postgresTimeoutOptions`) unanswered this long is asked after, from a new connection:
   * when PostgreSQL shows that backend idle — not working on it — the query never reached it or its answer was lost
   * on a dead path, and the connection is closed at once (`DatabaseUnresponsiveError`, a stall seen) instead of at the
   * query deadline. Slow queries and lock waits show `active` and are left to the deadline; so is anything the check
   * cannot tell (no answer, a pooler's own pid). 0: no check.
   * @default 5000
   */
  probeAfterMs?: number;
}

/**
 * The node-postgres module (`import pg from 'pg'`) as a TypeORM postgres DataSource's `driver` option: the same
 * module, with a pool
 * - whose caller that waited in vain for a free connection while every connection was open and busy fails with
 *   `DatabasePoolExhaustedError` (6008 `DATABASE_POOL_EXHAUSTED`), which names the setting to raise, instead of
 *   pg's untyped "timeout exceeded when trying to connect". A wait that timed out while some connections were still
 *   being opened keeps pg's error (the database is slow to accept: a pool size does not help);
 * - that hands out no connection that sat idle through a stall. PostgreSQL may answer again on new connections
 *   only while the path the open ones took stays dead (a NAT or load-balancer flow lost and silently dropped, a
 *   pooler stuck on its server connection, a hung backend): an idle socket tells nothing, and the first query
 *   on it would wait for the query deadline (`postgresTimeoutOptions`) and fail. Once a query of any pool of this
 *   driver met its deadline, or a liveness check went unanswered, every connection not heard from since is closed
 *   when taken and another one given; a connection idle past `idleCheckMs` is checked first.
 * The advisory-lock sessions (`LockSessions`) build their pool from the same module (so a stall seen on either
 * pool closes the other's idle connections too); they never queue in it.
 */
export function postgresDriver<T extends { Pool: PgPoolClass }>(pg: T, options: PostgresDriverOptions = {}): T {
  const idleCheckMs = options.idleCheckMs ?? 5000;
  const replacedLogWindowMs = options.replacedLogWindowMs ?? 10_000;
  const probeAfterMs = options.probeAfterMs ?? 5000;
  /** When a query of this driver's pools last went unanswered (0: never); connections not heard from since are suspect. */
  let stallSeenAt = 0;
  const stallSeen = () => (stallSeenAt = Date.now());

  class Pool extends pg.Pool {
    /** Connections open (connected and not ended), busy or idle. */
    private readonly open = new Set<PgEventClient>();
    /** When each connection last finished a query (or connected). */
    private readonly heardAt = new WeakMap<PgEventClient, number>();
    /** Callers given DatabasePoolExhaustedError (`postgresPoolStats`). */
    exhaustedCount = 0;
    /** Connections closed when taken (`postgresPoolStats`). */
    readonly replacedCount: PostgresConnectionsReplaced = { stall: 0, idle_check: 0 };
    /** `main`, or the name given in the pool's options (`POSTGRES_POOL_NAME`). */
    private readonly poolName: string;
    /** Connections replaced since the last log line, and when that line is due. */
    private unlogged?: { replaced: PostgresConnectionsReplaced; timer: ReturnType<typeof setTimeout> };
    /** Looks for queries unanswered past `probeAfterMs` (see `probeUnanswered`); each is asked after once. */
    private probes?: ReturnType<typeof setInterval>;
    private readonly probed = new WeakMap<PgEventClient, number>();

    constructor(...args: never[]) {
      super(...args);
      this.poolName = (args[0] as { [POSTGRES_POOL_NAME]?: string } | undefined)?.[POSTGRES_POOL_NAME] ?? 'main';
      this.on('connect', (client) => {
        this.open.add(client);
        if (probeAfterMs > 0 && !this.probes) {
          this.probes = setInterval(() => this.probeUnanswered(), Math.min(1000, probeAfterMs / 2));
          this.probes.unref?.();
        }
        client.once('end', () => this.open.delete(client));
        const connection = client.connection;
        if (!connection) return;
        this.heardAt.set(client, Date.now());
        connection.on('readyForQuery', () => this.heardAt.set(client, Date.now()));
        connection.on('error', (e) => {
          if ((e as { code?: unknown } | undefined)?.code === PersistenceErrorCode.DATABASE_UNRESPONSIVE) stallSeen();
        });
      });
    }

    override connect(callback?: Callback): unknown {
      if (typeof callback === 'function') return this.checkout(callback);
      return new Promise((resolve, reject) => this.checkout((err, client) => (err ? reject(err) : resolve(client))));
    }

    /** A connection of the pool that is not suspect of sitting idle through a stall. */
    private checkout(callback: Callback): void {
      super.connect((err, c, done) => {
        if (err) return callback(this.typed(err) as Error);
        const client = c as PgEventClient;
        const heardAt = this.heardAt.get(client);
        if (heardAt === undefined || (heardAt >= stallSeenAt && (idleCheckMs <= 0 || Date.now() - heardAt < idleCheckMs))) return callback(undefined, client, done);
        if (heardAt < stallSeenAt) {
          this.evict(client, done as Release, 'stall');
          return this.checkout(callback);
        }
        void this.answers(client).then((alive) => {
          if (alive) return callback(undefined, client, done);
          stallSeen();
          this.evict(client, done as Release, 'idle_check');
          this.checkout(callback);
        });
      });
    }

    /** One round trip on an idle connection, within the time a new connection may take. */
    private async answers(client: PgEventClient): Promise<boolean> {
      const waitMs = this.checkWaitMs();
      // Nobody else listens while the pool holds it: an error of this connection must not crash the process.
      const ignore = () => undefined;
      client.on('error', ignore);
      const timer = setTimeout(() => client.connection?.stream?.destroy(new DatabaseUnresponsiveError(waitMs)), waitMs);
      try {
        await client.query('SELECT 1');
        client.removeListener('error', ignore);
        return true;
      } catch {
        return false;
      } finally {
        clearTimeout(timer);
      }
    }

    /** How long a check may wait: the time a new connection may take. */
    private checkWaitMs(): number {
      const configured = Number(this.options.connectionTimeoutMillis);
      return configured > 0 ? configured : DEFAULT_CHECK_WAIT_MS;
    }

    /** Out of the pool, its socket closed at once: a path that may be dead gets no goodbye to wait for. */
    private evict(client: PgEventClient, release: Release, reason: keyof PostgresConnectionsReplaced): void {
      this.replacedCount[reason]++;
      this.noteReplaced(reason);
      client.on('error', () => undefined);
      release(new Error('PostgreSQL connection not heard from since a stall: closed'));
      client.connection?.stream?.destroy();
    }

    /**
     * A query unanswered past `probeAfterMs` while PostgreSQL shows its backend idle (in a transaction or not) will never
     * be answered: closed now. Asked again after the next I/O, so that an answer already on its way is read first.
     */
    private probeUnanswered(): void {
      for (const client of this.open) {
        const since = awaitingAnswerSince(client);
        if (since === undefined || Date.now() - since < probeAfterMs || this.probed.get(client) === since || !client.processID) continue;
        this.probed.set(client, since);
        void this.backendIdle(client.processID).then(async (idle) => {
          if (!idle) return;
          await new Promise((resolve) => setTimeout(() => setImmediate(resolve), 100));
          if (awaitingAnswerSince(client) === since) client.connection?.stream?.destroy(new DatabaseUnresponsiveError(Date.now() - since));
        });
      }
    }

    /** Whether PostgreSQL shows backend `pid` of our role idle; false when it cannot tell (no row, no answer). */
    private async backendIdle(pid: number): Promise<boolean> {
      // pg-pool's Client class, made with the pool's options as its own connections are (bounds included).
      const probe = new (this as unknown as { Client: new (options: unknown) => PgProbeClient }).Client({ ...this.options, connectionTimeoutMillis: this.checkWaitMs() });
      probe.on('error', () => undefined);
      try {
        await probe.connect();
        const { rows } = await probe.query('SELECT state FROM pg_stat_activity WHERE pid = $1 AND usename = current_user', [pid]);
        return rows.length === 1 && rows[0].state?.startsWith('idle') === true;
      } catch {
        return false;
      } finally {
        void probe.end().catch(() => undefined);
      }
    }

    override end(...args: unknown[]): unknown {
      clearInterval(this.probes);
      this.logReplaced();
      return super.end(...args);
    }

    /** Counts a replacement toward the pool's next log line, due `replacedLogWindowMs` after the first one it holds. */
    private noteReplaced(reason: keyof PostgresConnectionsReplaced): void {
      if (!this.unlogged) {
        const timer = setTimeout(() => this.logReplaced(), replacedLogWindowMs);
        timer.unref?.();
        this.unlogged = { replaced: { stall: 0, idle_check: 0 }, timer };
      }
      this.unlogged.replaced[reason]++;
    }

    /** One line for the replacements not logged yet: the pool, how many, and why — never a query. */
    private logReplaced(): void {
      const pending = this.unlogged;
      if (!pending) return;
      this.unlogged = undefined;
      clearTimeout(pending.timer);
      const { stall, idle_check } = pending.replaced;
      logger.warn(
        `PostgreSQL pool ${this.poolName} replaced ${stall + idle_check} connection(s) that sat idle through a stall (stall: ${stall}, idle_check: ${idle_check}): ` +
          'closed when taken, new ones opened',
      );
    }

    private typed(e: unknown): unknown {
      const max = this.options.max ?? PG_POOL_DEFAULT_MAX;
      const allOpen = this.totalCount >= max && this.open.size >= this.totalCount;
      if (!(e instanceof Error) || e.message !== POOL_WAIT_TIMEOUT || !allOpen) return e;
      this.exhaustedCount++;
      return new DatabasePoolExhaustedError(max, this.options.connectionTimeoutMillis ?? 0, { cause: e });
    }
  }
  return Object.assign(Object.create(pg) as T, { Pool });
}

/** One PostgreSQL pool of a DataSource, as operators know pools; read when asked (metrics at scrape time). */
export interface PostgresPoolStats {
  /** `main`: the DataSource's own pool; `locks`: its advisory-lock sessions (`LockSessions`). */
  readonly pool: 'main' | 'locks';
  /** The most connections it opens (the DataSource's `extra.max`; `locks.maxSessions`). */
  readonly max: number;
  /** Connections handed out, or still being opened. */
  readonly busy: number;
  /** Connections open and free. */
  readonly idle: number;
  /** Callers waiting for a connection. */
  readonly waiting: number;
  /**
   * Callers whose wait ended with every connection busy (`DatabasePoolExhaustedError`; `LockSessionsExhaustedError`)
   * since the pool was made; undefined for a main pool not built by `postgresDriver` (it cannot tell).
   */
  readonly exhausted: number | undefined;
  /**
   * Connections closed when taken, instead of being handed out, since the pool was made: they sat idle through a
   * stall (`PostgresConnectionsReplaced`). Undefined for pools not built by `postgresDriver`.
   */
  readonly replaced: PostgresConnectionsReplaced | undefined;
}

/** The pools of an initialized PostgreSQL DataSource, main then locks; none for another database (SQLite). */
export function postgresPoolStats(dataSource: DataSource): PostgresPoolStats[] {
  if (dataSource.options.type !== 'postgres' || !dataSource.isInitialized) return [];
  const main = (dataSource.driver as unknown as { master?: PgPoolLike & { exhaustedCount?: number; replacedCount?: PostgresConnectionsReplaced } }).master;
  if (!main) return [];
  const idle = main.idleCount;
  const { replaced: locksReplaced, ...locks } = LockSessions.for(dataSource).stats();
  return [
    {
      pool: 'main',
      max: main.options.max ?? PG_POOL_DEFAULT_MAX,
      busy: main.totalCount - idle,
      idle,
      waiting: main.waitingCount,
      exhausted: main.exhaustedCount,
      replaced: main.replacedCount && { ...main.replacedCount },
    },
    // The lock sessions' pool is of the same driver module, opened with the first lock: none replaced before.
    { pool: 'locks', ...locks, replaced: main.replacedCount && { stall: 0, idle_check: 0, ...locksReplaced } },
  ];
}
