import { connect as connectHttp2, type ClientHttp2Session } from 'node:http2';
import { connect, type Socket } from 'node:net';
import { generateApiKey } from '../apps/api/src/auth/api-keys';
import { freePort } from './support/grpc-keys-client';
import { startTestHost, type TestHost } from './support/host';

/**
 * Regressions of what probing the API from outside found (issue #10), one file per theme (hardening-*.e2e-spec.ts).
 * Here: a request that never finishes arriving. Authentication comes after the body has been read, so before the
 * whole request had a deadline anyone could hold a connection (and a request in flight) open for ever by sending
 * its body a byte at a time: Fastify's `requestTimeout` defaults to 0 (no limit), which also lifted Node's own 300 s.
 * The keys API over gRPC likewise: a call whose message never finishes arriving was held open for ever.
 * No database is read or written (the request never reaches a route): SQLite only.
 */
describe('hardened HTTP API (slow requests) on sqlite', () => {
  const key = generateApiKey('acme-app', 'acme', ['credentials:write']);
  let host: TestHost;
  let grpcPort: number;
  const sockets: Socket[] = [];
  const sessions: ClientHttp2Session[] = [];

  beforeAll(async () => {
    grpcPort = await freePort();
    host = await startTestHost('sqlite', { AUTH_API_KEYS: JSON.stringify([key.entry]), HTTP_REQUEST_TIMEOUT_MS: '1000', LOG_LEVEL: 'warn', GRPC_ENABLED: 'true', GRPC_PORT: String(grpcPort) });
  });
  afterAll(async () => {
    for (const s of sockets) s.destroy();
    for (const s of sessions) s.destroy();
    await host?.close();
  });

  /** Writes `bytes` on a new connection, then one more byte every 100 ms while it is open; resolves with what the server sent once it closes, or after `waitMs`. */
  function exchange(bytes: string, waitMs: number): Promise<{ closed: boolean; afterMs: number; answer: string }> {
    const { port } = new URL(host.baseUrl);
    const socket = connect(Number(port), '127.0.0.1');
    sockets.push(socket);
    const started = Date.now();
    let answer = '';
    socket.setEncoding('utf8').on('data', (d: string) => (answer += d));
    socket.on('error', () => undefined);
    socket.write(bytes);
    const drip = setInterval(() => socket.writable && socket.write(' '), 100);
    return new Promise((resolve) => {
      const done = (closed: boolean) => {
        clearInterval(drip);
        clearTimeout(timer);
        resolve({ closed, afterMs: Date.now() - started, answer });
      };
      const timer = setTimeout(() => done(false), waitMs);
      socket.on('close', () => done(true));
    });
  }
  /** Sends the request line, `headers` and `body` now, then one more byte of body every 100 ms; resolves with what the server sent once it closes, or after `waitMs`. */
  const trickle = (headers: string, body: string, waitMs: number) => exchange(`POST /v1/credentials HTTP/1.1\r\nHost: 127.0.0.1\r\n${headers}\r\n${body}`, waitMs);

  /** The status lines of what a connection was sent: one per answer. */
  const statusLines = (answer: string) => answer.match(/HTTP\/1\.1 \d{3} [^\r]*\r\n/g) ?? [];
  const headOf = (answer: string) => answer.slice(0, answer.indexOf('\r\n\r\n'));

  it('21. a body that keeps trickling in is cut off at HTTP_REQUEST_TIMEOUT_MS with 408 in the error shape, whoever sends it', async () => {
    for (const auth of ['', `X-API-Key: ${key.key}\r\n`]) {
      const r = await trickle(`${auth}Content-Type: application/json\r\nContent-Length: 100000\r\n`, '{', 6_000);
      expect({ closed: r.closed, withinMs: r.afterMs < 6_000 }).toEqual({ closed: true, withinMs: true });
      expect(r.answer).toMatch(/^HTTP\/1\.1 408 /);
      const body = JSON.parse(r.answer.slice(r.answer.indexOf('\r\n\r\n') + 4)) as Record<string, unknown>;
      expect(body).toEqual({
        statusCode: 408,
        error: 'REQUEST_TIMEOUT',
        message: 'the request took too long to arrive',
        code: 90008,
        codeName: 'REQUEST_TIMEOUT',
        requestId: expect.any(String),
      });
    }
  });

  it('21d. the 408 of a request whose headers came carries its request id, and its line and count say 408 (not "aborted" under another id)', async () => {
    const r = await trickle(`X-Request-Id: slow-body-1\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n`, '{', 6_000);
    expect(r.answer).toMatch(/^HTTP\/1\.1 408 /);
    expect(r.answer).toMatch(/\r\nx-request-id: slow-body-1\r\n/);
    expect(JSON.parse(r.answer.slice(r.answer.indexOf('\r\n\r\n') + 4))).toMatchObject({ code: 90008, requestId: 'slow-body-1' });
    const line = JSON.parse(await host.logLine((l) => l.includes('"slow-body-1"'))) as Record<string, unknown>;
    expect(line).toMatchObject({ level: 40, req: { id: 'slow-body-1', method: 'POST', url: '/v1/credentials' }, res: { statusCode: 408 } });
    const metrics = await (await fetch(`${host.baseUrl}/metrics`)).text();
    expect(metrics).toMatch(/credential_vault_http_requests_total\{method="POST",route="\/v1\/credentials",status="408"\} [1-9]/);
    expect(metrics).not.toMatch(/status="aborted"/);
  });

  it('21f. a body past the limit is answered 413 with Connection: close and its connection closed: the rest trickling in gets no second answer (no 408)', async () => {
    const chunked = `Transfer-Encoding: chunked\r\n`;
    for (const [framing, body] of [
      [`Content-Length: ${300 * 1024}\r\n`, '{'],
      [chunked, `${(300 * 1024).toString(16)}\r\n{${' '.repeat(260 * 1024)}`],
    ])
    for (const auth of ['', `X-API-Key: ${key.key}\r\n`]) {
      const r = await trickle(`${auth}Content-Type: application/json\r\n${framing}`, body, 4_000);
      expect(r.answer).toMatch(/^HTTP\/1\.1 413 /);
      expect(r.answer.match(/HTTP\/1\.1 \d{3} /g)).toHaveLength(1);
      expect(r.answer.slice(0, r.answer.indexOf('\r\n\r\n'))).toMatch(/\r\nconnection: close\r\n/i);
      expect({ closed: r.closed, withinMs: r.afterMs < 1_000 }).toEqual({ closed: true, withinMs: true });
    }
  });

  it('21g. a request refused before its body is read (405, a bad query or Host) is answered once with Connection: close, and its connection closed: the rest of a slow body gets no 408 too', async () => {
    for (const [line, extra, status] of [
      ['PUT /v1/credentials HTTP/1.1', '', 405],
      ['POST /v1/credentials?x=%FF HTTP/1.1', '', 400],
      ['POST /v1/credentials HTTP/1.1', 'Host: 127.0.0.2\r\n', 400],
    ] as const) {
      const r = await exchange(`${line}\r\nHost: 127.0.0.1\r\n${extra}Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{`, 4_000);
      expect({ line, statusLines: statusLines(r.answer) }).toEqual({ line, statusLines: [expect.stringMatching(new RegExp(`^HTTP/1\\.1 ${status} `))] });
      expect(headOf(r.answer)).toMatch(/\r\nconnection: close(\r\n|$)/i);
      expect({ line, closed: r.closed, withinMs: r.afterMs < 900 }).toEqual({ line, closed: true, withinMs: true });
    }
  });

  it('21i. the same early answers (405, a bad query) to a request whose small body came whole with its headers keep the connection alive: the next request on it is answered', async () => {
    for (const [line, status] of [
      ['PUT /v1/credentials HTTP/1.1', 405],
      ['POST /v1/credentials?x=%FF HTTP/1.1', 400],
    ] as const) {
      const { port } = new URL(host.baseUrl);
      const socket = connect(Number(port), '127.0.0.1');
      sockets.push(socket);
      let answer = '';
      socket.setEncoding('utf8').on('data', (d: string) => (answer += d));
      socket.on('error', () => undefined);
      // One write: the body is in the same packet as the headers (as Node's and curl's clients send a small one).
      socket.write(`${line}\r\nHost: 127.0.0.1\r\nX-API-Key: ${key.key}\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n{"a":1}`);
      await new Promise((resolve) => setTimeout(resolve, 300));
      if (socket.writable) socket.write(`GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
      await new Promise((resolve) => setTimeout(resolve, 300));
      socket.destroy();
      expect({ line, statusLines: statusLines(answer) }).toEqual({ line, statusLines: [expect.stringMatching(new RegExp(`^HTTP/1\\.1 ${status} `)), 'HTTP/1.1 200 OK\r\n'] });
      expect(headOf(answer)).not.toMatch(/\r\nconnection: close(\r\n|$)/i);
    }
  });

  it('21h. a request pipelined behind one in flight that is not HTTP gets no answer of its own in place of the first one: the first is answered, then the connection closes', async () => {
    const r = await exchange(`GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nNOT HTTP AT ALL\r\n\r\n`, 4_000);
    expect(statusLines(r.answer)).toEqual(['HTTP/1.1 200 OK\r\n']);
    expect(headOf(r.answer)).toMatch(/\r\nconnection: close(\r\n|$)/i);
    expect(r.closed).toBe(true);
    // The warning names the client and the request whose answer was owed: the id its answer and access line carry.
    const id = /\r\nx-request-id: ([^\r]+)/i.exec(headOf(r.answer))?.[1];
    expect(id).toBeTruthy();
    await host.logLine((l) => l.includes(`on a connection that owes another answer (client 127.0.0.1, request ${id})`));
  });

  /**
   * How long 21c and 21e wait for a silent connection's close (HTTP_REQUEST_TIMEOUT_MS is 1 s). The host runs in this
   * process: a turn of its event loop held up past 6 s (a loaded CI machine) ran the host's 1 s deadline and the test's
   * 6 s one in the same timers phase, before the close could arrive, and failed a host that closes it. A connection
   * kept for ever still fails here.
   */
  const SILENT_CLOSED_WITHIN_MS = 15_000;

  it('21c. a connection that sends nothing is closed after HTTP_REQUEST_TIMEOUT_MS (Node bounds a request only once its first byte came)', async () => {
    const { port } = new URL(host.baseUrl);
    const socket = connect(Number(port), '127.0.0.1');
    sockets.push(socket);
    socket.on('error', () => undefined);
    const started = Date.now();
    const closed = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), SILENT_CLOSED_WITHIN_MS);
      socket.on('close', () => (clearTimeout(timer), resolve(true)));
    });
    expect({ closed, withinMs: Date.now() - started < SILENT_CLOSED_WITHIN_MS }).toEqual({ closed: true, withinMs: true });
  });

  it('21e. a connection to the gRPC port that makes no call within HTTP_REQUEST_TIMEOUT_MS is closed (grpc-js keeps one for ever)', async () => {
    const silent = connect(grpcPort, '127.0.0.1');
    sockets.push(silent);
    silent.on('error', () => undefined);
    const preface = connectHttp2(`http://127.0.0.1:${grpcPort}`);
    sessions.push(preface);
    preface.on('error', () => undefined);
    const started = Date.now();
    const closedWithin = (on: (done: () => void) => void) =>
      new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), SILENT_CLOSED_WITHIN_MS);
        on(() => (clearTimeout(timer), resolve(true)));
      });
    const closed = await Promise.all([closedWithin((done) => silent.on('close', done)), closedWithin((done) => preface.on('close', done))]);
    expect({ closed, withinMs: Date.now() - started < SILENT_CLOSED_WITHIN_MS }).toEqual({ closed: [true, true], withinMs: true });
    // A channel that calls again after such a close opens a new connection: served.
    const session = connectHttp2(`http://127.0.0.1:${grpcPort}`);
    sessions.push(session);
    const stream = session.request({ ':method': 'POST', ':path': '/credential_vault.keys.v1.KeysService/ListKeys', 'content-type': 'application/grpc', te: 'trailers', 'x-api-key': key.key });
    stream.end(Buffer.from([0, 0, 0, 0, 0]));
    const status = await new Promise<unknown>((resolve) => {
      stream.on('trailers', (t) => resolve(t['grpc-status']));
      stream.on('response', (h) => h['grpc-status'] !== undefined && resolve(h['grpc-status']));
    });
    expect(status).toBe('7'); // PERMISSION_DENIED: the key has no keys scope — the call was served, by the guard
  });

  it('a request that arrives within the deadline is served as before', async () => {
    const res = await fetch(`${host.baseUrl}/v1/credentials`, {
      method: 'POST',
      headers: { 'x-api-key': key.key, 'content-type': 'application/json' },
      body: JSON.stringify({ integrationId: 'github', connectionId: 'slow-ok', type: 'api_key', value: 'ghp_0123456789abcdefghij' }),
    });
    expect(res.status).toBe(201);
  });

  it('21b. a gRPC call whose message keeps trickling in is ended at HTTP_REQUEST_TIMEOUT_MS: DEADLINE_EXCEEDED, host code 90008', async () => {
    const session = connectHttp2(`http://127.0.0.1:${grpcPort}`);
    sessions.push(session);
    session.on('error', () => undefined);
    const started = Date.now();
    const stream = session.request(
      { ':method': 'POST', ':path': '/credential_vault.keys.v1.KeysService/ListKeys', 'content-type': 'application/grpc', te: 'trailers', 'x-api-key': key.key },
      { endStream: false },
    );
    stream.on('error', () => undefined);
    // A message announced as 100 bytes long, then sent one byte every 100 ms.
    stream.write(Buffer.from([0, 0, 0, 0, 100]));
    const drip = setInterval(() => stream.writable && stream.write(Buffer.from([0])), 100);
    const trailers = await new Promise<Record<string, unknown> | undefined>((resolve) => {
      const timer = setTimeout(() => resolve(undefined), 6_000);
      stream.on('trailers', (t) => (clearTimeout(timer), resolve(t)));
      stream.on('response', (h) => h['grpc-status'] !== undefined && (clearTimeout(timer), resolve(h)));
    });
    clearInterval(drip);
    expect({ answered: trailers !== undefined, withinMs: Date.now() - started < 6_000 }).toEqual({ answered: true, withinMs: true });
    expect(trailers).toEqual(expect.objectContaining({ 'grpc-status': '4', 'cv-error-code': '90008', 'x-request-id': expect.any(String) }));
    expect(decodeURIComponent(String(trailers?.['grpc-message']))).toBe('the request took too long to arrive');
  });
});
