import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataSource } from 'typeorm';
import { AuditService } from '@app/audit';
import { CredentialsService, CredentialType, DataKeyNotFoundError, DataKeyService, ValueStoreKind } from '@app/credentials';
import { KeyVaultKeysProvider, KeyVaultProvider } from '@app/key-vault';
import { KeyVaultEmulator } from '@app/keyvault-emulator';
import { DATABASE_KINDS } from '@app/testing';
import { DataKeyReencryptCommand, DataKeyRewrapCommand, DataKeyRotateCommand } from '../apps/cli/src/commands/data-key.command';
import { externalVaultEnv, runCli } from './support/cli';
import { switchedTo } from './support/backends';
import { startTestHost, ROTATION_JOBS_OFF } from './support/host';

describe.each(DATABASE_KINDS)('cli data-key:rotate (%s)', (kind) => {
  it('seals new envelope values with the new key version, keeps old ones readable, audits, prints no key', async () => {
    const vaultDir = mkdtempSync(join(tmpdir(), 'cv-datakey-'));
    const vault = await KeyVaultEmulator.start({ dataDir: vaultDir, quiet: true });
    const env = {
      ...externalVaultEnv(vault),
      ...ROTATION_JOBS_OFF,
    };
    const ctx = { tenantId: 'dk-tenant', actor: { id: 'ops' } };
    let host = await startTestHost(kind, env);
    try {
      const before = await host.app.get(CredentialsService).store(ctx, { integrationId: 'a', connectionId: 'c', type: CredentialType.CUSTOM_SECRET, value: 'old-envelope-value-123', valueStore: ValueStoreKind.ENVELOPE });
      await host.app.close();

      const printed = (await runCli(host.env, new DataKeyRotateCommand(), { tenant: ctx.tenantId })).result as { secretName: string; version: string };
      expect(printed).toEqual({ tenantId: ctx.tenantId, secretName: expect.stringMatching(/^cv-k/), version: expect.stringMatching(/^[0-9a-f]{32}$/) });

      host = await startTestHost(kind, { ...host.env });
      const credentials = host.app.get(CredentialsService);
      const after = await credentials.store(ctx, { integrationId: 'b', connectionId: 'c', type: CredentialType.CUSTOM_SECRET, value: 'new-envelope-value-456', valueStore: ValueStoreKind.ENVELOPE });
      const keyVersionOf = async (id: string) =>
        ((await host.app.get(DataSource).query('SELECT credential_id, data_key_version FROM cv_envelope_values')) as { credential_id: string; data_key_version: string }[]).find(
          (v) => v.credential_id === id,
        )?.data_key_version;
      expect(await keyVersionOf(after.id)).toBe(printed.version);
      const oldVersion = await keyVersionOf(before.id);
      expect(oldVersion).not.toBe(printed.version);
      // The old value is still readable under its own key version, and is re-sealed with the new one as it is read.
      expect((await credentials.get(ctx, before.id)).value).toBe('old-envelope-value-123');
      expect((await credentials.get(ctx, after.id)).value).toBe('new-envelope-value-456');
      expect(await keyVersionOf(before.id)).toBe(printed.version);
      const audit = await host.app.get(AuditService).query({ tenantId: ctx.tenantId, action: 'data_key_rotate' });
      expect(audit.items).toHaveLength(1);
    } finally {
      await host.app.close().catch(() => undefined);
      await host.db.drop();
      rmSync(host.dataDir, { recursive: true, force: true });
      await vault.stop();
      rmSync(vaultDir, { recursive: true, force: true });
    }
  });
});

/** Runs `work` with a host on an external local vault (the CLI cannot use the host's embedded one), then cleans up. */
async function withExternalVault(kind: (typeof DATABASE_KINDS)[number], extraEnv: Record<string, string>, work: (h: { host: Awaited<ReturnType<typeof startTestHost>>; restart: () => Promise<void> }) => Promise<void>) {
  const vaultDir = mkdtempSync(join(tmpdir(), 'cv-datakey-'));
  const vault = await KeyVaultEmulator.start({ dataDir: vaultDir, quiet: true });
  const env = { ...externalVaultEnv(vault), ...ROTATION_JOBS_OFF, ...extraEnv };
  // A restarted host keeps the first one's database and files (its env names them); each made its own to clean up.
  const hosts = [await startTestHost(kind, env)];
  const h = { host: hosts[0], restart: async () => undefined };
  h.restart = async () => {
    await h.host.app.close().catch(() => undefined);
    h.host = await startTestHost(kind, { ...hosts[0].env });
    hosts.push(h.host);
  };
  try {
    await work(h);
  } finally {
    for (const host of hosts) {
      await host.app.close().catch(() => undefined);
      await host.db.drop();
      rmSync(host.dataDir, { recursive: true, force: true });
    }
    await vault.stop();
    rmSync(vaultDir, { recursive: true, force: true });
  }
}

