import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import { CURVES, ecdsaVerifyDigest, isOnCurve, multiplyGenerator } from './ecdsa-verify';

const b64 = (s: string) => new Uint8Array(Buffer.from(s, 'base64url'));
const CASES = [
  ['P-256', 'sha256'],
  ['P-384', 'sha384'],
  ['P-521', 'sha512'],
  ['P-256', 'sha512'],
] as const;

describe('ecdsaVerifyDigest', () => {
  it.each(Object.keys(CURVES) as Array<keyof typeof CURVES>)('%s: the domain parameters hold (G on the curve, n·G = ∞) and match node:crypto (d·G is the public key)', (curve) => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: curve });
    const jwk = privateKey.export({ format: 'jwk' }) as Record<string, string>;
    const c = CURVES[curve];
    expect(isOnCurve(curve, c.gx, c.gy)).toBe(true);
    expect(multiplyGenerator(curve, c.n)).toBeUndefined(); // n is G's order
    expect(multiplyGenerator(curve, c.n - 1n)).toEqual({ x: c.gx, y: c.p - c.gy });
    const q = multiplyGenerator(curve, BigInt(`0x${Buffer.from(jwk.d, 'base64url').toString('hex')}`))!;
    expect([q.x.toString(16), q.y.toString(16)]).toEqual([Buffer.from(jwk.x, 'base64url').toString('hex').replace(/^0+/, ''), Buffer.from(jwk.y, 'base64url').toString('hex').replace(/^0+/, '')]);
  });

  it.each(CASES)('%s with %s: node:crypto signatures verify, altered ones do not', (curve, hash) => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: curve });
    const jwk = publicKey.export({ format: 'jwk' }) as Record<string, string>;
    for (let i = 0; i < 5; i++) {
      const data = Buffer.from(`message ${i}`);
      const digest = new Uint8Array(createHash(hash).update(data).digest());
      const signature = new Uint8Array(sign(hash, data, { key: privateKey, dsaEncoding: 'ieee-p1363' }));
      expect(ecdsaVerifyDigest(curve, b64(jwk.x), b64(jwk.y), digest, signature)).toBe(true);
      const badSig = Uint8Array.from(signature);
      badSig[i] ^= 0x01;
      expect(ecdsaVerifyDigest(curve, b64(jwk.x), b64(jwk.y), digest, badSig)).toBe(false);
      const badDigest = Uint8Array.from(digest);
      badDigest[0] ^= 0x01;
      expect(ecdsaVerifyDigest(curve, b64(jwk.x), b64(jwk.y), badDigest, signature)).toBe(false);
    }
  });

  it('refuses out-of-range r/s, wrong lengths and a point off the curve', () => {
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const jwk = publicKey.export({ format: 'jwk' }) as Record<string, string>;
    const digest = new Uint8Array(32).fill(1);
    expect(ecdsaVerifyDigest('P-256', b64(jwk.x), b64(jwk.y), digest, new Uint8Array(64))).toBe(false);
    expect(ecdsaVerifyDigest('P-256', b64(jwk.x), b64(jwk.y), digest, new Uint8Array(64).fill(0xff))).toBe(false);
    expect(ecdsaVerifyDigest('P-256', b64(jwk.x), b64(jwk.y), digest, new Uint8Array(63).fill(1))).toBe(false);
    const offCurve = Uint8Array.from(b64(jwk.y));
    offCurve[31] ^= 1;
    expect(ecdsaVerifyDigest('P-256', b64(jwk.x), offCurve, digest, new Uint8Array(64).fill(1))).toBe(false);
  });
});
