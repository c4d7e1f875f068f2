import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataSource } from 'typeorm';
import { AuditService } from '@app/audit';
import { CredentialsService, CredentialType, ValueStoreKind } from '@app/credentials';
import { KeyVaultEmulator } from '@app/keyvault-emulator';
import { DATABASE_KINDS } from '@app/testing';
import { DataKeyRotateCommand } from '../apps/cli/src/commands/data-key.command';
import { externalVaultEnv, runCli } from './support/cli';
import { startTestHost } from './support/host';

describe.each(DATABASE_KINDS)('cli data-key:rotate (%s)', (kind) => {
  it('seals new envelope values with the new key version, keeps old ones readable, audits, prints no key', async () => {
    const vaultDir = mkdtempSync(join(tmpdir(), 'cv-datakey-'));
    const vault = await KeyVaultEmulator.start({ dataDir: vaultDir, quiet: true });
    const env = {
      ...externalVaultEnv(vault),
      ROTATION_EXPIRY_MONITOR_ENABLED: 'false',
      ROTATION_CHECK_ENABLED: 'false',
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
