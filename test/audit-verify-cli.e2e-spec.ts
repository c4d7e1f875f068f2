import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataSource } from 'typeorm';
import { AuditAnchorService, AuditResult, AuditService } from '@app/audit';
import { KeyVaultEmulator } from '@app/keyvault-emulator';
import { AuditVerifyCommand } from '../apps/cli/src/commands/audit-verify.command';
import { externalVaultEnv, runCli } from './support/cli';
import { spawnCli } from './support/cli-process';
import { startTestHost, TestHost } from './support/host';
import { writeRequireHook } from './support/swc-require-hook';

/** `cli audit:verify` with the host's environment and an external vault also checks the Key Vault anchors. */
describe('cli audit:verify', () => {
  let vault: KeyVaultEmulator;
  let vaultDir: string;
  let host: TestHost;
  const tenantId = 'cli-anchored';

  /** Runs the command as `npm run cli -- audit:verify` would, with the host's environment. */
  const verify = async () => {
    const warn = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      return await runCli(host.env, new AuditVerifyCommand(), {});
    } finally {
      warn.mockRestore();
    }
  };

  beforeAll(async () => {
    vaultDir = mkdtempSync(join(tmpdir(), 'cv-cli-vault-'));
    vault = await KeyVaultEmulator.start({ dataDir: vaultDir, port: 0, quiet: true });
    host = await startTestHost('sqlite', {
      ...externalVaultEnv(vault),
    });
    const audit = host.app.get(AuditService);
    for (let i = 0; i < 4; i++) {
      await audit.record({ action: 'store', context: { tenantId, actor: { id: 'ops' } }, resource: `cred-${i}`, result: AuditResult.SUCCESS });
    }
    expect(await host.app.get(AuditAnchorService).runOnce()).toMatchObject({ acquired: true, anchored: 1 });
    await host.app.close(); // the database and the vault stay; the CLI runs against them
  });

  afterAll(async () => {
    await host?.db.drop();
    rmSync(host?.dataDir ?? '', { recursive: true, force: true });
    await vault?.stop();
    rmSync(vaultDir, { recursive: true, force: true });
  });

  it('exits 0 on intact chains, checking their anchors', async () => {
    const { exitCode, result } = await verify();
    expect(exitCode).not.toBe(1);
    expect(result).toMatchObject({ valid: true, anchorsChecked: 1 });
  });

  // A mistyped tenant printed `valid: true, checked: 0` and exited 0: after an incident an operator read "valid".
  it('--tenant naming a tenant with no audit row (a mistyped id) exits 1 with one line naming it, printing no result', async () => {
    const hook = writeRequireHook(vaultDir);
    const typo = spawnCli(hook, ['audit:verify', '--tenant', `${tenantId}x`], host.env);
    const r = await typo.exited;
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr.trim().split('\n')).toEqual([
      `AuditTenantWithoutRowsError: tenant ${tenantId}x has no audit rows and no anchor: nothing was verified (check --tenant; a tenant that has done nothing audited yet has none)`,
    ]);
    // The tenant's own chain, given the same way, verifies.
    const real = await spawnCli(hook, ['audit:verify', '--tenant', tenantId], host.env).exited;
    expect([real.code, JSON.parse(real.stdout)]).toEqual([0, expect.objectContaining({ valid: true, checked: 4, chains: 1, anchorsChecked: 1 })]);
  }, 120_000);

  it('exits 1 and names the truncation once the newest rows are deleted', async () => {
    const db = await new DataSource({ type: 'better-sqlite3', database: host.env.DATABASE_PATH }).initialize();
    await db.query('DELETE FROM cv_audit_log WHERE tenant_id = ? AND sequence > 2', [tenantId]);
    await db.destroy();
    const { exitCode, result } = await verify();
    expect(exitCode).toBe(1);
    expect(result).toMatchObject({ valid: false, firstBad: { tenantId, sequence: 4, reason: 'truncated' } });
  });

  it('with the embedded local vault: verifies the chains, and says the anchors were not checked and where they are, without assuming a running host', async () => {
    // The host ran on an external vault: its environment names no embedded one (the default, ./data/vault on 8443, is the repository's).
    const embedded = {
      ...Object.fromEntries(Object.entries(host.env).filter(([name]) => !name.startsWith('KEY_VAULT_'))),
      EMULATOR_PORT: '0',
      EMULATOR_DATA_DIR: join(host.dataDir, 'vault'),
    };
    const said: string[] = [];
    const warn = jest.spyOn(process.stderr, 'write').mockImplementation((chunk) => (said.push(String(chunk)), true));
    try {
      const { result } = await runCli(embedded, new AuditVerifyCommand(), {});
      expect(result).toMatchObject({ anchorsChecked: 0 });
    } finally {
      warn.mockRestore();
    }
    const text = said.join('');
    expect(text).toContain('Anchors not checked');
    expect(text).toContain('POST /v1/audit/verify');
    expect(text).toContain('KEY_VAULT_URL');
    expect(text).not.toContain('belongs to the running host');
  });
});

