import { Logger } from '@nestjs/common';
import type { DataSource } from 'typeorm';
import { describeError } from '../errors';
import { POSTGRES_POOL_NAME } from '../persistence/postgres-pool-name';
import { LockSessionsExhaustedError } from './lock.errors';
import { assertLockHeartbeat, DEFAULT_LOCK_HEARTBEAT, LockHeartbeat } from './lock-heartbeat';

/** A PostgreSQL session that holds advisory locks (a pg `PoolClient`). */
export interface LockSession {
  query<R = unknown>(sql: string, params?: unknown[]): Promise<{ rows: R[] }>;
  on(event: 'error' | 'end', listener: (e?: Error) => void): unknown;
  off(event: 'error' | 'end', listener: (e?: Error) => void): unknown;
  /** Back to its pool; with an error, destroyed instead (PostgreSQL then releases every lock of the session). */
  release(error?: Error | boolean): void;
}

/** A session handed out by `LockSessions`. */
export interface HeldLockSession extends LockSession {
  /** The node-postgres client underneath (for `withLongQueries`). */
  readonly client: unknown;
}

interface PgPool {
  readonly totalCount: number;
  readonly idleCount: number;
  /** Connections closed when taken, by reason (a pool of `postgresDriver`). */
  readonly replacedCount?: Readonly<Record<string, number>>;
  connect(): Promise<LockSession>;
  end(): Promise<void>;
  on(event: 'error', listener: (e: Error) => void): unknown;
}

interface PgClient {
  connect(): Promise<unknown>;
  query<R = unknown>(sql: string, params?: unknown[]): Promise<{ rows: R[] }>;
  end(): Promise<void>;
  on(event: 'error', listener: (e: Error) => void): unknown;
}

/** A session's PostgreSQL backend: its process id and start (µs since the epoch), which a reused pid never shares. */
interface Backend {
  pid: number;
  started: string;
}

/** Waits between attempts to end a lost session's backend (the last one repeats); about 10 minutes in all. */
const END_BACKEND_DELAYS_MS = [1000, 2000, 4000, 8000, 15_000, 30_000];
const END_BACKEND_ATTEMPTS = 25;
const END_BACKEND_QUERY_TIMEOUT_MS = 10_000;

/** How many advisory locks one process may hold at once per DataSource (each pins a session). PersistenceModule's `locks.maxSessions`. */
export const DEFAULT_LOCK_SESSIONS = 8;

/** How a DataSource's lock sessions are sized and checked (PersistenceModule's `locks`); what is left out stays as it is. */
export interface LockSessionsOptions {
  /** The most sessions held at once (`locks.maxSessions`). */
  maxSessions?: number;
  /** How a held lock's session is checked while its holder works (`locks.heartbeatMs`, `locks.heartbeatTimeoutMs`). */
  heartbeat?: LockHeartbeat;
}

/** How long a holder waits for a free session when the DataSource sets no `connectionTimeoutMillis`. */
const DEFAULT_SESSION_WAIT_MS = 10_000;

/**
 * The sessions advisory locks are held on: a small pool of its own beside the DataSource's, with the same
 * connection settings. A held lock pins its session for as long as the work inside runs, and that work
 * needs connections of the DataSource's pool: when both came from one pool, as many holders as free
 * connections (concurrent OAuth refreshes of different connections, rotations) each waited for a
 * connection none would give back, and every other request of the replica queued behind them.
 * Shared by every lock of a DataSource; idle sessions close after 10 s and keep no process alive;
 * destroying the DataSource ends the pool.
 *
 * At most `max` sessions are held at once (PersistenceModule's `locks.maxSessions`); one more holder waits,
 * first come first served, for one to come free — up to its own wait — and then fails with
 * `LockSessionsExhaustedError`, which names the setting (pg's own pool would have failed with an untyped
 * "timeout exceeded when trying to connect", after its connect timeout whatever the caller's).
 */
export class LockSessions {
  private static readonly pools = new WeakMap<DataSource, LockSessions>();
  private readonly logger = new Logger('LockSessions');
  /** Each pooled session's backend, learnt when it is first handed out. */
  private readonly backends = new WeakMap<LockSession, Backend>();

  /** The DataSource's lock sessions (sized by `configure`, else `DEFAULT_LOCK_SESSIONS`). */
  static for(dataSource: DataSource): LockSessions {
    let sessions = LockSessions.pools.get(dataSource);
    if (!sessions) LockSessions.pools.set(dataSource, (sessions = new LockSessions(dataSource)));
    return sessions;
  }

