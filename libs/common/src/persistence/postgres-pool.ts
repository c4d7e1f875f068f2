import { DatabasePoolExhaustedError } from './persistence.errors';

/**
 * pg-pool's error for a caller that waited `connectionTimeoutMillis` in its queue: the pool was full, of busy
 * connections or of connections still being opened (a server slow to accept, which is not a pool too small).
 */
const POOL_WAIT_TIMEOUT = 'timeout exceeded when trying to connect';

type Callback = (err: Error | undefined, client?: unknown, done?: unknown) => void;

/** The pg-pool surface used here (no import of `pg`: it is an optional peer of the libs). */
interface PgPoolLike {
  readonly totalCount: number;
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
      const max = this.options.max ?? 10; // pg-pool's default
      const allOpen = this.totalCount >= max && this.open.size >= this.totalCount;
      if (!(e instanceof Error) || e.message !== POOL_WAIT_TIMEOUT || !allOpen) return e;
      return new DatabasePoolExhaustedError(max, this.options.connectionTimeoutMillis ?? 0, { cause: e });
    }
  }
  return Object.assign(Object.create(pg) as T, { Pool });
}
