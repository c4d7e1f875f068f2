import { backupCodec } from '../objects/backup';
import { KEY_TYPES, KeyVersionRecord } from './model';

/** The blob holds the private keys, sealed like the secrets' blobs (see objects/backup.ts). */
const codec = backupCodec<KeyVersionRecord>(
  'KVEMU-KEY-BACKUP-V1',
  (v) => (KEY_TYPES as readonly string[]).includes(v.kty) && typeof v.privateKey === 'string' && Array.isArray(v.keyOps),
);

export const encodeKeyBackup = codec.encode;
export const decodeKeyBackup = codec.decode;
