import { backupCodec } from '../objects/backup';
import { SecretVersionRecord } from './model';

const codec = backupCodec<SecretVersionRecord>('KVEMU-SECRET-BACKUP-V1', (v) => typeof v.value === 'string');

export const encodeBackup = codec.encode;
export const decodeBackup = codec.decode;