  /**
   * Sizes the DataSource's lock sessions, before the first is opened (libs build their locks at start and
   * take them later). Refused once sessions of another size are open: the pool would not follow. The heartbeat
   * applies to the locks taken from then on.
   */
  static configure(dataSource: DataSource, options: LockSessionsOptions): LockSessions {
    const sessions = LockSessions.for(dataSource);
    const { maxSessions: max, heartbeat } = options;
    if (heartbeat) assertLockHeartbeat(heartbeat);
    if (max !== undefined && sessions.max !== max) {
      if (sessions.pool) throw new Error(`lock sessions of this DataSource are already open with a maximum of ${sessions.max}; configure ${max} before the first lock is taken`);
      sessions.max = max;
    }
    if (heartbeat) sessions.heartbeatOptions = { ...heartbeat };
    return sessions;
  }

  private pool?: PgPool;
  private max = DEFAULT_LOCK_SESSIONS;
  private heartbeatOptions: LockHeartbeat = { ...DEFAULT_LOCK_HEARTBEAT };
  /** Sessions handed out and not yet released. */
  private held = 0;
  /** Holders waiting for a session, oldest first. */
  private readonly waiting: Array<() => void> = [];
  /** Sessions that have their error listener (a pooled client is handed out many times). */
  private readonly listening = new WeakSet<LockSession>();
  /** Holders whose wait ended in `LockSessionsExhaustedError`. */
  private exhausted = 0;

  private constructor(private readonly dataSource: DataSource) {}

  get maxSessions(): number {
    return this.max;
  }

  /** How a held lock's session is checked while its holder works (see `LockHeartbeat`). */
  get heartbeat(): Readonly<LockHeartbeat> {
    return this.heartbeatOptions;
  }

  /**
   * The sessions as a pool's gauges, for metrics (read at scrape time, nothing counted per lock): connections
   * open (held, or being opened, vs idle), holders waiting for a session, and waits that ended in
   * `LockSessionsExhaustedError`. No connection is open before the first lock is taken. `replaced`: what the pool
   * counts of the sessions it closed when taken, when it counts them (`postgresDriver`'s pools do).
   */
  stats(): { max: number; busy: number; idle: number; waiting: number; exhausted: number; replaced?: Record<string, number> } {
    const total = this.pool?.totalCount ?? 0;
    const idle = this.pool?.idleCount ?? 0;
    const replaced = this.pool?.replacedCount;
    return { max: this.max, busy: total - idle, idle, waiting: this.waiting.length, exhausted: this.exhausted, ...(replaced && { replaced: { ...replaced } }) };
  }

  /**
   * A session of its own. While `max` are held, waits for one to be released, at most `waitMs` (default:
   * the DataSource's `connectionTimeoutMillis`, as long as a new connection may take), then throws
   * `LockSessionsExhaustedError`.
   */
  async connect(waitMs?: number): Promise<HeldLockSession> {
    await this.takeSlot(waitMs ?? this.defaultWaitMs());
    let session: LockSession;
    try {
      session = await this.poolOf().connect();
    } catch (e) {
      this.freeSlot();
      throw e;
    }
    if (!this.listening.has(session)) {
      // A held session whose connection dies emits 'error' (an unhandled one would crash the process); its
      // locks are gone with it, which PostgresAdvisoryLock tells the holder (its `held` signal aborts).
      session.on('error', () => undefined);
      this.listening.add(session);
    }
    let backend = this.backends.get(session);
    if (!backend) {
      try {
        const { rows } = await session.query<Backend>(
          'SELECT pid, (extract(epoch FROM backend_start) * 1000000)::bigint::text AS started FROM pg_stat_activity WHERE pid = pg_backend_pid()',
        );
        backend = rows[0];
        if (backend) this.backends.set(session, backend);
      } catch (e) {
        session.release(e instanceof Error ? e : true);
        this.freeSlot();
        throw e;
      }
    }
    let released = false;
    return {
      client: session,
      query: (sql, params) => session.query(sql, params),
      on: (event, listener) => session.on(event, listener),
      off: (event, listener) => session.off(event, listener),
      release: (error) => {
        if (released) return;
        released = true;
        session.release(error);
        this.freeSlot();
        // Destroyed because it failed (its unlock, typically): PostgreSQL may not know, and may keep its locks.
        if (error && backend) this.endBackend(backend, 0);
      },
    };
  }

