import { constants, generateKeyPairSync, privateDecrypt, privateEncrypt, publicEncrypt, randomBytes, type KeyObject } from 'node:crypto';
import {
  KeyVaultError,
  KeyVaultErrorCode,
  KeyVaultKeysProvider,
  type CreateVaultKeyOptions,
  type DeletedVaultKey,
  type ListPageOptions,
  type Page,
  type UpdateVaultKeyPropertiesOptions,
  type VaultEncryptionAlgorithm,
  type VaultKey,
  type VaultKeyItem,
  type VaultKeyRef,
  type VaultPublicJwk,
  type VaultSignatureAlgorithm,
  type KeyVaultCallOptions,
} from '@app/key-vault';

interface Version {
  key: VaultKey;
  privateKey: KeyObject;
}

/** Worded like the gateway's own 404 (the caller's terms, no name in the message, see @app/key-vault's keyVaultMessage). */
const notFound = (operation: 'getKey', name: string) =>
  new KeyVaultError(KeyVaultErrorCode.KEY_NOT_FOUND, 'Reading the key failed: KEY_NOT_FOUND (HTTP 404 KeyNotFound; no key of that name or version)', {
    operation,
    secretName: name,
    statusCode: 404,
    azureCode: 'KeyNotFound',
  });

/**
 * An in-memory vault of keys for unit specs (bound to the `KeyVaultKeysProvider` token): real RSA
 * keys from node:crypto (RS* signatures over the digest, OAEP encryption); EC keys only get and list. `calls` counts every call by operation.
 */
export class FakeVaultKeys extends KeyVaultKeysProvider {
  readonly vaultUrl = 'https://fake.vault.test';
  readonly calls: Record<string, number> = {};
  private readonly keys = new Map<string, Version[]>();
  private seq = 0;

  async createKey(name: string, options: CreateVaultKeyOptions): Promise<VaultKey> {
    this.count('createKey');
    const pair =
      options.keyType === 'RSA'
        ? generateKeyPairSync('rsa', { modulusLength: options.keySize ?? 2048 })
        : generateKeyPairSync('ec', { namedCurve: options.curve ?? 'P-256' });
    const version = (++this.seq).toString(16).padStart(32, '0');
    const id = `${this.vaultUrl}/keys/${name}/${version}`;
    const jwk = pair.publicKey.export({ format: 'jwk' }) as Record<string, string>;
    const keyOps = options.keyOps ?? (options.keyType === 'RSA' ? ['sign', 'verify', 'encrypt', 'decrypt', 'wrapKey', 'unwrapKey'] : ['sign', 'verify']);
    const publicKey = { ...jwk, kid: id, key_ops: keyOps } as VaultPublicJwk;
    const key: VaultKey = {
      publicKey,
      properties: {
        name,
        version,
        id,
        enabled: options.enabled ?? true,
        tags: { ...(options.tags ?? {}) },
        keyType: options.keyType,
        keySize: options.keyType === 'RSA' ? (options.keySize ?? 2048) : undefined,
        curve: options.keyType === 'EC' ? (options.curve ?? 'P-256') : undefined,
        keyOps: [...keyOps],
        expiresOn: options.expiresOn,
        notBefore: options.notBefore,
        createdOn: new Date(),
      },
    };
    const versions = this.keys.get(name.toLowerCase()) ?? [];
    versions.push({ key, privateKey: pair.privateKey });
    this.keys.set(name.toLowerCase(), versions);
    return key;
  }

  async getKey(name: string, version?: string, _call?: KeyVaultCallOptions): Promise<VaultKey> {
    this.count('getKey');
    return this.version(name, version).key;
  }

  async listKeys(options: ListPageOptions = {}): Promise<Page<VaultKeyItem>> {
    this.count('listKeys');
    const all = [...this.keys.values()].map((v) => v[v.length - 1].key.properties).sort((a, b) => a.name.localeCompare(b.name));
    const start = options.continuationToken ? Number(new URL(options.continuationToken).searchParams.get('skip')) : 0;
    const size = options.maxPageSize ?? 25;
    const items = all.slice(start, start + size);
    return start + size < all.length ? { items, continuationToken: `${this.vaultUrl}/keys?skip=${start + size}` } : { items };
  }

  async listKeyVersions(name: string): Promise<Page<VaultKeyItem>> {
    this.count('listKeyVersions');
    return { items: (this.keys.get(name.toLowerCase()) ?? []).map((v) => v.key.properties) };
  }

  async updateKeyProperties(name: string, version: string | undefined, options: UpdateVaultKeyPropertiesOptions): Promise<VaultKey> {
    this.count('updateKeyProperties');
    const v = this.version(name, version);
    const p = v.key.properties;
    if (options.enabled !== undefined) p.enabled = options.enabled;
    if (options.tags !== undefined) p.tags = { ...options.tags };
    if (options.expiresOn !== undefined) p.expiresOn = options.expiresOn;
    if (options.keyOps !== undefined) p.keyOps = [...options.keyOps];
    return { properties: { ...p }, publicKey: { ...v.key.publicKey, key_ops: [...p.keyOps] } };
  }

