import { CredentialType } from './credential-type';
import { maskFromHint, maskValue, valueHint } from './masking';

describe('masking', () => {
  it('shows at most the last 3 characters of values of 12+ characters', () => {
    expect(maskValue(CredentialType.API_KEY, 'sk_live_abcdef4f2')).toBe('***4f2');
    expect(valueHint(CredentialType.API_KEY, '123456789012')).toBe('012');
  });

  it('shows nothing of values under 12 characters', () => {
    expect(maskValue(CredentialType.BASIC_AUTH_PASSWORD, '12345678901')).toBe('***');
    expect(valueHint(CredentialType.BASIC_AUTH_PASSWORD, 'short')).toBeNull();
  });

  it('shows nothing of PEM material', () => {
    const pem = '-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n';
    expect(valueHint(CredentialType.CLIENT_PRIVATE_KEY, pem)).toBeNull();
    expect(valueHint(CredentialType.CLIENT_CERTIFICATE, pem)).toBeNull();
  });

  it('counts characters, not UTF-16 units', () => {
    expect(valueHint(CredentialType.CUSTOM_SECRET, 'abcdefghi😀😀😀')).toBe('😀😀😀');
    expect(maskFromHint(null)).toBe('***');
  });

  it('shows nothing when the last characters are not visible text (NUL, controls, whitespace, format characters)', () => {
    for (const tail of ['ab\u0000', 'a\u0007b', 'ab ', 'ab\n', 'a\u200Bb', 'ab\uFEFF']) {
      expect(valueHint(CredentialType.CUSTOM_SECRET, `0123456789${tail}`)).toBeNull();
    }
    expect(valueHint(CredentialType.CUSTOM_SECRET, '0123456789e\u0301!')).toBe('e\u0301!');
  });
});