  /**
   * A session closed because it failed may live on in PostgreSQL with its advisory locks when the server never
   * heard of the close: a hung server, or a stalled proxy or network path that still ACKs, keeps that backend's
   * socket open until the server's own TCP keepalive gives up (hours), and meanwhile every replica's job, or the
   * outbox dispatcher, finds its lock taken. Its backend is ended from a new connection once PostgreSQL answers
   * (retried for about 10 minutes), matched by process id and start time, so a reused pid is never ended; a
   * backend already gone is a no-op. Best effort: failures are logged, never thrown.
   */
  private endBackend(backend: Backend, attempt: number): void {
    const delay = END_BACKEND_DELAYS_MS[Math.min(attempt, END_BACKEND_DELAYS_MS.length - 1)];
    const timer = setTimeout(() => {
      if (!this.pool) return; // the DataSource was destroyed
      void this.terminate(backend).then(
        (ended) => {
          if (ended) this.logger.warn(`Ended PostgreSQL backend ${backend.pid}: a lock session lost by this process, still holding its advisory locks`);
        },
        (e) => {
          if (attempt + 1 < END_BACKEND_ATTEMPTS) return this.endBackend(backend, attempt + 1);
          this.logger.error(
            `Could not end PostgreSQL backend ${backend.pid} of a lost lock session (${describeError(e)}): if it still holds advisory locks, ` +
              "end it (pg_terminate_backend; pg_locks shows them with locktype 'advisory')",
          );
        },
      );
    }, delay);
    timer.unref();
  }

  private async terminate(backend: Backend): Promise<boolean> {
    const driver = this.dataSource.driver as unknown as { postgres: { Client: new (options: object) => PgClient }; master: { options: Record<string, unknown> } };
    // A plain client, bounded by node-postgres' own query_timeout: it is ended right after its one query.
    const client = new driver.postgres.Client({
      ...driver.master.options,
      application_name: lockApplicationName(driver.master.options.application_name),
      query_timeout: END_BACKEND_QUERY_TIMEOUT_MS,
    });
    client.on('error', () => undefined);
    try {
      await client.connect();
      const { rows } = await client.query<{ ended: boolean }>(
        'SELECT pg_terminate_backend(pid) AS ended FROM pg_stat_activity WHERE pid = $1 AND (extract(epoch FROM backend_start) * 1000000)::bigint::text = $2',
        [backend.pid, backend.started],
      );
      return rows[0]?.ended === true;
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  private takeSlot(waitMs: number): Promise<void> {
    if (this.held < this.max) {
      this.held++;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const grant = () => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        const i = this.waiting.indexOf(grant);
        if (i >= 0) this.waiting.splice(i, 1);
        this.exhausted++;
        reject(new LockSessionsExhaustedError(this.max, waitMs));
      }, waitMs);
      this.waiting.push(grant);
    });
  }

  /** A released slot goes to the oldest waiter, else back to the pool. */
  private freeSlot(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.held--;
  }

  private defaultWaitMs(): number {
    const configured = Number((this.dataSource.driver as unknown as { master?: { options?: { connectionTimeoutMillis?: unknown } } }).master?.options?.connectionTimeoutMillis);
    return Number.isFinite(configured) && configured > 0 ? configured : DEFAULT_SESSION_WAIT_MS;
  }

  private poolOf(): PgPool {
    if (this.pool) return this.pool;
    // The DataSource's own driver module and pool settings (host, credentials, TLS, timeouts): nothing to configure twice.
    const driver = this.dataSource.driver as unknown as { postgres: { Pool: new (options: object) => PgPool }; master: { options: Record<string, unknown> } };
    const base = driver.master.options;
    const pool = new driver.postgres.Pool({
      ...base,
      max: this.max,
      idleTimeoutMillis: 10_000,
      allowExitOnIdle: true,
      application_name: lockApplicationName(base.application_name),
      [POSTGRES_POOL_NAME]: 'locks',
    });
    // An idle session that dies (a restart, pg_terminate_backend) must not crash the process.
    pool.on('error', () => undefined);
    this.pool = pool;
    const destroy = this.dataSource.destroy.bind(this.dataSource);
    this.dataSource.destroy = async () => {
      this.pool = undefined;
      await pool.end().catch(() => undefined);
      LockSessions.pools.delete(this.dataSource);
      return destroy();
    };
    return pool;
  }
}

/** Sessions show up in `pg_stat_activity` as the host's, marked as lock sessions. */
function lockApplicationName(name: unknown): string {
  return `${typeof name === 'string' && name ? name : 'credential-vault'} (locks)`.slice(0, 63);
}
