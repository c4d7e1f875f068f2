import { Inject, Injectable, Logger } from '@nestjs/common';
import type {
  DeletedKey as SdkDeletedKey,
  JsonWebKey as SdkJsonWebKey,
  KeyProperties as SdkKeyProperties,
  KeyVaultKey as SdkKey,
} from '@azure/keyvault-keys';
import type { CryptographyClientFactory, KeyVaultCryptographyClient, KeyVaultKeyClient } from './client/key-client.factory';
import { KeyVaultErrorCode } from './errors/key-vault-error-code';
import { KeyVaultError, type KeyVaultKeyOperationName } from './errors/key-vault.error';
import { keyVaultMessage } from './errors/key-vault-message';
import type { ResolvedKeyVaultOptions } from './interfaces/key-vault-module-options.interface';
import { assertRecoverSent, deleteConfirmingRetries, NamesInFlight, nonEmptyBackup, purgeToleratingRetries, untilDeleted } from './internal/operation-helpers';
import { OBJECT_NAME, OBJECT_VERSION, pageOptionsProblem, readFirstPage } from './internal/paging';
import { KEY_VAULT_CRYPTOGRAPHY_CLIENTS, KEY_VAULT_KEY_CLIENT, KEY_VAULT_RESOLVED_OPTIONS } from './key-vault.internal-constants';
import {
  DIGEST_BYTES,
  KeyVaultKeysProvider,
  VAULT_EC_CURVES,
  VAULT_ENCRYPTION_ALGORITHMS,
  VAULT_KEY_OPERATIONS,
  VAULT_RSA_KEY_SIZES,
  VAULT_SIGNATURE_ALGORITHMS,
  type CreateVaultKeyOptions,
  type DeletedVaultKey,
  type UpdateVaultKeyPropertiesOptions,
  type VaultEcCurve,
  type VaultEncryptionAlgorithm,
  type VaultKey,
  type VaultKeyItem,
  type VaultKeyOperation,
  type VaultKeyProperties,
  type VaultKeyRef,
  type VaultKeyType,
  type VaultPublicJwk,
  type VaultSignatureAlgorithm,
} from './key-vault-keys.provider';
import type { KeyVaultCallOptions, KeyVaultReadOptions, ListPageOptions, Page } from './key-vault.provider';
import { KeyVaultResilience, type AttemptContext } from './resilience/key-vault.resilience';
import { absentWhenNotFound, writeNewVersion } from './internal/new-version-write';
import { confirmedRestore } from './internal/confirmed-restore';

/** Cryptography clients kept (one per key version used); the oldest is dropped beyond this. */
const MAX_CRYPTO_CLIENTS = 2000;
/** Largest RSA plaintext we pass on (RSA-4096 with OAEP-SHA1 fits 470 bytes). */
const MAX_CRYPTO_INPUT_BYTES = 1024;

const b64url = (bytes: Uint8Array | undefined): string | undefined => (bytes ? Buffer.from(bytes).toString('base64url') : undefined);

function keyTypeOf(kty: string | undefined): VaultKeyType {
  return kty?.startsWith('EC') ? 'EC' : 'RSA';
}

function toItem(p: SdkKeyProperties): VaultKeyItem {
  return {
    name: p.name,
    version: p.version ?? '',
    id: p.id ?? '',
    enabled: p.enabled ?? true,
    tags: { ...(p.tags ?? {}) },
    createdOn: p.createdOn,
    updatedOn: p.updatedOn,
    expiresOn: p.expiresOn,
    notBefore: p.notBefore,
    recoveryLevel: p.recoveryLevel,
  };
}

/** Only the public members of the SDK's JWK are copied: a private member never leaves this function. */
function toPublicJwk(jwk: SdkJsonWebKey, id: string): VaultPublicJwk {
  const kty = keyTypeOf(jwk.kty);
  const key_ops = (jwk.keyOps ?? []).filter((op): op is VaultKeyOperation => (VAULT_KEY_OPERATIONS as readonly string[]).includes(op));
  if (kty === 'EC') {
    return { kty, kid: jwk.kid ?? id, key_ops, crv: jwk.crv as VaultEcCurve, x: b64url(jwk.x), y: b64url(jwk.y) };
  }
  return { kty, kid: jwk.kid ?? id, key_ops, n: b64url(jwk.n), e: b64url(jwk.e) };
}

