import type { DataSource } from 'typeorm';
import { LockSessions } from '../lock/lock-sessions';
import { DatabasePoolExhaustedError } from './persistence.errors';

/**
 * pg-pool's error for a caller that waited `connectionTimeoutMillis` in its queue: the pool was full, of busy
 * connections or of connections still being opened (a server slow to accept, which is not a pool too small).
 */
const POOL_WAIT_TIMEOUT = 'timeout exceeded when trying to connect';

/** pg-pool's size when none is set. */
const PG_POOL_DEFAULT_MAX = 10;

type Callback = (err: Error | undefined, client?: unknown, done?: unknown) => void;

/** The pg-pool surface used here (no import of `pg`: it is an optional peer of the libs). */
interface PgPoolLike {
  readonly totalCount: number;
  readonly idleCount: number;
  readonly waitingCount: number;
  readonly options: { max?: number; connectionTimeoutMillis?: number };
  connect(callback?: Callback): unknown;
  on(event: string, listener: (client: PgEventClient) => void): unknown;
}
interface PgEventClient {
  once(event: 'end', listener: () => void): unknown;
}
type PgPoolClass = new (...args: never[]) => PgPoolLike;

/**
 * The node-postgres module (`import pg from 'pg'`) as a TypeORM postgres DataSource's `driver` option: the same
 * module, with a pool whose caller that waited in vain for a free connection while every connection was open and
 * busy fails with `DatabasePoolExhaustedError` (6008 `DATABASE_POOL_EXHAUSTED`), which names the setting to
 * raise, instead of pg's untyped "timeout exceeded when trying to connect". A wait that timed out while some
 * connections were still being opened keeps pg's error (the database is slow to accept: a pool size does not help).
 * The advisory-lock sessions (`LockSessions`) build their pool from the same module; they never queue in it.
 */
export function postgresDriver<T extends { Pool: PgPoolClass }>(pg: T): T {
  class Pool extends pg.Pool {
    /** Connections open (connected and not ended), busy or idle. */
    private readonly open = new Set<PgEventClient>();
    /** Callers given DatabasePoolExhaustedError (`postgresPoolStats`). */
    exhaustedCount = 0;

    constructor(...args: never[]) {
      super(...args);
      this.on('connect', (client) => {
        this.open.add(client);
        client.once('end', () => this.open.delete(client));
      });
    }

    override connect(callback?: Callback): unknown {
      if (typeof callback === 'function') return super.connect((err, client, done) => callback(err && (this.typed(err) as Error), client, done));
      return (super.connect() as Promise<unknown>).catch((e: unknown) => {
        throw this.typed(e);
      });
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
}

/** The pools of an initialized PostgreSQL DataSource, main then locks; none for another database (SQLite). */
export function postgresPoolStats(dataSource: DataSource): PostgresPoolStats[] {
  if (dataSource.options.type !== 'postgres' || !dataSource.isInitialized) return [];
  const main = (dataSource.driver as unknown as { master?: PgPoolLike & { exhaustedCount?: number } }).master;
  if (!main) return [];
  const idle = main.idleCount;
  return [
    { pool: 'main', max: main.options.max ?? PG_POOL_DEFAULT_MAX, busy: main.totalCount - idle, idle, waiting: main.waitingCount, exhausted: main.exhaustedCount },
    { pool: 'locks', ...LockSessions.for(dataSource).stats() },
  ];
}
