import { HttpStatus } from '@nestjs/common';
import { CredentialVaultError, ErrorSeverity } from '../errors';

/**
 * Stable error codes of libs/common's persistence kit (6xxx: 60xx transactions and options,
 * 61xx outbox). Never renumber.
 */
export enum PersistenceErrorCode {
  /** `PersistenceModule` options are invalid. */
  CONFIGURATION = 6001,
  /** A joined `run` failed, so the whole transaction was rolled back although the outer work did not throw. */
  ROLLBACK_ONLY = 6002,
  /** `run` was called inside `read`: a read never writes (on SQLite it would wait for itself). */
  WRITE_IN_READ = 6003,
  /** The transaction committed, but flushing it to disk failed: it is visible and may not survive a power loss. */
  COMMIT_NOT_DURABLE = 6004,
  /** PostgreSQL refused a named statement it should hold: a pooler in between cannot keep them. */
  NAMED_STATEMENT_REFUSED = 6005,
  /** A transaction of the SQLite write worker failed (rolled back whole), or the worker is gone. */
  SQLITE_WORKER_WRITE = 6006,
  /** PostgreSQL did not answer a query within the client-side deadline: the connection was closed. */
  DATABASE_UNRESPONSIVE = 6007,
  /** Every connection of the PostgreSQL pool was busy and none came free within the pool's connect timeout. */
  DATABASE_POOL_EXHAUSTED = 6008,
  /** The transaction's PostgreSQL session ended before it committed (terminated, failed over, reset): nothing of it was written. */
  DATABASE_CONNECTION_LOST = 6009,
  /** `Outbox.add` was called outside a `TransactionRunner.run`. */
  OUTBOX_NO_TRANSACTION = 6101,
  /** The outbox event is malformed (empty name, payload not a JSON object, too large). */
  OUTBOX_INVALID_EVENT = 6102,
}

/**
 * HTTP status of each code, composed by the host; a new code does not compile without one. All but one
 * are our own fault (libs, not HTTP clients, call the runner and the outbox), hence 500; a database that
 * does not answer, or no free connection to it, is 503 (retry later).
 */
export const PERSISTENCE_ERROR_HTTP_STATUS: Record<PersistenceErrorCode, HttpStatus> = {
  [PersistenceErrorCode.CONFIGURATION]: HttpStatus.INTERNAL_SERVER_ERROR,
  [PersistenceErrorCode.ROLLBACK_ONLY]: HttpStatus.INTERNAL_SERVER_ERROR,
  [PersistenceErrorCode.WRITE_IN_READ]: HttpStatus.INTERNAL_SERVER_ERROR,
  [PersistenceErrorCode.COMMIT_NOT_DURABLE]: HttpStatus.INTERNAL_SERVER_ERROR,
  [PersistenceErrorCode.NAMED_STATEMENT_REFUSED]: HttpStatus.INTERNAL_SERVER_ERROR,
  [PersistenceErrorCode.SQLITE_WORKER_WRITE]: HttpStatus.INTERNAL_SERVER_ERROR,
  [PersistenceErrorCode.DATABASE_UNRESPONSIVE]: HttpStatus.SERVICE_UNAVAILABLE,
  [PersistenceErrorCode.DATABASE_POOL_EXHAUSTED]: HttpStatus.SERVICE_UNAVAILABLE, // this replica's capacity, not the request
  [PersistenceErrorCode.DATABASE_CONNECTION_LOST]: HttpStatus.SERVICE_UNAVAILABLE,
  [PersistenceErrorCode.OUTBOX_NO_TRANSACTION]: HttpStatus.INTERNAL_SERVER_ERROR,
  [PersistenceErrorCode.OUTBOX_INVALID_EVENT]: HttpStatus.INTERNAL_SERVER_ERROR,
};

export abstract class PersistenceError extends CredentialVaultError {
  abstract override readonly code: PersistenceErrorCode;
}

