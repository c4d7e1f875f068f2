import { constants, createHash, createPrivateKey, createPublicKey, generateKeyPair, KeyObject, privateDecrypt, privateEncrypt, publicDecrypt, publicEncrypt, randomBytes, timingSafeEqual } from 'node:crypto';
import { errors } from '../errors';
import { Curve, CURVES, ecdsaSignDigest, ecdsaVerifyDigest, toBigInt } from './ecdsa';
import { isRsa, KeyType, KeyVersionRecord, PublicJwk } from './model';

export const RSA_KEY_SIZES = [2048, 3072, 4096] as const;

type HashName = 'sha1' | 'sha256' | 'sha384' | 'sha512';
const HASH_BYTES: Record<HashName, number> = { sha1: 20, sha256: 32, sha384: 48, sha512: 64 };

/** Signature algorithms: RSA PKCS#1 v1.5 (RS*), RSA-PSS (PS*, salt = hash length), ECDSA (ES*). */
export const SIGNATURE_ALGORITHMS = {
  RS256: { family: 'RSA', scheme: 'pkcs1', hash: 'sha256' },
  RS384: { family: 'RSA', scheme: 'pkcs1', hash: 'sha384' },
  RS512: { family: 'RSA', scheme: 'pkcs1', hash: 'sha512' },
  PS256: { family: 'RSA', scheme: 'pss', hash: 'sha256' },
  PS384: { family: 'RSA', scheme: 'pss', hash: 'sha384' },
  PS512: { family: 'RSA', scheme: 'pss', hash: 'sha512' },
  ES256: { family: 'EC', crv: 'P-256', hash: 'sha256' },
  ES384: { family: 'EC', crv: 'P-384', hash: 'sha384' },
  ES512: { family: 'EC', crv: 'P-521', hash: 'sha512' },
  ES256K: { family: 'EC', crv: 'P-256K', hash: 'sha256' },
} as const satisfies Record<string, { family: 'RSA' | 'EC'; hash: HashName; scheme?: 'pkcs1' | 'pss'; crv?: Curve['crv'] }>;
export type SignatureAlgorithm = keyof typeof SIGNATURE_ALGORITHMS;

/** Encryption / key-wrap algorithms of RSA keys. */
export const ENCRYPTION_ALGORITHMS = {
  'RSA-OAEP': { oaepHash: 'sha1' },
  'RSA-OAEP-256': { oaepHash: 'sha256' },
  RSA1_5: { oaepHash: undefined },
} as const satisfies Record<string, { oaepHash: HashName | undefined }>;
export type EncryptionAlgorithm = keyof typeof ENCRYPTION_ALGORITHMS;

// DER prefixes of DigestInfo (RFC 8017, 9.2 note 1) for EMSA-PKCS1-v1_5 over a given digest.
const DIGEST_INFO: Partial<Record<HashName, Buffer>> = {
  sha256: Buffer.from('3031300d060960864801650304020105000420', 'hex'),
  sha384: Buffer.from('3041300d060960864801650304020205000430', 'hex'),
  sha512: Buffer.from('3051300d060960864801650304020305000440', 'hex'),
};

export interface GeneratedKey {
  publicJwk: PublicJwk;
  privateKey: string;
}

export interface KeyShape {
  kty: KeyType;
  /** RSA modulus bits. */
  keySize?: number;
  crv?: Curve['crv'];
  publicExponent?: number;
}

/**
 * A new key pair (RSA: 2048/3072/4096 bits; EC: P-256/P-384/P-521/P-256K), generated off the event
 * loop: an RSA-4096 key takes seconds and must not stall the other requests.
 */
export function generateKey(shape: KeyShape): Promise<GeneratedKey> {
  return new Promise((resolve, reject) => {
    const done = (err: Error | null, publicKey: KeyObject, privateKey: KeyObject) => {
      if (err) return reject(err);
      resolve({ publicJwk: publicJwkOf(publicKey, shape.crv), privateKey: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString() });
    };
    if (isRsa(shape.kty)) generateKeyPair('rsa', { modulusLength: shape.keySize ?? 2048, publicExponent: shape.publicExponent ?? 65537 }, done);
    else generateKeyPair('ec', { namedCurve: CURVES[shape.crv ?? 'P-256'].openssl }, done);
  });
}

/** The shape of an existing version (rotate makes a new key of the same shape). */
export function shapeOf(v: KeyVersionRecord): KeyShape {
  if (!isRsa(v.kty)) return { kty: v.kty, crv: v.publicJwk.crv as Curve['crv'] };
  return { kty: v.kty, keySize: keySizeOf(v), publicExponent: Number(toBigInt(Buffer.from(v.publicJwk.e ?? '', 'base64url'))) };
}

