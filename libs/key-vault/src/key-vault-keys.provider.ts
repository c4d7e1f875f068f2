import type { KeyVaultCallOptions, KeyVaultReadOptions, ListPageOptions, Page } from './key-vault.provider';

export type VaultKeyType = 'RSA' | 'EC';
export type VaultRsaKeySize = 2048 | 3072 | 4096;
export type VaultEcCurve = 'P-256' | 'P-384' | 'P-521';
export type VaultKeyOperation = 'sign' | 'verify' | 'encrypt' | 'decrypt' | 'wrapKey' | 'unwrapKey';
export type VaultSignatureAlgorithm = 'RS256' | 'RS384' | 'RS512' | 'PS256' | 'PS384' | 'PS512' | 'ES256' | 'ES384' | 'ES512';
/** RSA encryption / key wrapping. RSA1_5 is legacy (PKCS#1 v1.5): callers should refuse it by default. */
export type VaultEncryptionAlgorithm = 'RSA-OAEP' | 'RSA-OAEP-256' | 'RSA1_5';

export const VAULT_RSA_KEY_SIZES: readonly VaultRsaKeySize[] = [2048, 3072, 4096];
export const VAULT_EC_CURVES: readonly VaultEcCurve[] = ['P-256', 'P-384', 'P-521'];
export const VAULT_KEY_OPERATIONS: readonly VaultKeyOperation[] = ['sign', 'verify', 'encrypt', 'decrypt', 'wrapKey', 'unwrapKey'];
export const VAULT_SIGNATURE_ALGORITHMS: readonly VaultSignatureAlgorithm[] = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512'];
export const VAULT_ENCRYPTION_ALGORITHMS: readonly VaultEncryptionAlgorithm[] = ['RSA-OAEP', 'RSA-OAEP-256', 'RSA1_5'];

/** Digest length (bytes) each signature algorithm signs: SHA-256 / 384 / 512. */
export const DIGEST_BYTES: Readonly<Record<VaultSignatureAlgorithm, number>> = {
  RS256: 32,
  PS256: 32,
  ES256: 32,
  RS384: 48,
  PS384: 48,
  ES384: 48,
  RS512: 64,
  PS512: 64,
  ES512: 64,
};

/** The public half of a key as a JSON Web Key (RFC 7517, base64url members). Never a private member. */
export interface VaultPublicJwk {
  kty: VaultKeyType;
  /** The vault's key id: `https://<vault>/keys/<name>/<version>`. */
  kid: string;
  key_ops: VaultKeyOperation[];
  /** RSA modulus and exponent. */
  n?: string;
  e?: string;
  /** EC curve and point. */
  crv?: VaultEcCurve;
  x?: string;
  y?: string;
}

/** A key version's metadata with its type, size or curve and permitted operations. */
export interface VaultKeyProperties extends VaultKeyItem {
  keyType: VaultKeyType;
  /** RSA modulus size in bits. */
  keySize?: number;
  curve?: VaultEcCurve;
  keyOps: VaultKeyOperation[];
  recoverableDays?: number;
}

export interface VaultKey {
  properties: VaultKeyProperties;
  publicKey: VaultPublicJwk;
}

/** A listed key version: properties only (key type and operations are not in list answers). */
export interface VaultKeyItem {
  name: string;
  version: string;
  id: string;
  enabled: boolean;
  tags: Record<string, string>;
  createdOn?: Date;
  updatedOn?: Date;
  expiresOn?: Date;
  notBefore?: Date;
  recoveryLevel?: string;
}

export interface DeletedVaultKey {
  properties: VaultKeyItem;
  recoveryId?: string;
  deletedOn?: Date;
  scheduledPurgeDate?: Date;
}

export interface CreateVaultKeyOptions {
  keyType: VaultKeyType;
  /** RSA only. @default 2048 */
  keySize?: VaultRsaKeySize;
  /** EC only. @default 'P-256' */
  curve?: VaultEcCurve;
  /** @default the vault's default (every operation the key type supports) */
  keyOps?: VaultKeyOperation[];
  tags?: Record<string, string>;
  enabled?: boolean;
  expiresOn?: Date;
  notBefore?: Date;
}

export interface UpdateVaultKeyPropertiesOptions {
  keyOps?: VaultKeyOperation[];
  tags?: Record<string, string>;
  enabled?: boolean;
  expiresOn?: Date;
  notBefore?: Date;
}

/** Which key version an operation used (the vault's own answer). */
export interface VaultKeyRef {
  name: string;
  version: string;
}

