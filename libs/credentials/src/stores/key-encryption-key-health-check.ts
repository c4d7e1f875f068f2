import { Inject, Injectable, Logger, OnApplicationBootstrap, Optional } from '@nestjs/common';
import { Clock, describeError } from '@app/common';
import { KeyVaultKeysProvider, isKeyVaultError } from '@app/key-vault';
import { CREDENTIALS_CLOCK, CREDENTIALS_RESOLVED_OPTIONS } from '../credentials.constants';
import type { ResolvedCredentialsOptions } from '../credentials.options';
import { generateDataKey, WRAP_ALGORITHM } from '../crypto/envelope-cipher';

/** How long a check of the key-encryption key stands (readiness and scrapes ask often; each check is 3 vault calls); a failed one, less. */
const KEK_CHECK_TTL_MS = 30_000;
const KEK_RECHECK_FAILED_MS = 5_000;

/** Whether the key-encryption key can wrap and unwrap data keys now (readiness, metrics). */
export interface KeyEncryptionKeyHealth {
  /** `envelope.keyEncryptionKey`. */
  keyName: string;
  /**
   * `usable`: its latest version wrapped and unwrapped a test key; `unusable`: a refusal that will not pass by
   * itself (missing, disabled, expired, not yet valid, not RSA, an operation not permitted, no permission);
   * `unknown`: the vault did not answer (throttled, down: the vault's own health says so).
   */
  status: 'usable' | 'unusable' | 'unknown';
  /** The latest version, when the vault answered with it. */
  version?: string;
  /** Why it is not usable (names the key's state or the vault's error code, never key material). */
  problem?: string;
  checkedAt: Date;
}

/**
 * Whether the key-encryption key (`envelope.keyEncryptionKey`) that `DataKeyService` wraps data keys with works,
 * asked of the vault apart from any data key (readiness, metrics, and once at start).
 */
@Injectable()
export class KeyEncryptionKeyHealthCheck implements OnApplicationBootstrap {
  // The start-up verdict keeps the log context it had before this class was split out of DataKeyService (log queries).
  private readonly logger = new Logger('DataKeyService');
  private last?: KeyEncryptionKeyHealth;
  private checking?: Promise<KeyEncryptionKeyHealth>;

  constructor(
    @Inject(CREDENTIALS_CLOCK) private readonly clock: Clock,
    @Inject(CREDENTIALS_RESOLVED_OPTIONS) private readonly options: ResolvedCredentialsOptions,
    // Present whenever a key-encryption key is configured: DataKeyService refuses to start without it.
    @Optional() private readonly vaultKeys?: KeyVaultKeysProvider,
  ) {}

  /** Says at start, in the log, when the key-encryption key cannot be used (not awaited: the vault may still be coming up). */
  onApplicationBootstrap(): void {
    if (!this.keyEncryptionKey) return;
    void this.checkKeyEncryptionKey().then(
      (h) => {
        if (h?.status === 'unusable') this.logger.error(`the key-encryption key ${h.keyName} cannot be used: ${h.problem}. New envelope data keys, and data keys this process has not unwrapped yet, fail until it can`);
        else if (h?.status === 'unknown') this.logger.warn(`the key-encryption key ${h.keyName} could not be checked (${h.problem}); readiness checks it again`);
      },
      (e: unknown) => this.logger.warn(`the key-encryption key could not be checked: ${describeError(e)}`),
    );
  }

  /** The vault key wrapping data keys (`envelope.keyEncryptionKey`), when configured. */
  get keyEncryptionKey(): string | undefined {
    return this.options.envelope.keyEncryptionKey;
  }

  /**
   * Whether the key-encryption key works, checked at most every 30 s (5 s while it does not; concurrent callers share a check):
   * its latest version exists, is enabled and in its validity period, permits wrapKey and unwrapKey, and
   * wraps and unwraps a throwaway key. Null without `envelope.keyEncryptionKey`. A key that cannot be used
   * fails every new envelope data key and every unwrap this process has not cached: a deployment problem
   * that writes would otherwise reveal only as 500s.
   */
  async checkKeyEncryptionKey(): Promise<KeyEncryptionKeyHealth | null> {
    if (!this.keyEncryptionKey) return null;
    const last = this.last;
    if (last && this.clock.now().getTime() - last.checkedAt.getTime() < (last.status === 'usable' ? KEK_CHECK_TTL_MS : KEK_RECHECK_FAILED_MS)) return last;
    this.checking ??= this.probe()
      .then((h) => (this.last = h))
      .finally(() => (this.checking = undefined));
    return this.checking;
  }

  /** Forget the last verdict: the next check asks the vault (tests, or after an operator changed the key out of band). */
  clear(): void {
    this.last = undefined;
  }

  private async probe(): Promise<KeyEncryptionKeyHealth> {
    const keyName = this.keyEncryptionKey as string;
    const vaultKeys = this.vaultKeys as KeyVaultKeysProvider;
    const verdict = (status: KeyEncryptionKeyHealth['status'], version?: string, problem?: string): KeyEncryptionKeyHealth => ({
      keyName,
      status,
      ...(version ? { version } : {}),
      ...(problem ? { problem } : {}),
      checkedAt: this.clock.now(),
    });
    let version: string | undefined;
    try {
      const { properties: p } = await vaultKeys.getKey(keyName);
      version = p.version;
      const now = this.clock.now().getTime();
      const problem = !p.enabled
        ? 'its latest version is disabled'
        : p.expiresOn && p.expiresOn.getTime() <= now
          ? `its latest version expired on ${p.expiresOn.toISOString()}`
          : p.notBefore && p.notBefore.getTime() > now
            ? `its latest version is not valid before ${p.notBefore.toISOString()}`
            : !p.keyType.startsWith('RSA')
              ? `its key type is ${p.keyType}; wrapping data keys (${WRAP_ALGORITHM}) needs RSA`
              : !(['wrapKey', 'unwrapKey'] as const).every((op) => p.keyOps.includes(op))
                ? `its operations (${p.keyOps.join(', ') || 'none'}) do not include wrapKey and unwrapKey`
                : undefined;
      if (problem) return verdict('unusable', version, problem);
      const probe = generateDataKey();
      const ref = { name: keyName, version: p.version };
      const { wrappedKey } = await vaultKeys.wrapKey(ref, WRAP_ALGORITHM, probe);
      const { unwrappedKey } = await vaultKeys.unwrapKey(ref, WRAP_ALGORITHM, wrappedKey);
      if (!Buffer.from(unwrappedKey).equals(probe)) return verdict('unusable', version, 'a key it wrapped did not unwrap to the same bytes');
      return verdict('usable', version);
    } catch (e) {
      if (!isKeyVaultError(e)) throw e;
      return verdict(e.retryable ? 'unknown' : 'unusable', version, `the vault answered ${e.codeName}`);
    }
  }
}
