import type { FastifyRequest } from 'fastify';
import { pino, type LoggerOptions } from 'pino';
import { loadAppConfig } from '../config/app.config';
import { hostLogOptions } from './logging.options';
import { requestLineWriter, requestLogFields } from './request-log';

/** The request line written by hand must read exactly as pino would write the same line. */
describe('requestLineWriter', () => {
  const config = loadAppConfig({ LOG_LEVEL: 'info' });
  // A fixed clock, so that the two lines can be compared byte for byte.
  const fixedTime = { timestamp: () => ',"time":1767225600000' };

  const logger = (extra: LoggerOptions = {}) => {
    const lines: string[] = [];
    const log = pino({ ...hostLogOptions(config), ...fixedTime, ...extra }, { write: (l: string) => void lines.push(l) });
    return { log, lines };
  };
  // Each as routed by a route whose pattern is its path (no parameters).
  const request = (id: string, url: string, method = 'GET') => ({ id, url, method, routeOptions: { url: url.split('?')[0] }, params: {} }) as unknown as FastifyRequest;
  const pinoLine = (extra: LoggerOptions, level: 'info' | 'warn' | 'error', fields: object, msg: string) => {
    const { log, lines } = logger(extra);
    log[level](fields, msg);
    return lines[0];
  };

  it.each([
    ['a success', 200, 1.3, 'info', 'request completed'],
    ['a client error', 404, 0.4, 'warn', 'request completed'],
    ['a server error', 503, 12, 'error', 'request errored'],
  ] as const)('writes %s as pino does, byte for byte', (_name, statusCode, responseTime, level, msg) => {
    const { log, lines } = logger();
    requestLineWriter(log)(request('r-1', '/v1/credentials/abc/value'), statusCode, responseTime);
    const req = { id: 'r-1', method: 'GET', url: '/v1/credentials/abc/value' };
    expect(lines).toEqual([pinoLine({}, level, { req, res: { statusCode }, responseTime }, msg)]);
  });

  it('writes an aborted request (no status, no duration; at info, as before) as pino does', () => {
    const { log, lines } = logger();
    requestLineWriter(log)(request('r-2', '/v1/credentials'), 0, undefined);
    expect(lines).toEqual([pinoLine({}, 'info', { req: { id: 'r-2', method: 'GET', url: '/v1/credentials' }, res: { statusCode: 0 } }, 'request aborted')]);
  });

  it('escapes what it repeats from the request, drops query values and still censors through the hook', () => {
    const { log, lines } = logger();
    const id = 'we"ird\\id\u2028';
    requestLineWriter(log)(request(id, '/v1/credentials?token=abc&"value":x'), 200, 2);
    const line = JSON.parse(lines[0]) as { req: { id: string; url: string } };
    expect(line.req).toEqual({ id, method: 'GET', url: '/v1/credentials?token=[REDACTED]&"value":x=[REDACTED]' });
    expect(lines[0]).not.toContain('abc');
    expect(lines[0]).toBe(pinoLine({}, 'info', { req: line.req, res: { statusCode: 200 }, responseTime: 2 }, 'request completed'));
  });

  it('carries bindings set after it was built, as pino would', () => {
    const { log, lines } = logger();
    const write = requestLineWriter(log);
    log.setBindings({ region: 'eu-1' });
    write(request('r-7', '/v1/credentials'), 200, 1);
    const { log: expected, lines: expectedLines } = logger();
    expected.setBindings({ region: 'eu-1' });
    expected.info({ req: { id: 'r-7', method: 'GET', url: '/v1/credentials' }, res: { statusCode: 200 }, responseTime: 1 }, 'request completed');
    expect(lines).toEqual(expectedLines);
    expect(lines[0]).toContain('"region":"eu-1"');
  });

  it('writes no line below the level, and none for a successful health probe', () => {
    const { log, lines } = logger({ level: 'warn' });
    const write = requestLineWriter(log);
    write(request('r-3', '/v1/credentials'), 200, 1);
    const { log: infoLog, lines: infoLines } = logger();
    requestLineWriter(infoLog)(request('r-4', '/health/ready'), 200, 1);
    expect([...lines, ...infoLines]).toEqual([]);
    write(request('r-5', '/health/ready'), 500, 1);
    expect(lines).toHaveLength(1);
  });

  it("takes pino's path for a logger set up beyond the shapes it writes: a log formatter, a mixin's fields, a req serializer, redact paths", () => {
    const cases: LoggerOptions[] = [
      { formatters: { log: (o) => ({ ...o, formatted: true }) } },
      { mixin: () => ({ tenant: 't-1' }) },
      { serializers: { req: () => ({ kept: 'only this' }) } },
      { redact: ['req.url'] },
      { redact: ['*.method'] },
    ];
    for (const extra of cases) {
      const { log, lines } = logger(extra);
      requestLineWriter(log)(request('r-6', '/v1/credentials'), 200, 1);
      expect(lines).toEqual([pinoLine(extra, 'info', { req: { id: 'r-6', method: 'GET', url: '/v1/credentials' }, res: { statusCode: 200 }, responseTime: 1 }, 'request completed')]);
    }
    // The cases differ from the plain line: each took a path that applies its setting.
    expect(pinoLine(cases[1], 'info', {}, 'x')).toContain('"tenant":"t-1"');
    expect(pinoLine(cases[3], 'info', { req: { url: '/x' } }, 'x')).toContain('"url":"[Redacted]"');
  });

  it('applies a level formatter as pino does (it is in pino\'s level prefix)', () => {
    const extra: LoggerOptions = { formatters: { level: (label) => ({ severity: label.toUpperCase() }) } };
    const { log, lines } = logger(extra);
    requestLineWriter(log)(request('r-8', '/v1/credentials'), 404, 1);
    expect(lines).toEqual([pinoLine(extra, 'warn', { req: { id: 'r-8', method: 'GET', url: '/v1/credentials' }, res: { statusCode: 404 }, responseTime: 1 }, 'request completed')]);
    expect(lines[0]).toContain('"severity":"WARN"');
  });
});

