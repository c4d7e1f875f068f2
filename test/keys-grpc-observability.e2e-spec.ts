import { createHash } from 'node:crypto';
import { AuditService } from '@app/audit';
import { AggregationTemporality, InMemoryMetricExporter, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';
import { InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { generateApiKey } from '../apps/api/src/auth/api-keys';
import { UNAUTHENTICATED_TENANT } from '../apps/api/src/auth/auth.guard';
import { EmbeddedVault } from '../apps/api/src/vault/embedded-vault';
import { freePort, GrpcKeysClient, type GrpcReply } from './support/grpc-keys-client';
import { rawGrpcCall } from './support/raw-grpc-call';
import { startTestHost, TestHost, ROTATION_JOBS_OFF } from './support/host';

const GRPC = { OK: 0, INVALID_ARGUMENT: 3, DEADLINE_EXCEEDED: 4, UNIMPLEMENTED: 12, INTERNAL: 13, NOT_FOUND: 5, RESOURCE_EXHAUSTED: 8, UNAVAILABLE: 14, UNAUTHENTICATED: 16 };
const SERVICE = 'credential_vault.keys.v1.KeysService';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const TRACE_ID = '0af7651916cd43dd8448eb211c80319c';
const PARENT_SPAN = 'b7ad6b7169203331';

const b64 = (b: Buffer) => b.toString('base64');
const sha256 = (s: string) => createHash('sha256').update(s).digest();

/** A gRPC call's access line, as an operator reads it. */
interface AccessLine {
  level: number;
  msg: string;
  req: { id: string; method: string };
  res: { grpcStatus: string; errorCode?: number };
  responseTime: number;
  tenantId?: string;
  actorId?: string;
  trace_id?: string;
  span_id?: string;
}

/**
 * gRPC calls are as observable as HTTP requests: one access line per call, a request id per call (the caller's
 * `x-request-id` when well-formed) sent back in the answer's metadata and carried by the call's audit rows, and a
 * server span per call. A real grpc-js client in another process, a host on SQLite with its local vault.
 */
describe('keys gRPC API: access log, request ids and spans', () => {
  let host: TestHost;
  let client: GrpcKeysClient;
  let grpcPort: number;
  const spans = new InMemorySpanExporter();
  const user = generateApiKey('obs-user', 'obs', ['keys:read', 'keys:write', 'keys:use']);
  const as = (k: { key: string }, extra: Record<string, string> = {}) => ({ 'x-api-key': k.key, ...extra });
  const audit = () => host.app.get(AuditService);
  const vault = () => host.app.get(EmbeddedVault).emulator!;

  /** The access lines written for request id `id`. */
  const accessLines = (id: string): AccessLine[] =>
    host.logs
      .map((l) => JSON.parse(l) as Partial<AccessLine>)
      .filter((l): l is AccessLine => l.req?.id === id && typeof l.msg === 'string' && l.msg.startsWith('gRPC call')) as AccessLine[];
  /** Waits until `id` has a line (the line of a call answered by grpc-js itself may follow the client's answer). */
  const waitForLine = async (id: string): Promise<AccessLine[]> => {
    for (let i = 0; i < 100 && accessLines(id).length === 0; i++) await new Promise((r) => setTimeout(r, 50));
    return accessLines(id);
  };
  /** The id the answer carried: initial metadata on success, trailers on an error. */
  const returnedId = (reply: GrpcReply) => reply.headers?.['x-request-id'] ?? reply.error?.trailers['x-request-id'];
  const rowsOf = async (tenantId: string, correlationId: string) => {
    await audit().flush();
    return (await audit().query({ tenantId, correlationId, limit: 10 })).items;
  };

  beforeAll(async () => {
    // A port the kernel just handed out: a fixed one (it was 45411) lies in the ephemeral range, where any
    // outgoing connection of the machine may hold it (EADDRINUSE seen in CI).
    grpcPort = await freePort();
    host = await startTestHost(
      'sqlite',
      {
        AUTH_API_KEYS: JSON.stringify([user.entry]),
        LOG_LEVEL: 'info',
        KEY_VAULT_MAX_ATTEMPTS: '1',
        // Our own bound on a vault call, well below the callers' deadlines here (the test client's default is 20 s).
        KEY_VAULT_TIMEOUT_MS: '3000',
        GRPC_ENABLED: 'true',
        GRPC_PORT: String(grpcPort),
        ...ROTATION_JOBS_OFF,
      },
      {
        telemetry: {
          spanProcessor: new SimpleSpanProcessor(spans),
          metricReader: new PeriodicExportingMetricReader({ exporter: new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE), exportIntervalMillis: 3_600_000 }),
        },
      },
    );
    client = new GrpcKeysClient(`127.0.0.1:${grpcPort}`);
    expect((await client.call('CreateKey', { name: 'obs', key_type: 'EC', curve: 'P-256' }, as(user))).error).toBeUndefined();
  }, 60_000);

  afterAll(async () => {
    await client?.close();
    await host?.close();
  });

  it('writes one line per call — method, status name, duration, tenant and actor, request id — and never the key or the payload', async () => {
    const digest = sha256('access-line');
    const signed = await client.call('Sign', { name: 'obs', algorithm: 'ES256', digest: b64(digest) }, as(user, { 'x-request-id': 'obs-sign-1' }));
    expect(signed.error).toBeUndefined();
    const missing = await client.call('GetKey', { name: 'never-created' }, as(user, { 'x-request-id': 'obs-missing-1' }));
    expect(missing.error?.code).toBe(GRPC.NOT_FOUND);
    const forged = `${user.key.slice(0, -4)}AAAA`;
    const refused = await client.call('ListKeys', {}, { 'x-api-key': forged, 'x-request-id': 'obs-unauth-1' });
    expect(refused.error?.code).toBe(GRPC.UNAUTHENTICATED);
    // Refused by grpc-js itself before any handler (over the 256 KiB message limit): still one line.
    const tooLarge = await client.call('Encrypt', { name: 'obs', algorithm: 'RSA-OAEP-256', plaintext: b64(Buffer.alloc(300 * 1024, 7)) }, as(user, { 'x-request-id': 'obs-large-1' }));
    expect(tooLarge.error?.code).toBe(GRPC.RESOURCE_EXHAUSTED);

    const [sign] = accessLines('obs-sign-1');
    expect(accessLines('obs-sign-1')).toHaveLength(1);
    expect(sign).toMatchObject({
      level: 30,
      msg: 'gRPC call completed',
      req: { id: 'obs-sign-1', method: `/${SERVICE}/Sign` },
      res: { grpcStatus: 'OK' },
      tenantId: 'obs',
      actorId: 'api-key:obs-user',
    });
    expect(sign.responseTime).toBeGreaterThanOrEqual(0);
    expect(accessLines('obs-missing-1')).toEqual([
      expect.objectContaining({ level: 40, req: { id: 'obs-missing-1', method: `/${SERVICE}/GetKey` }, res: { grpcStatus: 'NOT_FOUND', errorCode: 1003 }, tenantId: 'obs' }),
    ]);
    const [unauth] = accessLines('obs-unauth-1');
    expect(accessLines('obs-unauth-1')).toHaveLength(1);
    expect(unauth).toMatchObject({ level: 40, req: { method: `/${SERVICE}/ListKeys` }, res: { grpcStatus: 'UNAUTHENTICATED' } });
    expect(unauth.tenantId).toBeUndefined();
    expect(unauth.actorId).toBeUndefined();
    expect(await waitForLine('obs-large-1')).toEqual([expect.objectContaining({ level: 40, res: { grpcStatus: 'RESOURCE_EXHAUSTED' } })]);

    const logs = host.logs.join('\n');
    for (const secret of [user.key, forged, b64(digest), digest.toString('hex'), signed.response.signature as string]) expect(logs).not.toContain(secret);
  });

  it('logs a call to a method the server does not serve at warn and counts it, both under method="unknown", never the path the caller chose', async () => {
    const unknown = `/${SERVICE}/DropEverything`;
    const otherService = '/credential_vault.admin.v1.Admin/Purge';
    const long = `/${SERVICE}/${'Z'.repeat(300)}`;
    const before = { unknown: await grpcCalls('unknown', 'UNIMPLEMENTED', 'client'), server: await grpcCalls('unknown', 'UNIMPLEMENTED', 'server') };
    const spansBefore = spans.getFinishedSpans().length;
    const ids: string[] = [];
    for (const path of [unknown, otherService, long]) {
      const reply = await client.call(path, {}, as(user, { 'x-request-id': 'obs-unknown-1' }));
      expect(reply.error).toMatchObject({ code: GRPC.UNIMPLEMENTED });
      // grpc-js answers before any header is read: a new request id, sent back, names the line.
      const id = reply.error!.trailers['x-request-id'];
      expect(id).toMatch(UUID);
      ids.push(id);
    }

    // One line each, naming no path the caller chose (HTTP logs `unmatched`); HTTP's 404 for a route no one serves is a warn too.
    const line = (id: string) => [expect.objectContaining({ level: 40, msg: 'gRPC call completed', req: { id, method: 'unknown' }, res: { grpcStatus: 'UNIMPLEMENTED' } })];
    expect(ids.map((id) => accessLines(id))).toEqual(ids.map(line));
    expect(accessLines('obs-unknown-1')).toEqual([]);
    expect(host.logs.join('\n')).not.toMatch(/DropEverything|admin\.v1|ZZZ/);
    // Counted under one bounded label, the caller's fault: no label holds a path the caller chose.
    expect(await grpcCalls('unknown', 'UNIMPLEMENTED', 'client')).toBe(before.unknown + 3);
    expect(await grpcCalls('unknown', 'UNIMPLEMENTED', 'server')).toBe(before.server);
    const metrics = await (await fetch(`${host.baseUrl}/metrics`)).text();
    expect(metrics).not.toMatch(/method="[^"]*(DropEverything|admin\.v1|ZZZ)/);
    // No span: nothing of the call ran.
    expect(spans.getFinishedSpans().slice(spansBefore).map((s) => s.name)).not.toContainEqual(expect.stringMatching(/DropEverything|Admin|ZZZ/));

    // A served call still has its own line, method and request id.
    await client.call('GetKey', { name: 'obs' }, as(user, { 'x-request-id': 'obs-after-unknown' }));
    expect(await waitForLine('obs-after-unknown')).toEqual([expect.objectContaining({ req: { id: 'obs-after-unknown', method: `/${SERVICE}/GetKey` } })]);
  });

  it('logs and counts a request that is not gRPC at all (its content-type: HTTP 415 from grpc-js), the caller\'s fault, with a request id sent back', async () => {
    const before = { client: await grpcCalls('unknown', 'HTTP_415', 'client'), server: await grpcCalls('unknown', 'HTTP_415', 'server') };
    const marker = 'cvk_not_grpc_5e1a';
    const answers = [];
    for (const type of ['application/json', 'text/plain', 'application/x-protobuf']) {
      const frame = { compressed: false, bytes: Buffer.from(`{"name":"${marker}"}`) };
      answers.push(await rawGrpcCall(`127.0.0.1:${grpcPort}`, `/${SERVICE}/Sign`, frame, { 'content-type': type, ...as(user, { 'x-request-id': 'obs-415-1' }) }));
    }
    expect(answers.map((a) => a.httpStatus)).toEqual([415, 415, 415]);
    // grpc-js answers when the HTTP/2 stream opens, before the metadata is read: a new request id, sent back, names the line.
    const ids = answers.map((a) => a.metadata['x-request-id']);
    for (const id of ids) expect(id).toMatch(UUID);
    expect(ids.map((id) => accessLines(id))).toEqual(
      ids.map((id) => [expect.objectContaining({ level: 40, msg: 'gRPC call completed', req: { id, method: 'unknown' }, res: { httpStatus: 415 } })]),
    );
    expect(accessLines('obs-415-1')).toEqual([]);
    // One bounded label set, the caller's fault (not in the alert on server faults).
    expect({ client: await grpcCalls('unknown', 'HTTP_415', 'client'), server: await grpcCalls('unknown', 'HTTP_415', 'server') }).toEqual({ client: before.client + 3, server: before.server });
    const logs = host.logs.join('\n');
    for (const secret of [user.key, marker]) expect(logs).not.toContain(secret);
    // Nothing was served, nothing audited.
    expect(await rowsOf('obs', 'obs-415-1')).toEqual([]);
  });

  it("sends the request id back — the caller's when well-formed, else a new one — and the call's audit rows carry it", async () => {
    const sign = (requestId?: string) =>
      client.call('Sign', { name: 'obs', algorithm: 'ES256', digest: b64(sha256('ids')) }, as(user, requestId === undefined ? {} : { 'x-request-id': requestId }));

    const kept = await sign('client-chosen.id:42');
    expect(kept.error).toBeUndefined();
    expect(kept.headers?.['x-request-id']).toBe('client-chosen.id:42');
    expect((await rowsOf('obs', 'client-chosen.id:42')).map((r) => r.action)).toEqual(['key.sign']);

    for (const invalid of [undefined, 'has spaces and "quotes"', 'x'.repeat(129)]) {
      const reply = await sign(invalid);
      const id = returnedId(reply)!;
      expect(id).toMatch(UUID);
      expect(accessLines(id)).toHaveLength(1);
      expect((await rowsOf('obs', id)).map((r) => r.action)).toEqual(['key.sign']);
    }
    expect(host.logs.join('\n')).not.toContain('has spaces');

    // Errors carry it in the trailers: a lib error, and a refusal whose audit row has it too.
    const missing = await client.call('GetKey', { name: 'never-created' }, as(user, { 'x-request-id': 'obs-err-7' }));
    expect(missing.error?.trailers['x-request-id']).toBe('obs-err-7');
    const refused = await client.call('ListKeys', {}, { 'x-api-key': 'cvk_obsguess_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' });
    const refusedId = refused.error?.trailers['x-request-id'];
    expect(refusedId).toMatch(UUID);
    expect((await rowsOf(UNAUTHENTICATED_TENANT, refusedId!)).map((r) => r.action)).toEqual(['auth_failure']);
  });

  it("traces each call as a server span under the caller's traceparent, with the key operation inside it", async () => {
    const traceparent = `00-${TRACE_ID}-${PARENT_SPAN}-01`;
    const digest = sha256('traced');
    const signed = await client.call('Sign', { name: 'obs', algorithm: 'ES256', digest: b64(digest) }, as(user, { traceparent, 'x-request-id': 'obs-trace-1' }));
    expect(signed.error).toBeUndefined();

    const ofTrace = spans.getFinishedSpans().filter((s) => s.spanContext().traceId === TRACE_ID);
    const server = ofTrace.find((s) => s.kind === 1 /* SERVER */)!;
    expect(server.name).toBe(`${SERVICE}/Sign`);
    expect(server.attributes).toEqual({ 'rpc.system': 'grpc', 'rpc.service': SERVICE, 'rpc.method': 'Sign', 'rpc.grpc.status_code': GRPC.OK });
    expect(server.parentSpanContext?.spanId).toBe(PARENT_SPAN);
    expect(server.status.code).toBe(0 /* UNSET */);
    const childrenOf = (parent: ReadableSpan): ReadableSpan[] => {
      const direct = ofTrace.filter((s) => s.parentSpanContext?.spanId === parent.spanContext().spanId);
      return [...direct, ...direct.flatMap(childrenOf)];
    };
    expect(childrenOf(server).map((s) => s.name)).toContain('keys sign');
    // The access line names the span.
    expect(accessLines('obs-trace-1')).toEqual([expect.objectContaining({ trace_id: TRACE_ID, span_id: server.spanContext().spanId })]);

    // A server-side failure marks the span as an error and logs at error.
    vault().injectFault({ kind: 'status', status: 503, count: 1, operations: ['sign'] });
    const down = await client.call('Sign', { name: 'obs', algorithm: 'ES256', digest: b64(digest) }, as(user, { traceparent, 'x-request-id': 'obs-trace-2' }));
    vault().clearFaults();
    expect(down.error?.code).toBe(GRPC.UNAVAILABLE);
    const [line] = accessLines('obs-trace-2');
    expect(line).toMatchObject({ level: 50, msg: 'gRPC call errored', res: { grpcStatus: 'UNAVAILABLE', errorCode: 1006 } });
    const failed = spans.getFinishedSpans().find((s) => s.spanContext().spanId === line.span_id)!;
    expect(failed.attributes['rpc.grpc.status_code']).toBe(GRPC.UNAVAILABLE);
    expect(failed.status.code).toBe(2 /* ERROR */);

    const everything = JSON.stringify(spans.getFinishedSpans().map((s) => ({ name: s.name, attributes: s.attributes, events: s.events })));
    for (const secret of [user.key, b64(digest), digest.toString('hex')]) expect(everything).not.toContain(secret);
  });

  /** Calls of `method` (a full path, or a label value) counted with this status code and fault (0 when there is no such series). */
  async function grpcCalls(method: string, code: string, fault: string): Promise<number> {
    const metrics = await (await fetch(`${host.baseUrl}/metrics`)).text();
    const line = metrics
      .split('\n')
      .find((l) => l.startsWith('credential_vault_grpc_requests_total{') && [`method="${method}"`, `code="${code}"`, `fault="${fault}"`].every((label) => l.includes(label)));
    return line ? Number(line.split(' ').pop()) : 0;
  }
  /** Sign calls counted with this status code and fault. */
  const signCalls = (code: string, fault: string) => grpcCalls(`/${SERVICE}/Sign`, code, fault);

  it('logs our own vault call timing out (DEADLINE_EXCEEDED, 504 over HTTP) at error, as HTTP logs the 504, and counts it a server fault', async () => {
    const serverFaults = await signCalls('DEADLINE_EXCEEDED', 'server');
    // The vault answers the sign after 6 s; our vault call gives up after 3 s (KEY_VAULT_TIMEOUT_MS), the caller would wait 20 s.
    const vaultAnswersAt = Date.now() + 6_000;
    vault().injectFault({ kind: 'latency', latencyMs: 6_000, count: 1, operations: ['sign'] });
    const slow = await client.call('Sign', { name: 'obs', algorithm: 'ES256', digest: b64(sha256('slow vault')) }, as(user, { 'x-request-id': 'obs-slow-1' }));
    vault().clearFaults();
    expect(slow.error?.code).toBe(GRPC.DEADLINE_EXCEEDED);
    const errorCode = Number(slow.error?.trailers['cv-error-code']);
    expect([1005, 1018]).toContain(errorCode); // TIMEOUT, or OUTCOME_UNKNOWN: both 504
    expect(accessLines('obs-slow-1')).toEqual([
      expect.objectContaining({ level: 50, msg: 'gRPC call errored', req: { id: 'obs-slow-1', method: `/${SERVICE}/Sign` }, res: { grpcStatus: 'DEADLINE_EXCEEDED', errorCode } }),
    ]);
    // The alert on server faults sees it (CredentialVaultGrpcErrors).
    expect(await signCalls('DEADLINE_EXCEEDED', 'server')).toBe(serverFaults + 1);
    // The emulator's delay is not cancelled: let it answer before the next test's fault.
    await new Promise((r) => setTimeout(r, Math.max(0, vaultAnswersAt - Date.now()) + 200));
  });

  it("answers a message that does not decode INVALID_ARGUMENT (10005) once the caller is authenticated, logs it at warn and counts it the caller's, never its bytes", async () => {
    const sign = `/${SERVICE}/Sign`;
    // Field 15 (no field of SignRequest) with wire type 7, which does not exist: protobuf refuses the message at its
    // first byte. (protobufjs reads a known field by its type whatever the wire type says.) The rest must reach no log.
    const marker = 'cvk_undecodable_9f3a';
    const garbage = Buffer.concat([Buffer.from([0x7f]), Buffer.from(marker)]);
    const before = { client: await signCalls('INVALID_ARGUMENT', 'client'), server: await signCalls('INTERNAL', 'server') };

    const refused = await client.callRaw(sign, garbage, as(user, { 'x-request-id': 'obs-garbage-1' }));
    expect(refused.error).toMatchObject({ code: GRPC.INVALID_ARGUMENT, details: expect.stringContaining('SignRequest'), trailers: { 'cv-error-code': '10005', 'x-request-id': 'obs-garbage-1' } });
    expect(refused.error?.status?.details[0]).toMatchObject({ reason: 'KEYS_VALIDATION', metadata: { code: '10005' } });
    expect(await waitForLine('obs-garbage-1')).toEqual([
      expect.objectContaining({ level: 40, msg: 'gRPC call completed', req: { id: 'obs-garbage-1', method: sign }, res: { grpcStatus: 'INVALID_ARGUMENT', errorCode: 10005 }, tenantId: 'obs' }),
    ]);
    // The caller's fault, as HTTP's 400 for a body that is not JSON: not in the alert on server faults.
    expect({ client: await signCalls('INVALID_ARGUMENT', 'client'), server: await signCalls('INTERNAL', 'server') }).toEqual({ client: before.client + 1, server: before.server });
    // Nothing was done with the key: no audit row.
    expect(await rowsOf('obs', 'obs-garbage-1')).toEqual([]);

    // Authentication comes first: a stranger's garbage is refused as a stranger, and audited as such.
    const stranger = await client.callRaw(sign, garbage, { 'x-api-key': `${user.key.slice(0, -4)}AAAA`, 'x-request-id': 'obs-garbage-2' });
    expect(stranger.error?.code).toBe(GRPC.UNAUTHENTICATED);
    expect((await rowsOf(UNAUTHENTICATED_TENANT, 'obs-garbage-2')).map((r) => r.action)).toEqual(['auth_failure']);

    const logs = host.logs.join('\n');
    for (const bytes of [marker, b64(garbage), garbage.toString('hex')]) expect(logs).not.toContain(bytes);
  });

  it("answers a message that does not decompress INTERNAL and a compression it lacks UNIMPLEMENTED, as gRPC servers do, and logs and counts both the caller's fault", async () => {
    const sign = `/${SERVICE}/Sign`;
    const address = `127.0.0.1:${grpcPort}`;
    const marker = 'cvk_compressed_7c2d';
    const counts = async () => ({
      client: [await signCalls('INTERNAL', 'client'), await signCalls('UNIMPLEMENTED', 'client')],
      server: [await signCalls('INTERNAL', 'server'), await signCalls('UNIMPLEMENTED', 'server')],
    });
    const before = await counts();

    // gzip's magic number and then bytes no inflater takes: grpc-js refuses the message before any handler runs.
    const corrupt = Buffer.concat([Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0xff, 0xff]), Buffer.from(marker)]);
    const gzip = await rawGrpcCall(address, sign, { compressed: true, bytes: corrupt }, { 'grpc-encoding': 'gzip', ...as(user, { 'x-request-id': 'obs-gzip-1' }) });
    // gRPC's status codes document (statuscodes.md): "could not decompress, but compression algorithm supported" is INTERNAL.
    expect(gzip).toMatchObject({ code: GRPC.INTERNAL, details: 'Failed to decompress message', metadata: { 'x-request-id': 'obs-gzip-1' } });
    const br = await rawGrpcCall(address, sign, { compressed: true, bytes: Buffer.from(marker) }, { 'grpc-encoding': 'br', ...as(user, { 'x-request-id': 'obs-br-1' }) });
    // gRPC's compression spec: UNIMPLEMENTED, with the encodings the server accepts in `grpc-accept-encoding`.
    expect(br).toMatchObject({ code: GRPC.UNIMPLEMENTED, metadata: { 'x-request-id': 'obs-br-1', 'grpc-accept-encoding': 'identity,deflate,gzip' } });

    // The caller's fault (as HTTP's 400 for a body it cannot read): warn, and not in the alert on server faults.
    expect(await waitForLine('obs-gzip-1')).toEqual([
      expect.objectContaining({ level: 40, msg: 'gRPC call completed', req: { id: 'obs-gzip-1', method: sign }, res: { grpcStatus: 'INTERNAL' } }),
    ]);
    expect(await waitForLine('obs-br-1')).toEqual([
      expect.objectContaining({ level: 40, msg: 'gRPC call completed', req: { id: 'obs-br-1', method: sign }, res: { grpcStatus: 'UNIMPLEMENTED' } }),
    ]);
    expect(await counts()).toEqual({ client: [before.client[0] + 1, before.client[1] + 1], server: before.server });
    // Refused before authentication: nothing audited, no byte of the message logged.
    expect(await rowsOf('obs', 'obs-gzip-1')).toEqual([]);
    expect(host.logs.join('\n')).not.toContain(marker);
  });

  it("answers a unary call that ends without its message UNIMPLEMENTED, as gRPC servers do, and logs and counts it the caller's fault (it was logged at error, a server fault)", async () => {
    const sign = `/${SERVICE}/Sign`;
    const before = { client: await signCalls('UNIMPLEMENTED', 'client'), server: await signCalls('UNIMPLEMENTED', 'server') };
    // A careless client (or one whose process died mid-message) ends the request stream with no message in it.
    const empty = await rawGrpcCall(`127.0.0.1:${grpcPort}`, sign, null, as(user, { 'x-request-id': 'obs-empty-1' }));
    // gRPC's status codes document: a cardinality violation (a unary call without its one message) is UNIMPLEMENTED.
    expect(empty).toMatchObject({ code: GRPC.UNIMPLEMENTED, details: expect.stringMatching(/^Received no request message/), metadata: { 'x-request-id': 'obs-empty-1' } });
    expect(await waitForLine('obs-empty-1')).toEqual([
      expect.objectContaining({ level: 40, msg: 'gRPC call completed', req: { id: 'obs-empty-1', method: sign }, res: { grpcStatus: 'UNIMPLEMENTED' } }),
    ]);
    expect({ client: await signCalls('UNIMPLEMENTED', 'client'), server: await signCalls('UNIMPLEMENTED', 'server') }).toEqual({ client: before.client + 1, server: before.server });
  });

  it("logs a call whose deadline passed once, as DEADLINE_EXCEEDED, though its handler finishes later, and counts it the caller's", async () => {
    const before = { client: await signCalls('DEADLINE_EXCEEDED', 'client'), server: await signCalls('DEADLINE_EXCEEDED', 'server') };
    // The vault answers the sign after 3 s; the caller gives up after 1 s.
    const vaultAnswersAt = Date.now() + 3_000;
    vault().injectFault({ kind: 'latency', latencyMs: 3_000, count: 1, operations: ['sign'] });
    const late = await client.call('Sign', { name: 'obs', algorithm: 'ES256', digest: b64(sha256('late')) }, as(user, { 'x-request-id': 'obs-late-1' }), 1_000);
    expect(late.error?.code).toBe(GRPC.DEADLINE_EXCEEDED);
    // The caller's own deadline: its outcome, not our failure (warn, as a 4xx over HTTP).
    expect(await waitForLine('obs-late-1')).toEqual([
      expect.objectContaining({ level: 40, msg: 'gRPC call completed', req: { id: 'obs-late-1', method: `/${SERVICE}/Sign` }, res: { grpcStatus: 'DEADLINE_EXCEEDED' } }),
    ]);
    // The handler ends when its vault call is aborted or answered (its audit row is written then): no second line.
    let rows: unknown[] = [];
    for (let i = 0; i < 100 && rows.length === 0; i++) {
      await new Promise((r) => setTimeout(r, 100));
      rows = await rowsOf('obs', 'obs-late-1');
    }
    vault().clearFaults();
    expect(rows).toHaveLength(1);
    // Until the vault has answered the aborted request too (its delay is not cancelled).
    await new Promise((r) => setTimeout(r, Math.max(0, vaultAnswersAt - Date.now()) + 200));
    expect(accessLines('obs-late-1')).toHaveLength(1);
    // Counted once, as the caller's outcome: not in the alert on server faults.
    expect({ client: await signCalls('DEADLINE_EXCEEDED', 'client'), server: await signCalls('DEADLINE_EXCEEDED', 'server') }).toEqual({ client: before.client + 1, server: before.server });
  });
});
