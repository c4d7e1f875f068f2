import { createECDH, createHash, generateKeyPairSync, sign, verify } from 'node:crypto';
import { CURVES, ecdsaSignDigest, ecdsaVerifyDigest, toBigInt, toFixedBytes } from './ecdsa';

const HASH = { 'P-256': 'sha256', 'P-384': 'sha384', 'P-521': 'sha512', 'P-256K': 'sha256' } as const;

describe('ECDSA over a digest', () => {
  for (const c of Object.values(CURVES)) {
    it(`${c.crv}: the base point matches OpenSSL's, and signatures interoperate with node:crypto both ways`, () => {
      const ecdh = createECDH(c.openssl);
      ecdh.setPrivateKey(toFixedBytes(1n, c.size));
      const g = ecdh.getPublicKey();
      expect([toBigInt(g.subarray(1, 1 + c.size)), toBigInt(g.subarray(1 + c.size))]).toEqual([c.gx, c.gy]);
      // n·G is the point at infinity: (n-1)·G = -G
      ecdh.setPrivateKey(toFixedBytes(c.n - 1n, c.size));
      const minusG = ecdh.getPublicKey();
      expect([toBigInt(minusG.subarray(1, 1 + c.size)), toBigInt(minusG.subarray(1 + c.size))]).toEqual([c.gx, c.p - c.gy]);

      const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: c.openssl });
      const jwk = privateKey.export({ format: 'jwk' });
      const [d, x, y] = [jwk.d!, jwk.x!, jwk.y!].map((v) => toBigInt(Buffer.from(v, 'base64url')));
      const message = Buffer.from(`message for ${c.crv}`);
      const digest = createHash(HASH[c.crv]).update(message).digest();

      const ours = ecdsaSignDigest(c, d, digest);
      expect(ours).toHaveLength(2 * c.size);
      expect(verify(HASH[c.crv], message, { key: publicKey, dsaEncoding: 'ieee-p1363' }, ours)).toBe(true);

      const theirs = sign(HASH[c.crv], message, { key: privateKey, dsaEncoding: 'ieee-p1363' });
      expect(ecdsaVerifyDigest(c, x, y, digest, theirs)).toBe(true);
      expect(ecdsaVerifyDigest(c, x, y, digest, ours)).toBe(true);

      const tampered = Buffer.from(theirs);
      tampered[5] ^= 1;
      expect(ecdsaVerifyDigest(c, x, y, digest, tampered)).toBe(false);
      const otherDigest = createHash(HASH[c.crv]).update('another message').digest();
      expect(ecdsaVerifyDigest(c, x, y, otherDigest, ours)).toBe(false);
      expect(ecdsaVerifyDigest(c, x, y, digest, ours.subarray(1))).toBe(false);
      expect(ecdsaVerifyDigest(c, x, y, digest, Buffer.alloc(2 * c.size))).toBe(false);
    });
  }
});