function publicJwkOf(key: KeyObject, crv?: Curve['crv']): PublicJwk {
  const jwk = key.export({ format: 'jwk' });
  if (jwk.kty === 'RSA') return { n: jwk.n, e: jwk.e };
  return { crv: crv ?? 'P-256', x: jwk.x, y: jwk.y };
}

/** The public key as node:crypto takes it (P-256K is `secp256k1` there). */
function publicKeyObject(v: KeyVersionRecord): KeyObject {
  const j = v.publicJwk;
  if (isRsa(v.kty)) return createPublicKey({ key: { kty: 'RSA', n: j.n, e: j.e }, format: 'jwk' });
  return createPublicKey({ key: { kty: 'EC', crv: j.crv === 'P-256K' ? 'secp256k1' : j.crv, x: j.x, y: j.y }, format: 'jwk' });
}

/** The key size in bits (RSA: modulus; EC: the curve's). */
export function keySizeOf(v: KeyVersionRecord): number {
  if (isRsa(v.kty)) return Buffer.from(v.publicJwk.n ?? '', 'base64url').length * 8;
  return CURVES[v.publicJwk.crv as Curve['crv']].size * 8;
}

function checkSignatureInput(v: KeyVersionRecord, alg: SignatureAlgorithm, digest: Buffer) {
  const spec = SIGNATURE_ALGORITHMS[alg];
  if ((spec.family === 'RSA') !== isRsa(v.kty)) throw errors.badParameter(`Algorithm ${alg} is not supported by a key of type ${v.kty}.`);
  if ('crv' in spec && spec.crv !== v.publicJwk.crv) throw errors.badParameter(`Algorithm ${alg} requires a key on curve ${spec.crv}; this key is on ${v.publicJwk.crv}.`);
  if (digest.length !== HASH_BYTES[spec.hash]) {
    throw errors.badParameter(`Invalid digest: ${alg} takes a ${HASH_BYTES[spec.hash]}-byte digest, got ${digest.length} bytes.`);
  }
  return spec;
}

export function signDigest(v: KeyVersionRecord, alg: SignatureAlgorithm, digest: Buffer): Buffer {
  const spec = checkSignatureInput(v, alg, digest);
  const key = createPrivateKey(v.privateKey);
  if (spec.family === 'EC') {
    const d = toBigInt(Buffer.from(key.export({ format: 'jwk' }).d!, 'base64url'));
    return ecdsaSignDigest(CURVES[spec.crv], d, digest);
  }
  if (spec.scheme === 'pkcs1') return privateEncrypt({ key, padding: constants.RSA_PKCS1_PADDING }, Buffer.concat([DIGEST_INFO[spec.hash]!, digest]));
  const modBits = keySizeOf(v);
  return privateEncrypt({ key, padding: constants.RSA_NO_PADDING }, leftPad(pssEncode(spec.hash, digest, modBits - 1), modBits / 8));
}

/** True when the signature is valid; false for any malformed or wrong signature. */
export function verifyDigest(v: KeyVersionRecord, alg: SignatureAlgorithm, digest: Buffer, signature: Buffer): boolean {
  const spec = checkSignatureInput(v, alg, digest);
  if (spec.family === 'EC') {
    const j = v.publicJwk;
    return ecdsaVerifyDigest(CURVES[spec.crv], toBigInt(Buffer.from(j.x!, 'base64url')), toBigInt(Buffer.from(j.y!, 'base64url')), digest, signature);
  }
  const modBits = keySizeOf(v);
  if (signature.length !== modBits / 8) return false;
  try {
    if (spec.scheme === 'pkcs1') {
      const expected = Buffer.concat([DIGEST_INFO[spec.hash]!, digest]);
      const got = publicDecrypt({ key: publicKeyObject(v), padding: constants.RSA_PKCS1_PADDING }, signature);
      return got.length === expected.length && timingSafeEqual(got, expected);
    }
    const em = publicDecrypt({ key: publicKeyObject(v), padding: constants.RSA_NO_PADDING }, signature);
    return pssVerify(spec.hash, digest, em, modBits - 1);
  } catch {
    return false;
  }
}

function checkEncryptionKey(v: KeyVersionRecord, alg: EncryptionAlgorithm) {
  if (!isRsa(v.kty)) throw errors.badParameter(`Algorithm ${alg} is not supported by a key of type ${v.kty}.`);
  return ENCRYPTION_ALGORITHMS[alg];
}

