import type { DataSource } from 'typeorm';

/** A PostgreSQL session that holds advisory locks (a pg `PoolClient`). */
export interface LockSession {
  query<R = unknown>(sql: string, params?: unknown[]): Promise<{ rows: R[] }>;
  on(event: 'error', listener: (e: Error) => void): unknown;
  /** Back to its pool; with an error, destroyed instead (PostgreSQL then releases every lock of the session). */
  release(error?: Error | boolean): void;
}

interface PgPool {
  connect(): Promise<LockSession>;
  end(): Promise<void>;
  on(event: 'error', listener: (e: Error) => void): unknown;
}

/** How many advisory locks one process may hold at once per DataSource (each pins a session). */
export const DEFAULT_LOCK_SESSIONS = 8;

/**
 * The sessions advisory locks are held on: a small pool of its own beside the DataSource's, with the same
 * connection settings. A held lock pins its session for as long as the work inside runs, and that work
 * needs connections of the DataSource's pool: when both came from one pool, as many holders as free
 * connections (concurrent OAuth refreshes of different connections, rotations) each waited for a
 * connection none would give back, and every other request of the replica queued behind them.
 * Shared by every lock of a DataSource; idle sessions close after 10 s and keep no process alive;
 * destroying the DataSource ends the pool.
 */
export class LockSessions {
  private static readonly pools = new WeakMap<DataSource, LockSessions>();

  static for(dataSource: DataSource, max = DEFAULT_LOCK_SESSIONS): LockSessions {
    let sessions = LockSessions.pools.get(dataSource);
    if (!sessions) LockSessions.pools.set(dataSource, (sessions = new LockSessions(dataSource, max)));
    return sessions;
  }

  private pool?: PgPool;
  /** Sessions that have their error listener (a pooled client is handed out many times). */
  private readonly listening = new WeakSet<LockSession>();

  private constructor(
    private readonly dataSource: DataSource,
    private readonly max: number,
  ) {}

  /** A session of its own (waits, up to the connection timeout, while `max` are held). */
  async connect(): Promise<LockSession> {
    const session = await this.poolOf().connect();
    if (!this.listening.has(session)) {
      // A held session whose connection dies emits 'error' (an unhandled one would crash the process); its
      // locks are gone with it, which the holder's unlock reports ("was not held at unlock").
      session.on('error', () => undefined);
      this.listening.add(session);
    }
    return session;
  }

  private poolOf(): PgPool {
    if (this.pool) return this.pool;
    // The DataSource's own driver module and pool settings (host, credentials, TLS, timeouts): nothing to configure twice.
    const driver = this.dataSource.driver as unknown as { postgres: { Pool: new (options: object) => PgPool }; master: { options: Record<string, unknown> } };
    const base = driver.master.options;
    const pool = new driver.postgres.Pool({ ...base, max: this.max, idleTimeoutMillis: 10_000, allowExitOnIdle: true, application_name: lockApplicationName(base.application_name) });
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
