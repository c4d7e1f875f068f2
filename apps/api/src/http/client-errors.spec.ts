import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { Logger } from '@nestjs/common';
import { unparsableRequest } from './client-errors';

/**
 * The host's answer to what Node's parser refuses, written on the socket: on a real Node HTTP server, as the host
 * installs it (`clientErrorHandler`). It never writes a status line into an answer already begun, nor in place of one
 * the connection still owes: it closes the connection instead.
 */
describe('unparsableRequest', () => {
  let server: Server;
  let port: number;
  let handle: (req: IncomingMessage, res: ServerResponse) => void;
  const warnings: string[] = [];

  beforeAll(async () => {
    jest.spyOn(Logger.prototype, 'warn').mockImplementation((message: unknown) => void warnings.push(String(message)));
    server = createServer({ requestTimeout: 500, connectionsCheckingInterval: 100 }, (req, res) => handle(req, res));
    server.on('clientError', unparsableRequest);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as { port: number }).port;
  });
  beforeEach(() => (warnings.length = 0));
  afterAll(async () => {
    jest.restoreAllMocks();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  /** Sends `bytes`, then a byte every 50 ms while the connection is open; what the server sent once it closed (or after 3 s). */
  function exchange(bytes: string): Promise<{ closed: boolean; answer: string }> {
    const socket = connect(port, '127.0.0.1');
    let answer = '';
    socket.setEncoding('latin1').on('data', (d: string) => (answer += d));
    socket.on('error', () => undefined);
    socket.write(bytes);
    const drip = setInterval(() => socket.writable && socket.write(' '), 50);
    return new Promise((resolve) => {
      const done = (closed: boolean) => {
        clearInterval(drip);
        clearTimeout(timer);
        socket.destroy();
        resolve({ closed, answer });
      };
      const timer = setTimeout(() => done(false), 3_000);
      socket.on('close', () => done(true));
    });
  }
  const statusLines = (answer: string) => answer.match(/HTTP\/1\.1 \d{3} [^\r]*\r\n/g) ?? [];

  it('answers a request that is not HTTP in the host error shape', async () => {
    handle = (_req, res) => res.end('unexpected');
    const r = await exchange('NOT HTTP\r\n\r\n');
    expect(statusLines(r.answer)).toEqual(['HTTP/1.1 400 Bad Request\r\n']);
    expect(JSON.parse(r.answer.slice(r.answer.indexOf('\r\n\r\n') + 4))).toMatchObject({ statusCode: 400, code: 90003, codeName: 'MALFORMED_REQUEST' });
    expect(warnings).toEqual([]);
  });

  it('writes no status line into an answer already begun (a pipelined request that is not HTTP): that answer is finished, then the connection is closed, logged once', async () => {
    handle = (req, res) => {
      (req as { id?: string }).id = 'req-stream'; // as the host's genReqId does
      res.writeHead(200, { 'content-type': 'text/plain' }).write('part one; ');
      setTimeout(() => res.end('part two'), 300);
    };
    // The first request's answer is begun before the parser reads the next bytes (sent a moment later), which it refuses.
    const socket = connect(port, '127.0.0.1');
    let answer = '';
    socket.setEncoding('latin1').on('data', (d: string) => (answer += d));
    socket.on('error', () => undefined);
    socket.write('GET /stream HTTP/1.1\r\nHost: x\r\n\r\n');
    await new Promise((resolve) => socket.once('data', resolve));
    socket.write('NOT HTTP\r\n\r\nNOR THIS\r\n\r\n');
    const closed = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 3_000);
      socket.on('close', () => (clearTimeout(timer), resolve(true)));
    });
    expect(closed).toBe(true);
    expect(statusLines(answer)).toEqual(['HTTP/1.1 200 OK\r\n']);
    expect(answer).not.toMatch(/90003|MALFORMED/);
    // Not cut off half-way: the client gets the whole of the answer it asked for (the bytes it sent after are its fault).
    expect(answer).toMatch(/part one; \r\n8\r\npart two\r\n0\r\n\r\n$/);
    // It names the client and the request whose answer was owed (the id of its access line).
    expect(warnings).toEqual([expect.stringMatching(/^HPE_\w+ on a connection that owes another answer \(client 127\.0\.0\.1, request req-stream\): closed after it, no error answer written$/)]);
  });

  it('drops nothing of an answer written whole but not yet sent (a client reading slowly) when bytes that are not HTTP follow it', async () => {
    const size = 8 * 1024 * 1024;
    handle = (_req, res) => res.writeHead(200, { 'content-length': size }).end(Buffer.alloc(size, 'a'));
    const socket = connect(port, '127.0.0.1');
    let received = 0;
    socket.on('data', (d: Buffer) => (received += d.length));
    socket.on('error', () => undefined);
    socket.write('GET /big HTTP/1.1\r\nHost: x\r\n\r\n');
    await new Promise((resolve) => socket.once('data', resolve));
    // Not read for a while: most of the answer waits in the server's buffer while the next bytes arrive.
    socket.pause();
    socket.write('NOT HTTP\r\n\r\n');
    await new Promise((resolve) => setTimeout(resolve, 300));
    socket.resume();
    const closed = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 5_000);
      socket.on('close', () => (clearTimeout(timer), resolve(true)));
    });
    expect({ closed, bodyWhole: received > size }).toEqual({ closed: true, bodyWhole: true });
    expect(warnings).toEqual([expect.stringMatching(/on a connection that owes another answer \(client 127\.0\.0\.1\): closed after it/)]);
  });

  it('answers the request in flight first when it has not begun, with Connection: close, then closes', async () => {
    handle = (_req, res) => void setTimeout(() => res.end('first'), 200);
    const r = await exchange('GET /slow HTTP/1.1\r\nHost: x\r\n\r\nNOT HTTP\r\n\r\n');
    expect(r.closed).toBe(true);
    expect(statusLines(r.answer)).toEqual(['HTTP/1.1 200 OK\r\n']);
    expect(r.answer).toMatch(/\r\nconnection: close\r\n/i);
    expect(r.answer.endsWith('first')).toBe(true);
    expect(warnings).toEqual([expect.stringMatching(/on a connection that owes another answer \(client 127\.0\.0\.1\): closed after it/)]);
  });

  it('gives no 408 to a request answered before its body arrived, when the rest keeps trickling in past the deadline', async () => {
    // Answered at once, body unread, the connection kept alive: Node reads the rest, and the deadline still applies to it.
    handle = (req, res) => {
      (req as { id?: string }).id = 'req-early';
      res.end('early');
    };
    const r = await exchange('POST /early HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n{');
    expect(r.closed).toBe(true);
    expect(statusLines(r.answer)).toEqual(['HTTP/1.1 200 OK\r\n']);
    expect(r.answer).not.toMatch(/408|REQUEST_TIMEOUT/);
    expect(warnings).toEqual([expect.stringMatching(/^ERR_HTTP_REQUEST_TIMEOUT on a connection that owes another answer \(client 127\.0\.0\.1, request req-early\): closed, no error answer written$/)]);
  });

  it('answers 408 to a request whose body is still arriving and not answered yet', async () => {
    handle = (req, res) => req.resume().on('end', () => res.end('whole'));
    const r = await exchange('POST /slow-body HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n{');
    expect(r.closed).toBe(true);
    expect(statusLines(r.answer)).toEqual(['HTTP/1.1 408 Request Timeout\r\n']);
    expect(warnings).toEqual([]);
  });
});
