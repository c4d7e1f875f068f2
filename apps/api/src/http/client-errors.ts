import { randomUUID } from 'node:crypto';
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { Logger } from '@nestjs/common';
import { type FixedStatusHostCode, HOST_ERROR_HTTP_STATUS, HostErrorCode, hostError } from './host-errors';
import { answeredBeforeArrival } from './request-end';

/** HttpStatus names (its enum has no 431). */
const PARSER_ERROR_NAMES: Record<number, string> = { 400: 'BAD_REQUEST', 408: 'REQUEST_TIMEOUT', 417: 'EXPECTATION_FAILED', 431: 'REQUEST_HEADER_FIELDS_TOO_LARGE' };

const log = new Logger('HttpConnections');
/** Connections closeWithoutAnswer has taken care of. */
const closedWithoutAnswer = new WeakSet<Duplex>();

/** What Node keeps on an HTTP connection's socket: the answer it is busy with, and its parser's last request. */
type HttpSocket = Duplex & { remoteAddress?: string; _httpMessage?: ServerResponse | null; parser?: { incoming?: IncomingMessage | null } | null };

/**
 * A request Node's parser refuses (headers over 16 KB, malformed HTTP, not arrived within HTTP_REQUEST_TIMEOUT_MS) never
 * becomes a request: answered on the socket in the host's error shape, with a request id of its own, instead of
 * Fastify's bare body — unless the connection owes another answer (owesAnotherAnswer): a status line written then would
 * be read as that answer, or land inside it. The connection is then closed instead (once that answer has been sent),
 * with one log line.
 */
export function unparsableRequest(error: NodeJS.ErrnoException, socket: Duplex): void {
  if (error.code === 'ECONNRESET' || !socket.writable) return void socket.destroy();
  // Node's parser repeats its error on every later byte: the connection is closing already.
  if (closedWithoutAnswer.has(socket)) return;
  const code =
    error.code === 'HPE_HEADER_OVERFLOW' ? HostErrorCode.HEADERS_TOO_LARGE : error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? HostErrorCode.REQUEST_TIMEOUT : HostErrorCode.MALFORMED_REQUEST;
  const current = (socket as HttpSocket)._httpMessage ?? undefined;
  if (owesAnotherAnswer(socket as HttpSocket, current)) return closeWithoutAnswer(socket, current, error);
  // The answer in flight, if any, is this very request's, not begun, while its body is still arriving: this is its answer.
  const arriving = code === HostErrorCode.REQUEST_TIMEOUT ? current?.req : undefined;
  const message =
    code === HostErrorCode.HEADERS_TOO_LARGE
      ? 'the request line and headers are larger than the server accepts (16 KB)'
      : code === HostErrorCode.REQUEST_TIMEOUT
        ? 'the request took too long to arrive'
        : 'the request is not valid HTTP';
  // A request whose headers came but not its body in time is Fastify's already: the 408 carries its id, and its access
  // line and count say 408 under that id (else "aborted", and a 408 under an id no line had). Not other parser errors
  // mid-body: one is a client that left half-way (HPE_INVALID_EOF_STATE), rightly "aborted".
  const { status, requestId, body } = errorAnswer(code, message, (arriving as { id?: string } | undefined)?.id);
  if (arriving) answeredBeforeArrival(arriving, status);
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\n` +
      `x-request-id: ${requestId}\r\nx-content-type-options: nosniff\r\nconnection: close\r\n\r\n${body}`,
  );
}

/**
 * An answer other than this error's is owed or under way on the connection: the one in flight has begun, or is owed to
 * a request that arrived whole (an earlier pipelined one, or one whose handler is still working); or, with none in
 * flight, the request whose headers came last is still arriving — Node made its answer at its headers, so it was sent.
 */
function owesAnotherAnswer(socket: HttpSocket, current: ServerResponse | undefined): boolean {
  if (current) return current.headersSent || current.req.complete;
  const last = socket.parser?.incoming;
  return !!last && !last.complete;
}

/**
 * Ends the connection without a word of this error's, right after the answer in flight when there is one (not begun:
 * it says Connection: close; begun: once it has all been sent — destroying the socket then cut it off half-way, or
 * dropped what was still buffered), else at once.
 */
function closeWithoutAnswer(socket: Duplex, current: ServerResponse | undefined, error: NodeJS.ErrnoException): void {
  const unfinished = current && !current.writableFinished ? current : undefined;
  closedWithoutAnswer.add(socket);
  // Which client, and the request whose answer is owed (its access line has that id), so an operator can find them.
  const owed = (current?.req ?? (socket as HttpSocket).parser?.incoming ?? undefined) as { id?: string } | undefined;
  const who = `client ${(socket as HttpSocket).remoteAddress ?? 'unknown'}${owed?.id ? `, request ${owed.id}` : ''}`;
  log.warn(`${error.code ?? 'a client error'} on a connection that owes another answer (${who}): ${unfinished ? 'closed after it' : 'closed'}, no error answer written`);
  if (!unfinished) socket.destroy();
  else if (!unfinished.headersSent) unfinished.setHeader('connection', 'close');
  else unfinished.once('finish', () => endAfterWrites(socket));
}

/** Closes the connection once what was written on it has gone (as Node does after an answer with Connection: close). */
function endAfterWrites(socket: Duplex & { destroySoon?: () => void }): void {
  if (typeof socket.destroySoon === 'function') socket.destroySoon();
  else socket.destroy();
}

/** An error body of the host's shape for an answer made outside Fastify's reply, with the request's id or one of its own. */
export function errorAnswer(code: FixedStatusHostCode, message: string, requestId: string = randomUUID()): { status: number; requestId: string; body: string } {
  const status = HOST_ERROR_HTTP_STATUS[code];
  return { status, requestId, body: JSON.stringify({ statusCode: status, error: PARSER_ERROR_NAMES[status], message, ...hostError(code), requestId }) };
}
