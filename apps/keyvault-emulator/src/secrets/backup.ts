import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { errors } from '../errors';
import { SecretRecord, SecretVersionRecord } from './model';
import { isValidSecretName, VERSION_PATTERN } from './validation';

/**
 * Backup blobs: MAGIC | iv(12) | tag(16) | AES-256-GCM(JSON {name, versions}).
 *
 * Like Azure's, a blob is opaque and protected, and it can be restored into another emulator vault
 * (Azure allows restore within the same subscription and geography). The key is a fixed emulator
 * constant, so this protects integrity and keeps values out of plain sight; it is not a security
 * boundary — the emulator is for development and tests only.
 */
const MAGIC = Buffer.from('KVEMU-SECRET-BACKUP-V1', 'ascii');
const BACKUP_KEY = createHash('sha256').update('credential-vault keyvault-emulator backup key v1').digest();

interface BackupPayload {
  name: string;
  versions: SecretVersionRecord[];
}

export function encodeBackup(record: SecretRecord): Buffer {
  const payload: BackupPayload = { name: record.name, versions: record.versions };
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', BACKUP_KEY, iv);
  cipher.setAAD(MAGIC);
  const ct = Buffer.concat([cipher.update(JSON.stringify(payload), 'utf8'), cipher.final()]);
  return Buffer.concat([MAGIC, iv, cipher.getAuthTag(), ct]);
}

/** Decodes and checks a blob; anything malformed is Azure's 400 "Backup blob contains invalid or corrupt version." */
export function decodeBackup(blob: Buffer): BackupPayload {
  try {
    if (blob.length < MAGIC.length + 28 || !blob.subarray(0, MAGIC.length).equals(MAGIC)) throw new Error('magic');
    const iv = blob.subarray(MAGIC.length, MAGIC.length + 12);
    const tag = blob.subarray(MAGIC.length + 12, MAGIC.length + 28);
    const decipher = createDecipheriv('aes-256-gcm', BACKUP_KEY, iv);
    decipher.setAAD(MAGIC);
    decipher.setAuthTag(tag);
    const json = Buffer.concat([decipher.update(blob.subarray(MAGIC.length + 28)), decipher.final()]).toString('utf8');
    const payload = JSON.parse(json) as BackupPayload;
    if (!isValidSecretName(payload.name) || !Array.isArray(payload.versions) || payload.versions.length === 0) throw new Error('shape');
    for (const v of payload.versions) {
      if (!VERSION_PATTERN.test(v.version) || typeof v.value !== 'string' || typeof v.enabled !== 'boolean') throw new Error('version');
    }
    return payload;
  } catch {
    throw errors.corruptBackup();
  }
}
