import { DatabaseConnectionLostError } from './persistence.errors';

/**
 * PostgreSQL ended the session a query ran on (57P01/57P02: pg_terminate_backend, a shutdown, a crash;
 * 08000/08003/08006/08007: the connection failed), or the socket broke. Not a session it refused to open (57P03
 * starting up or in recovery, 08001, 08004): nothing was lost there.
 * pg's "…is not queryable": the client's connection had failed before (reset, ended while idle in a transaction, a
 * protocol error) and pg refused this query unsent; "Client was closed and is not queryable": our side had ended
 * that client (a DataSource destroyed at shutdown while a query was on its way to it).
 * A terminated statement was not done; after a broken socket an autocommit statement may have committed unseen.
 */
const SESSION_ENDED_SQLSTATE = /^(0800[0367]|57P0[12])$/;
const SESSION_ENDED_ERRNO = new Set(['ECONNRESET', 'EPIPE']);
const SESSION_ENDED = /^(Connection terminated( unexpectedly)?|Client (has encountered a connection error|was closed) and is not queryable)$/;
/**
 * PgBouncer's reasons for closing its client's connection, which it sends first as 08P01 (its disconnect_client):
 * the server connection under the query crashed ("server conn crashed?") or was closed as the query outran
 * query_timeout ("query timeout") — the server session is gone, an autocommit statement may have committed, an open
 * transaction did not —; the client waited for a server past query_timeout / query_wait_timeout (nothing was sent);
 * an (idle) transaction outran its timeout (rolled back). By message, never by 08P01 alone: PostgreSQL's own 08P01
 * errors (a Bind with the wrong number of parameters) and PgBouncer's answered with ReadyForQuery keep the session.
 */
const POOLER_SESSION_ENDED_SQLSTATE = '08P01';
const POOLER_SESSION_ENDED = new Set(['server conn crashed?', 'query timeout', 'query_timeout', 'query_wait_timeout', 'idle transaction timeout', 'transaction timeout']);


type DriverLayer = { code?: unknown; message?: unknown; driverError?: unknown };

/**
 * Whether `e` — our DATABASE_CONNECTION_LOST, or a driver error (or one TypeORM wraps as `driverError`; three layers at
 * most) — says its session ended.
 */
export function isSessionEnded(e: unknown): boolean {
  if (e instanceof DatabaseConnectionLostError) return true;
  for (let err = e as DriverLayer | undefined, depth = 0; err && depth < 3; err = err.driverError as DriverLayer | undefined, depth++) {
    const code = typeof err.code === 'string' ? err.code : undefined;
    const message = typeof err.message === 'string' ? err.message : undefined;
    if (code !== undefined && (SESSION_ENDED_SQLSTATE.test(code) || SESSION_ENDED_ERRNO.has(code))) return true;
    if (message !== undefined && SESSION_ENDED.test(message)) return true;
    if (code === POOLER_SESSION_ENDED_SQLSTATE && message !== undefined && POOLER_SESSION_ENDED.has(message)) return true;
  }
  return false;
}
