import { createCipheriv, createDecipheriv, createHash, randomBytes, scryptSync } from 'node:crypto';
import { gunzipSync, gzipSync } from 'node:zlib';

/**
 * A tenant backup file (`.cvbak`): one header line in clear JSON (what it is, which key opens it —
 * never the key), then the payload gzipped and sealed with AES-256-GCM. The header line is the
 * cipher's additional data, so editing it (say, the tenant) makes the bundle refuse to open. The
 * payload holds values: the file is as secret as its key.
 *
 *   CVBAK1 <header JSON>\n<base64 of ciphertext || 16-byte tag>\n
 */
const MAGIC = 'CVBAK1 ';
const IV_BYTES = 12;

export type BackupKeySource =
  /** A 32-byte key the operator keeps (file with base64 or hex). */
  | { source: 'key-file' }
  /** A passphrase stretched with scrypt (salt in the header). */
  | { source: 'passphrase'; salt: string }
  /** A Key Vault secret holding a base64 32-byte key (name and version in the header). */
  | { source: 'key-vault'; secretName: string; secretVersion: string };

export interface BackupHeader {
  format: 'cvbak';
  version: 1;
  tenantId: string;
  createdAt: string;
  /** Counts, for `restore --dry-run` before opening and for the operator. */
  counts: { credentials: number; versions: number; policies: number };
  key: BackupKeySource & { fingerprint: string };
  cipher: { alg: 'A256GCM'; iv: string; compression: 'gzip' };
}

/** Why a bundle could not be read; messages name no value and no key material. */
export class BackupBundleError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BackupBundleError';
  }
}

/** First 16 hex characters of SHA-256 over a domain-separated key: tells keys apart, reveals nothing usable. */
export function keyFingerprint(key: Buffer): string {
  return createHash('sha256').update('credential-vault/backup-key-fingerprint\0').update(key).digest('hex').slice(0, 16);
}

/** Reads a 32-byte key written as base64 (or base64url) or 64 hex characters. */
export function parseBackupKey(text: string): Buffer {
  const t = text.trim();
  const key = /^[0-9a-f]{64}$/i.test(t) ? Buffer.from(t, 'hex') : /^[A-Za-z0-9+/_-]{43}=?$/.test(t) ? Buffer.from(t, 'base64') : undefined;
  if (!key || key.length !== 32) throw new BackupBundleError('a backup key must be 32 bytes, written as base64 or as 64 hex characters');
  return key;
}

/** scrypt (N=2^15, r=8, p=1): about 100 ms, so a stolen bundle is expensive to guess at. */
export function keyFromPassphrase(passphrase: string, salt: Buffer): Buffer {
  if (passphrase.length < 12) throw new BackupBundleError('a backup passphrase must be at least 12 characters');
  return scryptSync(passphrase.normalize('NFC'), salt, 32, { N: 1 << 15, r: 8, p: 1, maxmem: 64 * 1024 * 1024 });
}

export function newPassphraseSalt(): Buffer {
  return randomBytes(16);
}

export function sealBundle(header: Omit<BackupHeader, 'cipher' | 'key'> & { key: BackupKeySource }, payload: unknown, key: Buffer): string {
  if (key.length !== 32) throw new BackupBundleError('the backup key must be 32 bytes');
  const iv = randomBytes(IV_BYTES);
  const full: BackupHeader = {
    ...header,
    key: { ...header.key, fingerprint: keyFingerprint(key) },
    cipher: { alg: 'A256GCM', iv: iv.toString('base64'), compression: 'gzip' },
  };
  const headerLine = `${MAGIC}${JSON.stringify(full)}`;
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from(headerLine, 'utf8'));
  const body = Buffer.concat([cipher.update(gzipSync(Buffer.from(JSON.stringify(payload), 'utf8'))), cipher.final(), cipher.getAuthTag()]);
  return `${headerLine}\n${body.toString('base64')}\n`;
}

/** The header alone (to find the key, or to report counts) — no key needed, nothing decrypted. */
export function readBundleHeader(bundle: string): BackupHeader {
  const newline = bundle.indexOf('\n');
  if (!bundle.startsWith(MAGIC) || newline < 0) throw new BackupBundleError('not a Credential Vault backup (.cvbak) file');
  let header: BackupHeader;
  try {
    header = JSON.parse(bundle.slice(MAGIC.length, newline)) as BackupHeader;
  } catch {
    throw new BackupBundleError('the backup header is not valid JSON');
  }
  if (header?.format !== 'cvbak' || header.version !== 1 || header.cipher?.alg !== 'A256GCM' || typeof header.tenantId !== 'string') {
    throw new BackupBundleError('unsupported backup format or version');
  }
  // The header is read before its integrity can be checked (it names the key): an edited one must fail here, typed.
  if (!isBase64(header.cipher.iv, IV_BYTES) || !knownKeySource(header.key)) {
    throw new BackupBundleError('the backup header is damaged (its key or cipher fields are missing or malformed)');
  }
  return header;
}

function isBase64(value: unknown, bytes?: number): value is string {
  return typeof value === 'string' && /^[A-Za-z0-9+/]+={0,2}$/.test(value) && (bytes === undefined || Buffer.from(value, 'base64').length === bytes);
}

function knownKeySource(key: unknown): boolean {
  const k = key as Partial<Record<string, unknown>> | null | undefined;
  if (typeof k?.fingerprint !== 'string') return false;
  if (k.source === 'key-file') return true;
  if (k.source === 'passphrase') return isBase64(k.salt);
  return k.source === 'key-vault' && typeof k.secretName === 'string' && k.secretName !== '' && typeof k.secretVersion === 'string';
}

export function openBundle<T>(bundle: string, key: Buffer): { header: BackupHeader; payload: T } {
  const header = readBundleHeader(bundle);
  if (keyFingerprint(key) !== header.key.fingerprint) {
    throw new BackupBundleError(`this is not the key the backup was made with (${header.key.source})`);
  }
  const newline = bundle.indexOf('\n');
  const body = Buffer.from(bundle.slice(newline + 1).trim(), 'base64');
  if (body.length < 17) throw new BackupBundleError('the backup is truncated');
  const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(header.cipher.iv, 'base64'));
  decipher.setAAD(Buffer.from(bundle.slice(0, newline), 'utf8'));
  decipher.setAuthTag(body.subarray(body.length - 16));
  let plain: Buffer;
  try {
    plain = Buffer.concat([decipher.update(body.subarray(0, body.length - 16)), decipher.final()]);
  } catch {
    throw new BackupBundleError('the backup failed its integrity check (altered, truncated or made with another key)');
  }
  return { header, payload: JSON.parse(gunzipSync(plain).toString('utf8')) as T };
}
