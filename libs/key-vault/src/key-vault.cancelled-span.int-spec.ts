/**
 * Integration: the spans of Key Vault calls whose caller left, with the real SDK over HTTPS against the local
 * vault; spans go to an in-memory exporter. A caller leaving is no error of the service: the metrics count it
 * in cancelled_total, not errors_total, and the span must not say ERROR either.
 */
import { Test, type TestingModule } from '@nestjs/testing';
import { SpanStatusCode, trace } from '@opentelemetry/api';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { KeyVaultEmulator } from '@app/keyvault-emulator';
import { emulatorKeyVaultOptions, rejection } from '@app/testing';
import { KeyVaultErrorCode as C, KeyVaultModule, KeyVaultProvider, type KeyVaultError } from './index';

const failure = (p: Promise<unknown>) => rejection(p) as Promise<KeyVaultError>;

describe('spans of Key Vault calls whose caller left (emulator, real SDK)', () => {
  const spans = new InMemorySpanExporter();
  let emu: KeyVaultEmulator;
  let moduleRef: TestingModule;
  let kv: KeyVaultProvider;

  const spanOf = (name: string) => {
    const found = spans.getFinishedSpans().filter((s) => s.name === name);
    expect(found).toHaveLength(1);
    return found[0];
  };

  beforeAll(async () => {
    trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] }));
    emu = await KeyVaultEmulator.start({ quiet: true, throttle: false });
    moduleRef = await Test.createTestingModule({ imports: [KeyVaultModule.forRoot(emulatorKeyVaultOptions(emu, { resilience: { timeoutMs: 5_000 } }))] }).compile();
    kv = moduleRef.get(KeyVaultProvider);
    await kv.setSecret('warm', 'w'); // the client's challenge round trip happens here
  }, 60_000);

  afterEach(() => {
    emu.clearFaults();
    spans.reset();
  });
  afterAll(async () => {
    await moduleRef?.close();
    await emu?.stop();
    trace.disable();
  });

  it('a call dropped before it was sent ends its span UNSET, marked cancelled (not_sent), with no error type', async () => {
    const e = await failure(kv.getSecret('warm', undefined, { signal: AbortSignal.abort() }));
    expect([e.code, e.sent]).toEqual([C.CANCELLED, false]);
    const span = spanOf('keyvault getSecret');
    expect(span.status.code).toBe(SpanStatusCode.UNSET);
    expect(span.attributes).toMatchObject({ 'keyvault.operation': 'getSecret', 'keyvault.cancelled': 'not_sent' });
    expect(span.attributes['error.type']).toBeUndefined();
  });

  it('a read aborted in flight ends its span UNSET, marked cancelled (in_flight)', async () => {
    emu.injectFault({ kind: 'latency', latencyMs: 1_500, count: 1, operations: ['getSecret'] });
    emu.resetStats();
    const gone = new AbortController();
    const call = failure(kv.getSecret('warm', undefined, { signal: gone.signal }));
    await new Promise((r) => setTimeout(r, 100)); // the attempt has started (only microtasks lie before it)
    gone.abort();
    const e = await call;
    expect([e.code, e.sent]).toEqual([C.CANCELLED, true]);
    const span = spanOf('keyvault getSecret');
    expect(span.status.code).toBe(SpanStatusCode.UNSET);
    expect(span.attributes).toMatchObject({ 'keyvault.cancelled': 'in_flight' });
    expect(span.attributes['error.type']).toBeUndefined();
    // The vault still answers the request nobody waits for: let it, so nothing is left running after the file.
    for (let i = 0; i < 200 && !emu.stats().byOperation.getSecret; i++) await new Promise((r) => setTimeout(r, 50));
  });

  it('a failure of the vault still ends its span ERROR', async () => {
    expect((await failure(kv.getSecret('no-such-secret'))).code).toBe(C.KEY_NOT_FOUND);
    const span = spanOf('keyvault getSecret');
    expect(span.status.code).toBe(SpanStatusCode.ERROR);
    expect(span.attributes['error.type']).toBeDefined();
    expect(span.attributes['keyvault.cancelled']).toBeUndefined();
  });
});
