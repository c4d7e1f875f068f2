import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuditService } from '@app/audit';
import { CredentialsService, CredentialStatus, CredentialType, ValueStoreKind } from '@app/credentials';
import { KeyVaultEmulator } from '@app/keyvault-emulator';
import { RotationPolicyService, WebhookSecretsService } from '@app/rotation';
import { DATABASE_KINDS, emulatorKeyVaultOptions } from '@app/testing';
import type { CommandRunner } from 'nest-commander';
import { Test } from '@nestjs/testing';
import { KeyVaultModule, KeyVaultProvider } from '@app/key-vault';
import { sealBundle } from '../apps/api/src/backup/backup-bundle';
import { BackupCommand, RestoreCommand } from '../apps/cli/src/commands/backup.command';
import { externalVaultEnv, runCli } from './support/cli';
import { startTestHost, TestHost, ROTATION_JOBS_OFF } from './support/host';

const tenantId = 'backup-t1';
const ctx = { tenantId, actor: { id: 'ops' } };
const past = new Date(Date.now() - 86_400_000);
const future = new Date(Date.now() + 30 * 86_400_000);

/** A host on its own database and its own external local vault; the app is closed, the data stays for the CLI. */
async function instance(kind: (typeof DATABASE_KINDS)[number]): Promise<{ host: TestHost; vault: KeyVaultEmulator; vaultDir: string }> {
  const vaultDir = mkdtempSync(join(tmpdir(), 'cv-backup-vault-'));
  const vault = await KeyVaultEmulator.start({ dataDir: vaultDir, quiet: true, operationDelayMs: 0 }); // a credential delete soft-deletes its secret
  const host = await startTestHost(kind, {
    ...externalVaultEnv(vault),
    ...ROTATION_JOBS_OFF,
    OAUTH_PROACTIVE_ENABLED: 'false',
  });
  return { host, vault, vaultDir };
}

/** Runs a command as `npm run cli -- …` would, with a host's environment (plus `extraEnv`). */
const cli = (host: TestHost, command: CommandRunner, flags: Record<string, unknown>, extraEnv: Record<string, string> = {}) =>
  runCli({ ...host.env, ...extraEnv }, command, flags);

/** Every live credential of the tenant with every version's value, keyed by (integration, connection, type). */
async function snapshot(host: TestHost) {
  const app = host.app.get(CredentialsService);
  const out: Record<string, unknown> = {};
  for (const meta of (await app.list(ctx, { limit: 100 })).items) {
    if (meta.status === CredentialStatus.REVOKED) continue; // never served, never backed up
    const all = (await app.listVersions(ctx, meta.id)).sort((a, b) => a.version - b.version);
    // Versions a revoke withdrew are not backed up: a restore numbers the others from 1.
    const versions = all.filter((v) => v.revokedAt === null);
    const offset = versions[0].version - 1;
    const values = [];
    for (const v of versions) {
      values.push({ version: v.version - offset, value: (await app.getVersion(ctx, meta.id, v.version, { allowExpired: true })).value, expiresAt: v.expiresAt?.toISOString() ?? null });
    }
    out[`${meta.integrationId}/${meta.connectionId}/${meta.type}`] = {
      status: meta.status,
      tags: meta.tags,
      valueStore: meta.valueStore,
      current: meta.version - offset,
      createdAt: meta.createdAt.toISOString(),
      values,
    };
  }
  return out;
}