function toKey(k: SdkKey, operation: KeyVaultKeyOperationName): VaultKey {
  if (!k.key || !k.properties.version) {
    throw new KeyVaultError(KeyVaultErrorCode.INVALID_RESPONSE, keyVaultMessage(operation, KeyVaultErrorCode.INVALID_RESPONSE, { detail: 'the answer carries no key material or version' }), {
      operation,
      secretName: k.name,
    });
  }
  const id = k.id ?? k.properties.id ?? '';
  const publicKey = toPublicJwk(k.key, id);
  const properties: VaultKeyProperties = {
    ...toItem(k.properties),
    keyType: publicKey.kty,
    keyOps: publicKey.key_ops,
    recoverableDays: k.properties.recoverableDays,
  };
  if (publicKey.kty === 'RSA' && publicKey.n) properties.keySize = Buffer.from(publicKey.n, 'base64url').length * 8;
  if (publicKey.kty === 'EC') properties.curve = publicKey.crv;
  return { properties, publicKey };
}

function toDeleted(d: SdkDeletedKey): DeletedVaultKey {
  return {
    properties: toItem(d.properties),
    recoveryId: d.properties.recoveryId,
    deletedOn: d.properties.deletedOn,
    scheduledPurgeDate: d.properties.scheduledPurgeDate,
  };
}

/** `https://<vault>/keys/<name>/<version>` → `{ name, version }` (the vault's answer, not our request). */
function refOf(keyId: string | undefined, fallback: VaultKeyRef): VaultKeyRef {
  const m = keyId ? /\/keys\/([^/]+)\/([^/?]+)/.exec(keyId) : null;
  return m ? { name: m[1], version: m[2] } : fallback;
}

/**
 * The SDK's CryptographyClient checks a key locally before using it (key_ops, exp, nbf) and throws a
 * plain Error; those are refusals of the request, not failures of the vault.
 */
const LOCAL_REFUSAL = /is not supported on key|expired at|can't be used before|Unable to support operation/;

/**
 * `KeyVaultKeysProvider` over the Azure SDK's `KeyClient` and `CryptographyClient`, every call through
 * the SAME `KeyVaultResilience` as the secrets side (one bulkhead, retry and breaker budget per
 * vault). Names and versions are checked before any call; digests must have the algorithm's length.
 */
@Injectable()
export class AzureKeyVaultKeysProvider extends KeyVaultKeysProvider {
  readonly vaultUrl: string;
  private readonly logger = new Logger(AzureKeyVaultKeysProvider.name);
  /** Names a recover of this provider is running: a restore's 409 over them reads as that recover completing. */
  private readonly recovering = new NamesInFlight();
  private readonly cryptoClients = new Map<string, KeyVaultCryptographyClient>();

  constructor(
    @Inject(KEY_VAULT_KEY_CLIENT) private readonly client: KeyVaultKeyClient,
    @Inject(KEY_VAULT_CRYPTOGRAPHY_CLIENTS) private readonly cryptographyClients: CryptographyClientFactory,
    private readonly resilience: KeyVaultResilience,
    @Inject(KEY_VAULT_RESOLVED_OPTIONS) private readonly options: ResolvedKeyVaultOptions,
  ) {
    super();
    this.vaultUrl = options.vaultUrl;
  }

