/**
 * The setup the AzureKeyVaultProvider specs share: the module over a fake SecretClient (no network), with fast
 * resilience defaults (5 ms first delay, 300 ms timeout, a breaker of 3 failures half-opening after 200 ms) a spec
 * overrides, and its metrics in a registry of their own.
 */
import { Test } from '@nestjs/testing';
import { Registry } from 'prom-client';
import { rejection } from '@app/testing';
import type { KeyVaultError } from './errors/key-vault.error';
import type { KeyVaultModuleOptions } from './interfaces/key-vault-module-options.interface';
import { KEY_VAULT_SECRET_CLIENT } from './key-vault.internal-constants';
import { KeyVaultModule } from './key-vault.module';
import { KeyVaultProvider } from './key-vault.provider';
import { KeyVaultResilience } from './resilience/key-vault.resilience';
import { FAKE_VAULT_OPTIONS, createFakeSecretClient } from './testing/fake-secret-client';

export const PREFIX = 'kvtest_';

export async function setup(overrides: Partial<KeyVaultModuleOptions> = {}) {
  const registry = new Registry();
  const client = createFakeSecretClient();
  const moduleRef = await Test.createTestingModule({
    imports: [
      KeyVaultModule.forRoot({
        ...FAKE_VAULT_OPTIONS,
        metrics: { registry, prefix: PREFIX },
        ...overrides,
        resilience: {
          initialDelayMs: 5,
          maxDelayMs: 3000,
          timeoutMs: 300,
          ...overrides.resilience,
          breaker: { consecutiveFailures: 3, halfOpenAfterMs: 200, ...overrides.resilience?.breaker },
        },
      }),
    ],
  })
    .overrideProvider(KEY_VAULT_SECRET_CLIENT)
    .useValue(client)
    .compile();
  const metric = async (name: string, labels: Record<string, string> = {}) => {
    const m = await registry.getSingleMetric(`${PREFIX}${name}`)!.get();
    return m.values
      .filter((v) => Object.entries(labels).every(([k, val]) => v.labels[k] === val))
      .reduce((sum, v) => sum + v.value, 0);
  };
  return { kv: moduleRef.get(KeyVaultProvider), client, registry, metric, resilience: moduleRef.get(KeyVaultResilience) };
}

/** The KeyVaultError a call rejects with; fails if it resolves. */
export const failure = (p: Promise<unknown>): Promise<KeyVaultError> => rejection(p) as Promise<KeyVaultError>;
