import { accessSync, constants, existsSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Command, CommandRunner, Option } from 'nest-commander';
import { isKeyVaultError, KeyVaultErrorCode, KeyVaultProvider } from '@app/key-vault';
import {
  BackupBundleError,
  keyFromPassphrase,
  newPassphraseSalt,
  openBundle,
  parseBackupKey,
  readBundleHeader,
  sealBundle,
  TenantBackupService,
  type BackupKeySource,
  type BackupPayload,
} from '@app/api-host';
import { operatorContext, withHostLibs } from './host-libs.context';

interface KeyFlags {
  keyFile?: string;
  passphraseEnv?: string;
  keySecret?: string;
}

/** The backup service with the host's database and vault (see withHostLibs). */
function withBackup<T>(work: (service: TenantBackupService, vault: KeyVaultProvider) => Promise<T>): Promise<T> {
  return withHostLibs((get) => work(get(TenantBackupService), get(KeyVaultProvider)), { providers: [TenantBackupService] });
}

const operator = operatorContext;

function exactlyOneKey(flags: KeyFlags): void {
  const given = [flags.keyFile, flags.passphraseEnv, flags.keySecret].filter((f) => f !== undefined).length;
  if (given !== 1) throw new BackupBundleError('give exactly one of --key-file, --passphrase-env or --key-secret');
}

function passphrase(variable: string): string {
  const value = process.env[variable];
  if (!value) throw new BackupBundleError(`the environment variable ${variable} (--passphrase-env) is not set`);
  return value;
}

/** How a vault secret is marked as a backup key (set when `backup --key-secret` creates one). */
const BACKUP_KEY_CONTENT_TYPE = 'application/vnd.credential-vault.backup-key';

/**
 * A backup key kept in the vault: only a secret marked as one. A backup's header names the secret its
 * key is in, and whoever can write a file could otherwise name any secret of the vault — a tenant's
 * credential, whose value that tenant chose — and have a forged bundle restored into another tenant.
 */
async function backupKeySecret(vault: KeyVaultProvider, name: string, version?: string): Promise<{ key: Buffer; version: string }> {
  const secret = await vault.getSecret(name, version);
  if (secret.properties.contentType !== BACKUP_KEY_CONTENT_TYPE) {
    throw new BackupBundleError(`the vault secret ${name} is not a backup key (its content type must be ${BACKUP_KEY_CONTENT_TYPE}; backup --key-secret creates one)`);
  }
  return { key: parseBackupKey(secret.value), version: secret.properties.version! };
}

/** The key for a new backup, and how the header names it. A missing Key Vault key secret is created. */
async function keyForBackup(flags: KeyFlags, vault: KeyVaultProvider): Promise<{ key: Buffer; source: BackupKeySource }> {
  exactlyOneKey(flags);
  if (flags.keyFile) return { key: parseBackupKey(readFileSync(flags.keyFile, 'utf8')), source: { source: 'key-file' } };
  if (flags.passphraseEnv) {
    const salt = newPassphraseSalt();
    return { key: keyFromPassphrase(passphrase(flags.passphraseEnv), salt), source: { source: 'passphrase', salt: salt.toString('base64') } };
  }
  const name = flags.keySecret!;
  try {
    const secret = await backupKeySecret(vault, name);
    return { key: secret.key, source: { source: 'key-vault', secretName: name, secretVersion: secret.version } };
  } catch (error) {
    if (!isKeyVaultError(error) || error.code !== KeyVaultErrorCode.KEY_NOT_FOUND) throw error;
    const created = await vault.setSecret(name, randomBytes(32).toString('base64'), { contentType: BACKUP_KEY_CONTENT_TYPE, tags: { purpose: 'credential-vault-backup' } });
    process.stderr.write(`Created the backup key secret ${name} in the vault.\n`);
    return { key: parseBackupKey(created.value), source: { source: 'key-vault', secretName: name, secretVersion: created.properties.version! } };
  }
}

/** The key that opens `bundle`, following its header (a Key Vault key is read at the recorded version). */
async function keyForRestore(flags: KeyFlags, bundle: string, vault: KeyVaultProvider): Promise<Buffer> {
  const { key: recorded } = readBundleHeader(bundle);
  if (recorded.source === 'key-vault' && !flags.keyFile && !flags.passphraseEnv) {
    return (await backupKeySecret(vault, flags.keySecret ?? recorded.secretName, recorded.secretVersion)).key;
  }
  exactlyOneKey(flags);
  if (flags.keyFile) return parseBackupKey(readFileSync(flags.keyFile, 'utf8'));
  if (flags.passphraseEnv) {
    if (recorded.source !== 'passphrase') throw new BackupBundleError(`this backup was made with a ${recorded.source}, not a passphrase`);
    return keyFromPassphrase(passphrase(flags.passphraseEnv), Buffer.from(recorded.salt, 'base64'));
  }
  throw new BackupBundleError('this backup was not made with a Key Vault key: give --key-file or --passphrase-env');
}

