import { createHash, randomBytes } from 'node:crypto';
import { AuditService } from '@app/audit';
import { generateApiKey } from '../apps/api/src/auth/api-keys';
import { EmbeddedVault } from '../apps/api/src/vault/embedded-vault';
import { LeavingCallers, metricSum } from './support/caller-gone';
import { freePort, GrpcKeysClient } from './support/grpc-keys-client';
import { startTestHost, TestHost } from './support/host';

const GRPC = { OK: 0, CANCELLED: 1, DEADLINE_EXCEEDED: 4 };
/** Callers who leave early, against a vault answering each sign in SIGN_LATENCY_MS; the bulkhead runs 64 at a time. */
const FLOOD = 400;
const SIGN_LATENCY_MS = 250;
const DEADLINE_MS = 300;
/**
 * Vault requests the flood may make (as the vault counts them): few callers are still there when theirs would be
 * answered. Measured: a few tens with shedding; all 400 (+3 live) without it, nearly all after their caller had left.
 */
const USABLE_BOUND = FLOOD / 4;

const b64 = (b: Buffer) => b.toString('base64');
const b64u = (b: Buffer) => b.toString('base64url');
const digest = () => createHash('sha256').update(randomBytes(8)).digest();

/**
 * Work for callers who have gone is shed before it fills the Key Vault bulkhead: over gRPC (deadline passed)
 * and HTTP (client aborted), the vault calls made are bounded by what live callers can use, and live callers
 * still succeed; a write whose caller leaves after its vault write still commits.
 */
