import { Inject, Injectable } from '@nestjs/common';
import { HealthIndicatorService, type HealthIndicatorResult } from '@nestjs/terminus';
import type { KeyVaultKeyClient } from '../client/key-client.factory';
import type { AttemptContext } from '../resilience/key-vault.resilience';
import type { KeyVaultSecretClient } from '../client/secret-client.factory';
import { KeyVaultErrorCode } from '../errors/key-vault-error-code';
import { isKeyVaultError } from '../errors/key-vault.error';
import { toKeyVaultError } from '../errors/map-key-vault-error';
import type { ResolvedKeyVaultOptions } from '../interfaces/key-vault-module-options.interface';
import { KEY_VAULT_KEY_CLIENT, KEY_VAULT_RESOLVED_OPTIONS, KEY_VAULT_SECRET_CLIENT } from '../key-vault.internal-constants';
import { KeyVaultResilience } from '../resilience/key-vault.resilience';

/**
 * Terminus 12 health indicator for the vault. `isHealthy()` proves connectivity AND authorisation
 * within `health.timeoutMs`: it lists one secret (maxresults 1), or reads `health.probeSecretName`
 * where 404 / disabled count as healthy (the vault authenticated us and answered).
 *
 * - `up` — answered within `degradedAfterMs`;
 * - `degraded` — answered but slower than `degradedAfterMs`, or throttled (429: reachable and
 *   authorised, but over quota);
 * - `down` — error, timeout, or circuit breaker open (then no call is made).
 *
 * The probe bypasses retries and the bulkhead, but goes through the circuit breaker: it fails fast
 * while the breaker is open and, once half-open, a successful probe closes it. Details always carry
 * `breaker` (closed / half-open / open) and, when a call was made, `latencyMs`. Never throws.
 */
@Injectable()
export class KeyVaultHealthIndicator {
  constructor(
    private readonly healthIndicatorService: HealthIndicatorService,
    @Inject(KEY_VAULT_SECRET_CLIENT) private readonly client: KeyVaultSecretClient,
    private readonly resilience: KeyVaultResilience,
    @Inject(KEY_VAULT_RESOLVED_OPTIONS) private readonly options: ResolvedKeyVaultOptions,
    @Inject(KEY_VAULT_KEY_CLIENT) private readonly keyClient: KeyVaultKeyClient,
  ) {}

  async isHealthy<const Key extends string = 'keyVault'>(key: Key = 'keyVault' as Key): Promise<HealthIndicatorResult<Key>> {
    const { probeSecretName } = this.options.health;
    return this.check(key, async ({ signal }) => {
      if (probeSecretName === undefined) {
        await firstPage(this.client.listPropertiesOfSecrets({ abortSignal: signal }));
        return;
      }
      try {
        await this.client.getSecret(probeSecretName, { abortSignal: signal });
      } catch (e) {
        const err = toKeyVaultError(e, { operation: 'healthCheck', secretName: probeSecretName });
        // The vault authenticated and authorised us, then answered about the secret itself.
        if (isKeyVaultError(err, KeyVaultErrorCode.KEY_NOT_FOUND) || isKeyVaultError(err, KeyVaultErrorCode.DISABLED)) return;
        throw err;
      }
    });
  }

  /** The keys side: one key listed within `health.timeoutMs` (same verdicts as `isHealthy`). */
  async isKeysHealthy<const Key extends string = 'keyVaultKeys'>(key: Key = 'keyVaultKeys' as Key): Promise<HealthIndicatorResult<Key>> {
    return this.check(key, ({ signal }) => firstPage(this.keyClient.listPropertiesOfKeys({ abortSignal: signal })));
  }

  private async check<const Key extends string>(key: Key, probe: (ctx: AttemptContext) => Promise<void>): Promise<HealthIndicatorResult<Key>> {
    const indicator = this.healthIndicatorService.check(key);
    const { timeoutMs, degradedAfterMs } = this.options.health;
    const vaultUrl = this.options.vaultUrl;
    if (this.resilience.breakerState === 'open' || this.resilience.breakerState === 'isolated') {
      return indicator.down({
        vaultUrl,
        breaker: this.resilience.breakerState,
        code: KeyVaultErrorCode[KeyVaultErrorCode.CIRCUIT_OPEN],
        message: 'circuit breaker open: Key Vault calls fail fast',
      });
    }
    const started = performance.now();
    try {
      await this.resilience.probe(timeoutMs, probe);
      const latencyMs = Math.round(performance.now() - started);
      const breaker = this.resilience.breakerState;
      if (latencyMs > degradedAfterMs) {
        return indicator.degraded({ vaultUrl, breaker, latencyMs, message: `slow: ${latencyMs} ms > ${degradedAfterMs} ms` });
      }
      return indicator.up({ vaultUrl, breaker, latencyMs });
    } catch (e) {
      const latencyMs = Math.round(performance.now() - started);
      const err = toKeyVaultError(e, { operation: 'healthCheck', timeoutMs });
      const breaker = this.resilience.breakerState;
      if (err.code === KeyVaultErrorCode.RATE_LIMITED) {
        return indicator.degraded({ vaultUrl, breaker, latencyMs, code: err.codeName, message: 'throttled by Key Vault (429)' });
      }
      return indicator.down({ vaultUrl, breaker, latencyMs, code: err.codeName, message: err.message });
    }
  }
}

/** Reads one item of a list (maxresults 1) and closes the iterator. */
async function firstPage(list: { byPage(settings: { maxPageSize: number }): AsyncIterableIterator<unknown> }): Promise<void> {
  const pages = list.byPage({ maxPageSize: 1 });
  try {
    await pages.next();
  } finally {
    await pages.return?.(undefined);
  }
}
