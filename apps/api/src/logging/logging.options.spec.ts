import pino from 'pino';
import { Writable } from 'node:stream';
import { loadAppConfig } from '../config/app.config';
import { loggingOptions, requestIdFor } from './logging.options';

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
    return { logger: pino({ level: 'info', redact: opts.redact }, stream), lines };
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

  it('keeps a well-formed caller request id and replaces anything else', () => {
    expect(requestIdFor({ headers: { 'x-request-id': 'abc-123' } })).toBe('abc-123');
    expect(requestIdFor({ headers: { 'x-request-id': 'has spaces\nand newline' } })).toMatch(/^[0-9a-f-]{36}$/);
    expect(requestIdFor({ headers: {} })).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('logs request URLs without query values (tokens sometimes travel there)', () => {
    const opts = loggingOptions(loadAppConfig({})).pinoHttp as { serializers: { req: (r: unknown) => { url: string } } };
    expect(opts.serializers.req({ id: '1', method: 'GET', url: '/cb?code=secret-code&state=s1' }).url).toBe('/cb?code=[REDACTED]&state=[REDACTED]');
  });
});
