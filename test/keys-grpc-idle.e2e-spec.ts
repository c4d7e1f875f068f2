import { createHash } from 'node:crypto';
import { generateApiKey } from '../apps/api/src/auth/api-keys';
import { EmbeddedVault } from '../apps/api/src/vault/embedded-vault';
import { freePort, GrpcKeysClient } from './support/grpc-keys-client';
import { startTestHost, TestHost, ROTATION_JOBS_OFF } from './support/host';

const sha256 = (s: string) => createHash('sha256').update(s).digest().toString('base64');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * A gRPC connection with no call in flight for HTTP_REQUEST_TIMEOUT_MS is closed (grpc.max_connection_idle_ms): what a
 * real grpc-js client sees of it. Its next call opens another connection without an error, whenever it comes (also
 * just as the idle limit passes), and a call that takes longer than the limit is not cut. SQLite, the local vault.
 */
describe('keys gRPC API: idle connections', () => {
  let host: TestHost;
  let client: GrpcKeysClient;
  const user = generateApiKey('idle-user', 'idle', ['keys:read', 'keys:write', 'keys:use']);
  const as = { 'x-api-key': user.key };
  const vault = () => host.app.get(EmbeddedVault).emulator!;

  beforeAll(async () => {
    const port = await freePort();
    host = await startTestHost('sqlite', {
      ...ROTATION_JOBS_OFF,
      AUTH_API_KEYS: JSON.stringify([user.entry]),
      HTTP_REQUEST_TIMEOUT_MS: '1000',
      KEY_VAULT_TIMEOUT_MS: '10000',
      RATE_LIMIT_PER_MINUTE: '1000',
      LOG_LEVEL: 'warn',
      GRPC_ENABLED: 'true',
      GRPC_PORT: String(port),
    });
    client = new GrpcKeysClient(`127.0.0.1:${port}`);
    expect((await client.call('CreateKey', { name: 'idle', key_type: 'EC', curve: 'P-256' }, as)).error).toBeUndefined();
  });
  afterAll(async () => {
    await client?.close();
    const started = Date.now();
    await host?.close();
    // The graceful shutdown is not held by the idle or silent-connection timers.
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('a call after an idle gap around and past the limit succeeds: the client reconnects, no UNAVAILABLE', async () => {
    const codes: (number | undefined)[] = [];
    for (const gap of [900, 980, 1000, 1020, 1050, 1100, 1500, 2200, 1000, 990]) {
      await sleep(gap);
      codes.push((await client.call('GetKey', { name: 'idle' }, as)).error?.code);
    }
    expect(codes).toEqual(codes.map(() => undefined));
  }, 30_000);

  it('a call that takes longer than the limit (a slow vault) is answered, not cut', async () => {
    vault().injectFault({ kind: 'latency', latencyMs: 2_500, count: 1, operations: ['sign'] });
    const started = Date.now();
    const signed = await client.call('Sign', { name: 'idle', algorithm: 'ES256', digest: sha256('slow') }, as);
    vault().clearFaults();
    expect({ error: signed.error, tookMs: Date.now() - started >= 2_400 }).toEqual({ error: undefined, tookMs: true });
    // And the connection it used goes idle afterwards like any other: the next call still succeeds.
    await sleep(1_300);
    expect((await client.call('GetKey', { name: 'idle' }, as)).error).toBeUndefined();
  }, 30_000);
});
