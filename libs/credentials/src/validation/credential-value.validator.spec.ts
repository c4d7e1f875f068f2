import { generateKeyPairSync, randomBytes } from 'node:crypto';
import forge from 'node-forge';
import { CredentialType } from '../credential-type';
import { CredentialValidationError } from '../errors/credential-errors';
import { MAX_VALUE_BYTES, validateCredentialValue, webhookSecretEntropyBytes } from './credential-value.validator';
import { assertIdentifier, assertTags } from './identifiers';

function selfSignedCert(notAfter: Date, notBefore = new Date(Date.now() - 86_400_000)): { cert: string; key: string } {
  const keys = forge.pki.rsa.generateKeyPair(1024);
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = '01';
  cert.validity.notBefore = notBefore;
  cert.validity.notAfter = notAfter;
  const attrs = [{ name: 'commonName', value: 'client.example' }];
  cert.setSubject(attrs);
  cert.setIssuer(attrs);
  cert.sign(keys.privateKey, forge.md.sha256.create());
  return { cert: forge.pki.certificateToPem(cert), key: forge.pki.privateKeyToPem(keys.privateKey) };
}

function expectInvalid(fn: () => unknown, message: RegExp): void {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(CredentialValidationError);
    expect((e as Error).message).toMatch(message);
    return;
  }
  throw new Error('expected a validation error');
}

describe('credential value validation', () => {
  it.each(Object.values(CredentialType))('%s: rejects empty and oversized values', (type) => {
    expectInvalid(() => validateCredentialValue(type, ''), /empty/);
    expectInvalid(() => validateCredentialValue(type, '   '), /empty/);
    expectInvalid(() => validateCredentialValue(type, 'x'.repeat(MAX_VALUE_BYTES + 1)), /25 KB/);
  });

  it('never echoes the value in a message', () => {
    const secret = 'sk_live_THIS_MUST_NOT_LEAK ';
    try {
      validateCredentialValue(CredentialType.API_KEY, secret);
      throw new Error('expected failure');
    } catch (e) {
      expect((e as Error).message).not.toContain('THIS_MUST_NOT_LEAK');
    }
  });

  it('single-line tokens: no surrounding whitespace or control characters', () => {
    expect(validateCredentialValue(CredentialType.OAUTH_ACCESS_TOKEN, 'eyJhbGciOi.J9.sig')).toEqual({});
    expectInvalid(() => validateCredentialValue(CredentialType.API_KEY, ' key'), /whitespace/);
    expectInvalid(() => validateCredentialValue(CredentialType.OAUTH_REFRESH_TOKEN, 'a\nb'), /single line/);
    // Passwords and custom secrets may contain anything.
    expect(validateCredentialValue(CredentialType.BASIC_AUTH_PASSWORD, ' pass word\n')).toEqual({});
  });

  it('basic-auth usernames cannot contain ":"', () => {
    expectInvalid(() => validateCredentialValue(CredentialType.BASIC_AUTH_USERNAME, 'a:b'), /RFC 7617/);
  });

  it('client certificates: parsed, expiry read from the certificate, expired or key-bearing PEM refused', () => {
    const notAfter = new Date(Date.now() + 30 * 86_400_000);
    notAfter.setMilliseconds(0);
    const { cert, key } = selfSignedCert(notAfter);
    const result = validateCredentialValue(CredentialType.CLIENT_CERTIFICATE, cert);
    expect(result.expiresAt?.toISOString()).toBe(notAfter.toISOString());
    expect(result.certificate?.subject).toContain('client.example');
    expect(result.certificate?.fingerprint256).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);

    const expired = selfSignedCert(new Date(Date.now() - 1000), new Date(Date.now() - 86_400_000 * 2));
    expectInvalid(() => validateCredentialValue(CredentialType.CLIENT_CERTIFICATE, expired.cert), /expired/);
    expectInvalid(() => validateCredentialValue(CredentialType.CLIENT_CERTIFICATE, cert + key), /private key/);
    expectInvalid(() => validateCredentialValue(CredentialType.CLIENT_CERTIFICATE, 'not a cert at all'), /PEM/);
    expectInvalid(
      () => validateCredentialValue(CredentialType.CLIENT_CERTIFICATE, '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n'),
      /could not be parsed/,
    );
  });

  it('client private keys: PKCS#8 / SEC1 parse, garbage and encrypted keys refused', () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'sec1', format: 'pem' }) as string;
    expect(validateCredentialValue(CredentialType.CLIENT_PRIVATE_KEY, rsa)).toEqual({});
    expect(validateCredentialValue(CredentialType.CLIENT_PRIVATE_KEY, ec)).toEqual({});
    const encrypted = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({
      type: 'pkcs8',
      format: 'pem',
      cipher: 'aes-256-cbc',
      passphrase: 'pw',
    }) as string;
    expectInvalid(() => validateCredentialValue(CredentialType.CLIENT_PRIVATE_KEY, encrypted), /encrypted/);
    expectInvalid(
      () => validateCredentialValue(CredentialType.CLIENT_PRIVATE_KEY, '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n'),
      /could not be parsed/,
    );
    expectInvalid(() => validateCredentialValue(CredentialType.CLIENT_PRIVATE_KEY, 'just text'), /PEM/);
  });

  it('webhook secrets: ≥ 24 bytes of entropy, whsec_ base64 accepted', () => {
    expect(validateCredentialValue(CredentialType.WEBHOOK_SECRET, `whsec_${randomBytes(24).toString('base64')}`)).toEqual({});
    expect(validateCredentialValue(CredentialType.WEBHOOK_SECRET, randomBytes(32).toString('hex'))).toEqual({});
    expect(validateCredentialValue(CredentialType.WEBHOOK_SECRET, randomBytes(32).toString('base64url'))).toEqual({});
    expectInvalid(() => validateCredentialValue(CredentialType.WEBHOOK_SECRET, `whsec_${randomBytes(16).toString('base64')}`), /at least 24 bytes/);
    expectInvalid(() => validateCredentialValue(CredentialType.WEBHOOK_SECRET, 'a'.repeat(64)), /at least 24 bytes/);
    expectInvalid(() => validateCredentialValue(CredentialType.WEBHOOK_SECRET, 'whsec_!!!'), /base64/);
    // 32 random bytes as 64 hex digits: the distinct-character guard never trips at this length.
    expect(webhookSecretEntropyBytes(randomBytes(32).toString('hex'))).toBe(32);
  });
});

describe('identifiers and tags', () => {
  it.each(['acme', 'Acme_1', 'acme.prod', 'user@example.com', 'urn:x:1', 'a-b', 'x'.repeat(128)])('accepts %s', (id) => {
    expect(() => assertIdentifier(id, 'tenantId')).not.toThrow();
  });

  it.each(['', 'a b', 'a/b', 'ü', 'x'.repeat(129), 'a\n'])('refuses %j', (id) => {
    expect(() => assertIdentifier(id, 'connectionId')).toThrow(CredentialValidationError);
  });

  it('allows at most 15 tags with bounded keys and values', () => {
    const tags = Object.fromEntries(Array.from({ length: 15 }, (_, i) => [`k${i}`, 'v']));
    expect(() => assertTags(tags)).not.toThrow();
    expect(() => assertTags({ ...tags, k15: 'v' })).toThrow(/at most 15/);
    expect(() => assertTags({ 'bad key': 'v' })).toThrow(CredentialValidationError);
    expect(() => assertTags({ k: 'v'.repeat(513) })).toThrow(CredentialValidationError);
    expect(() => assertTags({ k: 1 })).toThrow(CredentialValidationError);
  });
});
