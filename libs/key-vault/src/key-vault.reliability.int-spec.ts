/**
 * Integration: retries, circuit breaker, timeouts and health against the emulator's fault injection,
 * with the real SDK over real HTTPS. Attempts are counted by the emulator itself (`vault.stats()`).
 */
import { Test, type TestingModule } from '@nestjs/testing';
import { KeyVaultEmulator } from '@app/keyvault-emulator';
import { emulatorKeyVaultOptions } from '@app/testing';
import { Registry } from 'prom-client';
import {
  KeyVaultErrorCode as C,
  KeyVaultHealthIndicator,
  KeyVaultModule,
  KeyVaultProvider,
  type KeyVaultError,
  type KeyVaultModuleOptions,
} from './index';

const PREFIX = 'kvint_';

async function failure(p: Promise<unknown>): Promise<KeyVaultError> {
  try {
    await p;
  } catch (e) {
    return e as KeyVaultError;
  }
  throw new Error('expected the call to fail');
}

async function moduleFor(vault: KeyVaultEmulator, extra: Partial<KeyVaultModuleOptions> = {}) {
  const registry = new Registry();
  const moduleRef: TestingModule = await Test.createTestingModule({
    imports: [
      KeyVaultModule.forRoot(emulatorKeyVaultOptions(vault, { metrics: { registry, prefix: PREFIX }, ...extra })),
    ],
  }).compile();
  const kv = moduleRef.get(KeyVaultProvider);
  const metric = async (name: string, labels: Record<string, string> = {}) => {
    const m = await registry.getSingleMetric(`${PREFIX}${name}`)!.get();
    return m.values.filter((v) => Object.entries(labels).every(([k, val]) => v.labels[k] === val)).reduce((s, v) => s + v.value, 0);
  };
  return { moduleRef, kv, health: moduleRef.get(KeyVaultHealthIndicator), metric };
}