  async createKey(name: string, options: CreateVaultKeyOptions, call: KeyVaultCallOptions = {}): Promise<VaultKey> {
    this.checkName('createKey', name);
    const { keyType } = options;
    if (keyType !== 'RSA' && keyType !== 'EC') throw this.invalid('createKey', name, "keyType must be 'RSA' or 'EC'");
    if (keyType === 'RSA' && options.keySize !== undefined && !VAULT_RSA_KEY_SIZES.includes(options.keySize)) {
      throw this.invalid('createKey', name, `keySize must be one of ${VAULT_RSA_KEY_SIZES.join(', ')}`);
    }
    if (keyType === 'EC' && options.curve !== undefined && !VAULT_EC_CURVES.includes(options.curve)) {
      throw this.invalid('createKey', name, `curve must be one of ${VAULT_EC_CURVES.join(', ')}`);
    }
    if (keyType === 'RSA' && options.curve !== undefined) throw this.invalid('createKey', name, 'an RSA key has no curve');
    if (keyType === 'EC' && options.keySize !== undefined) throw this.invalid('createKey', name, 'an EC key has no keySize (choose a curve)');
    this.checkKeyOps('createKey', name, options.keyOps);
    const common = { keyOps: options.keyOps, tags: options.tags, enabled: options.enabled, expiresOn: options.expiresOn, notBefore: options.notBefore };
    // Each Create Key adds a version: never repeated after a lost answer, read back instead.
    return this.writeNewVersion('createKey', name, async ({ signal }) => {
      const key =
        keyType === 'RSA'
          ? await this.client.createRsaKey(name, { ...common, keySize: options.keySize ?? 2048, abortSignal: signal })
          : await this.client.createEcKey(name, { ...common, curve: options.curve ?? 'P-256', abortSignal: signal });
      return toKey(key, 'createKey');
    }, call.signal);
  }

  async getKey(name: string, version?: string, call: KeyVaultReadOptions = {}): Promise<VaultKey> {
    this.checkName('getKey', name);
    if (version !== undefined) this.checkVersion('getKey', name, version);
    return this.resilience.execute('getKey', name, async ({ signal }) => toKey(await this.client.getKey(name, { version, abortSignal: signal }), 'getKey'), {
      signal: call.signal,
      abortInFlight: true,
      notFoundExpected: call.notFoundExpected,
    });
  }

  async listKeys(options: ListPageOptions = {}, call: KeyVaultCallOptions = {}): Promise<Page<VaultKeyItem>> {
    this.checkPage('listKeys', undefined, options, '/keys');
    return this.resilience.execute('listKeys', undefined, (ctx) => readFirstPage(ctx, this.client.listPropertiesOfKeys({ abortSignal: ctx.signal }), options, toItem), {
      signal: call.signal,
      abortInFlight: true,
    });
  }

  async listKeyVersions(name: string, options: ListPageOptions = {}, call: KeyVaultCallOptions = {}): Promise<Page<VaultKeyItem>> {
    this.checkName('listKeyVersions', name);
    this.checkPage('listKeyVersions', name, options, `/keys/${name}/versions`);
    return this.resilience.execute('listKeyVersions', name, (ctx) => readFirstPage(ctx, this.client.listPropertiesOfKeyVersions(name, { abortSignal: ctx.signal }), options, toItem), {
      signal: call.signal,
      abortInFlight: true,
    });
  }

  async updateKeyProperties(name: string, version: string | undefined, options: UpdateVaultKeyPropertiesOptions, call: KeyVaultCallOptions = {}): Promise<VaultKey> {
    this.checkName('updateKeyProperties', name);
    if (version !== undefined) this.checkVersion('updateKeyProperties', name, version);
    this.checkKeyOps('updateKeyProperties', name, options.keyOps);
    const update = { keyOps: options.keyOps, tags: options.tags, enabled: options.enabled, expiresOn: options.expiresOn, notBefore: options.notBefore };
    return this.resilience.execute('updateKeyProperties', name, async ({ signal }) =>
      toKey(
        version === undefined
          ? await this.client.updateKeyProperties(name, { ...update, abortSignal: signal })
          : await this.client.updateKeyProperties(name, version, { ...update, abortSignal: signal }),
        'updateKeyProperties',
      ),
      { signal: call.signal },
    );
  }

  async rotateKey(name: string, call: KeyVaultCallOptions = {}): Promise<VaultKey> {
    this.checkName('rotateKey', name);
    return this.writeNewVersion('rotateKey', name, async ({ signal }) => toKey(await this.client.rotateKey(name, { abortSignal: signal }), 'rotateKey'), call.signal);
  }

