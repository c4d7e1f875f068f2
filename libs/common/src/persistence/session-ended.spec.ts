import { DatabaseError } from 'pg';
import { QueryFailedError } from 'typeorm';
import { isSessionEnded } from './session-ended';

/** An ErrorResponse as pg reports it (PgBouncer sends severity, SQLSTATE and message only). */
function serverError(code: string, message: string, severity = 'FATAL'): DatabaseError {
  return Object.assign(new DatabaseError(message, 0, 'error'), { code, severity });
}

/** As TypeORM reports a failed query: the driver's error under `driverError`. */
const asTypeOrm = (e: Error) => new QueryFailedError('INSERT INTO cv_audit_log …', [], e);

describe('isSessionEnded', () => {
  it("reads PgBouncer's errors that close the client's connection as a session that ended", () => {
    // What PgBouncer sends its client (08P01, then it closes the connection) when the server connection under a
    // query crashed, when the query outran query_timeout (the server connection is closed under it), when a client
    // waited for a server past query_timeout / query_wait_timeout, and when it closed an (idle) transaction past its timeout.
    for (const message of ['server conn crashed?', 'query timeout', 'query_timeout', 'query_wait_timeout', 'idle transaction timeout', 'transaction timeout']) {
      expect([message, isSessionEnded(serverError('08P01', message))]).toEqual([message, true]);
      expect([message, isSessionEnded(asTypeOrm(serverError('08P01', message)))]).toEqual([message, true]);
      // Older PgBouncers sent them as ERROR, not FATAL: the connection was closed all the same.
      expect([message, isSessionEnded(serverError('08P01', message, 'ERROR'))]).toEqual([message, true]);
    }
  });

  it('does not read a protocol error that keeps the session, nor these texts under another code, as one that ended', () => {
    // PostgreSQL's own 08P01 at ERROR level: the statement failed, the session goes on.
    expect(isSessionEnded(asTypeOrm(serverError('08P01', 'bind message supplies 1 parameters, but prepared statement "" requires 2', 'ERROR')))).toBe(false);
    // PgBouncer's 08P01 answered with ReadyForQuery (its client's connection stays open).
    expect(isSessionEnded(serverError('08P01', 'result prepare failed', 'ERROR'))).toBe(false);
    // A refusal at login (too many clients): no session was had, none lost.
    expect(isSessionEnded(serverError('08P01', 'no more connections allowed (max_client_conn)'))).toBe(false);
    // The same words from anything but PgBouncer's SQLSTATE, or with more around them.
    expect(isSessionEnded(serverError('57014', 'query timeout', 'ERROR'))).toBe(false);
    expect(isSessionEnded(new Error('query timeout'))).toBe(false);
    expect(isSessionEnded(serverError('08P01', 'server conn crashed? value=abc'))).toBe(false);
  });

  it('keeps what it read before: terminated sessions, broken sockets, pg refusing a query unsent', () => {
    expect(isSessionEnded(asTypeOrm(serverError('57P01', 'terminating connection due to administrator command')))).toBe(true);
    expect(isSessionEnded(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }))).toBe(true);
    expect(isSessionEnded(new Error('Connection terminated unexpectedly'))).toBe(true);
    expect(isSessionEnded(new Error('Client was closed and is not queryable'))).toBe(true);
    expect(isSessionEnded(serverError('57P03', 'the database system is starting up'))).toBe(false);
  });
});
