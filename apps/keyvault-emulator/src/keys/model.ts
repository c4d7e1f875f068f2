import { ObjectRecord, VersionBase } from '../objects/model';

export const KEY_TYPES = ['RSA', 'RSA-HSM', 'EC', 'EC-HSM'] as const;
export type KeyType = (typeof KEY_TYPES)[number];

/** JSON Web Key operations as Key Vault names them (`key_ops`). */
export const KEY_OPERATIONS = ['encrypt', 'decrypt', 'sign', 'verify', 'wrapKey', 'unwrapKey', 'import', 'export'] as const;
export type KeyOperation = (typeof KEY_OPERATIONS)[number];

/** The public members of the JWK, base64url (RSA: n, e; EC: crv, x, y). */
export interface PublicJwk {
  n?: string;
  e?: string;
  crv?: string;
  x?: string;
  y?: string;
}

/** One version of a key: its public part is rendered, its private key never leaves the vault. */
export interface KeyVersionRecord extends VersionBase {
  kty: KeyType;
  keyOps: KeyOperation[];
  publicJwk: PublicJwk;
  /** PKCS#8 PEM; encrypted at rest, never in a response, a log or an error. */
  privateKey: string;
}

/** A key's rotation policy as stored; the vault applies its lifetime actions on its clock (`lifetime-actions.ts`). */
export interface RotationPolicyRecord {
  lifetimeActions: Array<{ trigger: { timeAfterCreate?: string; timeBeforeExpiry?: string }; action: { type: 'Rotate' | 'Notify' } }>;
  expiryTime?: string;
  created: number;
  updated: number;
}

/** What a key without a policy does, as Azure reports it (and as `GET .../rotationpolicy` shows): notify 30 days before expiry. */
export const DEFAULT_LIFETIME_ACTIONS: RotationPolicyRecord['lifetimeActions'] = [{ trigger: { timeBeforeExpiry: 'P30D' }, action: { type: 'Notify' } }];

export type KeyRecord = ObjectRecord<KeyVersionRecord> & {
  rotationPolicy?: RotationPolicyRecord;
  /** The version a near-expiry notification was recorded for (so each version is notified once); persisted. */
  nearExpiryNotified?: string;
};

export const isRsa = (kty: KeyType) => kty === 'RSA' || kty === 'RSA-HSM';
