import { Test } from '@nestjs/testing';
import { Registry } from 'prom-client';
import type { KeyVaultModuleOptions } from '../interfaces/key-vault-module-options.interface';
import { KEY_VAULT_SECRET_CLIENT } from '../key-vault.internal-constants';
import { KeyVaultModule } from '../key-vault.module';
import { KeyVaultProvider } from '../key-vault.provider';
import { FAKE_VAULT, FAKE_VAULT_OPTIONS, createFakeSecretClient, pagedOf, restError, sdkProperties } from '../testing/fake-secret-client';
import { KeyVaultHealthIndicator } from './key-vault.health';

async function setup(health: KeyVaultModuleOptions['health'] = {}) {
  const client = createFakeSecretClient();
  const moduleRef = await Test.createTestingModule({
    imports: [
      KeyVaultModule.forRoot({
        ...FAKE_VAULT_OPTIONS,
        metrics: { registry: new Registry() },
        resilience: { maxAttempts: 1, breaker: { consecutiveFailures: 2, halfOpenAfterMs: 60_000 } },
        health: { timeoutMs: 200, degradedAfterMs: 50, ...health },
      }),
    ],
  })
    .overrideProvider(KEY_VAULT_SECRET_CLIENT)
    .useValue(client)
    .compile();
  return { health: moduleRef.get(KeyVaultHealthIndicator), kv: moduleRef.get(KeyVaultProvider), client };
}

const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('KeyVaultHealthIndicator', () => {
  it('is up when one-secret listing answers fast, with breaker and latency details', async () => {
    // "Fast" against a bound a loaded CI machine cannot reach with an in-memory fake (50 ms was: 73 ms once).
    const { health, client } = await setup({ timeoutMs: 10_000, degradedAfterMs: 5_000 });
    const seen: Array<{ maxPageSize?: number }> = [];
    client.listPropertiesOfSecrets.mockImplementation(() => pagedOf([[sdkProperties('a')]], seen));
    const r = await health.isHealthy();
    expect(r).toEqual({ keyVault: { status: 'up', vaultUrl: FAKE_VAULT, breaker: 'closed', latencyMs: expect.any(Number) } });
    expect(seen).toEqual([{ maxPageSize: 1 }]);
  });

  it('uses the given key', async () => {
    const { health, client } = await setup();
    client.listPropertiesOfSecrets.mockImplementation(() => pagedOf([[]]));
    expect(Object.keys(await health.isHealthy('vault'))).toEqual(['vault']);
  });

  it('is degraded when slower than degradedAfterMs', async () => {
    const { health, client } = await setup();
    client.listPropertiesOfSecrets.mockImplementation(() => ({
      byPage: () => ({ next: async () => (await delay(80), { done: true, value: undefined }), return: async () => ({ done: true, value: undefined }) }),
    }));
    const r = await health.isHealthy();
    expect(r.keyVault.status).toBe('degraded');
    expect(r.keyVault.latencyMs).toBeGreaterThanOrEqual(50);
  });

  it('is down (not thrown) on an error, naming the code', async () => {
    const { health, client } = await setup();
    client.listPropertiesOfSecrets.mockImplementation(() => {
      throw restError(403, 'Forbidden', 'no list permission');
    });
    const r = await health.isHealthy();
    expect(r.keyVault).toMatchObject({ status: 'down', code: 'FORBIDDEN', breaker: 'closed' });
  });

  it('is down on timeout, without retrying', async () => {
    const { health, client } = await setup();
    client.listPropertiesOfSecrets.mockImplementation(() => ({
      byPage: () => ({ next: () => new Promise(() => undefined), return: async () => ({ done: true, value: undefined }) }),
    }));
    const started = Date.now();
    const r = await health.isHealthy();
    expect(r.keyVault).toMatchObject({ status: 'down', code: 'TIMEOUT' });
    expect(Date.now() - started).toBeLessThan(1000);
    expect(client.listPropertiesOfSecrets).toHaveBeenCalledTimes(1);
  });

  it('is down without calling the vault while the breaker is open', async () => {
    const { health, kv, client } = await setup();
    client.getSecret.mockRejectedValue(restError(503, 'ServiceUnavailable', 'x'));
    await expect(kv.getSecret('a')).rejects.toThrow();
    await expect(kv.getSecret('a')).rejects.toThrow();
    const r = await health.isHealthy();
    expect(r.keyVault).toMatchObject({ status: 'down', breaker: 'open', code: 'CIRCUIT_OPEN' });
    expect(client.listPropertiesOfSecrets).not.toHaveBeenCalled();
  });

  it('with probeSecretName: 404 proves connectivity and authorisation (up), 401 is down, 429 degraded', async () => {
    const { health, client } = await setup({ probeSecretName: 'health-probe' });
    client.getSecret.mockRejectedValueOnce(restError(404, 'SecretNotFound', 'no such secret'));
    expect((await health.isHealthy()).keyVault.status).toBe('up');
    expect(client.getSecret).toHaveBeenCalledWith('health-probe', expect.objectContaining({ abortSignal: expect.any(AbortSignal) }));
    client.getSecret.mockRejectedValueOnce(restError(401, 'Unauthorized', 'bad token'));
    expect((await health.isHealthy()).keyVault).toMatchObject({ status: 'down', code: 'UNAUTHORIZED' });
    client.getSecret.mockRejectedValueOnce(restError(429, 'Throttled', 'x', { 'retry-after': '1' }));
    expect((await health.isHealthy()).keyVault).toMatchObject({ status: 'degraded', code: 'RATE_LIMITED' });
  });
});