const envelopeKeyVersions = async (ds: DataSource) =>
  ((await ds.query('SELECT data_key_version FROM cv_envelope_values')) as { data_key_version: string }[]).map((r) => r.data_key_version);

// A mistyped tenant id got a data key of its own (a vault secret or a wrapped row, and an audit row), printed as a success.
describe.each(DATABASE_KINDS)('cli data-key:rotate of a tenant with no data key (%s)', (kind) => {
  it.each([['vault secret', false], ['wrapped', true]])('(%s data keys) is refused naming the tenant, and writes nothing (data-key:reencrypt too)', async (_mode, wrapped) => {
    const kek = `cv-kek-typo-${Date.now().toString(36)}`;
    await withExternalVault(kind, wrapped ? { ENVELOPE_KEY_ENCRYPTION_KEY: kek } : {}, async (h) => {
      if (wrapped) await h.host.app.get(KeyVaultKeysProvider).createKey(kek, { keyType: 'RSA', keySize: 2048, keyOps: ['wrapKey', 'unwrapKey'] });
      const ctx = { tenantId: 'dk-acme', actor: { id: 'ops' } };
      await h.host.app.get(CredentialsService).store(ctx, { integrationId: 'a', connectionId: 'c', type: CredentialType.CUSTOM_SECRET, value: 'typo-envelope-value-789', valueStore: ValueStoreKind.ENVELOPE });
      await h.host.app.close();

      const typo = 'dk-acne';
      const refused = await runCli(h.host.env, new DataKeyRotateCommand(), { tenant: typo }).catch((e: Error) => e);
      expect(refused).toBeInstanceOf(DataKeyNotFoundError);
      expect((refused as Error).message).toContain(`tenant ${typo} has no data key`);
      // data-key:reencrypt too: no run over nothing audited for it.
      await expect(runCli(h.host.env, new DataKeyReencryptCommand(), { tenant: typo })).rejects.toThrow(`tenant ${typo} has no data key`);
      // The tenant that has one still rotates.
      expect((await runCli(h.host.env, new DataKeyRotateCommand(), { tenant: ctx.tenantId })).result).toMatchObject({ tenantId: ctx.tenantId });

      await h.restart();
      const vault = h.host.app.get(KeyVaultProvider);
      expect((await vault.listSecretVersions(h.host.app.get(DataKeyService).nameFor(typo))).items).toEqual([]);
      expect(await h.host.app.get(DataSource).query(`SELECT tenant_id FROM cv_wrapped_data_keys WHERE tenant_id = '${typo}'`)).toEqual([]);
      expect((await h.host.app.get(AuditService).query({ tenantId: typo })).items).toEqual([]);
      expect((await h.host.app.get(AuditService).query({ tenantId: ctx.tenantId, action: 'data_key_rotate' })).items).toHaveLength(1);
    });
  }, 60_000);
});

