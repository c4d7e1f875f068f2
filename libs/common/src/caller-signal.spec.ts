import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { callerSignal, withCallerSignal, type CallerResponse } from './caller-signal';

/** A loopback HTTP server whose requests the test answers (or not) by hand. */
describe('callerSignal / withCallerSignal', () => {
  let server: Server;
  let arrived: (exchange: { req: IncomingMessage; res: ServerResponse }) => void;
  let nextExchange: Promise<{ req: IncomingMessage; res: ServerResponse }>;
  const expectExchange = () => (nextExchange = new Promise((resolve) => (arrived = resolve)));

  beforeAll(async () => {
    server = createServer((req, res) => {
      // The whole body read first: a client that sent it all and then left is the case req.aborted does not see.
      req.resume();
      req.on('end', () => arrived({ req, res }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  });
  afterAll(() => {
    server.closeAllConnections();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });

  /** A POST with its whole body sent; `leave()` drops the connection before (or after) the answer. */
  const post = () => {
    expectExchange();
    const req = request({ port: (server.address() as AddressInfo).port, host: '127.0.0.1', method: 'POST', path: '/', agent: false });
    req.on('error', () => undefined);
    const answered = new Promise<string>((resolve) => req.on('response', (res) => res.setEncoding('utf8').on('data', resolve)));
    req.end('{"value":"x"}');
    return { leave: () => req.destroy(), answered };
  };
  const aborted = (signal: AbortSignal | undefined) => new Promise<void>((resolve) => signal?.addEventListener('abort', () => resolve()));
  const closed = (res: ServerResponse) => new Promise<void>((resolve) => (res.closed ? resolve() : res.once('close', () => resolve())));

  it.each([
    ["Node's response (Express's res)", (res: ServerResponse): CallerResponse => res],
    ["Fastify's reply (the response as `raw`)", (res: ServerResponse): CallerResponse => ({ raw: res })],
  ])('aborts when the client leaves before its answer was written: %s', async (_, response) => {
    const client = post();
    const { res } = await nextExchange;
    const signal = callerSignal(response(res));
    expect(signal.aborted).toBe(false);
    client.leave();
    await aborted(signal);
    expect(signal.aborted).toBe(true);
  });

  it('does not abort when the answer was written, then the connection closed', async () => {
    const client = post();
    const { res } = await nextExchange;
    const signal = callerSignal(res);
    res.end('done');
    expect(await client.answered).toBe('done');
    client.leave();
    await closed(res);
    expect(signal.aborted).toBe(false);
  });

  it('asked after the client left: already aborted; after the answer was written: never aborts', async () => {
    const gone = post();
    const first = await nextExchange;
    gone.leave();
    await closed(first.res);
    expect(callerSignal(first.res).aborted).toBe(true);

    const served = post();
    const second = await nextExchange;
    second.res.end('done');
    await served.answered;
    const signal = callerSignal(second.res);
    served.leave();
    await closed(second.res);
    expect(signal.aborted).toBe(false);
  });

  it('withCallerSignal: the context as given, with a signal made when first read that aborts when the client leaves', async () => {
    const client = post();
    const { res } = await nextExchange;
    const listening = res.listenerCount('close');
    const ctx = withCallerSignal({ tenantId: 'acme', actor: { id: 'user:alice' }, correlationId: 'req-1' }, res);
    expect(ctx).toMatchObject({ tenantId: 'acme', actor: { id: 'user:alice' }, correlationId: 'req-1' });
    // Nothing is listened to until a vault call asks for it (a cached read never does).
    expect(res.listenerCount('close')).toBe(listening);
    const signal = ctx.signal;
    expect(res.listenerCount('close')).toBe(listening + 1);
    expect(ctx.signal).toBe(signal);
    client.leave();
    await aborted(signal);
    expect(ctx.signal?.aborted).toBe(true);

    // The response stays inside: a copy or a serialisation of the context (a log line) carries only its fields.
    expect(JSON.parse(JSON.stringify(ctx))).toEqual({ tenantId: 'acme', actor: { id: 'user:alice' }, correlationId: 'req-1' });
    expect(Object.keys({ ...ctx }).sort()).toEqual(['actor', 'correlationId', 'tenantId']);

    // Not an HTTP call: no signal.
    expect(withCallerSignal({ tenantId: 'acme', actor: { id: 'system:job' } }, undefined).signal).toBeUndefined();
  });
});