  async rotateKey(name: string): Promise<VaultKey> {
    this.count('rotateKey');
    const p = this.version(name).key.properties;
    return this.createKey(p.name, { keyType: p.keyType, keySize: p.keySize as 2048, curve: p.curve, keyOps: p.keyOps, tags: p.tags });
  }

  async deleteKey(name: string): Promise<DeletedVaultKey> {
    this.count('deleteKey');
    const v = this.version(name);
    this.keys.delete(name.toLowerCase());
    return { properties: v.key.properties, deletedOn: new Date() };
  }

  getDeletedKey(): Promise<DeletedVaultKey> {
    throw new Error('not in the fake');
  }
  recoverDeletedKey(): Promise<VaultKey> {
    throw new Error('not in the fake');
  }
  async purgeDeletedKey(): Promise<void> {
    this.count('purgeDeletedKey');
  }
  backupKey(): Promise<Uint8Array> {
    throw new Error('not in the fake');
  }
  restoreKeyBackup(_backup: Uint8Array, _expected?: VaultKeyRef): Promise<VaultKey> {
    throw new Error('not in the fake');
  }

  async sign(ref: VaultKeyRef, algorithm: VaultSignatureAlgorithm, digest: Uint8Array, _call?: KeyVaultCallOptions): Promise<{ key: VaultKeyRef; signature: Uint8Array }> {
    this.count('sign');
    const v = this.version(ref.name, ref.version);
    if (!algorithm.startsWith('RS')) throw new Error('the fake signs RS* only');
    // RSASSA-PKCS1-v1_5 over a digest: the DigestInfo, PKCS#1 type-1 padded, raised to d.
    const signature = privateEncrypt({ key: v.privateKey, padding: constants.RSA_PKCS1_PADDING }, digestInfo(`sha${algorithm.slice(2)}`, digest));
    return { key: this.ref(v), signature };
  }

  async verify(ref: VaultKeyRef): Promise<{ key: VaultKeyRef; valid: boolean }> {
    this.count('verify');
    return { key: this.ref(this.version(ref.name, ref.version)), valid: true };
  }

  async encrypt(ref: VaultKeyRef, algorithm: VaultEncryptionAlgorithm, plaintext: Uint8Array): Promise<{ key: VaultKeyRef; ciphertext: Uint8Array }> {
    this.count('encrypt');
    const v = this.version(ref.name, ref.version);
    return { key: this.ref(v), ciphertext: publicEncrypt({ key: v.privateKey, oaepHash: algorithm === 'RSA-OAEP-256' ? 'sha256' : 'sha1' }, plaintext) };
  }

  async decrypt(ref: VaultKeyRef, algorithm: VaultEncryptionAlgorithm, ciphertext: Uint8Array): Promise<{ key: VaultKeyRef; plaintext: Uint8Array }> {
    this.count('decrypt');
    const v = this.version(ref.name, ref.version);
    return { key: this.ref(v), plaintext: privateDecrypt({ key: v.privateKey, oaepHash: algorithm === 'RSA-OAEP-256' ? 'sha256' : 'sha1' }, ciphertext) };
  }

  async wrapKey(ref: VaultKeyRef, algorithm: VaultEncryptionAlgorithm, key: Uint8Array): Promise<{ key: VaultKeyRef; wrappedKey: Uint8Array }> {
    const r = await this.encrypt(ref, algorithm, key);
    this.count('wrapKey');
    return { key: r.key, wrappedKey: r.ciphertext };
  }

  async unwrapKey(ref: VaultKeyRef, algorithm: VaultEncryptionAlgorithm, wrapped: Uint8Array): Promise<{ key: VaultKeyRef; unwrappedKey: Uint8Array }> {
    const r = await this.decrypt(ref, algorithm, wrapped);
    this.count('unwrapKey');
    return { key: r.key, unwrappedKey: r.plaintext };
  }

  /** Any random bytes (to check the service passes them on unchanged). */
  static bytes(n: number): Uint8Array {
    return new Uint8Array(randomBytes(n));
  }

  private version(name: string, version?: string): Version {
    const versions = this.keys.get(name.toLowerCase());
    const v = version === undefined ? versions?.[versions.length - 1] : versions?.find((x) => x.key.properties.version === version);
    if (!v) throw notFound('getKey', name);
    return v;
  }

  private ref(v: Version): VaultKeyRef {
    return { name: v.key.properties.name, version: v.key.properties.version };
  }

  private count(operation: string): void {
    this.calls[operation] = (this.calls[operation] ?? 0) + 1;
  }
}

const PREFIX: Record<string, string> = {
  sha256: '3031300d060960864801650304020105000420',
  sha384: '3041300d060960864801650304020205000430',
  sha512: '3051300d060960864801650304020305000440',
};

function digestInfo(hash: string, digest: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from(PREFIX[hash], 'hex'), Buffer.from(digest)]);
}