describe('callers who left (gRPC deadlines, HTTP aborts)', () => {
  let host: TestHost;
  let client: GrpcKeysClient;
  const user = generateApiKey('gone-user', 'gone', ['keys:read', 'keys:write', 'keys:use', 'credentials:read', 'credentials:write', 'credentials:read-value']);
  const as = (k: { key: string }) => ({ 'x-api-key': k.key });
  const vault = () => host.app.get(EmbeddedVault).emulator!;
  const http = (method: string, path: string, body?: unknown) =>
    fetch(`${host.baseUrl}${path}`, {
      method,
      headers: { ...as(user), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  let callers: LeavingCallers;
  const send = (method: string, path: string, body: unknown, signal?: AbortSignal) => callers.send(method, path, body, signal);
  const post = (path: string, body: unknown, signal?: AbortSignal) => send('POST', path, body, signal);
  const metric = (line: RegExp) => metricSum(host.baseUrl, line);
  const signRows = async (name: string) => {
    const audit = host.app.get(AuditService);
    await audit.flush();
    return (await audit.query({ tenantId: 'gone', limit: 500 })).items.filter((r) => r.action === 'key.sign' && r.resource === `key:${name}`);
  };

  beforeAll(async () => {
    // Not a fixed port: one in the ephemeral range may be held by any outgoing connection of the machine.
    const grpcPort = await freePort();
    host = await startTestHost('sqlite', {
      AUTH_API_KEYS: JSON.stringify([user.entry]),
      RATE_LIMIT_PER_MINUTE: '100000',
      KEY_VAULT_MAX_ATTEMPTS: '1',
      GRPC_ENABLED: 'true',
      GRPC_PORT: String(grpcPort),
    });
    client = new GrpcKeysClient(`127.0.0.1:${grpcPort}`);
    callers = new LeavingCallers(host.baseUrl, as(user));
  }, 60_000);

  afterAll(async () => {
    vault()?.clearFaults();
    callers?.close();
    await client?.close();
    await host?.close();
  });

  afterEach(() => vault().clearFaults());

  it('gRPC: a flood of calls past their deadline makes few vault calls; live callers with long deadlines still succeed', async () => {
    expect((await client.call('CreateKey', { name: 'flooded', key_type: 'EC' }, as(user))).error).toBeUndefined();
    // The key is cached now: each Sign below is one vault call.
    expect((await client.call('Sign', { name: 'flooded', algorithm: 'ES256', digest: b64(digest()) }, as(user))).error).toBeUndefined();
    vault().resetStats();
    vault().injectFault({ kind: 'latency', latencyMs: SIGN_LATENCY_MS, operations: ['sign'] });

    const flood = Array.from({ length: FLOOD }, () => client.call('Sign', { name: 'flooded', algorithm: 'ES256', digest: b64(digest()) }, as(user), DEADLINE_MS));
    const live = Array.from({ length: 3 }, () => client.call('Sign', { name: 'flooded', algorithm: 'ES256', digest: b64(digest()) }, as(user), 30_000));
    const gone = await Promise.all(flood);
    expect(gone.filter((r) => r.error?.code === GRPC.DEADLINE_EXCEEDED).length).toBeGreaterThan(FLOOD * 0.9);
    const served = await Promise.all(live);
    expect(served.map((r) => r.error?.code ?? GRPC.OK)).toEqual([GRPC.OK, GRPC.OK, GRPC.OK]);

    // Let every call still running in the host end, then count what reached the vault.
    await new Promise((r) => setTimeout(r, 3 * SIGN_LATENCY_MS + 500));
    const sent = vault().stats().byOperation.sign ?? 0;
    expect(sent).toBeLessThan(USABLE_BOUND);
    // Shed calls are counted as cancelled, never as vault errors. (Calls whose deadline passed before their handler
    // ran never reach the vault lib at all.)
    expect(await metric(/^credential_vault_keyvault_cancelled_total\{operation="sign"/)).toBeGreaterThan(FLOOD / 2);
    expect(await metric(/^credential_vault_keyvault_errors_total\{code="(CANCELLED|TIMEOUT|SERVICE_UNAVAILABLE|BULKHEAD_FULL|UNKNOWN)"\}/)).toBe(0);
    // Audit: a use per answered call; a call whose attempt had started is `cancelled`; one never started has no row.
    // (How many started depends on the machine: on a loaded one every handler may run before its deadline.)
    const rows = await signRows('flooded');
    expect(new Set(rows.map((r) => r.result))).toEqual(new Set(['success', 'cancelled']));
    const answered = rows.filter((r) => r.result === 'success').length;
    expect(answered).toBeGreaterThanOrEqual(served.length + 1);
    expect(answered).toBeLessThanOrEqual(sent + 1);
    // At most one row per call (the first sign, the flood, the live ones).
    expect(rows.length).toBeLessThanOrEqual(1 + FLOOD + served.length);
  }, 60_000);

  it('HTTP: clients that abort make few vault calls; live clients still succeed', async () => {
    expect((await http('POST', '/v1/keys', { name: 'http-flooded', type: 'EC' })).status).toBe(201);
    expect((await http('POST', '/v1/keys/http-flooded/sign', { algorithm: 'ES256', digest: b64u(digest()) })).status).toBe(200);
    vault().resetStats();
    vault().injectFault({ kind: 'latency', latencyMs: SIGN_LATENCY_MS, operations: ['sign'] });

    const flood = Array.from({ length: FLOOD }, () => post('/v1/keys/http-flooded/sign', { algorithm: 'ES256', digest: b64u(digest()) }, AbortSignal.timeout(DEADLINE_MS)));
    const live = Array.from({ length: 3 }, () => post('/v1/keys/http-flooded/sign', { algorithm: 'ES256', digest: b64u(digest()) }));
    const gone = await Promise.all(flood);
    expect(gone.filter((s) => s === 'AbortError').length).toBeGreaterThan(FLOOD * 0.9);
    expect(await Promise.all(live)).toEqual([200, 200, 200]);

    await new Promise((r) => setTimeout(r, 3 * SIGN_LATENCY_MS + 500));
    const sent = vault().stats().byOperation.sign ?? 0;
    expect(sent).toBeLessThan(USABLE_BOUND);
    expect(sent).toBeGreaterThanOrEqual(3);
    const rows = await signRows('http-flooded');
    expect(rows.filter((r) => r.result === 'failure')).toEqual([]);
  }, 60_000);

  it('HTTP: value reads of clients that abort make few vault reads and audit no failure; live readers still get the value', async () => {
    const value = `v-${randomBytes(12).toString('hex')}`;
    const created = await http('POST', '/v1/credentials', { integrationId: 'github', connectionId: 'gone.read', type: 'api_key', value });
    expect(created.status).toBe(201);
    const { id } = (await created.json()) as { id: string };
    vault().resetStats();
    vault().injectFault({ kind: 'latency', latencyMs: SIGN_LATENCY_MS, operations: ['getSecret'] });
    // A version's value is read from the vault each time (the current value goes through the cache, shared by readers).
    const path = `/v1/credentials/${id}/versions/1/value`;
    const flood = Array.from({ length: FLOOD }, () => send('GET', path, undefined, AbortSignal.timeout(DEADLINE_MS)));
    const live = Array.from({ length: 3 }, () => http('GET', path).then(async (r) => ((await r.json()) as { value?: string }).value));
    expect((await Promise.all(flood)).filter((s) => s === 'AbortError').length).toBeGreaterThan(FLOOD * 0.9);
    expect(await Promise.all(live)).toEqual([value, value, value]);

    await new Promise((r) => setTimeout(r, 3 * SIGN_LATENCY_MS + 500));
    expect(vault().stats().byOperation.getSecret ?? 0).toBeLessThan(USABLE_BOUND);
    const audit = host.app.get(AuditService);
    await audit.flush();
    const reads = (await audit.query({ tenantId: 'gone', limit: 500 })).items.filter((r) => r.resource === id && r.action === 'read');
    // Every value served has its row; the readers who left have none, or a `cancelled` one: never a failure.
    expect(reads.filter((r) => r.result === 'success').length).toBeGreaterThanOrEqual(3);
    expect(reads.filter((r) => r.result !== 'success' && r.result !== 'cancelled')).toEqual([]);
  }, 60_000);

  it('HTTP: a write whose client leaves after the vault write still commits: the value is current and its audit row is there', async () => {
    const v1 = `v1-${randomBytes(12).toString('hex')}`;
    const created = await http('POST', '/v1/credentials', { integrationId: 'github', connectionId: 'gone.write', type: 'api_key', value: v1 });
    expect(created.status).toBe(201);
    const { id, rowVersion } = (await created.json()) as { id: string; rowVersion: number };
    // The vault writes the new version, then answers late: the client has left by then.
    vault().injectFault({ kind: 'latency', latencyMs: 600, phase: 'response', operations: ['setSecret'], count: 1 });
    const v2 = `v2-${randomBytes(12).toString('hex')}`;
    expect(await post(`/v1/credentials/${id}/rotate`, { value: v2, expectedVersion: rowVersion }, AbortSignal.timeout(200))).toBe('AbortError');

    let value: string | undefined;
    for (let i = 0; i < 40 && value !== v2; i++) {
      await new Promise((r) => setTimeout(r, 100));
      value = ((await (await http('GET', `/v1/credentials/${id}/value`)).json()) as { value?: string }).value;
    }
    expect(value).toBe(v2);
    const audit = host.app.get(AuditService);
    await audit.flush();
    const rows = (await audit.query({ tenantId: 'gone', limit: 500 })).items.filter((r) => r.resource === id && r.action === 'rotate');
    expect(rows.map((r) => r.result)).toEqual(['success']);
  }, 60_000);
});
