import { constants, createHash, generateKeyPairSync, sign } from 'node:crypto';
import type { PublicJwk, SignatureAlgorithm } from '../keys.types';
import { publicKeyOf, verifyDigestLocally } from './local-verify';

const data = Buffer.from('the payload a webhook signs');
const HASHES = { '256': 'sha256', '384': 'sha384', '512': 'sha512' } as const;

describe('verifyDigestLocally', () => {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 3072 });
  const jwk = { ...(rsa.publicKey.export({ format: 'jwk' }) as object), kid: 'https://v/keys/k/1', key_ops: ['verify'] } as PublicJwk;
  const key = publicKeyOf(jwk);

  it.each<SignatureAlgorithm>(['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'])('%s: accepts node:crypto signatures, refuses any flipped bit', (alg) => {
    const hash = HASHES[alg.slice(2) as '256'];
    const digest = createHash(hash).update(data).digest();
    const pss = alg.startsWith('PS');
    for (const saltLength of pss ? [digest.length, 0, 20] : [0]) {
      const signature = sign(hash, data, pss ? { key: rsa.privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength } : rsa.privateKey);
      expect(verifyDigestLocally(key, alg, digest, signature)).toBe(true);
      const badSig = Buffer.from(signature);
      badSig[badSig.length - 3] ^= 0x01;
      expect(verifyDigestLocally(key, alg, digest, badSig)).toBe(false);
      const badDigest = Buffer.from(digest);
      badDigest[0] ^= 0x80;
      expect(verifyDigestLocally(key, alg, badDigest, signature)).toBe(false);
    }
  });

  it('refuses a signature made under the other RSA scheme or another hash, and a truncated one', () => {
    const digest = createHash('sha256').update(data).digest();
    const pkcs1 = sign('sha256', data, rsa.privateKey);
    const pss = sign('sha256', data, { key: rsa.privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 });
    expect(verifyDigestLocally(key, 'PS256', digest, pkcs1)).toBe(false);
    expect(verifyDigestLocally(key, 'RS256', digest, pss)).toBe(false);
    expect(verifyDigestLocally(key, 'RS384', createHash('sha384').update(data).digest(), pkcs1)).toBe(false);
    expect(verifyDigestLocally(key, 'RS256', digest, pkcs1.subarray(1))).toBe(false);
  });

  it('leaves EC keys to the vault unless asked to verify them locally', () => {
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-384' });
    const ecJwk = { ...(ec.publicKey.export({ format: 'jwk' }) as object), kid: 'k', key_ops: ['verify'] } as PublicJwk;
    const digest = createHash('sha384').update(data).digest();
    const signature = sign('sha384', data, { key: ec.privateKey, dsaEncoding: 'ieee-p1363' });
    expect(verifyDigestLocally(publicKeyOf(ecJwk), 'ES384', digest, signature)).toBeUndefined();
    expect(verifyDigestLocally(publicKeyOf(ecJwk), 'ES384', digest, signature, { jwk: ecJwk })).toBe(true);
    expect(verifyDigestLocally(publicKeyOf(ecJwk), 'ES384', digest, Buffer.alloc(96, 1), { jwk: ecJwk })).toBe(false);
  });
});