  async deleteKey(name: string, call: KeyVaultCallOptions = {}): Promise<DeletedVaultKey> {
    this.checkName('deleteKey', name);
    const intervalInMs = this.options.resilience.pollIntervalMs;
    return this.resilience.execute('deleteKey', name, ({ signal, attempt }) =>
      deleteConfirmingRetries(
        'deleteKey',
        attempt,
        // Waited as deleteSecret is: a key another client recovers meanwhile ends it with DELETE_UNDONE, not retried.
        async () =>
          toDeleted(
            await untilDeleted('deleteKey', name, await this.client.beginDeleteKey(name, { intervalInMs, abortSignal: signal }), {
              intervalMs: intervalInMs,
              signal,
              versions: () => this.client.listPropertiesOfKeyVersions(name, { abortSignal: signal }),
            }),
          ),
        async () => toDeleted(await this.client.getDeletedKey(name, { abortSignal: signal })),
      ),
      { signal: call.signal },
    );
  }

  async getDeletedKey(name: string): Promise<DeletedVaultKey> {
    this.checkName('getDeletedKey', name);
    return this.resilience.execute('getDeletedKey', name, async ({ signal }) => toDeleted(await this.client.getDeletedKey(name, { abortSignal: signal })));
  }

  async recoverDeletedKey(name: string): Promise<VaultKey> {
    this.checkName('recoverDeletedKey', name);
    const intervalInMs = this.options.resilience.pollIntervalMs;
    // Each attempt marks the name recovering: a restore's 409 meanwhile is OBJECT_BEING_RECOVERED (confirmedRestore).
    return this.resilience.execute('recoverDeletedKey', name, ({ signal, attempt }) =>
      this.recovering.during(name, async () => {
        const poller = await this.client.beginRecoverDeletedKey(name, { intervalInMs, abortSignal: signal });
        await poller.pollUntilDone({ abortSignal: signal });
        assertRecoverSent('recoverDeletedKey', attempt, poller, name);
        // The poller's result is the deleted-key record; the live key carries the public part.
        return toKey(await this.client.getKey(name, { abortSignal: signal }), 'recoverDeletedKey');
      }),
    );
  }

  async purgeDeletedKey(name: string): Promise<void> {
    this.checkName('purgeDeletedKey', name);
    return this.resilience.execute('purgeDeletedKey', name, ({ signal, attempt }) =>
      purgeToleratingRetries('purgeDeletedKey', attempt, () => this.client.purgeDeletedKey(name, { abortSignal: signal })),
    );
  }

  async backupKey(name: string): Promise<Uint8Array> {
    this.checkName('backupKey', name);
    return this.resilience.execute('backupKey', name, async ({ signal }) => nonEmptyBackup(await this.client.backupKey(name, { abortSignal: signal }), 'backupKey', name));
  }

  async restoreKeyBackup(backup: Uint8Array, expected?: VaultKeyRef): Promise<VaultKey> {
    if (!(backup instanceof Uint8Array) || backup.length === 0) throw this.invalid('restoreKeyBackup', undefined, 'the backup must be a non-empty Uint8Array');
    if (expected !== undefined) this.checkRef('restoreKeyBackup', expected);
    // A 409 is told by reading the name: a purge still completing (retried), a retry's own earlier restore, or a conflict.
    return confirmedRestore(this.resilience, {
      operation: 'restoreKeyBackup',
      kind: 'key',
      expected,
      logger: this.logger,
      restore: async (signal) => toKey(await this.client.restoreKeyBackup(backup, { abortSignal: signal }), 'restoreKeyBackup'),
      read: async (name, version, signal) => toKey(await this.client.getKey(name, { version, abortSignal: signal }), 'restoreKeyBackup'),
      readDeleted: (name, signal) => this.client.getDeletedKey(name, { abortSignal: signal }),
      recovering: (name) => this.recovering.has(name),
    });
  }

  async sign(key: VaultKeyRef, algorithm: VaultSignatureAlgorithm, digest: Uint8Array, call: KeyVaultCallOptions = {}): Promise<{ key: VaultKeyRef; signature: Uint8Array }> {
    this.checkDigest('sign', key, algorithm, digest);
    return this.crypto('sign', key, call, async (client, abortSignal) => {
      const r = await client.sign(algorithm, digest, { abortSignal });
      return { key: refOf(r.keyID, key), signature: r.result };
    });
  }

