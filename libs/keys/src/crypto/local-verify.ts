import { constants, createHash, createPublicKey, publicDecrypt, timingSafeEqual, type KeyObject } from 'node:crypto';
import type { PublicJwk, SignatureAlgorithm } from '../keys.types';
import { ecdsaVerifyDigest } from './ecdsa-verify';

const HASH: Record<SignatureAlgorithm, 'sha256' | 'sha384' | 'sha512'> = {
  RS256: 'sha256',
  PS256: 'sha256',
  ES256: 'sha256',
  RS384: 'sha384',
  PS384: 'sha384',
  ES384: 'sha384',
  RS512: 'sha512',
  PS512: 'sha512',
  ES512: 'sha512',
};

/** DER DigestInfo prefixes of EMSA-PKCS1-v1_5 (RFC 8017 §9.2 note 1). */
const DIGEST_INFO: Record<'sha256' | 'sha384' | 'sha512', Buffer> = {
  sha256: Buffer.from('3031300d060960864801650304020105000420', 'hex'),
  sha384: Buffer.from('3041300d060960864801650304020205000430', 'hex'),
  sha512: Buffer.from('3051300d060960864801650304020305000440', 'hex'),
};

/** The public key of a JWK for node:crypto (public members only are ever present). */
export function publicKeyOf(jwk: PublicJwk): KeyObject {
  const { kty, n, e, crv, x, y } = jwk;
  return createPublicKey({ key: (kty === 'RSA' ? { kty, n, e } : { kty, crv, x, y }) as import('node:crypto').JsonWebKey, format: 'jwk' });
}

/**
 * Verifies a signature over a DIGEST from the public key, without the vault. node:crypto's verify
 * hashes its input itself, so the RSA schemes are checked from the recovered encoded message:
 * RS* compares the PKCS#1 v1.5 DigestInfo, PS* runs EMSA-PSS-VERIFY (MGF1 with the same hash, any
 * salt length). ES* (node:crypto has no ECDSA over a prehashed digest) runs the BigInt ECDSA of
 * `ecdsa-verify.ts` when `ec` is true — 10–20 ms of CPU per verify — and returns undefined otherwise
 * (verify in the vault).
 */
export function verifyDigestLocally(key: KeyObject, algorithm: SignatureAlgorithm, digest: Uint8Array, signature: Uint8Array, ec?: { jwk: PublicJwk }): boolean | undefined {
  const hash = HASH[algorithm];
  if (algorithm.startsWith('ES')) {
    const { crv, x, y } = ec?.jwk ?? {};
    if (!crv || !x || !y) return undefined;
    return ecdsaVerifyDigest(crv, Buffer.from(x, 'base64url'), Buffer.from(y, 'base64url'), digest, signature);
  }
  const modulusBytes = Math.ceil((key.asymmetricKeyDetails?.modulusLength ?? 0) / 8);
  if (signature.length !== modulusBytes) return false;
  if (algorithm.startsWith('RS')) {
    let decoded: Buffer;
    try {
      decoded = publicDecrypt({ key, padding: constants.RSA_PKCS1_PADDING }, signature);
    } catch {
      return false;
    }
    const expected = Buffer.concat([DIGEST_INFO[hash], Buffer.from(digest)]);
    return decoded.length === expected.length && timingSafeEqual(decoded, expected);
  }
  return pssVerify(key, hash, Buffer.from(digest), Buffer.from(signature));
}

/** EMSA-PSS-VERIFY (RFC 8017 §9.1.2) over the recovered message representative. */
function pssVerify(key: KeyObject, hash: 'sha256' | 'sha384' | 'sha512', mHash: Buffer, signature: Buffer): boolean {
  const modBits = key.asymmetricKeyDetails?.modulusLength ?? 0;
  const hLen = mHash.length;
  const emBits = modBits - 1;
  const emLen = Math.ceil(emBits / 8);
  let m: Buffer;
  try {
    m = publicDecrypt({ key, padding: constants.RSA_NO_PADDING }, signature);
  } catch {
    return false;
  }
  // m is k bytes; EM is its last emLen bytes, anything before must be zero.
  if (m.subarray(0, m.length - emLen).some((b) => b !== 0)) return false;
  const em = m.subarray(m.length - emLen);
  if (emLen < hLen + 2 || em[emLen - 1] !== 0xbc) return false;
  const maskedDb = em.subarray(0, emLen - hLen - 1);
  const h = em.subarray(emLen - hLen - 1, emLen - 1);
  const unusedBits = 8 * emLen - emBits;
  const topMask = 0xff << (8 - unusedBits);
  if ((maskedDb[0] & topMask & 0xff) !== 0) return false;
  const db = mgf1(hash, h, maskedDb.length);
  for (let i = 0; i < db.length; i++) db[i] ^= maskedDb[i];
  db[0] &= 0xff >> unusedBits;
  const one = db.findIndex((b) => b !== 0);
  if (one < 0 || db[one] !== 0x01) return false;
  const salt = db.subarray(one + 1);
  const expected = createHash(hash).update(Buffer.alloc(8)).update(mHash).update(salt).digest();
  return timingSafeEqual(expected, h);
}

function mgf1(hash: string, seed: Buffer, length: number): Buffer {
  const out = Buffer.alloc(length);
  const counter = Buffer.alloc(4);
  for (let offset = 0, i = 0; offset < length; i++) {
    counter.writeUInt32BE(i);
    const block = createHash(hash).update(seed).update(counter).digest();
    block.copy(out, offset, 0, Math.min(block.length, length - offset));
    offset += block.length;
  }
  return out;
}