describe('KeyVaultModule reliability against the emulator', () => {
  let vault: KeyVaultEmulator;
  const modules: TestingModule[] = [];

  beforeAll(async () => {
    vault = await KeyVaultEmulator.start({ quiet: true, throttle: false, operationDelayMs: 0 }); // one spec deletes a secret
  });
  afterEach(() => vault.clearFaults());
  afterAll(async () => {
    for (const m of modules) await m.close();
    await vault?.stop();
  });

  async function warm(extra: Partial<KeyVaultModuleOptions> = {}) {
    const m = await moduleFor(vault, extra);
    modules.push(m.moduleRef);
    await m.kv.setSecret('rel-a', 'v'); // the 401 challenge round-trip happens here, not in the measured call
    vault.resetStats();
    return m;
  }

  it('retries 429 and honours Retry-After: 3 attempts, at least 2 s', async () => {
    const { kv, metric } = await warm();
    vault.injectFault({ kind: 'status', status: 429, retryAfterSeconds: 1, count: 2, operations: ['getSecret'] });
    const started = Date.now();
    expect((await kv.getSecret('rel-a')).value).toBe('v');
    const elapsed = Date.now() - started;
    const stats = vault.stats();
    expect(stats.byOperationAndStatus).toEqual({ 'getSecret:429': 2, 'getSecret:200': 1 });
    expect(stats.total).toBe(3); // no hidden SDK retries, no extra challenge
    expect(elapsed).toBeGreaterThanOrEqual(2000);
    expect(await metric('retries_total', { operation: 'getSecret' })).toBe(2);
  });

  it('retries 503 (Retry-After) and connection resets; gives up after maxAttempts', async () => {
    const { kv } = await warm({ resilience: { maxAttempts: 3, initialDelayMs: 20 } });
    vault.injectFault({ kind: 'status', status: 503, retryAfterSeconds: 0, count: 1, operations: ['getSecret'] });
    vault.injectFault({ kind: 'reset', count: 1, operations: ['getSecret'] });
    expect((await kv.getSecret('rel-a')).value).toBe('v');
    expect(vault.stats().byOperationAndStatus).toEqual({ 'getSecret:503': 1, 'getSecret:reset': 1, 'getSecret:200': 1 });

    vault.resetStats();
    vault.injectFault({ kind: 'status', status: 500, operations: ['getSecret'] });
    const e = await failure(kv.getSecret('rel-a'));
    expect(e).toMatchObject({ code: C.SERVICE_UNAVAILABLE, statusCode: 500 });
    expect(vault.stats().byOperationAndStatus).toEqual({ 'getSecret:500': 3 });
  });

  it('never retries a 404 / 409', async () => {
    const { kv } = await warm();
    expect((await failure(kv.getSecret('rel-missing'))).code).toBe(C.KEY_NOT_FOUND);
    expect(vault.stats().byOperationAndStatus).toEqual({ 'getSecret:404': 1 });

    await kv.setSecret('rel-del', 'v');
    await kv.deleteSecret('rel-del');
    vault.resetStats();
    expect((await failure(kv.setSecret('rel-del', 'v'))).code).toBe(C.DELETED_BUT_RECOVERABLE);
    expect(vault.stats().byOperationAndStatus).toEqual({ 'setSecret:409': 1 });
  });

  it('times out a slow attempt, retries, and reports TIMEOUT', async () => {
    const { kv } = await warm({ resilience: { maxAttempts: 2, timeoutMs: 300, initialDelayMs: 10 } });
    vault.injectFault({ kind: 'latency', latencyMs: 800, operations: ['getSecret'] });
    const started = Date.now();
    const e = await failure(kv.getSecret('rel-a'));
    expect(e.code).toBe(C.TIMEOUT);
    expect(Date.now() - started).toBeLessThan(1500);
    vault.clearFaults();
    await new Promise((r) => setTimeout(r, 900)); // let the slow requests finish on the server side
    expect(vault.stats().byOperation.getSecret).toBe(2);
  });

  it('opens the breaker on repeated 503, fails fast without reaching the vault, closes after a good half-open call', async () => {
    const { kv, metric } = await warm({ resilience: { maxAttempts: 1, breaker: { consecutiveFailures: 3, halfOpenAfterMs: 500 } } });
    vault.injectFault({ kind: 'status', status: 503, operations: ['getSecret'] });
    for (let i = 0; i < 3; i++) expect((await failure(kv.getSecret('rel-a'))).code).toBe(C.SERVICE_UNAVAILABLE);
    expect(await metric('circuit_breaker_state')).toBe(2);

    const fast = await failure(kv.getSecret('rel-a'));
    expect(fast.code).toBe(C.CIRCUIT_OPEN);
    expect(vault.stats().total).toBe(3);

    vault.clearFaults();
    await new Promise((r) => setTimeout(r, 550));
    expect((await kv.getSecret('rel-a')).value).toBe('v');
    expect(await metric('circuit_breaker_state')).toBe(0);
    expect((await kv.getSecret('rel-a')).value).toBe('v');
    expect(vault.stats().byOperationAndStatus['getSecret:200']).toBe(2);
    expect(await metric('errors_total', { code: 'CIRCUIT_OPEN' })).toBe(1);
  });

  it('health: up, degraded under latency, down on 503s', async () => {
    const { health } = await warm({ health: { timeoutMs: 2000, degradedAfterMs: 300 }, resilience: { maxAttempts: 1 } });
    const up = await health.isHealthy();
    expect(up.keyVault).toMatchObject({ status: 'up', breaker: 'closed', vaultUrl: vault.vaultUrl });
    expect(vault.stats().byOperation.listSecrets).toBe(1);

    vault.injectFault({ kind: 'latency', latencyMs: 500, operations: ['listSecrets'] });
    const slow = await health.isHealthy();
    expect(slow.keyVault.status).toBe('degraded');
    expect(slow.keyVault.latencyMs).toBeGreaterThanOrEqual(300);
    vault.clearFaults();

    vault.injectFault({ kind: 'status', status: 503, operations: ['listSecrets'] });
    vault.resetStats();
    const down = await health.isHealthy();
    expect(down.keyVault).toMatchObject({ status: 'down', code: 'SERVICE_UNAVAILABLE' });
    expect(vault.stats().total).toBe(1); // no retries from the health probe
  });

  it('health: down on timeout, and down when the vault is gone', async () => {
    const other = await KeyVaultEmulator.start({ quiet: true, throttle: false });
    const { moduleRef, health } = await moduleFor(other, { health: { timeoutMs: 400, degradedAfterMs: 300 } });
    try {
      // The first check also opens the TLS connection and answers the auth challenge: on a loaded machine it may
      // take past degradedAfterMs. This test is about the timeout; the vault answering at all comes first.
      await health.isHealthy();
      expect((await health.isHealthy()).keyVault.status).toBe('up');
      other.injectFault({ kind: 'latency', latencyMs: 1000, operations: ['listSecrets'] });
      const started = Date.now();
      expect((await health.isHealthy()).keyVault).toMatchObject({ status: 'down', code: 'TIMEOUT' });
      expect(Date.now() - started).toBeLessThan(900);
      other.clearFaults();
      await other.stop();
      expect((await health.isHealthy()).keyVault).toMatchObject({ status: 'down', code: 'SERVICE_UNAVAILABLE' });
    } finally {
      await moduleRef.close();
      await other.stop();
    }
  });
});