  async verify(key: VaultKeyRef, algorithm: VaultSignatureAlgorithm, digest: Uint8Array, signature: Uint8Array, call: KeyVaultCallOptions = {}): Promise<{ key: VaultKeyRef; valid: boolean }> {
    this.checkDigest('verify', key, algorithm, digest);
    this.checkBytes('verify', key, 'signature', signature);
    return this.crypto('verify', key, call, async (client, abortSignal) => {
      const r = await client.verify(algorithm, digest, signature, { abortSignal });
      return { key: refOf(r.keyID, key), valid: r.result };
    });
  }

  async encrypt(key: VaultKeyRef, algorithm: VaultEncryptionAlgorithm, plaintext: Uint8Array, call: KeyVaultCallOptions = {}): Promise<{ key: VaultKeyRef; ciphertext: Uint8Array }> {
    this.checkEncryption('encrypt', key, algorithm, 'plaintext', plaintext);
    return this.crypto('encrypt', key, call, async (client, abortSignal) => {
      const r = await client.encrypt({ algorithm, plaintext }, { abortSignal });
      return { key: refOf(r.keyID, key), ciphertext: r.result };
    });
  }

  async decrypt(key: VaultKeyRef, algorithm: VaultEncryptionAlgorithm, ciphertext: Uint8Array, call: KeyVaultCallOptions = {}): Promise<{ key: VaultKeyRef; plaintext: Uint8Array }> {
    this.checkEncryption('decrypt', key, algorithm, 'ciphertext', ciphertext);
    return this.crypto('decrypt', key, call, async (client, abortSignal) => {
      const r = await client.decrypt({ algorithm, ciphertext }, { abortSignal });
      return { key: refOf(r.keyID, key), plaintext: r.result };
    });
  }

  async wrapKey(key: VaultKeyRef, algorithm: VaultEncryptionAlgorithm, keyToWrap: Uint8Array, call: KeyVaultCallOptions = {}): Promise<{ key: VaultKeyRef; wrappedKey: Uint8Array }> {
    this.checkEncryption('wrapKey', key, algorithm, 'key', keyToWrap);
    return this.crypto('wrapKey', key, call, async (client, abortSignal) => {
      const r = await client.wrapKey(algorithm, keyToWrap, { abortSignal });
      return { key: refOf(r.keyID, key), wrappedKey: r.result };
    });
  }

  async unwrapKey(key: VaultKeyRef, algorithm: VaultEncryptionAlgorithm, wrappedKey: Uint8Array, call: KeyVaultCallOptions = {}): Promise<{ key: VaultKeyRef; unwrappedKey: Uint8Array }> {
    this.checkEncryption('unwrapKey', key, algorithm, 'wrapped key', wrappedKey);
    return this.crypto('unwrapKey', key, call, async (client, abortSignal) => {
      const r = await client.unwrapKey(algorithm, wrappedKey, { abortSignal });
      return { key: refOf(r.keyID, key), unwrappedKey: r.result };
    });
  }

  private writeNewVersion(operation: 'createKey' | 'rotateKey', name: string, write: (ctx: AttemptContext) => Promise<VaultKey>, signal: AbortSignal | undefined): Promise<VaultKey> {
    return writeNewVersion({
      operation,
      name,
      resilience: this.resilience,
      latest: (before) => absentWhenNotFound(this.getKey(name, undefined, { signal: before, notFoundExpected: true })),
      versionOf: (key) => key.properties.version,
      write,
      signal,
    });
  }

  /** One cryptographic call on a key version through the shared resilience; none changes the vault, so the caller's signal aborts it in flight too. */
  private crypto<T>(operation: KeyVaultKeyOperationName, key: VaultKeyRef, call: KeyVaultCallOptions, work: (client: KeyVaultCryptographyClient, signal: AbortSignal) => Promise<T>): Promise<T> {
    const client = this.cryptographyClient(key);
    return this.resilience.execute(operation, key.name, async ({ signal }) => {
      try {
        return await work(client, signal);
      } catch (e) {
        if (e instanceof Error && e.name === 'Error' && LOCAL_REFUSAL.test(e.message)) {
          throw this.invalid(operation, key.name, 'the key does not allow this operation now (key_ops, expiry or not-before)', e);
        }
        throw e;
      }
    }, { signal: call.signal, abortInFlight: true });
  }

