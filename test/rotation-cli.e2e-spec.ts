import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CredentialsService, CredentialType, ValueStoreKind } from '@app/credentials';
import { KeyVaultEmulator } from '@app/keyvault-emulator';
import { RotationPolicyService } from '@app/rotation';
import type { CommandRunner } from 'nest-commander';
import { OrphanVersionsCommand } from '../apps/cli/src/commands/orphan-versions.command';
import { PoliciesListCommand, RevokeCommand, RotateCommand, RotationCheckCommand } from '../apps/cli/src/commands/rotation.command';
import { externalVaultEnv, runCli } from './support/cli';
import { startTestHost, TestHost, ROTATION_JOBS_OFF } from './support/host';

/** The rotation CLI commands with the host's environment and an external vault. */
describe('cli rotation commands', () => {
  let vault: KeyVaultEmulator;
  let vaultDir: string;
  let host: TestHost;
  const tenantId = 'cli-rotation';
  const ctx = { tenantId, actor: { id: 'ops' } };
  let keyId: string;
  let otherId: string;

  const cli = (command: CommandRunner, flags: Record<string, unknown>) => runCli(host.env, command, flags);

  beforeAll(async () => {
    vaultDir = mkdtempSync(join(tmpdir(), 'cv-cli-vault-'));
    vault = await KeyVaultEmulator.start({ dataDir: vaultDir, port: 0, quiet: true });
    host = await startTestHost('sqlite', {
      ...externalVaultEnv(vault),
      ...ROTATION_JOBS_OFF,
    });
    const credentials = host.app.get(CredentialsService);
    keyId = (await credentials.store(ctx, { integrationId: 'github', connectionId: 'main', type: CredentialType.API_KEY, value: `sk_${'a'.repeat(30)}`, valueStore: ValueStoreKind.VAULT })).id;
    otherId = (await credentials.store(ctx, { integrationId: 'slack', connectionId: 'main', type: CredentialType.API_KEY, value: `sk_${'b'.repeat(30)}` })).id;
    await host.app.get(RotationPolicyService).set(ctx, { level: 'tenant', warnBeforeDays: 30 });
    await host.app.close(); // the database and the vault stay; the CLI runs against them
  });

  afterAll(async () => {
    await host?.db.drop();
    rmSync(host?.dataDir ?? '', { recursive: true, force: true });
    await vault?.stop();
    rmSync(vaultDir, { recursive: true, force: true });
  });

  it('lists policies, runs the jobs once, rotates with a generator and revokes', async () => {
    const policies = await cli(new PoliciesListCommand(), { tenant: tenantId });
    expect(policies.result).toEqual([expect.objectContaining({ level: 'tenant', warnBeforeDays: 30 })]);

    const check = await cli(new RotationCheckCommand(), {});
    expect(check.result).toMatchObject({ expiryMonitor: { acquired: true }, rotationCheck: { acquired: true } });
    // The orphan-versions job once, with the host's grace period: a whole pass over the vault's few secrets, no orphan old enough.
    const orphans = await cli(new OrphanVersionsCommand(), { runs: 5 });
    expect(orphans.exitCode).not.toBe(1);
    expect(orphans.result).toEqual([{ acquired: true, secrets: expect.any(Number), disabled: 0, failed: 0, passComplete: true }]);
    expect(orphans.result[0].secrets).toBeGreaterThanOrEqual(1);

    const rotated = await cli(new RotateCommand(), { tenant: tenantId, credential: keyId, reason: 'ticket-7' });
    expect(rotated.result).toEqual({ credentialId: keyId, fromVersion: 1, version: 2, method: 'generator' });

    const revoked = await cli(new RevokeCommand(), { tenant: tenantId, credential: keyId, reason: 'leaked' });
    expect(revoked.exitCode).not.toBe(1);
    expect(revoked.result).toEqual({ revoked: [keyId], vaultVersionsDisabled: 2, vaultFailures: [], gone: [] });

    const all = await cli(new RevokeCommand(), { tenant: tenantId, all: true, reason: 'breach', severity: 'high' });
    expect((all.result.revoked as string[]).sort()).toEqual([keyId, otherId].sort());
    await expect(cli(new RevokeCommand(), { tenant: tenantId, all: true, credential: keyId, reason: 'x' })).rejects.toThrow(/exactly one target/);
  });
});

/** The CLI beside a running host on the same SQLite file (its documented use): the host's cache hears the CLI's writes. */
describe('cli revoke beside a running host (SQLite, in-process cache)', () => {
  let vault: KeyVaultEmulator;
  let vaultDir: string;
  let host: TestHost;
  const ctx = { tenantId: 'cli-beside', actor: { id: 'ops' } };

  beforeAll(async () => {
    vaultDir = mkdtempSync(join(tmpdir(), 'cv-cli-vault-'));
    vault = await KeyVaultEmulator.start({ dataDir: vaultDir, port: 0, quiet: true });
    host = await startTestHost('sqlite', { ...externalVaultEnv(vault), ...ROTATION_JOBS_OFF });
  });

  afterAll(async () => {
    await host?.close();
    await vault?.stop();
    rmSync(vaultDir, { recursive: true, force: true });
  });

  it("stops serving a value the CLI revoked once the CLI's event is delivered, not at the cache's TTL", async () => {
    const credentials = host.app.get(CredentialsService);
    const { id } = await credentials.store(ctx, { integrationId: 'github', connectionId: 'beside', type: CredentialType.API_KEY, value: `sk_${'c'.repeat(30)}`, valueStore: ValueStoreKind.VAULT });
    await credentials.get(ctx, id); // cached in the host
    const revoked = await runCli(host.env, new RevokeCommand(), { tenant: ctx.tenantId, credential: id, reason: 'leaked' });
    expect(revoked.result).toMatchObject({ revoked: [id] });
    // The host's outbox dispatcher delivers the CLI's credential.* event (it polls every 5 s): the entry goes.
    const deadline = Date.now() + 12_000;
    let outcome: unknown;
    while (Date.now() < deadline) {
      outcome = await credentials.get(ctx, id).then(() => 'served', (e: { code?: number }) => e.code);
      if (outcome !== 'served') break;
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(outcome).toBe(2009); // REVOKED
  });
});
