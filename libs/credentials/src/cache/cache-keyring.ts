import { randomBytes } from 'node:crypto';
import { Logger } from '@nestjs/common';
import { KeyVaultErrorCode, KeyVaultProvider, isKeyVaultError } from '@app/key-vault';
import type { CacheEntryKey } from './cache-entry-cipher';

/** Key versions kept (a rotation adds one; entries under older ones expire with their TTL). */
const MAX_VERSIONS = 16;
/** A version that could not be fetched is not asked for again this soon (entries name versions; Redis is not trusted). */
const FAILED_VERSION_RETRY_MS = 60_000;

/**
 * The key the shared cache tier encrypts entries with: a Key Vault secret (`<namePrefix>-cachekey`,
 * base64 of 32 random bytes) created by the first replica that finds none. It lives in process memory
 * only — never in Redis, never in the database. Each entry names the key version it was sealed
 * with, so replicas that raced to create the secret (two versions) still read each other's entries;
 * a new secret version (rotation) is picked up at the next start.
 */
export class CacheKeyring {
  private readonly logger = new Logger('CredentialCache');
  private currentKey?: CacheEntryKey;
  private loading?: Promise<CacheEntryKey>;
  private readonly versions = new Map<string, Buffer>();
  private readonly fetching = new Map<string, Promise<Buffer | null>>();
  private readonly failed = new Map<string, number>();

  constructor(
    private readonly vault: KeyVaultProvider,
    readonly secretName: string,
  ) {}

  /** The key new entries are sealed with; throws while the vault cannot be reached (the caller skips L2). */
  current(): Promise<CacheEntryKey> {
    if (this.currentKey) return Promise.resolve(this.currentKey);
    this.loading ??= this.loadCurrent().finally(() => (this.loading = undefined));
    return this.loading;
  }

  /** The key of a version an entry names, or null when there is no such version (the entry is a miss). */
  async version(id: string): Promise<CacheEntryKey | null> {
    const known = this.versions.get(id);
    if (known) return { id, key: known };
    const failedAt = this.failed.get(id);
    if (failedAt !== undefined && Date.now() - failedAt < FAILED_VERSION_RETRY_MS) return null;
    let running = this.fetching.get(id);
    if (!running) {
      running = this.vault
        .getSecret(this.secretName, id)
        .then((s) => this.remember(id, s.value))
        .catch((e: unknown) => {
          if (this.failed.size >= MAX_VERSIONS) this.failed.clear();
          this.failed.set(id, Date.now());
          if (!isKeyVaultError(e, KeyVaultErrorCode.KEY_NOT_FOUND)) this.logger.warn(`cache key version unavailable: ${(e as Error).name}`);
          return null;
        })
        .finally(() => this.fetching.delete(id));
      this.fetching.set(id, running);
    }
    const key = await running;
    return key ? { id, key } : null;
  }

  private async loadCurrent(): Promise<CacheEntryKey> {
    let secret;
    try {
      // Absent until the first replica of the deployment creates it: an answer, not a vault error.
      secret = await this.vault.getSecret(this.secretName, undefined, { notFoundExpected: true });
    } catch (e) {
      if (!isKeyVaultError(e, KeyVaultErrorCode.KEY_NOT_FOUND)) throw e;
      await this.vault.setSecret(this.secretName, randomBytes(32).toString('base64'), {
        contentType: 'application/octet-stream',
        tags: { 'cv-purpose': 'cache-entry-key' },
      });
      // Read the latest back: replicas that created one at the same time settle on the same version.
      secret = await this.vault.getSecret(this.secretName);
      this.logger.log(`created the shared cache key ${this.secretName}`);
    }
    const id = secret.properties.version;
    this.currentKey = { id, key: this.remember(id, secret.value) };
    return this.currentKey;
  }

  private remember(id: string, encoded: string): Buffer {
    const key = Buffer.from(encoded, 'base64');
    if (key.length !== 32) throw new Error(`cache key ${this.secretName} is not 32 bytes of base64`);
    if (this.versions.size >= MAX_VERSIONS) this.versions.delete(this.versions.keys().next().value as string);
    this.versions.set(id, key);
    return key;
  }
}
