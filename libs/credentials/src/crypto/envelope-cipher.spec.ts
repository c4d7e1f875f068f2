import { CredentialIntegrityError } from '../errors/credential-errors';
import { decryptEnvelope, encryptEnvelope, generateDataKey } from './envelope-cipher';

describe('envelope cipher (AES-256-GCM)', () => {
  const binding = { tenantId: 't1', credentialId: 'c1', version: 3 };

  it('round-trips and never reuses an IV', () => {
    const key = generateDataKey();
    const a = encryptEnvelope(key, 'tok_secret_value', binding);
    const b = encryptEnvelope(key, 'tok_secret_value', binding);
    expect(a.iv).not.toBe(b.iv);
    expect(a.ciphertext).not.toContain('tok_secret_value');
    expect(decryptEnvelope(key, a, binding)).toBe('tok_secret_value');
  });

  it.each([
    ['another credential', { ...binding, credentialId: 'c2' }],
    ['another version', { ...binding, version: 4 }],
    ['another tenant', { ...binding, tenantId: 't2' }],
  ])('rejects a ciphertext presented as %s (AAD mismatch)', (_label, other) => {
    const key = generateDataKey();
    const sealed = encryptEnvelope(key, 'value', binding);
    expect(() => decryptEnvelope(key, sealed, other)).toThrow(CredentialIntegrityError);
  });

  it('rejects a wrong key and a tampered ciphertext', () => {
    const key = generateDataKey();
    const sealed = encryptEnvelope(key, 'value-value', binding);
    expect(() => decryptEnvelope(generateDataKey(), sealed, binding)).toThrow(CredentialIntegrityError);
    const bytes = Buffer.from(sealed.ciphertext, 'base64');
    bytes[0] ^= 1;
    expect(() => decryptEnvelope(key, { ...sealed, ciphertext: bytes.toString('base64') }, binding)).toThrow(CredentialIntegrityError);
  });
});
