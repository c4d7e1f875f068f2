import { generateKeyPairSync, randomBytes, X509Certificate } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import forge from 'node-forge';

export const CA_CERT_FILE = 'ca.pem';
export const CA_KEY_FILE = 'ca-key.pem';
export const TLS_CERT_FILE = 'tls-cert.pem';
export const TLS_KEY_FILE = 'tls-key.pem';

export interface TlsMaterial {
  caCertPem: string;
  caCertPath: string;
  certPem: string;
  keyPem: string;
  /** True when a new CA was generated on this start. */
  generatedCa: boolean;
  generatedLeaf: boolean;
}

const DAY_MS = 86_400_000;

function rsaKeyPair(): { privateKeyPem: string; publicKeyPem: string } {
  // node:crypto is much faster than forge's pure-JS key generation.
  const { privateKey, publicKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  return { privateKeyPem: privateKey, publicKeyPem: publicKey };
}

/**
 * A certificate serial from 16 random bytes: the first in 0x01–0x7f, so the DER INTEGER is positive and
 * minimal. (forge drops one leading zero byte, not two: `00 00 1x…` was written as `00 1x…`, which
 * OpenSSL refuses — "asn1 encoding routines::illegal padding" — once in ~65,000 certificates.)
 */
export function serialNumberHex(bytes: Buffer = randomBytes(16)): string {
  const out = Buffer.from(bytes);
  out[0] = (out[0] % 0x7f) + 1;
  return out.toString('hex');
}

function writeAtomic(path: string, content: string, mode: number): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, content, { mode });
  chmodSync(tmp, mode);
  renameSync(tmp, path);
}

function createCa(): { certPem: string; keyPem: string } {
  const keys = rsaKeyPair();
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(keys.publicKeyPem);
  cert.serialNumber = serialNumberHex();
  cert.validity.notBefore = new Date(Date.now() - DAY_MS);
  cert.validity.notAfter = new Date(Date.now() + 3650 * DAY_MS);
  const attrs = [
    { name: 'commonName', value: 'Credential Vault Key Vault Emulator CA (development only)' },
    { name: 'organizationName', value: 'Credential Vault emulator' },
  ];
  cert.setSubject(attrs);
  cert.setIssuer(attrs);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(forge.pki.privateKeyFromPem(keys.privateKeyPem) as forge.pki.rsa.PrivateKey, forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem: keys.privateKeyPem };
}

function createLeaf(caCertPem: string, caKeyPem: string, hosts: string[]): { certPem: string; keyPem: string } {
  const keys = rsaKeyPair();
  const ca = forge.pki.certificateFromPem(caCertPem);
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(keys.publicKeyPem);
  cert.serialNumber = serialNumberHex();
  cert.validity.notBefore = new Date(Date.now() - DAY_MS);
  cert.validity.notAfter = new Date(Date.now() + 825 * DAY_MS);
  cert.setSubject([{ name: 'commonName', value: 'localhost' }]);
  cert.setIssuer(ca.subject.attributes);
  const altNames = hosts.map((h) => (isIP(h) ? { type: 7, ip: h } : { type: 2, value: h }));
  cert.setExtensions([
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true },
    { name: 'subjectAltName', altNames },
  ]);
  cert.sign(forge.pki.privateKeyFromPem(caKeyPem) as forge.pki.rsa.PrivateKey, forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem: keys.privateKeyPem };
}

/** Whether the leaf is signed by the CA, valid for at least a day, and names every host. */
function leafUsable(leafPem: string, caPem: string, hosts: string[]): boolean {
  try {
    const leaf = new X509Certificate(leafPem);
    const ca = new X509Certificate(caPem);
    if (!leaf.checkIssued(ca) || !leaf.verify(ca.publicKey)) return false;
    if (Date.parse(leaf.validTo) - Date.now() < DAY_MS) return false;
    return hosts.every((h) => (isIP(h) ? leaf.checkIP(h) !== undefined : leaf.checkHost(h) !== undefined));
  } catch {
    return false;
  }
}

/**
 * Loads the CA and the TLS leaf from `dataDir`, generating what is missing or unusable. The CA is
 * kept across restarts so clients keep trusting it; the leaf is re-issued if it does not cover
 * `host`. Key files are written with mode 0600.
 */
export function ensureTlsMaterial(dataDir: string, host: string): TlsMaterial {
  const caCertPath = join(dataDir, CA_CERT_FILE);
  const caKeyPath = join(dataDir, CA_KEY_FILE);
  const certPath = join(dataDir, TLS_CERT_FILE);
  const keyPath = join(dataDir, TLS_KEY_FILE);
  const hosts = [...new Set(['localhost', '127.0.0.1', '::1', ...(host && host !== '0.0.0.0' && host !== '::' ? [host] : [])])];

  let generatedCa = false;
  let caCertPem: string;
  let caKeyPem: string;
  if (existsSync(caCertPath) && existsSync(caKeyPath)) {
    caCertPem = readFileSync(caCertPath, 'utf8');
    caKeyPem = readFileSync(caKeyPath, 'utf8');
  } else {
    ({ certPem: caCertPem, keyPem: caKeyPem } = createCa());
    writeAtomic(caKeyPath, caKeyPem, 0o600);
    writeAtomic(caCertPath, caCertPem, 0o644);
    generatedCa = true;
  }

  let generatedLeaf = false;
  let certPem = existsSync(certPath) ? readFileSync(certPath, 'utf8') : '';
  let keyPem = existsSync(keyPath) ? readFileSync(keyPath, 'utf8') : '';
  if (generatedCa || !certPem || !keyPem || !leafUsable(certPem, caCertPem, hosts)) {
    ({ certPem, keyPem } = createLeaf(caCertPem, caKeyPem, hosts));
    writeAtomic(keyPath, keyPem, 0o600);
    writeAtomic(certPath, certPem, 0o644);
    generatedLeaf = true;
  }
  return { caCertPem, caCertPath, certPem, keyPem, generatedCa, generatedLeaf };
}