abstract class KeyOptions extends CommandRunner {
  @Option({ flags: '--key-file <path>', description: 'a file with a 32-byte key (base64 or 64 hex characters)' })
  parseKeyFile(v: string): string {
    return v;
  }

  @Option({ flags: '--passphrase-env <variable>', description: 'the environment variable holding a passphrase (≥ 12 characters; scrypt)' })
  parsePassphraseEnv(v: string): string {
    return v;
  }

  @Option({ flags: '--key-secret <name>', description: 'a Key Vault secret holding the key (created on backup when missing)' })
  parseKeySecret(v: string): string {
    return v;
  }

  @Option({ flags: '--tenant <tenant>', description: 'the tenant (restore: default is the backup’s own tenant)' })
  parseTenant(v: string): string {
    return v;
  }
}

/**
 * `cli backup --tenant t1 --out t1.cvbak (--key-file k | --passphrase-env VAR | --key-secret name)`:
 * every live credential of the tenant (metadata, every version's value) and its policy overrides,
 * sealed with AES-256-GCM. Revoked credentials are left out (their values stay disabled). Audited. A tenant with no
 * credential and no policy override (a mistyped id) is refused: no file, no audit row.
 */
@Command({ name: 'backup', description: "Write an encrypted backup of a tenant's credentials and policies" })
export class BackupCommand extends KeyOptions {
  async run(_args: string[], flags: KeyFlags & { tenant?: string; out?: string }): Promise<void> {
    if (!flags.tenant) throw new BackupBundleError('--tenant is required');
    if (!flags.out) throw new BackupBundleError('--out is required');
    if (existsSync(flags.out)) throw new BackupBundleError(`${flags.out} exists: choose another --out (a backup is never overwritten)`);
    // Before the values are read and audited: a bundle that cannot be written must not leave a tenant_backup success.
    checkOutDirectory(flags.out);
    const summary = await withBackup(async (service, vault) => {
      // A mistyped tenant: no empty bundle, no audit row, no key secret made.
      if (!(await service.holdsAnything(operator(flags.tenant!)))) {
        throw new BackupBundleError(`tenant ${flags.tenant} has no credentials and no policy overrides: nothing to back up (check --tenant); nothing was written`);
      }
      const { key, source } = await keyForBackup(flags, vault);
      const payload = await service.backup(operator(flags.tenant!));
      const counts = {
        credentials: payload.credentials.length,
        versions: payload.credentials.reduce((n, c) => n + c.versions.length, 0),
        policies: payload.policies.length,
      };
      const bundle = sealBundle({ format: 'cvbak', version: 1, tenantId: flags.tenant!, createdAt: new Date().toISOString(), counts, key: source }, payload, key);
      // Written whole, then renamed: an interrupted backup never leaves a half file under the name.
      const tmp = `${flags.out}.${process.pid}.tmp`;
      writeFileSync(tmp, bundle, { mode: 0o600, flag: 'wx' });
      renameSync(tmp, flags.out!);
      return { tenantId: flags.tenant, out: flags.out, key: source.source, ...counts, skipped: payload.skipped };
    });
    process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
  }

  @Option({ flags: '--out <file>', description: 'where to write the backup (must not exist; its directory must)' })
  parseOut(v: string): string {
    return v;
  }
}

/** The directory `--out` names exists and this process may write there. */
function checkOutDirectory(out: string): void {
  const dir = dirname(resolve(out));
  try {
    if (!statSync(dir).isDirectory()) throw new Error('not a directory');
    accessSync(dir, constants.W_OK);
  } catch {
    throw new BackupBundleError(`--out: the directory ${dir} does not exist or is not writable; nothing was read or written`);
  }
}

/**
 * `cli restore --in t1.cvbak [--tenant t2] [--dry-run] (key flags)`: applies a backup idempotently —
 * creates what is missing, appends versions missing here, leaves matching credentials alone, reports
 * conflicts without touching them. `--dry-run` reports and writes nothing. Exit 1 on any conflict.
 */
@Command({ name: 'restore', description: 'Restore a tenant backup (idempotent; --dry-run reports what would change)' })
export class RestoreCommand extends KeyOptions {
  async run(_args: string[], flags: KeyFlags & { tenant?: string; in?: string; dryRun?: boolean }): Promise<void> {
    if (!flags.in) throw new BackupBundleError('--in is required');
    const bundle = readFileSync(flags.in, 'utf8');
    const report = await withBackup(async (service, vault) => {
      const { header, payload } = openBundle<BackupPayload>(bundle, await keyForRestore(flags, bundle, vault));
      return service.restore(operator(flags.tenant ?? header.tenantId), payload, { dryRun: flags.dryRun === true });
    });
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    if (report.credentials.conflict > 0) process.exitCode = 1;
  }

  @Option({ flags: '--in <file>', description: 'the backup file' })
  parseIn(v: string): string {
    return v;
  }

  @Option({ flags: '--dry-run', description: 'report what would change, write nothing' })
  parseDryRun(): boolean {
    return true;
  }
}