describe('requestLogFields', () => {
  const id = '4f1c2b7e-9a3d-4c1e-8b2a-0d9e6f5a4b3c';
  const pasted = 'ghp_0123456789abcdefABCDEF0123456789abcd';
  const routed = (url: string, pattern: string | undefined, params: Record<string, string> = {}) =>
    requestLogFields({ id: 'r', method: 'GET', url, routeOptions: pattern === undefined ? undefined : { url: pattern }, params } as unknown as FastifyRequest).url;

  it('writes the route pattern with the path parameters that pass their check, and the query without values', () => {
    expect(routed(`/v1/credentials/${id}/value`, '/v1/credentials/:id/value', { id })).toBe(`/v1/credentials/${id}/value`);
    expect(routed(`/v1/credentials/${id.toUpperCase()}/versions/12/value?allowExpired=true`, '/v1/credentials/:id/versions/:version/value', { id: id.toUpperCase(), version: '12' })).toBe(
      `/v1/credentials/${id.toUpperCase()}/versions/12/value?allowExpired=[REDACTED]`,
    );
    expect(routed('/v1/credentials/statistics', '/v1/credentials/statistics')).toBe('/v1/credentials/statistics');
    // The path as routed, not as sent: percent-encoding decoded, an absolute-form target's scheme and host left out.
    expect(routed(`/v1/credentials/%34${id.slice(1)}/value`, '/v1/credentials/:id/value', { id })).toBe(`/v1/credentials/${id}/value`);
    expect(routed(`http://example.test/v1/credentials/${id}/value`, '/v1/credentials/:id/value', { id })).toBe(`/v1/credentials/${id}/value`);
  });

  it('never writes a parameter that failed its check, one that has none, or the path of a request no route took', () => {
    const lines = [
      routed(`/v1/credentials/${pasted}/value`, '/v1/credentials/:id/value', { id: pasted }),
      routed(`/v1/credentials/${id}/versions/${pasted}/value`, '/v1/credentials/:id/versions/:version/value', { id, version: pasted }),
      routed(`/v1/credentials/${id}/versions/0x1/value`, '/v1/credentials/:id/versions/:version/value', { id, version: '0x1' }),
      routed(`/v1/connections/github/${pasted}`, '/v1/connections/:integrationId/:connectionId', { integrationId: 'github', connectionId: pasted }),
      routed(`/v1/keys/${pasted}`, '/v1/keys/:name', { name: pasted }),
      routed(`/v1/credentialz/${pasted}?q=${pasted}`, undefined),
      // Text the router ignores (after `#`) is never taken along.
      routed(`/v1/credentials/${id}/value#${pasted}`, '/v1/credentials/:id/value', { id }),
    ];
    expect(lines).toEqual([
      '/v1/credentials/:id/value',
      `/v1/credentials/${id}/versions/:version/value`,
      `/v1/credentials/${id}/versions/:version/value`,
      '/v1/connections/:integrationId/:connectionId',
      '/v1/keys/:name',
      'unmatched?q=[REDACTED]',
      `/v1/credentials/${id}/value`,
    ]);
  });
});
