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
});
