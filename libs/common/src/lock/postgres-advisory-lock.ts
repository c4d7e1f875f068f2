import { Logger } from '@nestjs/common';
import type { DataSource } from 'typeorm';
import { describeError, sqlState } from '../errors';
import { advisoryLockKey } from './advisory-lock-key';
import { DistributedLock, LockRunOptions, TryRunResult, assertLockKey } from './distributed-lock';
import { KeyedMutex, MutexRelease } from './keyed-mutex';
import { withLongQueries } from '../persistence/postgres-timeouts';
import { HeldLockSession, LockSession, LockSessions, LockSessionsOptions } from './lock-sessions';
import { ADVISORY_LOCK_NAMESPACES } from './lock-keys';
import { LockLostError, LockTimeoutError } from './lock.errors';
import { startLockHeartbeat } from './lock-heartbeat';

/** SQLSTATE 55P03 lock_not_available: `lock_timeout` expired. */
const LOCK_NOT_AVAILABLE = '55P03';

/**
 * `DistributedLock` across replicas sharing one PostgreSQL database, with session-level advisory
 * locks (`pg_try_advisory_lock` / `pg_advisory_lock` + `pg_advisory_unlock`).
 *
 * Advisory locks belong to a database session, so each held lock pins ONE session from lock to unlock —
 * from a small pool of lock sessions beside the DataSource's (`LockSessions`, `locks.maxSessions` per process:
 * one more holder waits for a session, then fails with LOCK_SESSIONS_EXHAUSTED),
 * never from the DataSource's own pool, which `fn` uses: holders cannot starve it. Callers in the same
 * process first serialise on an in-process mutex, so a second local caller neither burns a session nor
 * re-enters the session-level lock (which PostgreSQL would grant again to the same session).
 */
export class PostgresAdvisoryLock extends DistributedLock {
  private readonly logger = new Logger(PostgresAdvisoryLock.name);
  private readonly local = new KeyedMutex();

  private readonly namespace: string;
  private readonly sessions: LockSessions;

  constructor(
    dataSource: DataSource,
    namespace: string = ADVISORY_LOCK_NAMESPACES.distributedLock,
    /** Sizes and checks the DataSource's lock sessions (PersistenceModule's `locks` does it for a Nest host). */
    sessions?: LockSessionsOptions,
  ) {
    super();
    if (dataSource.options.type !== 'postgres') {
      throw new TypeError(`PostgresAdvisoryLock needs a postgres DataSource, got "${dataSource.options.type}"`);
    }
    // Advisory locks are server-wide, but a deployment is a schema: hosts in other schemas of the
    // same server (another deployment, a parallel test file) must not take each other's job locks.
    const schema = (dataSource.options as { schema?: string }).schema;
    this.namespace = schema ? `${namespace}@${schema}` : namespace;
    this.sessions = sessions === undefined ? LockSessions.for(dataSource) : LockSessions.configure(dataSource, sessions);
  }