  private cryptographyClient(key: VaultKeyRef): KeyVaultCryptographyClient {
    const id = `${this.vaultUrl}/keys/${key.name}/${key.version}`.toLowerCase();
    let client = this.cryptoClients.get(id);
    if (client) return client;
    client = this.cryptographyClients(`${this.vaultUrl}/keys/${key.name}/${key.version}`);
    if (this.cryptoClients.size >= MAX_CRYPTO_CLIENTS) this.cryptoClients.delete(this.cryptoClients.keys().next().value as string);
    this.cryptoClients.set(id, client);
    return client;
  }

  private checkRef(operation: KeyVaultKeyOperationName, key: VaultKeyRef): void {
    this.checkName(operation, key?.name);
    this.checkVersion(operation, key.name, key.version);
  }

  private checkDigest(operation: KeyVaultKeyOperationName, key: VaultKeyRef, algorithm: VaultSignatureAlgorithm, digest: Uint8Array): void {
    this.checkRef(operation, key);
    if (!VAULT_SIGNATURE_ALGORITHMS.includes(algorithm)) {
      throw this.invalid(operation, key.name, `algorithm must be one of ${VAULT_SIGNATURE_ALGORITHMS.join(', ')}`);
    }
    if (!(digest instanceof Uint8Array) || digest.length !== DIGEST_BYTES[algorithm]) {
      throw this.invalid(operation, key.name, `${algorithm} signs a ${DIGEST_BYTES[algorithm]}-byte digest`);
    }
  }

  private checkEncryption(operation: KeyVaultKeyOperationName, key: VaultKeyRef, algorithm: VaultEncryptionAlgorithm, what: string, bytes: Uint8Array): void {
    this.checkRef(operation, key);
    if (!VAULT_ENCRYPTION_ALGORITHMS.includes(algorithm)) {
      throw this.invalid(operation, key.name, `algorithm must be one of ${VAULT_ENCRYPTION_ALGORITHMS.join(', ')}`);
    }
    this.checkBytes(operation, key, what, bytes);
  }

  private checkBytes(operation: KeyVaultKeyOperationName, key: VaultKeyRef, what: string, bytes: Uint8Array): void {
    if (!(bytes instanceof Uint8Array) || bytes.length === 0 || bytes.length > MAX_CRYPTO_INPUT_BYTES) {
      throw this.invalid(operation, key.name, `the ${what} must be 1..${MAX_CRYPTO_INPUT_BYTES} bytes`);
    }
  }

  private checkKeyOps(operation: KeyVaultKeyOperationName, name: string, keyOps: readonly string[] | undefined): void {
    if (keyOps === undefined) return;
    if (!Array.isArray(keyOps) || keyOps.length === 0 || keyOps.some((op) => !(VAULT_KEY_OPERATIONS as readonly string[]).includes(op))) {
      throw this.invalid(operation, name, `keyOps must be a non-empty list of ${VAULT_KEY_OPERATIONS.join(', ')}`);
    }
  }

  private checkName(operation: KeyVaultKeyOperationName, name: string): void {
    if (typeof name !== 'string' || !OBJECT_NAME.test(name)) {
      throw this.invalid(operation, typeof name === 'string' ? name.slice(0, 140) : undefined, 'key names are 1-127 characters of 0-9, a-z, A-Z and -');
    }
  }

  private checkVersion(operation: KeyVaultKeyOperationName, name: string, version: string): void {
    if (typeof version !== 'string' || !OBJECT_VERSION.test(version)) throw this.invalid(operation, name, 'a key version is 1-64 letters or digits');
  }

  private checkPage(operation: KeyVaultKeyOperationName, name: string | undefined, options: ListPageOptions, listPath: string): void {
    const problem = pageOptionsProblem(this.vaultUrl, listPath, options);
    if (problem) throw this.invalid(operation, name, problem);
  }

  private invalid(operation: KeyVaultKeyOperationName, keyName: string | undefined, why: string, cause?: unknown): KeyVaultError {
    return new KeyVaultError(KeyVaultErrorCode.INVALID_REQUEST, keyVaultMessage(operation, KeyVaultErrorCode.INVALID_REQUEST, { detail: why, verb: 'refused' }), {
      operation,
      secretName: keyName,
      cause,
    });
  }
}