export class PersistenceConfigurationError extends PersistenceError {
  readonly code = PersistenceErrorCode.CONFIGURATION;
  readonly codeName = 'PERSISTENCE_CONFIGURATION';
  readonly severity = ErrorSeverity.CONFIGURATION;

  /** `problems` of the options, or (`what` given) of the host's setup. */
  constructor(
    readonly problems: string[],
    what = 'Invalid PersistenceModule options',
  ) {
    super(`${what} — ${problems.join('; ')}`);
  }
}

/**
 * The outer work of a transaction completed, but a `run` it joined threw (and the outer work swallowed
 * the error). Without savepoints the inner writes cannot be undone alone, so everything is rolled back.
 */
export class TransactionRollbackOnlyError extends PersistenceError {
  readonly code = PersistenceErrorCode.ROLLBACK_ONLY;
  readonly codeName = 'TRANSACTION_ROLLBACK_ONLY';
  readonly severity = ErrorSeverity.FATAL;

  constructor(options?: { cause?: unknown }) {
    super('A joined transaction step failed; the whole transaction was rolled back', options);
  }
}

export class WriteInReadError extends PersistenceError {
  readonly code = PersistenceErrorCode.WRITE_IN_READ;
  readonly codeName = 'WRITE_IN_READ';
  readonly severity = ErrorSeverity.FATAL;

  constructor() {
    super('TransactionRunner.run() was called inside read(); open the transaction outside the read');
  }
}

/**
 * SQLite: the transaction COMMITTED (other readers see it, its after-commit callbacks ran), but the
 * fsync of the write-ahead log that makes it durable failed. Do not retry the writes (they are in);
 * do not acknowledge them as durable either — a storage fault, like PostgreSQL's failed WAL flush.
 */
export class CommitNotDurableError extends PersistenceError {
  readonly code = PersistenceErrorCode.COMMIT_NOT_DURABLE;
  readonly codeName = 'COMMIT_NOT_DURABLE';
  readonly severity = ErrorSeverity.FATAL;
  readonly committed = true;

  constructor(options?: { cause?: unknown }) {
    super('The transaction committed, but flushing the SQLite write-ahead log to disk failed', options);
  }
}

/**
 * PostgreSQL answered a named statement with "does not exist" (26000) or "already exists" (42P05): the
 * connection node-postgres prepared it on is not the one that ran it, which is what a pooler in
 * transaction mode does (PgBouncer before 1.21, or without `max_prepared_statements`). A deployment
 * fault, not a transient one: the same statement fails every time until prepared statements are off.
 */
export class NamedStatementRefusedError extends PersistenceError {
  readonly code = PersistenceErrorCode.NAMED_STATEMENT_REFUSED;
  readonly codeName = 'NAMED_STATEMENT_REFUSED';
  readonly severity = ErrorSeverity.CONFIGURATION;

  constructor(options?: { cause?: unknown }) {
    super(
      'PostgreSQL does not hold the named statement this connection prepared: a pooler in transaction mode is in between ' +
        '(PgBouncer before 1.21 or without max_prepared_statements). Turn prepared statements off where they were turned on ' +
        "(e.g. AuditModule's preparedStatements: false), or configure the pooler to keep them",
      options,
    );
  }
}

/**
 * A `SqliteWriteWorker` transaction failed and was rolled back whole (`driverError`: SQLite's code and
 * message, as TypeORM's QueryFailedError carries them; never the parameters), or the worker is gone
 * (no `driverError`: whether a transaction in flight then committed is unknown).
 */
export class SqliteWorkerWriteError extends PersistenceError {
  readonly code = PersistenceErrorCode.SQLITE_WORKER_WRITE;
  readonly codeName = 'SQLITE_WORKER_WRITE';
  readonly severity = ErrorSeverity.TRANSIENT;

