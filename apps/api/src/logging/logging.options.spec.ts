import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import pino from 'pino';
import { connect, type AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadAppConfig } from '../config/app.config';
import { HostLogger } from './host-logger';
import { createHostLog, hostLogOptions, hostStdout, REDACTED, redactLine, redactQuery, requestIdFor, STDOUT_BATCH_BYTES, STDOUT_FLUSH_MS } from './logging.options';
import { logRequests } from './request-log';

/** pino.destination's stream (sonic-boom), as these tests use it. */
type FileStream = { once(event: 'ready', cb: () => void): void; destroy(): void };

/** The host's pino settings, exercised with a real pino logger writing to memory. */
describe('logging options', () => {
  const capture = () => {
    const lines: string[] = [];
    const stream = new Writable({
      write(chunk, _enc, cb) {
        lines.push(chunk.toString());
        cb();
      },
    });
    const opts = hostLogOptions(loadAppConfig({ LOG_LEVEL: 'info' }));
    return { logger: pino({ level: 'info', hooks: opts.hooks }, stream), lines };
  };

  it('redacts authorization headers, API keys, cookies and credential fields at any usual depth', () => {
    const { logger, lines } = capture();
    logger.info(
      {
        req: { headers: { authorization: 'Bearer eyJ.secret.jwt', 'x-api-key': 'cvk_dev_supersecret', cookie: 'sid=abc' } },
        value: 'top-level-secret',
        body: { value: 'nested-secret', refresh_token: 'rt-secret', clientSecret: 'cs-secret' },
        credential: { meta: { password: 'deep-secret' } },
      },
      'request',
    );
    const out = lines.join('');
    for (const s of ['eyJ.secret.jwt', 'cvk_dev_supersecret', 'sid=abc', 'top-level-secret', 'nested-secret', 'rt-secret', 'cs-secret', 'deep-secret']) {
      expect(out).not.toContain(s);
    }
    expect(out).toContain('[REDACTED]');
  });

  it('censors sensitive keys at any depth and in arrays, and leaves lines without them as they were', () => {
    const { logger, lines } = capture();
    logger.info({ a: { b: { c: { d: { token: 'deep-token' } } } }, items: [{ apiKey: 'k1' }, { set: 1 }], note: 'the "value": text stays' }, 'deep');
    logger.info({ req: { id: 'r1', method: 'GET', url: '/v1/credentials' }, res: { statusCode: 200 } }, 'request completed');
    const [deep, plain] = lines.map((l) => JSON.parse(l));
    expect(deep).toMatchObject({ a: { b: { c: { d: { token: '[REDACTED]' } } } }, items: [{ apiKey: '[REDACTED]' }, { set: 1 }], note: 'the "value": text stays', msg: 'deep' });
    expect(plain).toMatchObject({ req: { id: 'r1' }, res: { statusCode: 200 }, msg: 'request completed' });
    expect(redactLine(lines[1])).toBe(lines[1]);
    expect(redactLine('{"value":"x"')).not.toContain('"x"');
  });

  it('keeps a well-formed caller request id and replaces anything else', () => {
    expect(requestIdFor({ headers: { 'x-request-id': 'abc-123' } })).toBe('abc-123');
    expect(requestIdFor({ headers: { 'x-request-id': 'has spaces\nand newline' } })).toMatch(/^[0-9a-f-]{36}$/);
    expect(requestIdFor({ headers: {} })).toMatch(/^[0-9a-f-]{36}$/);
  });

  /** `body` with a host stdout writing to a fresh file (read with `read()`), ready to take lines; cleaned up after. */
  async function withStdoutFile(body: (dest: ReturnType<typeof hostStdout>, read: () => string) => Promise<void>): Promise<void> {
    const dir = mkdtempSync(join(tmpdir(), 'cv-log-'));
    const file = join(dir, 'out.log');
    const dest = hostStdout(file);
    try {
      await new Promise<void>((r) => (dest as unknown as FileStream).once('ready', r));
      await body(dest, () => readFileSync(file, 'utf8'));
    } finally {
      (dest as unknown as FileStream).destroy();
      rmSync(dir, { recursive: true, force: true });
    }
  }

  /** Waits (at most ten flush periods) until `read()` holds `lines` lines. */
  async function untilLines(read: () => string, lines: number): Promise<void> {
    const deadline = Date.now() + STDOUT_FLUSH_MS * 10;
    while (read().split('\n').length <= lines && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  }

  it('gathers stdout lines into batched writes, each written within STDOUT_FLUSH_MS and redacted', () =>
    withStdoutFile(async (dest, read) => {
      const logger = createHostLog(loadAppConfig({ LOG_LEVEL: 'info' }), dest);
      logger.info({ value: 'stored-secret' }, 'one');
      logger.info('two');
      // Gathered, not written per line: nothing is in the file yet.
      expect(read()).toBe('');
      await untilLines(read, 2);
      const lines = read().trim().split('\n').map((l) => JSON.parse(l));
      expect(lines.map((l) => l.msg)).toEqual(['one', 'two']);
      expect(lines[0].value).toBe(REDACTED);
    }));

  it('writes lines gathered as bytes intact, multi-byte characters included', () =>
    withStdoutFile(async (dest, read) => {
      const logger = createHostLog(loadAppConfig({ LOG_LEVEL: 'info' }), dest);
      const messages = ['naïve café', '€ 5 — 😀', 'x'.repeat(STDOUT_BATCH_BYTES)];
      for (const m of messages) logger.info(m);
      await untilLines(read, messages.length);
      expect(read().trim().split('\n').map((l) => JSON.parse(l).msg)).toEqual(messages);
    }));

  it('writes a batch as soon as STDOUT_BATCH_BYTES are gathered', () =>
    withStdoutFile(async (dest, read) => {
      const line = `${JSON.stringify({ msg: 'x'.repeat(100) })}\n`;
      for (let written = 0; written <= STDOUT_BATCH_BYTES; written += line.length) dest.write(line);
      // Well before the periodic flush: the full batch went out on its own.
      await new Promise((r) => setTimeout(r, STDOUT_FLUSH_MS / 4));
      expect(read().length).toBeGreaterThan(STDOUT_BATCH_BYTES);
    }));

  it('logs request URLs without query values (tokens sometimes travel there)', () => {
    expect(redactQuery('/cb?code=secret-code&state=s1')).toBe('/cb?code=[REDACTED]&state=[REDACTED]');
    // Given the names routes take, any other name is not shown either (a token pasted as a bare name).
    expect(redactQuery('/cb?code=c&ghp_0123abcd&state=s&sk_live_9', new Set(['code', 'state']))).toBe('/cb?code=[REDACTED]&[UNDECLARED]=[REDACTED]&state=[REDACTED]');
  });

  /** The host's request log hooks on a bare Fastify instance, writing their lines to memory. */
  describe('request lines', () => {
    let app: FastifyInstance | undefined;
    afterEach(async () => {
      await app?.close();
      app = undefined;
    });

    async function serve(level: string, handle: (req: FastifyRequest, reply: FastifyReply) => Promise<unknown> = async () => ({}), env: Record<string, string> = {}) {
      const lines: Record<string, any>[] = [];
      const config = loadAppConfig({ LOG_LEVEL: level, ...env });
      const logger = createHostLog(config, { write: (l: string) => void lines.push(JSON.parse(l)) });
      const nest = new HostLogger(logger);
      app = Fastify({ genReqId: requestIdFor });
      logRequests(app, logger, { requestContext: config.log.requestContext });
      // Lines name a request's route (its pattern), so each path asked below has one.
      for (const path of ['/v1/credentials', '/v1/nope', '/v1/slow', '/health/live', '/health/ready', '/metrics']) app.all(path, (req, reply) => handle(req, reply));
      await app.listen({ port: 0, host: '127.0.0.1' });
      const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
      const get = async (path: string, headers: Record<string, string> = {}) => {
        await (await fetch(base + path, { headers })).arrayBuffer();
        // The line is written on the response's 'finish', right after the client has the answer.
        await new Promise((r) => setTimeout(r, 20));
      };
      return { get, lines, logger, nest };
    }

    const byStatus = (status: () => number) => async (_req: FastifyRequest, reply: FastifyReply) => reply.status(status()).send({});

    it("at info, writes one line per request with the service, the caller's request id, status and duration, and no query values", async () => {
      const { get, lines, nest } = await serve(
        'info',
        async () => {
          nest.log({ value: 'stored-secret' }, 'CredentialsController');
          nest.log('stored credential', 'CredentialsController');
          return {};
        },
        { LOG_REQUEST_CONTEXT: 'true' },
      );
      await get('/v1/credentials?token=abc', { 'x-request-id': 'trace-1' });
      expect(lines).toHaveLength(3);
      const [withObject, app, request] = lines;
      const req = { id: 'trace-1', method: 'GET', url: '/v1/credentials?token=[REDACTED]' };
      expect(withObject).toMatchObject({ level: 30, value: '[REDACTED]', req });
      // Nest's own lines written while a request is served carry the request, as its request line does.
      expect(app).toMatchObject({ level: 30, service: 'credential-vault', context: 'CredentialsController', msg: 'stored credential', req });
      expect(request).toMatchObject({ level: 30, service: 'credential-vault', msg: 'request completed', req, res: { statusCode: 200 } });
      expect(request.responseTime).toEqual(expect.any(Number));
      expect(JSON.stringify(lines)).not.toMatch(/stored-secret|abc/);
    });

    it('at warn, writes no line for a success but one for a 4xx (warn) and a 5xx (error)', async () => {
      let status = 200;
      const { get, lines } = await serve('warn', byStatus(() => status));
      await get('/v1/credentials');
      expect(lines).toEqual([]);
      status = 404;
      await get('/v1/nope', { 'x-request-id': 'trace-404' });
      status = 503;
      await get('/v1/credentials', { 'x-request-id': 'trace-503' });
      expect(lines.map((l) => [l.level, l.service, l.req.id, l.res.statusCode, l.msg])).toEqual([
        [40, 'credential-vault', 'trace-404', 404, 'request completed'],
        [50, 'credential-vault', 'trace-503', 503, 'request errored'],
      ]);
    });

    it('honours a level changed at runtime on the root logger', async () => {
      const { get, lines, logger } = await serve('warn');
      await get('/v1/credentials');
      logger.level = 'info';
      await get('/v1/credentials');
      expect(lines.map((l) => [l.level, l.msg])).toEqual([[30, 'request completed']]);
    });

    it('keeps health probes and metric scrapes out of the log unless they fail', async () => {
      let status = 200;
      const { get, lines } = await serve('info', byStatus(() => status));
      await get('/health/live');
      await get('/metrics');
      status = 503;
      await get('/health/ready');
      expect(lines.map((l) => [l.level, l.req.url])).toEqual([[50, '/health/ready']]);
    });

    it('writes one line for a request whose client leaves before the answer', async () => {
      let release!: () => void;
      const answered = new Promise<void>((r) => (release = r));
      const { lines } = await serve('info', async () => {
        await answered;
        return {};
      });
      const port = (app!.server.address() as AddressInfo).port;
      await new Promise<void>((resolve) => {
        const socket = connect(port, '127.0.0.1', () => socket.end('GET /v1/slow HTTP/1.1\r\nHost: x\r\nX-Request-Id: gone-1\r\n\r\n'));
        socket.on('close', () => resolve());
        setTimeout(() => socket.destroy(), 50);
      });
      await new Promise((r) => setTimeout(r, 50));
      release();
      await new Promise((r) => setTimeout(r, 50));
      expect(lines.map((l) => [l.level, l.req.id, l.msg])).toEqual([[30, 'gone-1', 'request aborted']]);
    });

    it("by default (LOG_REQUEST_CONTEXT unset), Nest's own lines carry no req; the request line still does", async () => {
      const { get, lines, nest } = await serve('info', async () => {
        // After an await, as a service's line would be: no ambient request without the opt-in.
        await new Promise((r) => setImmediate(r));
        nest.log('stored credential', 'CredentialsController');
        return {};
      });
      await get('/v1/credentials', { 'x-request-id': 'trace-2' });
      expect(lines.map((l) => [l.msg, l.req?.id])).toEqual([
        ['stored credential', undefined],
        ['request completed', 'trace-2'],
      ]);
    });

    it('with LOG_REQUEST_CONTEXT, a line written after awaits inside the request still carries it', async () => {
      const { get, lines, nest } = await serve(
        'info',
        async () => {
          await new Promise((r) => setTimeout(r, 5));
          await Promise.resolve();
          nest.warn('slow vault', 'VaultValueStore');
          return {};
        },
        { LOG_REQUEST_CONTEXT: 'true' },
      );
      await get('/v1/credentials', { 'x-request-id': 'trace-3' });
      expect(lines.map((l) => [l.msg, l.req?.id])).toEqual([
        ['slow vault', 'trace-3'],
        ['request completed', 'trace-3'],
      ]);
    });

    it('logs an Error object by its class and code, never its message (it may be Azure text naming a secret)', async () => {
      const { lines, nest } = await serve('info');
      const cause = Object.assign(new Error('Secret cv-t1-MARKER-name not found'), { code: 'SecretNotFound' });
      nest.error(new Error('wrapping cv-t1-MARKER-name', { cause }), 'Scheduler');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatchObject({ level: 50, context: 'Scheduler', err: { name: 'Error', cause: { name: 'Error', code: 'SecretNotFound' } } });
      expect(JSON.stringify(lines)).not.toContain('MARKER');
    });

    it('stamps the service on lines logged outside a request too, without a req', async () => {
      const { lines, nest } = await serve('info');
      nest.warn('starting', 'Bootstrap');
      nest.error('failed', 'Error: x\n    at y (z.js:1:1)', 'ExceptionsHandler');
      expect(lines).toEqual([
        expect.objectContaining({ level: 40, service: 'credential-vault', context: 'Bootstrap', msg: 'starting', pid: process.pid }),
        expect.objectContaining({ level: 50, context: 'ExceptionsHandler', msg: expect.stringContaining('message withheld'), err: { name: 'Error', stack: 'at y (z.js:1:1)' } }),
      ]);
      expect(lines[0].req).toBeUndefined();
    });
  });
});
