import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { CredentialIntegrityError } from '../errors/credential-errors';

export const DATA_KEY_BYTES = 32;
/** How data keys are wrapped by the vault key (`envelope.keyEncryptionKey`). */
export const WRAP_ALGORITHM = 'RSA-OAEP-256';
const IV_BYTES = 12;
const TAG_BYTES = 16;
/** Format marker inside the AAD so a future scheme cannot be confused with this one. */
const AAD_SCHEME = 'cv-envelope-v1';

export interface EnvelopeCiphertext {
  /** base64 */
  iv: string;
  /** base64 */
  authTag: string;
  /** base64 */
  ciphertext: string;
}

/** What a ciphertext is bound to: decrypting it as anything else fails authentication. */
export interface EnvelopeBinding {
  tenantId: string;
  credentialId: string;
  version: number;
}

export function envelopeAad(binding: EnvelopeBinding): Buffer {
  return Buffer.from(JSON.stringify([AAD_SCHEME, binding.tenantId, binding.credentialId, binding.version]), 'utf8');
}

/** AES-256-GCM with a fresh 96-bit IV per encryption and the binding as additional authenticated data. */
export function encryptEnvelope(key: Buffer, plaintext: string, binding: EnvelopeBinding): EnvelopeCiphertext {
  assertKey(key);
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
  cipher.setAAD(envelopeAad(binding));
  const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return { iv: iv.toString('base64'), authTag: cipher.getAuthTag().toString('base64'), ciphertext: ciphertext.toString('base64') };
}

/** Throws CredentialIntegrityError when the key, the binding or any byte does not match. */
export function decryptEnvelope(key: Buffer, sealed: EnvelopeCiphertext, binding: EnvelopeBinding): string {
  assertKey(key);
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(sealed.iv, 'base64'), { authTagLength: TAG_BYTES });
    decipher.setAAD(envelopeAad(binding));
    decipher.setAuthTag(Buffer.from(sealed.authTag, 'base64'));
    return Buffer.concat([decipher.update(Buffer.from(sealed.ciphertext, 'base64')), decipher.final()]).toString('utf8');
  } catch (cause) {
    throw new CredentialIntegrityError(
      `envelope ciphertext of credential ${binding.credentialId} v${binding.version} failed authentication`,
      { cause },
    );
  }
}

export function generateDataKey(): Buffer {
  return randomBytes(DATA_KEY_BYTES);
}

function assertKey(key: Buffer): void {
  if (key.length !== DATA_KEY_BYTES) {
    throw new CredentialIntegrityError(`data key must be ${DATA_KEY_BYTES} bytes, got ${key.length}`);
  }
}
