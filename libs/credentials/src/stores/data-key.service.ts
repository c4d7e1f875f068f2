import { Inject, Injectable, Logger } from '@nestjs/common';
import { Clock } from '@app/common';
import { KeyVaultErrorCode, KeyVaultProvider, isKeyVaultError } from '@app/key-vault';
import { CREDENTIALS_CLOCK, CREDENTIALS_RESOLVED_OPTIONS } from '../credentials.constants';
import type { ResolvedCredentialsOptions } from '../credentials.options';
import { CredentialIntegrityError } from '../errors/credential-errors';
import { DATA_KEY_BYTES, generateDataKey } from '../crypto/envelope-cipher';
import { dataKeySecretName } from '../naming/vault-secret-name';

export interface DataKey {
  /** Key Vault secret name holding the key. */
  name: string;
  /** Key Vault secret version: the key's id recorded with each ciphertext. */
  version: string;
  key: Buffer;
}

/** Bound on cached key versions (each is 32 bytes; tenants × versions). */
const MAX_CACHED_KEYS = 50_000;

/**
 * Per-tenant AES-256 data keys, each a Key Vault secret (base64 of 32 random bytes). A key version is
 * fetched once and kept in memory (versions are immutable); the *current* version per tenant is
 * re-checked every `envelope.currentKeyRefreshMs`. Concurrent fetches of one key share one vault call.
 * Two replicas creating a tenant's first key at once just make two versions: every ciphertext names
 * the version it used, so both stay readable.
 */
@Injectable()
export class DataKeyService {
  private readonly logger = new Logger(DataKeyService.name);
  private readonly keys = new Map<string, Buffer>();
  private readonly current = new Map<string, { key: DataKey; checkedAt: number }>();
  private readonly inflight = new Map<string, Promise<DataKey>>();

  constructor(
    private readonly vault: KeyVaultProvider,
    @Inject(CREDENTIALS_CLOCK) private readonly clock: Clock,
    @Inject(CREDENTIALS_RESOLVED_OPTIONS) private readonly options: ResolvedCredentialsOptions,
  ) {}

  nameFor(tenantId: string): string {
    return dataKeySecretName(tenantId, this.options.vault.namePrefix);
  }

  /** The key new ciphertexts of this tenant are written with (created on first use). */
  async currentKey(tenantId: string): Promise<DataKey> {
    const cached = this.current.get(tenantId);
    if (cached && this.clock.now().getTime() - cached.checkedAt < this.options.envelope.currentKeyRefreshMs) {
      return cached.key;
    }
    return this.singleFlight(`current:${tenantId}`, async () => {
      const name = this.nameFor(tenantId);
      let key: DataKey;
      try {
        const secret = await this.vault.getSecret(name);
        key = this.remember(name, secret.properties.version, secret.value);
      } catch (e) {
        if (!isKeyVaultError(e, KeyVaultErrorCode.KEY_NOT_FOUND)) throw e;
        key = await this.create(tenantId, name);
      }
      this.current.set(tenantId, { key, checkedAt: this.clock.now().getTime() });
      return key;
    });
  }

  /** A specific key version (for decryption). */
  async keyVersion(name: string, version: string): Promise<Buffer> {
    const hit = this.keys.get(`${name}/${version}`);
    if (hit) return hit;
    const key = await this.singleFlight(`version:${name}/${version}`, async () => {
      const secret = await this.vault.getSecret(name, version);
      return this.remember(name, version, secret.value);
    });
    return key.key;
  }

  /** Creates a new data-key version for the tenant; older ciphertexts re-encrypt lazily on read. */
  async rotate(tenantId: string): Promise<DataKey> {
    const key = await this.create(tenantId, this.nameFor(tenantId));
    this.current.set(tenantId, { key, checkedAt: this.clock.now().getTime() });
    this.logger.log(`tenant ${tenantId}: data key rotated to version ${key.version}`);
    return key;
  }

  /** Forget cached keys (tests, or after an operator replaced keys out of band). */
  clear(): void {
    this.keys.clear();
    this.current.clear();
  }

  private async create(tenantId: string, name: string): Promise<DataKey> {
    const raw = generateDataKey();
    const secret = await this.vault.setSecret(name, raw.toString('base64'), {
      contentType: 'application/octet-stream',
      tags: { 'cv-purpose': 'envelope-data-key', 'cv-tenant': tenantId },
    });
    return this.remember(name, secret.properties.version, secret.value);
  }

  private remember(name: string, version: string, encoded: string): DataKey {
    const key = Buffer.from(encoded, 'base64');
    if (key.length !== DATA_KEY_BYTES) {
      throw new CredentialIntegrityError(`data key ${name} version ${version} is not ${DATA_KEY_BYTES} bytes of base64`);
    }
    if (this.keys.size >= MAX_CACHED_KEYS) this.keys.delete(this.keys.keys().next().value as string);
    this.keys.set(`${name}/${version}`, key);
    return { name, version, key };
  }

  private singleFlight(id: string, work: () => Promise<DataKey>): Promise<DataKey> {
    const running = this.inflight.get(id);
    if (running) return running;
    const p = work().finally(() => this.inflight.delete(id));
    this.inflight.set(id, p);
    return p;
  }
}
