import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { LegacyAuthTagError, LegacyFormatError } from '../errors/migration.errors';

/** How a legacy field was written. */
export type LegacyEncoding = 'hex' | 'base64';

export interface DecryptedLegacyValue {
  value: string;
  /** Index (0-based, in the configured order) of the key whose auth tag verified. */
  keyIndex: number;
  encoding: LegacyEncoding;
}

const KEY_BYTES = 32;
const TAG_BYTES = 16;
const IV_SIZES = new Set([12, 16]);
const HEX = /^(?:[0-9a-fA-F]{2})+$/;
const BASE64 = /^[A-Za-z0-9+/_-]+={0,2}$/;
/** What encoders put between the characters of a part (line breaks; spaces): no character of it. */
const WHITESPACE = /[ \t\r\n]+/g;
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** A 32-byte key from 64 hex characters or base64, or undefined. */
export function parseLegacyKey(text: string): Buffer | undefined {
  if (typeof text !== 'string') return undefined;
  const t = text.trim();
  const buf = HEX.test(t) && t.length === KEY_BYTES * 2 ? Buffer.from(t, 'hex') : BASE64.test(t) ? Buffer.from(t, 'base64') : undefined;
  return buf?.length === KEY_BYTES ? buf : undefined;
}

/**
 * Splits `iv:authTag:ciphertext` and detects the encoding. Hex is tried first, but only kept when the
 * decoded IV and tag have AES-GCM sizes: a base64 field made only of hex digits then still parses
 * as base64 (hex and base64 give different byte lengths for the same text). Whitespace in a part is not
 * part of its text: MIME and PEM-style encoders (Java's MIME encoder, Python's `encodebytes`, Ruby's `encode64`,
 * `openssl base64`) break lines every 60 to 76 characters, most of them with a line break after the last.
 */
export function parseLegacyField(field: string): { iv: Buffer; tag: Buffer; ciphertext: Buffer; encoding: LegacyEncoding } {
  const parts = field.split(':').map((p) => p.replace(WHITESPACE, ''));
  if (parts.length !== 3 || parts.some((p) => p.length === 0)) {
    throw new LegacyFormatError('not iv:authTag:ciphertext (three non-empty parts)');
  }
  for (const encoding of ['hex', 'base64'] as const) {
    const re = encoding === 'hex' ? HEX : BASE64;
    if (!parts.every((p) => re.test(p))) continue;
    const [iv, tag, ciphertext] = parts.map((p) => decodeExactly(p, encoding));
    if (!iv || !tag || !ciphertext) continue;
    if (IV_SIZES.has(iv.length) && tag.length === TAG_BYTES && ciphertext.length > 0) return { iv, tag, ciphertext, encoding };
  }
  throw new LegacyFormatError('iv:authTag:ciphertext is neither hex nor base64 with a 12- or 16-byte IV and a 16-byte tag');
}

/**
 * The bytes of one part, or undefined when no encoder writes that text: Node's base64 decoder drops a character too
 * many (a length of 4n + 1) and the unused bits of the last one, so a part with a stray or altered character would
 * decode to the bytes of another. Padding may be left out, and the URL-safe alphabet is as good as the standard one.
 */
function decodeExactly(part: string, encoding: LegacyEncoding): Buffer | undefined {
  const bytes = Buffer.from(part, encoding);
  if (encoding === 'hex') return bytes;
  const written = part.replace(/=+$/, '').replace(/-/g, '+').replace(/_/g, '/');
  return bytes.toString('base64').replace(/=+$/, '') === written ? bytes : undefined;
}

/**
 * Decrypts one legacy field with each key in order; the first whose auth tag verifies wins. No key
 * verifying means tampered data or a key we were not given: `LegacyAuthTagError`, never a guess.
 */
export function decryptLegacyField(field: string, keys: readonly Buffer[]): DecryptedLegacyValue {
  const { iv, tag, ciphertext, encoding } = parseLegacyField(field);
  for (let keyIndex = 0; keyIndex < keys.length; keyIndex++) {
    let plain: Buffer;
    try {
      const decipher = createDecipheriv('aes-256-gcm', keys[keyIndex], iv, { authTagLength: TAG_BYTES });
      decipher.setAuthTag(tag);
      plain = Buffer.concat([decipher.update(ciphertext), decipher.final()]);
    } catch {
      continue;
    }
    try {
      return { value: utf8.decode(plain), keyIndex, encoding };
    } catch {
      throw new LegacyFormatError('the decrypted value is not UTF-8 text');
    } finally {
      plain.fill(0);
    }
  }
  throw new LegacyAuthTagError(keys.length);
}

/** Writes a field the way legacy systems did (for `migrate:seed-legacy` and fixtures). */
export function encryptLegacyField(value: string, key: Buffer, encoding: LegacyEncoding = 'hex'): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
  const ciphertext = Buffer.concat([cipher.update(value, 'utf8'), cipher.final()]);
  return [iv, cipher.getAuthTag(), ciphertext].map((b) => b.toString(encoding)).join(':');
}