describe.each(DATABASE_KINDS)('cli data-key:reencrypt (%s)', (kind) => {
  it('moves every envelope value of the tenant to its current data key without reading them over the API, audits counts, prints no value', async () => {
    await withExternalVault(kind, {}, async (h) => {
      const ctx = { tenantId: 'dk-re', actor: { id: 'ops' } };
      const values = ['re-value-aaaaaaaaaaaa-1', 're-value-bbbbbbbbbbbb-2', 're-value-cccccccccccc-3'];
      const ids: string[] = [];
      for (const [i, value] of values.entries()) {
        ids.push((await h.host.app.get(CredentialsService).store(ctx, { integrationId: 'a', connectionId: `c${i}`, type: CredentialType.CUSTOM_SECRET, value, valueStore: ValueStoreKind.ENVELOPE })).id);
      }
      await h.host.app.close();
      const rotated = (await runCli(h.host.env, new DataKeyRotateCommand(), { tenant: ctx.tenantId })).result as { version: string };
      const out = await runCli(h.host.env, new DataKeyReencryptCommand(), { tenant: ctx.tenantId });
      // Replicas learn the new version within ENVELOPE_KEY_REFRESH_MS (1 h by default): not settled yet, and it says until when.
      expect(out.result).toEqual({ tenantId: ctx.tenantId, reencrypted: 3, alreadyCurrent: 0, failed: [], settled: false, settlesAt: expect.any(String) });
      expect(Date.parse(out.result.settlesAt) - Date.now()).toBeGreaterThan(50 * 60_000);
      expect(out.exitCode).toBeUndefined();
      for (const v of values) expect(out.text).not.toContain(v);
      expect((await runCli(h.host.env, new DataKeyReencryptCommand(), { tenant: ctx.tenantId })).result).toMatchObject({ reencrypted: 0, alreadyCurrent: 3, failed: [] });

      await h.restart();
      // Before any read: every row is under the new version (lazy re-encryption would have needed a read of each).
      expect(await envelopeKeyVersions(h.host.app.get(DataSource))).toEqual([rotated.version, rotated.version, rotated.version]);
      for (const [i, id] of ids.entries()) expect((await h.host.app.get(CredentialsService).get(ctx, id)).value).toBe(values[i]);
      const audit = await h.host.app.get(AuditService).query({ tenantId: ctx.tenantId, action: 'data_key_reencrypt' });
      expect(audit.items.map((r) => r.details)).toEqual(expect.arrayContaining([{ reencrypted: 3, alreadyCurrent: 0, failed: 0 }, { reencrypted: 0, alreadyCurrent: 3, failed: 0 }]));
    });
  });
});

