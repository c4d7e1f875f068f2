import pino from 'pino';
import { pinoHttp, type Options } from 'pino-http';
import { createServer, IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { loadAppConfig } from '../config/app.config';
import { loggingOptions, redactLine, requestIdFor } from './logging.options';

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
    const opts = loggingOptions(loadAppConfig({ LOG_LEVEL: 'info' })).pinoHttp as pino.LoggerOptions;
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

  it('logs request URLs without query values (tokens sometimes travel there)', () => {
    const opts = loggingOptions(loadAppConfig({})).pinoHttp as { serializers: { req: (r: unknown) => { url: string } } };
    expect(opts.serializers.req({ id: '1', method: 'GET', url: '/cb?code=secret-code&state=s1' }).url).toBe('/cb?code=[REDACTED]&state=[REDACTED]');
  });

  /** The host's pino-http middleware in a bare HTTP server, writing its lines to memory. */
  describe('request lines', () => {
    let server: Server | undefined;
    afterEach(() => new Promise<void>((r) => (server ? server.close(() => r()) : r())));

    async function serve(level: string, handle: (req: IncomingMessage, res: ServerResponse) => void = (_q, s) => void s.end('{}')) {
      const lines: Record<string, any>[] = [];
      const stream = { write: (l: string) => void lines.push(JSON.parse(l)) };
      const middleware = pinoHttp(loggingOptions(loadAppConfig({ LOG_LEVEL: level })).pinoHttp as Options, stream);
      let done = Promise.resolve();
      server = createServer((req, res) => {
        // 'close' follows 'finish', on which pino-http writes the request line.
        done = new Promise((r) => res.once('close', r));
        middleware(req, res, () => handle(req, res));
      });
      await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
      const base = `http://127.0.0.1:${(server!.address() as AddressInfo).port}`;
      const get = async (path: string, headers: Record<string, string> = {}) => {
        await (await fetch(base + path, { headers })).arrayBuffer();
        await done;
      };
      return { get, lines, logger: middleware.logger };
    }

    const byStatus = (status: number) => (_req: IncomingMessage, res: ServerResponse) => void res.writeHead(status).end('{}');

    it('at info, writes one line per request with the service, the caller\'s request id and no query values', async () => {
      const { get, lines } = await serve('info', (req, res) => {
        req.log.info({ value: 'stored-secret' }, 'stored credential');
        res.end('{}');
      });
      await get('/v1/credentials?token=abc', { 'x-request-id': 'trace-1' });
      expect(lines).toHaveLength(2);
      const [app, request] = lines;
      expect(app).toMatchObject({ level: 30, service: 'credential-vault', msg: 'stored credential', value: '[REDACTED]', req: { id: 'trace-1' } });
      expect(request).toMatchObject({
        level: 30,
        service: 'credential-vault',
        msg: 'request completed',
        req: { id: 'trace-1', method: 'GET', url: '/v1/credentials?token=[REDACTED]' },
        res: { statusCode: 200 },
      });
      expect(JSON.stringify(lines)).not.toMatch(/stored-secret|abc/);
    });

    it('at warn, writes no line for a success but one for a 4xx (warn) and a 5xx (error)', async () => {
      let status = 200;
      const { get, lines } = await serve('warn', (q, s) => byStatus(status)(q, s));
      await get('/v1/credentials');
      expect(lines).toEqual([]);
      status = 404;
      await get('/v1/nope', { 'x-request-id': 'trace-404' });
      status = 503;
      await get('/v1/credentials', { 'x-request-id': 'trace-503' });
      expect(lines.map((l) => [l.level, l.service, l.req.id, l.res.statusCode])).toEqual([
        [40, 'credential-vault', 'trace-404', 404],
        [50, 'credential-vault', 'trace-503', 503],
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
      const { get, lines } = await serve('info', (q, s) => byStatus(status)(q, s));
      await get('/health/live');
      await get('/metrics');
      status = 503;
      await get('/health/ready');
      expect(lines.map((l) => [l.level, l.req.url])).toEqual([[50, '/health/ready']]);
    });

    it('stamps the service on lines logged outside a request too', async () => {
      const { lines, logger } = await serve('info');
      logger.warn('starting');
      expect(lines).toEqual([expect.objectContaining({ level: 40, service: 'credential-vault', msg: 'starting', pid: process.pid })]);
    });
  });
});