  async tryRun<T>(key: string, fn: (held: AbortSignal) => Promise<T>): Promise<TryRunResult<T>> {
    assertLockKey(key);
    const releaseLocal = this.local.tryAcquire(key);
    if (!releaseLocal) return { acquired: false };
    let runner: LockSession | undefined;
    try {
      runner = await this.sessions.connect();
      const { rows } = await runner.query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1::bigint) AS locked', [this.advisoryId(key)]);
      if (!rows[0]?.locked) {
        runner.release();
        releaseLocal();
        return { acquired: false };
      }
    } catch (e) {
      runner?.release(e instanceof Error ? e : true);
      releaseLocal();
      throw e;
    }
    const value = await this.runHolding(key, runner, releaseLocal, fn);
    return { acquired: true, value };
  }

  async run<T>(key: string, fn: (held: AbortSignal) => Promise<T>, options: LockRunOptions): Promise<T> {
    assertLockKey(key);
    const deadline = Date.now() + options.timeoutMs;
    const releaseLocal = await this.local.acquire(key, options.timeoutMs);
    let runner: HeldLockSession | undefined;
    try {
      // Waiting for a free session counts against the caller's timeout, too.
      runner = await this.sessions.connect(Math.max(1, deadline - Date.now()));
      // lock_timeout bounds the wait inside PostgreSQL; SET LOCAL scopes it to this short
      // transaction, and a session-level advisory lock outlives the COMMIT (by design of PostgreSQL).
      // The wait may be longer than the host's statement timeout and query deadline: lock_timeout is its bound.
      const remaining = Math.max(1, deadline - Date.now());
      await runner.query('BEGIN');
      try {
        await runner.query(`SELECT set_config('lock_timeout', $1, true), set_config('statement_timeout', '0', true)`, [`${remaining}ms`]);
        const session = runner;
        await withLongQueries(session.client, remaining, () => session.query('SELECT pg_advisory_lock($1::bigint)', [this.advisoryId(key)]));
        await runner.query('COMMIT');
      } catch (e) {
        await runner.query('ROLLBACK').catch(() => undefined);
        if (sqlState(e) === LOCK_NOT_AVAILABLE) {
          throw new LockTimeoutError(key, options.timeoutMs, { cause: e });
        }
        throw e;
      }
    } catch (e) {
      // A lock timeout leaves a clean session; anything else may not: destroyed (its locks go with it).
      runner?.release(e instanceof LockTimeoutError ? undefined : e instanceof Error ? e : true);
      releaseLocal();
      throw e;
    }
    return this.runHolding(key, runner, releaseLocal, fn);
  }

  private async runHolding<T>(key: string, runner: LockSession, releaseLocal: MutexRelease, fn: (held: AbortSignal) => Promise<T>): Promise<T> {
    // The session ending (terminated, a restart, a broken socket) takes the lock with it: tell the holder at once.
    const held = new AbortController();
    const lost = () => {
      if (held.signal.aborted) return;
      this.logger.warn(`Advisory lock "${key}" was lost while held (its session ended): its holder is told to stop`);
      held.abort(new LockLostError(key));
    };
    // A session whose path stalls ends only when TCP keepalive gives up: its heartbeat notices. The session is
    // discarded once fn settles (below), not at once: PostgreSQL may still hold the lock, best kept while fn stops.
    let settled = false;
    const unanswered = (why: string) => {
      if (held.signal.aborted) return;
      // After fn settled (the check the unlock waited for) there is no holder left to tell: the session is discarded.
      const then = settled ? 'the session is discarded instead of unlocked' : 'its holder is told to stop';
      this.logger.warn(`Advisory lock "${key}" was lost while held (its session stopped answering: ${why}): ${then}`);
      held.abort(new LockLostError(key, 'stopped answering'));
    };
    runner.on('error', lost);
    runner.on('end', lost);
    const stopHeartbeat = startLockHeartbeat(runner, this.sessions.heartbeat, unanswered);
    try {
      return await fn(held.signal);
    } finally {
      settled = true;
      // Nothing else is sent on the session while a heartbeat waits for its answer (at most its deadline).
      await stopHeartbeat();
      runner.off('error', lost);
      runner.off('end', lost);
      if (held.signal.aborted) runner.release(held.signal.reason as Error);
      else await this.unlock(key, runner);
      releaseLocal();
    }
  }

  private async unlock(key: string, runner: LockSession): Promise<void> {
    try {
      const { rows } = await runner.query<{ unlocked: boolean }>('SELECT pg_advisory_unlock($1::bigint) AS unlocked', [this.advisoryId(key)]);
      if (!rows[0]?.unlocked) this.logger.warn(`Advisory lock "${key}" was not held at unlock (session lost?)`);
      runner.release();
    } catch (e) {
      // The session may still hold the lock: never hand it back to the pool. Destroying the
      // connection makes PostgreSQL release every lock of that session.
      this.logger.error(`Unlocking advisory lock "${key}" failed; discarding the connection: ${describeError(e)}`);
      runner.release(e instanceof Error ? e : new Error(String(e)));
    }
  }

  /** The bigint PostgreSQL knows this lock by (e.g. to find its holder in `pg_locks`). */
  advisoryId(key: string): string {
    return advisoryLockKey(key, this.namespace);
  }
}
