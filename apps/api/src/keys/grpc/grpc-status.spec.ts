import { status as GrpcCode } from '@grpc/grpc-js';
import { parse } from 'protobufjs';
import { encodeRpcStatus, grpcCodeFor } from './grpc-status';

/** The standard messages (google/rpc/status.proto, error_details.proto), as any client declares them. */
const root = parse(`
  syntax = "proto3";
  package google.rpc;
  message Any { string type_url = 1; bytes value = 2; }
  message Status { int32 code = 1; string message = 2; repeated Any details = 3; }
  message ErrorInfo { string reason = 1; string domain = 2; map<string, string> metadata = 3; }
  message Duration { int64 seconds = 1; int32 nanos = 2; }
  message RetryInfo { Duration retry_delay = 1; }
`, { keepCase: true }).root;
const decode = (name: string, bytes: Uint8Array) => root.lookupType(`google.rpc.${name}`).toObject(root.lookupType(`google.rpc.${name}`).decode(bytes), { longs: Number, defaults: true });

describe('grpc status mapping', () => {
  it.each([
    [400, 1004, GrpcCode.INVALID_ARGUMENT],
    [404, 1003, GrpcCode.NOT_FOUND],
    [503, 1001, GrpcCode.RESOURCE_EXHAUSTED],
    [503, 1012, GrpcCode.RESOURCE_EXHAUSTED],
    [503, 1006, GrpcCode.UNAVAILABLE],
    [503, 1011, GrpcCode.UNAVAILABLE],
    [504, 1005, GrpcCode.DEADLINE_EXCEEDED],
    [502, 1002, GrpcCode.UNAVAILABLE],
    [401, undefined, GrpcCode.UNAUTHENTICATED],
    [403, undefined, GrpcCode.PERMISSION_DENIED],
    [409, 1008, GrpcCode.FAILED_PRECONDITION],
    [500, 1099, GrpcCode.INTERNAL],
    [599, undefined, GrpcCode.INTERNAL],
  ])('HTTP %i (code %s) is %s', (http, code, grpc) => {
    expect(grpcCodeFor(http, code)).toBe(grpc);
  });
});

describe('encodeRpcStatus', () => {
  it('is a google.rpc.Status with an ErrorInfo carrying the code, that a protobuf runtime decodes', () => {
    const bytes = encodeRpcStatus({ code: GrpcCode.NOT_FOUND, message: 'key ü not found', reason: 'KEY_NOT_FOUND', metadata: { code: '1003' } });
    const status = decode('Status', bytes);
    expect(status).toMatchObject({ code: GrpcCode.NOT_FOUND, message: 'key ü not found' });
    expect(status.details).toHaveLength(1);
    expect(status.details[0].type_url).toBe('type.googleapis.com/google.rpc.ErrorInfo');
    expect(decode('ErrorInfo', status.details[0].value)).toEqual({ reason: 'KEY_NOT_FOUND', domain: 'credential-vault', metadata: { code: '1003' } });
  });

  it('a wait of 0 (an open breaker whose break just ended) is a RetryInfo of 1 s, as over HTTP: never "come back now"', () => {
    for (const retryAfterMs of [0, 400]) {
      const status = decode('Status', encodeRpcStatus({ code: GrpcCode.UNAVAILABLE, message: 'm', reason: 'CIRCUIT_OPEN', metadata: { code: '1011' }, retryAfterMs }));
      expect(decode('RetryInfo', status.details[1].value)).toEqual({ retry_delay: { seconds: 1, nanos: 0 } });
    }
  });

  it('adds a RetryInfo when the caller should wait, with seconds and nanos', () => {
    const status = decode('Status', encodeRpcStatus({ code: GrpcCode.RESOURCE_EXHAUSTED, message: 'm', reason: 'RATE_LIMITED', metadata: { code: '1001' }, retryAfterMs: 301_250 }));
    expect(status.details.map((d: { type_url: string }) => d.type_url)).toEqual(['type.googleapis.com/google.rpc.ErrorInfo', 'type.googleapis.com/google.rpc.RetryInfo']);
    expect(decode('RetryInfo', status.details[1].value)).toEqual({ retry_delay: { seconds: 301, nanos: 250_000_000 } });
  });

  it('encodes lengths past one varint byte (long messages, several metadata entries)', () => {
    const message = 'x'.repeat(300);
    const status = decode('Status', encodeRpcStatus({ code: GrpcCode.INTERNAL, message, reason: 'INTERNAL', metadata: { errorId: 'e'.repeat(200), code: '1099' } }));
    expect(status.message).toBe(message);
    expect(decode('ErrorInfo', status.details[0].value).metadata).toEqual({ errorId: 'e'.repeat(200), code: '1099' });
  });
});