/**
 * The gateway to Azure Key Vault keys and their cryptographic operations. An abstract class so it
 * doubles as the DI token: inject `KeyVaultKeysProvider`, bind a fake to it in unit tests.
 *
 * Same identity, TLS trust, resilience (one retry / breaker / bulkhead budget per vault, shared with
 * the secrets side), typed errors and metrics as `KeyVaultProvider`. Names are vault key names; it
 * knows nothing about tenants (that is `@app/keys`). Every method throws a `KeyVaultError`; no
 * message carries a plaintext, ciphertext, digest or signature. The optional last `call.signal` (the caller
 * left): a call not sent yet is dropped; reads and cryptography in flight are aborted; a write already
 * sent (create, update, rotate, delete) finishes. Either way the call fails with CANCELLED.
 */
export abstract class KeyVaultKeysProvider {
  abstract readonly vaultUrl: string;

  /**
   * Creates a key, or a new version of an existing name. Never sent twice: after a lost answer the key is
   * read back (a new latest version is the result), else OUTCOME_UNKNOWN.
   */
  abstract createKey(name: string, options: CreateVaultKeyOptions, call?: KeyVaultCallOptions): Promise<VaultKey>;
  /** Latest version when `version` is omitted. */
  abstract getKey(name: string, version?: string, call?: KeyVaultReadOptions): Promise<VaultKey>;
  /** One page of keys (latest versions, properties only). */
  abstract listKeys(options?: ListPageOptions, call?: KeyVaultCallOptions): Promise<Page<VaultKeyItem>>;
  abstract listKeyVersions(name: string, options?: ListPageOptions, call?: KeyVaultCallOptions): Promise<Page<VaultKeyItem>>;
  /** Latest version when `version` is omitted. */
  abstract updateKeyProperties(name: string, version: string | undefined, options: UpdateVaultKeyPropertiesOptions, call?: KeyVaultCallOptions): Promise<VaultKey>;
  /** A new version with the same type, size/curve, operations and tags (the vault's rotate); a lost answer as createKey. */
  abstract rotateKey(name: string, call?: KeyVaultCallOptions): Promise<VaultKey>;
  /**
   * Soft-deletes every version and waits until the deletion is visible (polled every `pollIntervalMs`). A key seen live
   * again meanwhile (another client recovered it, or purged and created it anew) ends the wait with DELETE_UNDONE, at
   * once and not retried: the deletion took effect and was undone.
   */
  abstract deleteKey(name: string, call?: KeyVaultCallOptions): Promise<DeletedVaultKey>;
  abstract getDeletedKey(name: string): Promise<DeletedVaultKey>;
  /** Recovers a soft-deleted key and waits until it is usable again. */
  abstract recoverDeletedKey(name: string): Promise<VaultKey>;
  abstract purgeDeletedKey(name: string): Promise<void>;
  /** Opaque, vault-protected blob of every version of the key. */
  abstract backupKey(name: string): Promise<Uint8Array>;
  /**
   * Restores every version of a `backupKey` blob under its name (which must not exist, not even soft-deleted); the
   * latest version is the answer. `expected`: the backup's key name and one version it holds (e.g. recorded when
   * it was made). After a lost answer a retry is refused with 409 (the key exists): that key holding
   * `expected.version` is the result; without `expected`, or without that version, OUTCOME_UNKNOWN — not CONFLICT.
   */
  abstract restoreKeyBackup(backup: Uint8Array, expected?: VaultKeyRef): Promise<VaultKey>;

  /** Signs a digest (its length must match the algorithm: 32/48/64 bytes) with that key version. */
  abstract sign(key: VaultKeyRef, algorithm: VaultSignatureAlgorithm, digest: Uint8Array, call?: KeyVaultCallOptions): Promise<{ key: VaultKeyRef; signature: Uint8Array }>;
  /** Verifies in the vault (a vault transaction; verify locally from the public JWK to save it). */
  abstract verify(key: VaultKeyRef, algorithm: VaultSignatureAlgorithm, digest: Uint8Array, signature: Uint8Array, call?: KeyVaultCallOptions): Promise<{ key: VaultKeyRef; valid: boolean }>;
  abstract encrypt(key: VaultKeyRef, algorithm: VaultEncryptionAlgorithm, plaintext: Uint8Array, call?: KeyVaultCallOptions): Promise<{ key: VaultKeyRef; ciphertext: Uint8Array }>;
  abstract decrypt(key: VaultKeyRef, algorithm: VaultEncryptionAlgorithm, ciphertext: Uint8Array, call?: KeyVaultCallOptions): Promise<{ key: VaultKeyRef; plaintext: Uint8Array }>;
  abstract wrapKey(key: VaultKeyRef, algorithm: VaultEncryptionAlgorithm, keyToWrap: Uint8Array, call?: KeyVaultCallOptions): Promise<{ key: VaultKeyRef; wrappedKey: Uint8Array }>;
  abstract unwrapKey(key: VaultKeyRef, algorithm: VaultEncryptionAlgorithm, wrappedKey: Uint8Array, call?: KeyVaultCallOptions): Promise<{ key: VaultKeyRef; unwrappedKey: Uint8Array }>;
}