describe.each(DATABASE_KINDS)('cli backup / restore (%s, real SDK, two instances)', (kind) => {
  let a: Awaited<ReturnType<typeof instance>>;
  let b: Awaited<ReturnType<typeof instance>>;
  let work: string;
  let keyFile: string;
  let before: Record<string, unknown>;

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'cv-backup-'));
    keyFile = join(work, 'backup.key');
    writeFileSync(keyFile, randomBytes(32).toString('base64'));
    a = await instance(kind);
    const credentials = a.host.app.get(CredentialsService);
    const key = await credentials.store(ctx, {
      integrationId: 'github',
      connectionId: 'main',
      type: CredentialType.API_KEY,
      value: `ghp_${'1'.repeat(30)}`,
      tags: { env: 'prod' },
      valueStore: ValueStoreKind.VAULT,
      createdAt: new Date('2024-01-02T03:04:05.000Z'),
    });
    await credentials.rotate(ctx, key.id, `ghp_${'2'.repeat(30)}`, { expiresAt: future });
    await credentials.rotate(ctx, key.id, `ghp_${'3'.repeat(30)}`);
    await credentials.store(ctx, { integrationId: 'slack', connectionId: 'ws-1', type: CredentialType.CUSTOM_SECRET, value: 'envelope \u00e9\u{1F511} value', valueStore: ValueStoreKind.ENVELOPE });
    await credentials.store(ctx, { integrationId: 'old', connectionId: 'c', type: CredentialType.BASIC_AUTH_PASSWORD, value: 'expired-password-0123', expiresAt: past });
    const reauth = await credentials.store(ctx, { integrationId: 'hubspot', connectionId: 'c', type: CredentialType.OAUTH_REFRESH_TOKEN, value: 'refresh-token-abcdef-0123' });
    await credentials.updateMetadata(ctx, reauth.id, { status: CredentialStatus.NEEDS_REAUTH });
    const revoked = await credentials.store(ctx, { integrationId: 'leaked', connectionId: 'c', type: CredentialType.API_KEY, value: 'leaked-key-0123456789' });
    await credentials.revoke(ctx, revoked.id);
    // Leaked, revoked, then rotated to a new value: active, with its leaked version 1 withdrawn for good.
    const replaced = await credentials.store(ctx, { integrationId: 'replaced', connectionId: 'c', type: CredentialType.API_KEY, value: 'withdrawn-key-0123456789', valueStore: ValueStoreKind.VAULT });
    await credentials.revoke(ctx, replaced.id);
    await credentials.rotate(ctx, replaced.id, 'replacement-key-0123456789');
    const policies = a.host.app.get(RotationPolicyService);
    await policies.set(ctx, { level: 'tenant', warnBeforeDays: 21 });
    await policies.set(ctx, { level: 'credential', target: key.id, rotateAfterDays: 30, rotation: 'manual' });
    before = await snapshot(a.host);
    await a.host.app.close();
    b = await instance(kind);
    await b.host.app.close();
  });

  afterAll(async () => {
    for (const i of [a, b]) {
      await i?.host.db.drop();
      rmSync(i?.host.dataDir ?? '', { recursive: true, force: true });
      await i?.vault.stop();
      rmSync(i?.vaultDir ?? '', { recursive: true, force: true });
    }
    rmSync(work, { recursive: true, force: true });
  });

  it('backs up, dry-runs, restores into another instance with every value and version equal, and is idempotent', async () => {
    const out = join(work, `t1-${kind}.cvbak`);
    const backup = await cli(a.host, new BackupCommand(), { tenant: tenantId, out, keyFile });
    expect(backup.result).toMatchObject({ tenantId, credentials: 5, versions: 7, policies: 2, skipped: [{ integrationId: 'leaked', reason: 'revoked' }] });
    expect(statSync(out).mode & 0o777).toBe(0o600);
    const file = readFileSync(out, 'utf8');
    for (const secret of ['ghp_1111', 'envelope', 'expired-password', 'refresh-token-abcdef', 'withdrawn-key']) expect(file).not.toContain(secret);

    const dry = await cli(b.host, new RestoreCommand(), { in: out, keyFile, dryRun: true });
    expect(dry.result.credentials).toEqual({ create: 5, append: 0, unchanged: 0, conflict: 0 });
    expect(dry.result.policies).toMatchObject({ create: 2 });

    // Nothing was written by the dry run: restore for real and compare.
    const restored = await cli(b.host, new RestoreCommand(), { in: out, keyFile });
    expect(restored.exitCode).toBeUndefined();
    expect(restored.result.credentials).toEqual({ create: 5, append: 0, unchanged: 0, conflict: 0 });
    expect(JSON.stringify(restored.result)).not.toContain('ghp_');

    const again = await cli(b.host, new RestoreCommand(), { in: out, keyFile });
    expect(again.result.credentials).toEqual({ create: 0, append: 0, unchanged: 5, conflict: 0 });
    expect(again.result.policies).toMatchObject({ create: 0, update: 0, unchanged: 2 });

    const host = await startTestHost(kind, { ...b.host.env });
    try {
      // Every value and version equal; the revoked credential stayed out; policies came along, the credential one re-pointed.
      expect(Object.keys(before)).toHaveLength(5);
      expect(await snapshot(host)).toEqual(before);
      const restoredPolicies = await host.app.get(RotationPolicyService).list(ctx);
      expect(restoredPolicies).toEqual(
        expect.arrayContaining([
          expect.objectContaining({ level: 'tenant', warnBeforeDays: 21 }),
          expect.objectContaining({ level: 'credential', rotateAfterDays: 30, rotation: 'manual' }),
        ]),
      );
      const audit = await host.app.get(AuditService).query({ tenantId, action: 'tenant_restore' });
      expect(audit.items.map((r) => r.result)).toEqual(['success', 'success']); // the two real restores, not the dry run
      expect(JSON.stringify(audit)).not.toContain('ghp_');
    } finally {
      await host.app.close();
    }
  });

  it('after a wipe it restores what is gone, appends missing versions, and reports a diverged credential as a conflict without touching it', async () => {
    const out = join(work, `t1-${kind}-wipe.cvbak`);
    await cli(a.host, new BackupCommand(), { tenant: tenantId, out, passphraseEnv: 'CV_BACKUP_PASSPHRASE' }, { CV_BACKUP_PASSPHRASE: 'correct horse battery staple' });
    const host = await startTestHost(kind, { ...b.host.env });
    let divergedValue: string;
    try {
      const credentials = host.app.get(CredentialsService);
      const items = (await credentials.list(ctx, { limit: 100 })).items;
      const byName = (i: string) => items.find((m) => m.integrationId === i)!;
      await credentials.delete(ctx, byName('github').id); // wiped
      divergedValue = 'diverged-value-0123456789';
      await credentials.rotate(ctx, byName('slack').id, divergedValue); // changed here since the backup
    } finally {
      await host.app.close();
    }
    const env = { CV_BACKUP_PASSPHRASE: 'correct horse battery staple' };
    const restored = await cli(b.host, new RestoreCommand(), { in: out, passphraseEnv: 'CV_BACKUP_PASSPHRASE' }, env);
    expect(restored.exitCode).toBe(1);
    expect(restored.result.credentials).toEqual({ create: 1, append: 0, unchanged: 3, conflict: 1 });
    expect(restored.result.items).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ integrationId: 'github', action: 'create', versions: 3 }),
        expect.objectContaining({ integrationId: 'slack', action: 'conflict', reason: 'it has more versions here than in the backup' }),
      ]),
    );
    const check = await startTestHost(kind, { ...b.host.env });
    try {
      const now = await snapshot(check);
      expect(now['github/main/api_key']).toEqual(before['github/main/api_key']);
      expect((now['slack/ws-1/custom_secret'] as { values: { value: string }[] }).values.at(-1)!.value).toBe(divergedValue);
    } finally {
      await check.app.close();
    }
    await expect(cli(b.host, new RestoreCommand(), { in: out, passphraseEnv: 'CV_BACKUP_PASSPHRASE' }, { CV_BACKUP_PASSPHRASE: 'wrong horse battery staple' })).rejects.toThrow(
      /not the key the backup was made with \(passphrase\)/,
    );
  });

  it('refuses a wrong key and an altered bundle, naming neither value nor key, and writes nothing', async () => {
    const out = join(work, `t1-${kind}-2.cvbak`);
    await cli(a.host, new BackupCommand(), { tenant: tenantId, out, keyFile });
    const otherKey = join(work, 'other.key');
    writeFileSync(otherKey, randomBytes(32).toString('hex'));
    await expect(cli(b.host, new RestoreCommand(), { in: out, keyFile: otherKey })).rejects.toThrow(/not the key the backup was made with/);

    const altered = join(work, `t1-${kind}-altered.cvbak`);
    writeFileSync(altered, readFileSync(out, 'utf8').replace(`"tenantId":"${tenantId}"`, '"tenantId":"someone-else"'));
    await expect(cli(b.host, new RestoreCommand(), { in: altered, keyFile })).rejects.toThrow(/integrity check/);
    await expect(cli(a.host, new BackupCommand(), { tenant: tenantId, out, keyFile })).rejects.toThrow(/exists/);
  });

  // A mistyped tenant got an empty bundle, a tenant_backup audit row and (with --key-secret) a key secret, exit 0.
  it('refuses a tenant with no credential and no policy override (a mistyped id), naming it: no file, no key secret, no audit row', async () => {
    const typo = `${tenantId}x`;
    const out = join(work, `typo-${kind}.cvbak`);
    const setSecrets = () => a.vault.stats().byOperation.setSecret ?? 0;
    const writesBefore = setSecrets();
    await expect(cli(a.host, new BackupCommand(), { tenant: typo, out, keySecret: `typo-backup-key-${kind}` })).rejects.toThrow(
      `tenant ${typo} has no credentials and no policy overrides: nothing to back up`,
    );
    expect(existsSync(out)).toBe(false);
    expect(setSecrets()).toBe(writesBefore);
    const host = await startTestHost(kind, { ...a.host.env });
    try {
      expect((await host.app.get(AuditService).query({ tenantId: typo })).items).toEqual([]);
    } finally {
      await host.app.close();
    }
  });

  // The directory was found missing only when the bundle was written: after the values were read and a tenant_backup
  // row recorded a success, and the error was Node's ENOENT naming a temporary file.
  it('refuses an --out in a directory that does not exist before it reads anything: no file, no audit row', async () => {
    const backups = async () => {
      const host = await startTestHost(kind, { ...a.host.env });
      try {
        return (await host.app.get(AuditService).query({ tenantId, action: 'tenant_backup' })).items.length;
      } finally {
        await host.app.close();
      }
    };
    const before = await backups();
    const out = join(work, `missing-dir-${kind}`, 't1.cvbak');
    await expect(cli(a.host, new BackupCommand(), { tenant: tenantId, out, keyFile })).rejects.toThrow(/--out: the directory .* does not exist/);
    expect(await backups()).toBe(before);
  });

  it('a Key Vault secret as the key: created on first backup, read back at its version on restore', async () => {
    const out = join(work, `t1-${kind}-kv.cvbak`);
    const backup = await cli(a.host, new BackupCommand(), { tenant: tenantId, out, keySecret: 'backup-key' });
    expect(backup.result).toMatchObject({ key: 'key-vault', credentials: 5 });
    // Restoring into the same instance (same vault): everything already matches.
    const restored = await cli(a.host, new RestoreCommand(), { in: out });
    expect(restored.result.credentials).toEqual({ create: 0, append: 0, unchanged: 5, conflict: 0 });
  });

  it("a forged bundle whose header names a tenant's credential secret as its key is refused (only a secret marked as a backup key opens a backup)", async () => {
    // A vault secret whose value someone else chose, stored as credential values are (text/plain): a tenant's
    // credential with a key it picked. A bundle "of another tenant" sealed with it names that secret as its key.
    const chosen = randomBytes(32);
    const moduleRef = await Test.createTestingModule({ imports: [KeyVaultModule.forRoot({ ...emulatorKeyVaultOptions(a.vault), isGlobal: true })] }).compile();
    const name = `cv--acme--forge--${kind}`;
    const secret = await moduleRef.get(KeyVaultProvider).setSecret(name, chosen.toString('base64'), { contentType: 'text/plain' });
    await moduleRef.close();
    const forged = join(work, `forged-${kind}.cvbak`);
    const header = { format: 'cvbak' as const, version: 1 as const, tenantId: 'globex', createdAt: new Date().toISOString(), counts: { credentials: 0, versions: 0, policies: 0 } };
    writeFileSync(forged, sealBundle({ ...header, key: { source: 'key-vault', secretName: name, secretVersion: secret.properties.version! } }, { credentials: [], policies: [] }, chosen));
    await expect(cli(a.host, new RestoreCommand(), { in: forged })).rejects.toThrow(/is not a backup key/);
  });

  it('leaves a staged webhook secret out (skipped, with why): restored without its rotation it would be a phantom connection nothing deletes', async () => {
    const host = await startTestHost(kind, { ...a.host.env });
    try {
      const webhooks = host.app.get(WebhookSecretsService);
      const target = { tenantId, integrationId: 'shop', connectionId: 'store-1', context: ctx };
      await webhooks.create(ctx, { integrationId: 'shop', connectionId: 'store-1' });
      await webhooks.stageConnection(target);
    } finally {
      await host.app.close();
    }
    const out = join(work, `staged-${kind}.cvbak`);
    const backup = await cli(a.host, new BackupCommand(), { tenant: tenantId, out, keyFile });
    const skipped = backup.result.skipped as Array<{ integrationId: string; connectionId: string; reason: string }>;
    expect(skipped).toContainEqual(expect.objectContaining({ integrationId: 'shop', connectionId: expect.stringMatching(/^whsec-pending\./), reason: expect.stringContaining('staged webhook secret') }));
    const dry = await cli(b.host, new RestoreCommand(), { in: out, keyFile, dryRun: true });
    expect(JSON.stringify(dry.result)).toContain('store-1'); // the webhook secret itself is kept
    expect(JSON.stringify(dry.result)).not.toContain('whsec-pending');
  });
});

