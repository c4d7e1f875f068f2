import { Metadata, status as GrpcCode, type Server, type ServerInterceptingCallInterface, type ServerMethodDefinition } from '@grpc/grpc-js';
import { pino } from 'pino';
import { grpcCallRecord, observeGrpcCalls, observeUnknownMethods } from './grpc-call-observer';

type Listener = Parameters<ServerInterceptingCallInterface['start']>[0];
type Status = Parameters<ServerInterceptingCallInterface['sendStatus']>[0];

const PATH = '/credential_vault.keys.v1.KeysService/Sign';

/**
 * The call grpc-js hands its first interceptor, as far as the observer uses it: it records what is sent, and the
 * test plays grpc-js' part (metadata arriving, the client cancelling, grpc-js answering by itself).
 */
function baseCall(deadline: number) {
  const sent: Status[] = [];
  let listener: Listener | undefined;
  const call = {
    start: (l: Listener) => void (listener = l),
    sendMetadata: () => undefined,
    sendMessage: (_m: unknown, cb: () => void) => cb(),
    sendStatus: (s: Status) => void sent.push(s),
    startRead: () => undefined,
    getPeer: () => 'ipv4:127.0.0.1:5000',
    getDeadline: () => deadline,
    getHost: () => 'localhost',
  } as unknown as ServerInterceptingCallInterface;
  return { call, sent, listener: () => listener! };
}

function observe(deadline = Infinity) {
  const lines: Record<string, any>[] = [];
  const log = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l)) });
  const base = baseCall(deadline);
  const intercepting = observeGrpcCalls(log, { trace: false })({ path: PATH } as ServerMethodDefinition<unknown, unknown>, base.call);
  const received: Metadata[] = [];
  intercepting.start({ onReceiveMetadata: (m) => void received.push(m), onReceiveMessage: () => undefined, onReceiveHalfClose: () => undefined, onCancel: () => undefined });
  const arrive = (entries: [string, string][] = []) => {
    const metadata = new Metadata();
    for (const [k, v] of entries) metadata.add(k, v);
    base.listener().onReceiveMetadata(metadata);
    return received[0];
  };
  return { lines, base, intercepting, arrive };
}

