import type {
  VaultEcCurve,
  VaultEncryptionAlgorithm,
  VaultKeyOperation,
  VaultKeyType,
  VaultPublicJwk,
  VaultRsaKeySize,
  VaultSignatureAlgorithm,
} from '@app/key-vault';

/** Key types, sizes, curves, operations and algorithms: the vault's names (JOSE). */
export type KeyType = VaultKeyType;
export type RsaKeySize = VaultRsaKeySize;
export type EcCurve = VaultEcCurve;
export type KeyOperation = VaultKeyOperation;
export type SignatureAlgorithm = VaultSignatureAlgorithm;
/** RSA-OAEP, RSA-OAEP-256; RSA1_5 only with the `allowRsa1_5` option. */
export type EncryptionAlgorithm = VaultEncryptionAlgorithm;
export type KeyWrapAlgorithm = VaultEncryptionAlgorithm;
/** The public half of a key as a JWK (RFC 7517; `kid` is the vault's key id). Never a private member. */
export type PublicJwk = VaultPublicJwk;

/**
 * A key name inside a tenant: 1–63 characters of letters, digits and `-`, starting with a letter or
 * digit; compared case-insensitively (as the vault does). Another tenant's key with the same name is
 * another key: a tenant can only ever address its own.
 */
export const KEY_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9-]{0,62}$/;

export interface CreateKeyRequest {
  name: string;
  type: KeyType;
  /** RSA modulus bits. RSA only. @default 2048 */
  size?: RsaKeySize;
  /** EC only. @default 'P-256' */
  curve?: EcCurve;
  /** What the key may do. @default RSA: all six; EC: sign and verify */
  keyOps?: KeyOperation[];
  /** At most 15 (keys 1–128 of letters, digits and . _ : @ / -; values up to 256 characters). */
  tags?: Record<string, string>;
  expiresOn?: Date;
  notBefore?: Date;
  /** @default true */
  enabled?: boolean;
}

/**
 * A key as `listKeys` answers it: its latest version's metadata, without the version id — Key Vault's key list names
 * no version (`kid` without one): `getKey` or `listKeyVersions` give it.
 */
export interface KeySummary {
  name: string;
  enabled: boolean;
  tags: Record<string, string>;
  createdOn?: Date;
  updatedOn?: Date;
  expiresOn?: Date;
  notBefore?: Date;
}

/** A key version's metadata as a tenant sees it (its own key name, never the vault's). */
export interface KeyProperties extends KeySummary {
  version: string;
}

/** A key version with its type and public key. */
export interface KeyDetails extends KeyProperties {
  type: KeyType;
  /** RSA modulus bits. */
  size?: number;
  curve?: EcCurve;
  keyOps: KeyOperation[];
  publicKey: PublicJwk;
}

export interface DeletedKeyDetails {
  name: string;
  deletedOn?: Date;
  /** When the vault purges it for good (until then `recoverKey` brings it back). */
  scheduledPurgeDate?: Date;
}

export interface KeyPageRequest {
  /** 1..25. @default the `defaultPageSize` option */
  maxPageSize?: number;
  /** From the previous page. Opaque. */
  continuationToken?: string;
}

export interface ListKeysRequest extends KeyPageRequest {
  /** Only keys carrying every one of these tags (exact values). */
  tags?: Record<string, string>;
}

export interface KeyPage<T> {
  items: T[];
  /** Present when more may follow. */
  continuationToken?: string;
}

export interface UpdateKeyRequest {
  /** @default the latest version */
  version?: string;
  enabled?: boolean;
  /** Replaces the tags. */
  tags?: Record<string, string>;
  expiresOn?: Date;
  notBefore?: Date;
  keyOps?: KeyOperation[];
}

/** Which key version to use: the latest when `version` is omitted. */
export interface KeySelector {
  name: string;
  version?: string;
}

export interface SignRequest extends KeySelector {
  algorithm: SignatureAlgorithm;
  /** The digest to sign: SHA-256 / 384 / 512 of the data (32 / 48 / 64 bytes). */
  digest: Uint8Array;
}

export interface SignResult {
  name: string;
  version: string;
  algorithm: SignatureAlgorithm;
  /** RSA: PKCS#1 / PSS signature; EC: r‖s (IEEE P1363), as JOSE and the vault use. */
  signature: Uint8Array;
}

export interface VerifyRequest extends KeySelector {
  algorithm: SignatureAlgorithm;
  digest: Uint8Array;
  signature: Uint8Array;
  /** Verify in the vault instead of locally from the cached public key. @default the `verify` option */
  remote?: boolean;
}

export interface VerifyResult {
  name: string;
  version: string;
  algorithm: SignatureAlgorithm;
  valid: boolean;
  /** Where it was verified: `local` (public key, no vault transaction) or `vault`. */
  verifiedIn: 'local' | 'vault';
}

export interface EncryptRequest extends KeySelector {
  algorithm: EncryptionAlgorithm;
  plaintext: Uint8Array;
}

export interface EncryptResult {
  name: string;
  version: string;
  algorithm: EncryptionAlgorithm;
  ciphertext: Uint8Array;
}

export interface DecryptRequest extends KeySelector {
  algorithm: EncryptionAlgorithm;
  ciphertext: Uint8Array;
}

export interface DecryptResult {
  name: string;
  version: string;
  algorithm: EncryptionAlgorithm;
  plaintext: Uint8Array;
}

export interface WrapKeyRequest extends KeySelector {
  algorithm: KeyWrapAlgorithm;
  /** The key to wrap (e.g. a 32-byte AES data key). */
  key: Uint8Array;
}

export interface WrapKeyResult {
  name: string;
  version: string;
  algorithm: KeyWrapAlgorithm;
  wrappedKey: Uint8Array;
}

export interface UnwrapKeyRequest extends KeySelector {
  algorithm: KeyWrapAlgorithm;
  wrappedKey: Uint8Array;
}

export interface UnwrapKeyResult {
  name: string;
  version: string;
  algorithm: KeyWrapAlgorithm;
  key: Uint8Array;
}
