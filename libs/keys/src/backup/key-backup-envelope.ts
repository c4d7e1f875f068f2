import { KeysError, KeysErrorCode } from '../errors/keys.errors';
import { KEY_NAME_PATTERN } from '../keys.types';

/*
 * A key backup names its vault key (so its tenant scope) around the vault's protected blob:
 * `restoreKey` refuses it in another tenant before the vault sees it. It also names one version the blob
 * holds (optional: older backups lack it), so that a restore whose answer is lost can be confirmed.
 */
const BACKUP_FORMAT = 'cv-key-backup-1';
const KEY_VERSION_PATTERN = /^[0-9a-zA-Z]{1,64}$/;

export const notThisTenantsBackup = (): KeysError => new KeysError(KeysErrorCode.INVALID_KEY_BACKUP, 'The backup is not a key backup of this tenant', 'backup');

export function sealKeyBackup(vaultName: string, blob: Uint8Array, version: string | undefined): Uint8Array {
  const envelope = { format: BACKUP_FORMAT, key: vaultName, version, blob: Buffer.from(blob).toString('base64') };
  return new Uint8Array(Buffer.from(JSON.stringify(envelope), 'utf8'));
}

/**
 * The vault name, blob and known version of a backup of this tenant; `tenantName` maps a vault name into the
 * tenant (undefined when not its).
 */
export function openKeyBackup(backup: Uint8Array, tenantName: (vaultName: string) => string | undefined): { vaultName: string; blob: Uint8Array; version?: string } {
  if (!(backup instanceof Uint8Array) || backup.length === 0) throw notThisTenantsBackup();
  let parsed: { format?: unknown; key?: unknown; version?: unknown; blob?: unknown };
  try {
    parsed = JSON.parse(Buffer.from(backup).toString('utf8')) as typeof parsed;
  } catch {
    throw notThisTenantsBackup();
  }
  if (parsed?.format !== BACKUP_FORMAT || typeof parsed.key !== 'string' || typeof parsed.blob !== 'string') throw notThisTenantsBackup();
  const { version } = parsed;
  if (version !== undefined && (typeof version !== 'string' || !KEY_VERSION_PATTERN.test(version))) throw notThisTenantsBackup();
  const name = tenantName(parsed.key);
  if (name === undefined || !KEY_NAME_PATTERN.test(name)) throw notThisTenantsBackup();
  const blob = Buffer.from(parsed.blob, 'base64');
  if (blob.length === 0) throw notThisTenantsBackup();
  return { vaultName: parsed.key, blob: new Uint8Array(blob), version };
}