describe.each(DATABASE_KINDS)('cli data-key:rewrap (%s)', (kind) => {
  it('re-wraps every data key under the key-encryption key\'s latest version, so the older one can be disabled; dry run counts; audited per tenant', async () => {
    const kek = `cv-kek-cli-${Date.now().toString(36)}`;
    await withExternalVault(kind, { ENVELOPE_KEY_ENCRYPTION_KEY: kek }, async (h) => {
      const vaultKeys = h.host.app.get(KeyVaultKeysProvider);
      const v1 = (await vaultKeys.createKey(kek, { keyType: 'RSA', keySize: 2048, keyOps: ['wrapKey', 'unwrapKey'] })).properties.version;
      const stored: Array<{ tenantId: string; id: string; value: string }> = [];
      for (const tenantId of ['rw-a', 'rw-b']) {
        const value = `rewrap-value-${tenantId}-0123456789`;
        const c = await h.host.app.get(CredentialsService).store({ tenantId, actor: { id: 'ops' } }, { integrationId: 'a', connectionId: 'c', type: CredentialType.CUSTOM_SECRET, value, valueStore: ValueStoreKind.ENVELOPE });
        stored.push({ tenantId, id: c.id, value });
      }
      const v2 = (await vaultKeys.rotateKey(kek)).properties.version;
      await h.host.app.close();

      const dry = await runCli(h.host.env, new DataKeyRewrapCommand(), { dryRun: true });
      expect(dry.result).toMatchObject({ dryRun: true, keyEncryptionKey: kek, kekVersion: v2, examined: 0, rewrapped: 0, remaining: 2, settled: false });
      expect(Date.parse(dry.result.settlesAt) - Date.now()).toBeGreaterThan(50 * 60_000);
      const one = await runCli(h.host.env, new DataKeyRewrapCommand(), { tenant: 'rw-a' });
      expect(one.result).toMatchObject({ kekVersion: v2, examined: 1, rewrapped: 1, rewrappedByTenant: { 'rw-a': 1 }, failed: [], remaining: 0 });
      const all = await runCli(h.host.env, new DataKeyRewrapCommand(), {});
      expect(all.result).toMatchObject({ examined: 1, rewrapped: 1, rewrappedByTenant: { 'rw-b': 1 }, failed: [], remaining: 0 });
      expect(all.exitCode).toBeUndefined();
      expect(all.text).not.toMatch(/"(key|wrappedKey)"/);

      await h.restart();
      const rows = (await h.host.app.get(DataSource).query('SELECT tenant_id, kek_version FROM cv_wrapped_data_keys ORDER BY tenant_id')) as { tenant_id: string; kek_version: string }[];
      expect(rows).toEqual([{ tenant_id: 'rw-a', kek_version: v2 }, { tenant_id: 'rw-b', kek_version: v2 }]);
      // The proof: with the old version disabled, a process that never unwrapped them reads every value.
      await h.host.app.get(KeyVaultKeysProvider).updateKeyProperties(kek, v1, { enabled: false });
      for (const s of stored) expect((await h.host.app.get(CredentialsService).get({ tenantId: s.tenantId, actor: { id: 'ops' } }, s.id)).value).toBe(s.value);
      const audit = await h.host.app.get(AuditService).query({ tenantId: 'rw-b', action: 'data_key_rewrap' });
      expect(audit.items.map((r) => r.details)).toEqual([{ kekVersion: v2, rewrapped: 1, failed: 0 }]);
    });
  }, 90_000);

  it('a data key its old version can no longer unwrap is reported by tenant and version (exit 1), the run goes on, and a later run finishes it', async () => {
    const kek = `cv-kek-cli-${Date.now().toString(36)}`;
    // Replicas re-read the latest version every second here: a run a second after the rotation is settled.
    await withExternalVault(kind, { ENVELOPE_KEY_ENCRYPTION_KEY: kek, ENVELOPE_KEY_REFRESH_MS: '1000' }, async (h) => {
      const vaultKeys = h.host.app.get(KeyVaultKeysProvider);
      const v1 = (await vaultKeys.createKey(kek, { keyType: 'RSA', keySize: 2048, keyOps: ['wrapKey', 'unwrapKey'] })).properties.version;
      await h.host.app.get(CredentialsService).store({ tenantId: 'rw-early', actor: { id: 'ops' } }, { integrationId: 'a', connectionId: 'c', type: CredentialType.CUSTOM_SECRET, value: 'early-value-0123456789', valueStore: ValueStoreKind.ENVELOPE });
      await vaultKeys.rotateKey(kek);
      // The operator disables the old version too early.
      await vaultKeys.updateKeyProperties(kek, v1, { enabled: false });
      await h.host.app.close();

      const failed = await runCli(h.host.env, new DataKeyRewrapCommand(), {});
      expect(failed.exitCode).toBe(1);
      expect(failed.result).toMatchObject({ examined: 1, rewrapped: 0, remaining: 1, failed: [{ tenantId: 'rw-early', kekVersion: v1, error: expect.stringMatching(/^CredentialsConfigurationError/) }] });

      await h.restart();
      await h.host.app.get(KeyVaultKeysProvider).updateKeyProperties(kek, v1, { enabled: true });
      await h.host.app.close();
      await new Promise((r) => setTimeout(r, 1_100));
      const again = await runCli(h.host.env, new DataKeyRewrapCommand(), {});
      expect(again).toMatchObject({ exitCode: undefined, result: { rewrapped: 1, remaining: 0, failed: [], settled: true } });
      await h.restart();
      expect((await h.host.app.get(AuditService).query({ tenantId: 'rw-early', action: 'data_key_rewrap' })).items.map((r) => r.result)).toEqual(expect.arrayContaining(['failure', 'success']));
    });
  }, 90_000);

  it('without a key-encryption key it refuses naming the variable an operator sets, before opening the database', async () => {
    await withExternalVault(kind, {}, async (h) => {
      await h.host.app.close();
      const refused = await runCli(h.host.env, new DataKeyRewrapCommand(), {}).catch((e: Error) => e);
      expect(refused).toBeInstanceOf(Error);
      expect((refused as Error).message).toContain('ENVELOPE_KEY_ENCRYPTION_KEY is not set');
      // The lib's option name means nothing to an operator of the stock host.
      expect((refused as Error).message).not.toContain('envelope.keyEncryptionKey');
      // Checked from the configuration alone: a database that cannot be opened is not reached.
      const unreachable = switchedTo(h.host.env, { DATABASE_TYPE: 'postgres', DATABASE_URL: 'postgres://cv:pw@127.0.0.1:1/none' });
      await expect(runCli(unreachable, new DataKeyRewrapCommand(), {})).rejects.toThrow('ENVELOPE_KEY_ENCRYPTION_KEY is not set');
    });
  });
});
