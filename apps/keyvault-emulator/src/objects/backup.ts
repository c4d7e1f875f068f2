import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { errors } from '../errors';
import { ObjectRecord, VersionBase } from './model';
import { isValidObjectName, VERSION_PATTERN } from './validation';

/**
 * Backup blobs: MAGIC | iv(12) | tag(16) | AES-256-GCM(JSON payload), MAGIC as AAD.
 *
 * Like Azure's, a blob is opaque and protected, and it can be restored into another emulator vault
 * (Azure allows restore within the same subscription and geography). The key is a fixed emulator
 * constant, so this protects integrity and keeps values out of plain sight; it is not a security
 * boundary — the emulator is for development and tests only.
 */
const BACKUP_KEY = createHash('sha256').update('credential-vault keyvault-emulator backup key v1').digest();

export function sealBackup(magic: Buffer, payload: unknown): Buffer {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', BACKUP_KEY, iv);
  cipher.setAAD(magic);
  const ct = Buffer.concat([cipher.update(JSON.stringify(payload), 'utf8'), cipher.final()]);
  return Buffer.concat([magic, iv, cipher.getAuthTag(), ct]);
}

/** Opens and checks a blob; anything malformed is Azure's 400 "Backup blob contains invalid or corrupt version." */
export function openBackup<T>(magic: Buffer, blob: Buffer, check: (payload: T) => boolean): T {
  try {
    if (blob.length < magic.length + 28 || !blob.subarray(0, magic.length).equals(magic)) throw new Error('magic');
    const iv = blob.subarray(magic.length, magic.length + 12);
    const tag = blob.subarray(magic.length + 12, magic.length + 28);
    const decipher = createDecipheriv('aes-256-gcm', BACKUP_KEY, iv);
    decipher.setAAD(magic);
    decipher.setAuthTag(tag);
    const json = Buffer.concat([decipher.update(blob.subarray(magic.length + 28)), decipher.final()]).toString('utf8');
    const payload = JSON.parse(json) as T;
    if (!check(payload)) throw new Error('shape');
    return payload;
  } catch {
    throw errors.corruptBackup();
  }
}

/** The body of a restore request: a base64url blob, or Azure's 400s. */
export function backupBlobOf(body: Record<string, unknown>): Buffer {
  const raw = body.value;
  if (typeof raw !== 'string' || raw.length === 0) throw errors.badParameter('The property "value" (the backup blob) is required.');
  if (!/^[A-Za-z0-9_\-+/=]+$/.test(raw)) throw errors.corruptBackup();
  return Buffer.from(raw, 'base64url');
}

export interface BackupPayload<V extends VersionBase> {
  name: string;
  versions: V[];
}

/** Encodes and decodes the backups of one kind of object (its own magic, its own version check). */
export function backupCodec<V extends VersionBase>(magic: string, validVersion: (v: V) => boolean) {
  const m = Buffer.from(magic, 'ascii');
  return {
    encode: (record: ObjectRecord<V>): Buffer => sealBackup(m, { name: record.name, versions: record.versions } satisfies BackupPayload<V>),
    decode: (blob: Buffer): BackupPayload<V> =>
      openBackup<BackupPayload<V>>(
        m,
        blob,
        (p) =>
          isValidObjectName(p.name) &&
          Array.isArray(p.versions) &&
          p.versions.length > 0 &&
          p.versions.every((v) => VERSION_PATTERN.test(v.version) && typeof v.enabled === 'boolean' && validVersion(v)),
      ),
  };
}