describe('observeGrpcCalls', () => {
  it('logs a call the client cancelled once, as CANCELLED; a status the handler sends later adds no line', () => {
    const { lines, base, intercepting, arrive } = observe();
    const metadata = arrive([['x-request-id', 'kept-1']]);
    grpcCallRecord(metadata)!.principal = { tenantId: 'acme', actorId: 'api-key:acme' };
    base.listener().onCancel();
    intercepting.sendStatus({ code: GrpcCode.OK, details: 'OK', metadata: null });
    expect(lines).toEqual([
      expect.objectContaining({ level: 30, msg: 'gRPC call cancelled', req: { id: 'kept-1', method: PATH }, res: { grpcStatus: 'CANCELLED' }, tenantId: 'acme', actorId: 'api-key:acme' }),
    ]);
  });

  it("takes a cancellation just before its deadline for the caller's deadline (DEADLINE_EXCEEDED), one before that for a cancel", () => {
    const T0 = 1_767_225_600_000;
    jest.useFakeTimers({ now: T0, doNotFake: ['nextTick', 'setImmediate'] });
    try {
      // [deadline after arrival, cancelled after, status]: the last quarter of the call's time, at most 250 ms.
      const cases = [
        [1_000, 900, 'DEADLINE_EXCEEDED'],
        [1_000, 500, 'CANCELLED'],
        [60_000, 59_800, 'DEADLINE_EXCEEDED'],
        [60_000, 59_000, 'CANCELLED'],
      ] as const;
      const seen = cases.map(([deadline, cancelledAfter]) => {
        jest.setSystemTime(T0);
        const o = observe(T0 + deadline);
        o.arrive();
        jest.setSystemTime(T0 + cancelledAfter);
        o.base.listener().onCancel();
        return o.lines.map((l) => l.res.grpcStatus);
      });
      expect(seen).toEqual(cases.map(([, , status]) => [status]));
    } finally {
      jest.useRealTimers();
    }
  });

  it('sees the statuses grpc-js sends by itself, and adds the request id to their trailers', () => {
    const { lines, base, arrive } = observe();
    const metadata = arrive([['x-request-id', 'own-1']]);
    // What grpc-js does with a message that does not decompress: a status on the call it made, no responder asked.
    base.call.sendStatus({ code: GrpcCode.INTERNAL, details: 'Failed to decompress message', metadata: null });
    base.listener().onCancel();
    expect(base.sent).toHaveLength(1);
    expect(base.sent[0].metadata?.get('x-request-id')).toEqual(['own-1']);
    expect(metadata.get('x-request-id')).toEqual(['own-1']);
    // The caller sent it: the caller's fault, at warn (gRPC's INTERNAL is kept on the wire, as every gRPC server answers it).
    expect(lines).toEqual([expect.objectContaining({ level: 40, msg: 'gRPC call completed', req: { id: 'own-1', method: PATH }, res: { grpcStatus: 'INTERNAL' } })]);
  });

  it("counts grpc-js' answers to what the caller sent wrong as client faults, its other INTERNALs as server faults", () => {
    const faultOf = (status: Omit<Status, 'metadata'>) => {
      const counted: string[] = [];
      const lines: Record<string, any>[] = [];
      const log = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l)) });
      const base = baseCall(Infinity);
      observeGrpcCalls(log, { trace: false, count: (_m, code, fault) => void counted.push(`${code} ${fault}`) })({ path: PATH } as ServerMethodDefinition<unknown, unknown>, base.call);
      base.call.sendStatus({ ...status, metadata: null });
      return { counted, level: lines[0]?.level, sent: base.sent[0] };
    };
    expect(faultOf({ code: GrpcCode.INTERNAL, details: 'Failed to decompress message' })).toMatchObject({ counted: ['INTERNAL client'], level: 40 });
    const unsupported = faultOf({ code: GrpcCode.UNIMPLEMENTED, details: 'Received message compressed with unsupported encoding "br"' });
    expect(unsupported).toMatchObject({ counted: ['UNIMPLEMENTED client'], level: 40 });
    // gRPC's compression spec: the answer names the encodings the server accepts.
    expect(unsupported.sent.metadata?.get('grpc-accept-encoding')).toEqual(['identity,deflate,gzip']);
    expect(faultOf({ code: GrpcCode.INTERNAL, details: 'Invalid grpc-timeout value "soon"' })).toMatchObject({ counted: ['INTERNAL client'], level: 40 });
    // A unary call without its one message (or with two): gRPC's cardinality violation, the caller's.
    const empty = faultOf({ code: GrpcCode.UNIMPLEMENTED, details: 'Received no request message for server streaming method /p.S/M' });
    expect(empty).toMatchObject({ counted: ['UNIMPLEMENTED client'], level: 40 });
    expect(empty.sent.metadata?.get('grpc-accept-encoding')).toEqual([]);
    expect(faultOf({ code: GrpcCode.UNIMPLEMENTED, details: 'Received a second request message for server streaming method /p.S/M' })).toMatchObject({ counted: ['UNIMPLEMENTED client'], level: 40 });
    // A response grpc-js could not serialise or write is ours.
    expect(faultOf({ code: GrpcCode.INTERNAL, details: 'Error serializing response' })).toMatchObject({ counted: ['INTERNAL server'], level: 50 });
  });

  it('sends the id in the initial metadata of an answer, not again in its OK trailers; an error keeps its trailers and gets the id', () => {
    const ok = observe();
    ok.arrive([['x-request-id', 'ok-1']]);
    const headers = new Metadata();
    ok.intercepting.sendMetadata(headers);
    ok.intercepting.sendStatus({ code: GrpcCode.OK, details: 'OK', metadata: null });
    expect(headers.get('x-request-id')).toEqual(['ok-1']);
    expect(ok.base.sent[0].metadata).toBeNull();

    const failed = observe();
    failed.arrive([['x-request-id', 'err-1']]);
    const trailers = new Metadata();
    trailers.set('cv-error-code', '1003');
    failed.intercepting.sendStatus({ code: GrpcCode.NOT_FOUND, details: 'not found', metadata: trailers });
    expect(failed.base.sent[0].metadata?.getMap()).toEqual({ 'cv-error-code': '1003', 'x-request-id': 'err-1' });
    expect(failed.lines).toEqual([expect.objectContaining({ level: 40, msg: 'gRPC call completed', res: { grpcStatus: 'NOT_FOUND', errorCode: 1003 } })]);
  });

  it("logs a failure of ours at error as HTTP does (our vault call timing out: DEADLINE_EXCEEDED here, 504 there), the caller's own deadline and bad input at warn", () => {
    const levelOf = (code: GrpcCode, errorCode?: string, own = false) => {
      const o = observe();
      o.arrive();
      const trailers = new Metadata();
      if (errorCode !== undefined) trailers.set('cv-error-code', errorCode);
      // grpc-js' own statuses (the caller's deadline) reach the call it made, not the interceptor's.
      (own ? o.base.call : o.intercepting).sendStatus({ code, details: '', metadata: errorCode === undefined ? null : trailers });
      return o.lines.map((l) => [l.level, l.msg]);
    };
    const errored = [[50, 'gRPC call errored']];
    const completed = [[40, 'gRPC call completed']];
    expect(levelOf(GrpcCode.DEADLINE_EXCEEDED, '1005')).toEqual(errored); // KeyVault TIMEOUT, 504
    expect(levelOf(GrpcCode.DEADLINE_EXCEEDED, '1018')).toEqual(errored); // OUTCOME_UNKNOWN, 504
    expect(levelOf(GrpcCode.RESOURCE_EXHAUSTED, '1012')).toEqual(errored); // our bulkhead full, 503
    expect(levelOf(GrpcCode.DEADLINE_EXCEEDED, undefined, true)).toEqual(completed); // the caller's deadline passed
    expect(levelOf(GrpcCode.INVALID_ARGUMENT, '1004')).toEqual(completed); // INVALID_REQUEST, 400
    expect(levelOf(GrpcCode.RESOURCE_EXHAUSTED)).toEqual(completed); // rate limited (429), no typed code
    expect(levelOf(GrpcCode.UNAVAILABLE)).toEqual(errored);
  });

  it('replaces a malformed or repeated x-request-id with a new UUID, in the metadata the handler reads', () => {
    for (const entries of [[['x-request-id', 'bad id']], [['x-request-id', 'a'], ['x-request-id', 'b']]] as [string, string][][]) {
      const { arrive } = observe();
      const metadata = arrive(entries);
      const [id] = metadata.get('x-request-id');
      expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      expect(grpcCallRecord(metadata)?.requestId).toBe(id);
    }
  });

  it('observes only the UNIMPLEMENTED grpc-js answers an unknown path with, and says at start when this grpc-js gives no way to', () => {
    const lines: Record<string, any>[] = [];
    const log = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l)) });
    const answered: { code?: number; metadata?: Metadata }[] = [];
    const server = { _respondWithError: (status: { code?: number; metadata?: Metadata }) => void answered.push(status) };
    const counted: unknown[][] = [];
    observeUnknownMethods(server as unknown as Server, log, (...call) => void counted.push(call));
    const respond = (status: object) => (server._respondWithError as (s: object, stream: unknown) => void)(status, {});

    respond({ code: GrpcCode.INTERNAL, details: 'something else' });
    expect({ answered, counted, lines }).toEqual({ answered: [{ code: GrpcCode.INTERNAL, details: 'something else' }], counted: [], lines: [] });
    respond({ code: GrpcCode.UNIMPLEMENTED, details: 'The server does not implement the method /a.B/C' });
    expect(counted).toEqual([['unknown', 'UNIMPLEMENTED', 'client', undefined]]);
    expect(lines).toEqual([expect.objectContaining({ level: 40, req: { id: answered[1].metadata?.get('x-request-id')[0], method: 'unknown' }, res: { grpcStatus: 'UNIMPLEMENTED' } })]);

    lines.length = 0;
    observeUnknownMethods({} as Server, log);
    expect(lines).toEqual([expect.objectContaining({ level: 40, msg: expect.stringMatching(/unknown gRPC methods are not observed/) })]);
  });
});