  constructor(
    message: string,
    readonly driverError?: { code?: string; message: string },
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * A PostgreSQL query got no answer within the client-side deadline (`postgresTimeoutOptions`' `queryTimeoutMs`):
 * the server or the path to it stalls. Its connection was closed, so the pool slot is free and PostgreSQL rolls
 * back that session's open transaction once it hears; whether a COMMIT already sent took effect is unknown.
 */
export class DatabaseUnresponsiveError extends PersistenceError {
  readonly code = PersistenceErrorCode.DATABASE_UNRESPONSIVE;
  readonly codeName = 'DATABASE_UNRESPONSIVE';
  readonly severity = ErrorSeverity.TRANSIENT;
  /** The host answers 503 with `Retry-After: 1`. */
  readonly retryAfterMs = 1000;

  constructor(readonly timeoutMs: number) {
    super(`PostgreSQL did not answer a query within ${timeoutMs} ms; its connection was closed`);
  }
}

/**
 * Every connection of the DataSource's PostgreSQL pool was open and busy, and none came free within the pool's
 * `connectionTimeoutMillis` (`postgresDriver`): more concurrent database work than the pool holds, or queries
 * that hold their connections long (slow, or stalled: those end with DATABASE_UNRESPONSIVE).
 */
export class DatabasePoolExhaustedError extends PersistenceError {
  readonly code = PersistenceErrorCode.DATABASE_POOL_EXHAUSTED;
  readonly codeName = 'DATABASE_POOL_EXHAUSTED';
  readonly severity = ErrorSeverity.TRANSIENT;
  /** The host answers 503 with `Retry-After: 1`. */
  readonly retryAfterMs = 1000;

  constructor(
    readonly poolSize: number,
    readonly waitedMs: number,
    options?: { cause?: unknown },
  ) {
    super(
      `All ${poolSize} connections of the PostgreSQL pool were busy and none came free within ${waitedMs} ms: ` +
        "raise the pool's size (the DataSource's extra.max; the stock host's DATABASE_POOL_SIZE) within PostgreSQL's max_connections, " +
        'or find the slow queries holding them',
      options,
    );
  }
}

/**
 * The session of a transaction ended before its COMMIT (pg_terminate_backend, a failover, a reset connection):
 * PostgreSQL rolled it back, so nothing of it was written. TypeORM only says its query runner was released.
 * `during: 'query'`: the session of a query outside any transaction ended while it ran (PostgreSQL's 57P01
 * "terminating connection…", a reset socket). A terminated statement was not done; after a reset socket an autocommit
 * statement may have committed unseen, and one before it of the same request may be done: hence no "nothing written".
 */
export class DatabaseConnectionLostError extends PersistenceError {
  readonly code = PersistenceErrorCode.DATABASE_CONNECTION_LOST;
  readonly codeName = 'DATABASE_CONNECTION_LOST';
  readonly severity = ErrorSeverity.TRANSIENT;
  /** The host answers 503 with `Retry-After: 1`: the pool opens a new session for the retry. */
  readonly retryAfterMs = 1000;

  constructor(options?: { cause?: unknown; during?: 'transaction' | 'query' }) {
    super(
      options?.during === 'query'
        ? 'The database connection was lost while a query ran: retry'
        : 'The database connection was lost before the transaction committed; nothing of it was written: retry',
      { cause: options?.cause },
    );
  }
}

export class OutboxNoTransactionError extends PersistenceError {
  readonly code = PersistenceErrorCode.OUTBOX_NO_TRANSACTION;
  readonly codeName = 'OUTBOX_NO_TRANSACTION';
  readonly severity = ErrorSeverity.FATAL;

  constructor(name: string) {
    super(`Outbox event "${name}" must be added inside TransactionRunner.run(), so that it commits with its change`);
  }
}

export class OutboxInvalidEventError extends PersistenceError {
  readonly code = PersistenceErrorCode.OUTBOX_INVALID_EVENT;
  readonly codeName = 'OUTBOX_INVALID_EVENT';
  readonly severity = ErrorSeverity.CLIENT;
}
