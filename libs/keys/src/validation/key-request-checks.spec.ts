import { KeysErrorCode } from '../errors/keys.errors';
import { generateKeyPairSync } from 'node:crypto';
import { checkCreateKey, checkDates, checkRsaBlock, rsaModulusBytes } from './key-request-checks';

const at = (iso: string) => new Date(iso);

describe('key dates', () => {
  it('rounds to the whole seconds the vault stores, inward: notBefore up, expiresOn down (the key is never usable outside the window asked)', () => {
    expect(checkDates(at('2030-01-01T00:00:00.999Z'), at('2029-01-01T00:00:00.001Z'))).toEqual({
      expiresOn: at('2030-01-01T00:00:00Z'),
      notBefore: at('2029-01-01T00:00:01Z'),
    });
    // Whole seconds stay as they are; dates before 1970 round the same way.
    expect(checkDates(at('2030-01-01T00:00:00Z'), at('1969-12-31T23:59:59.500Z'))).toEqual({ expiresOn: at('2030-01-01T00:00:00Z'), notBefore: at('1970-01-01T00:00:00Z') });
    expect(checkDates(at('1969-12-31T23:59:59.500Z'), undefined)).toEqual({ expiresOn: at('1969-12-31T23:59:59Z') });
    expect(checkDates(undefined, undefined)).toEqual({});
  });

  it('gives a create its rounded dates', () => {
    expect(checkCreateKey({ name: 'k', type: 'EC', notBefore: at('2029-06-01T12:00:00.250Z'), expiresOn: at('2029-06-02T12:00:00.750Z') })).toEqual({
      keyOps: ['sign', 'verify'],
      notBefore: at('2029-06-01T12:00:01Z'),
      expiresOn: at('2029-06-02T12:00:00Z'),
    });
  });

  it('refuses a window that rounding leaves empty (both in one second) as KEYS_VALIDATION on notBefore', () => {
    const attempt = () => checkDates(at('2030-01-01T00:00:00.800Z'), at('2030-01-01T00:00:00.200Z'));
    expect(attempt).toThrow(expect.objectContaining({ code: KeysErrorCode.KEYS_VALIDATION, field: 'notBefore', message: expect.stringMatching(/notBefore must be before expiresOn \(in whole seconds/) }));
  });
});

describe('RSA block sizes', () => {
  it("sizes a key by its JWK modulus, and leaves a key without one to the vault (a 500 before: its public key could not be built)", () => {
    for (const bits of [2048, 3072, 4096]) {
      const { publicKey } = generateKeyPairSync('rsa', { modulusLength: bits });
      const n = publicKey.export({ format: 'jwk' }).n;
      expect(rsaModulusBytes(n)).toBe(bits / 8);
      // The same modulus with a leading zero byte, as some encoders write it.
      expect(rsaModulusBytes(Buffer.concat([Buffer.from([0]), Buffer.from(n!, 'base64url')]).toString('base64url'))).toBe(bits / 8);
    }
    expect(rsaModulusBytes(undefined)).toBeUndefined();
    expect(rsaModulusBytes('')).toBeUndefined();
    expect(() => checkRsaBlock('RSA-OAEP-256', new Uint8Array(4096), 'plaintext', rsaModulusBytes(undefined))).not.toThrow();
    expect(() => checkRsaBlock('RSA-OAEP-256', new Uint8Array(191), 'plaintext', 256)).toThrow(/at most 190 bytes/);
  });
});
