import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { createServer } from 'node:tls';
import forge from 'node-forge';
import { serialNumberHex } from './certs';

/** A self-signed certificate as the emulator builds its own, with the serial made from `random`. */
function certificateWithSerialFrom(random: Buffer): { certPem: string; keyPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(publicKey);
  cert.serialNumber = serialNumberHex(random);
  cert.validity.notBefore = new Date(Date.now() - 60_000);
  cert.validity.notAfter = new Date(Date.now() + 86_400_000);
  cert.setSubject([{ name: 'commonName', value: 'localhost' }]);
  cert.setIssuer([{ name: 'commonName', value: 'localhost' }]);
  cert.sign(forge.pki.privateKeyFromPem(privateKey) as forge.pki.rsa.PrivateKey, forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem: privateKey };
}

describe('emulator TLS certificate serials', () => {
  // Random bytes starting with two zero bytes (1 in ~65,000) once made a certificate OpenSSL refused
  // ("illegal padding"), and the local vault did not start.
  it.each([
    ['all zero', Buffer.alloc(16)],
    ['two zero bytes, then a low byte', Buffer.from('00001011121314151617181920212223', 'hex')],
    ['high bit set', Buffer.from('ff00ff00ff00ff00ff00ff00ff00ff00', 'hex')],
  ])('random bytes %s give a certificate OpenSSL and TLS accept', (_name, random) => {
    const { certPem, keyPem } = certificateWithSerialFrom(random);
    const parsed = new X509Certificate(certPem);
    expect(parsed.serialNumber).toMatch(/^(0[1-9A-F]|[1-7][0-9A-F])[0-9A-F]{30}$/);
    expect(() => createServer({ cert: certPem, key: keyPem }).close()).not.toThrow();
  });

  it('keeps 16 bytes of randomness, positive and minimal', () => {
    const random = Buffer.from('8000000000000000000000000000000a', 'hex');
    expect(serialNumberHex(random)).toBe('0200000000000000000000000000000a');
    expect(random[0]).toBe(0x80); // the caller's buffer is left as it was
  });
});