export function encrypt(v: KeyVersionRecord, alg: EncryptionAlgorithm, plaintext: Buffer): Buffer {
  const spec = checkEncryptionKey(v, alg);
  const k = keySizeOf(v) / 8;
  const max = spec.oaepHash ? k - 2 * HASH_BYTES[spec.oaepHash] - 2 : k - 11;
  if (plaintext.length > max) throw errors.badParameter(`The plaintext is too long for ${alg} with this key: at most ${max} bytes.`);
  const key = publicKeyObject(v);
  if (spec.oaepHash) return publicEncrypt({ key, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: spec.oaepHash }, plaintext);
  return publicEncrypt({ key, padding: constants.RSA_PKCS1_PADDING }, plaintext);
}

export function decrypt(v: KeyVersionRecord, alg: EncryptionAlgorithm, ciphertext: Buffer): Buffer {
  const spec = checkEncryptionKey(v, alg);
  const k = keySizeOf(v) / 8;
  const fail = () => errors.badParameter('Decryption failed: the ciphertext is not valid for this key and algorithm.');
  if (ciphertext.length !== k) throw fail();
  const key = createPrivateKey(v.privateKey);
  try {
    if (spec.oaepHash) return privateDecrypt({ key, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: spec.oaepHash }, ciphertext);
    // Node refuses PKCS#1 v1.5 private decryption (CVE-2023-46809); Key Vault still offers RSA1_5,
    // so the emulator removes the padding itself from the raw RSA result.
    return pkcs1v15Unpad(privateDecrypt({ key, padding: constants.RSA_NO_PADDING }, ciphertext));
  } catch {
    throw fail();
  }
}

function pkcs1v15Unpad(em: Buffer): Buffer {
  if (em[0] !== 0x00 || em[1] !== 0x02) throw new Error('padding');
  const sep = em.indexOf(0x00, 2);
  if (sep < 10) throw new Error('padding');
  return em.subarray(sep + 1);
}

function leftPad(buf: Buffer, length: number): Buffer {
  return buf.length >= length ? buf : Buffer.concat([Buffer.alloc(length - buf.length), buf]);
}

function mgf1(hash: HashName, seed: Buffer, length: number): Buffer {
  const out: Buffer[] = [];
  for (let counter = 0, total = 0; total < length; counter++) {
    const c = Buffer.alloc(4);
    c.writeUInt32BE(counter);
    const block = createHash(hash).update(seed).update(c).digest();
    out.push(block);
    total += block.length;
  }
  return Buffer.concat(out).subarray(0, length);
}

/** EMSA-PSS-ENCODE (RFC 8017, 9.1.1) with MGF1 of the same hash and a salt as long as the hash. */
function pssEncode(hash: HashName, mHash: Buffer, emBits: number): Buffer {
  const hLen = HASH_BYTES[hash];
  const emLen = Math.ceil(emBits / 8);
  const salt = randomBytes(hLen);
  const h = createHash(hash).update(Buffer.alloc(8)).update(mHash).update(salt).digest();
  const db = Buffer.concat([Buffer.alloc(emLen - 2 * hLen - 2), Buffer.from([0x01]), salt]);
  const masked = xor(db, mgf1(hash, h, db.length));
  masked[0] &= 0xff >> (8 * emLen - emBits);
  return Buffer.concat([masked, h, Buffer.from([0xbc])]);
}

/** EMSA-PSS-VERIFY (RFC 8017, 9.1.2) for a salt as long as the hash. */
function pssVerify(hash: HashName, mHash: Buffer, encoded: Buffer, emBits: number): boolean {
  const hLen = HASH_BYTES[hash];
  const emLen = Math.ceil(emBits / 8);
  const em = encoded.subarray(encoded.length - emLen);
  if (encoded.subarray(0, encoded.length - emLen).some((b) => b !== 0)) return false;
  if (em[emLen - 1] !== 0xbc) return false;
  const masked = em.subarray(0, emLen - hLen - 1);
  const h = em.subarray(emLen - hLen - 1, emLen - 1);
  const topBits = 0xff >> (8 * emLen - emBits);
  if ((masked[0] & ~topBits) !== 0) return false;
  const db = xor(masked, mgf1(hash, h, masked.length));
  db[0] &= topBits;
  const psLen = emLen - 2 * hLen - 2;
  if (db.subarray(0, psLen).some((b) => b !== 0) || db[psLen] !== 0x01) return false;
  const salt = db.subarray(db.length - hLen);
  const h2 = createHash(hash).update(Buffer.alloc(8)).update(mHash).update(salt).digest();
  return timingSafeEqual(h, h2);
}

function xor(a: Buffer, b: Buffer): Buffer {
  const out = Buffer.alloc(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] ^ b[i];
  return out;
}
