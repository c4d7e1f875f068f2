import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KeyVaultEmulator } from '@app/keyvault-emulator';
import { CredentialsService } from '@app/credentials';
import { WebhookSecretsService, WebhookSecretUpdaterRegistry, type WebhookSecretUpdate } from '@app/rotation';
import { createApp } from '../apps/api/src/bootstrap';
import { loadAppConfig } from '../apps/api/src/config/app.config';
import { WebhookRotateCommand } from '../apps/cli/src/commands/rotation.command';
import { externalVaultEnv, runCli } from './support/cli';
import { startTestHost, TestHost, ROTATION_JOBS_OFF } from './support/host';

/** `cli webhook:rotate` with the host's environment and an external vault. */
describe('cli webhook:rotate', () => {
  let vault: KeyVaultEmulator;
  let vaultDir: string;
  let host: TestHost;
  const tenantId = 'cli-webhooks';
  let first: string;
  let credentialId: string;

  const cli = (flags: Record<string, unknown>) => runCli(host.env, new WebhookRotateCommand(), flags);

  beforeAll(async () => {
    vaultDir = mkdtempSync(join(tmpdir(), 'cv-cli-webhook-vault-'));
    vault = await KeyVaultEmulator.start({ dataDir: vaultDir, port: 0, quiet: true });
    host = await startTestHost('sqlite', {
      ...externalVaultEnv(vault),
      ...ROTATION_JOBS_OFF,
    });
    const created = await host.app.get(WebhookSecretsService).create({ tenantId, actor: { id: 'ops' } }, { integrationId: 'stripe', connectionId: 'main' });
    first = created.secret;
    credentialId = created.credential.id;
    await host.app.close(); // the database and the vault stay; the CLI runs against them
  });

  afterAll(async () => {
    jest.restoreAllMocks();
    await host?.db.drop();
    rmSync(host?.dataDir ?? '', { recursive: true, force: true });
    await vault?.stop();
    rmSync(vaultDir, { recursive: true, force: true });
  });

  it('needs the three flags and an updater for the integration', async () => {
    await expect(cli({ tenant: tenantId, integration: 'stripe' })).rejects.toThrow(/--connection/);
    await expect(cli({ tenant: tenantId, integration: 'stripe', connection: 'main' })).rejects.toMatchObject({ codeName: 'WEBHOOK_UPDATER_NOT_REGISTERED' });
    await expect(cli({ tenant: tenantId, integration: 'stripe', connection: 'nobody' })).rejects.toMatchObject({ codeName: 'WEBHOOK_SECRET_NOT_FOUND' });
  });

  it('rotates in two phases and prints versions, never a secret', async () => {
    const pushed: WebhookSecretUpdate[] = [];
    // The CLI process builds its own registry: stand in for an updater the embedding app would register.
    jest.spyOn(WebhookSecretUpdaterRegistry.prototype, 'get').mockReturnValue({ update: async (u) => void pushed.push(u) });
    const { text, result } = await cli({ tenant: tenantId, integration: 'stripe', connection: 'main' });
    expect(result).toMatchObject({ credentialId, outcome: 'rotated', version: 2, previousVersion: 1 });
    expect(pushed).toHaveLength(1);
    expect(pushed[0]).toMatchObject({ credentialId, integrationId: 'stripe', connectionId: 'main', replacesVersion: 1 });
    expect(text).not.toContain(first);
    expect(text).not.toContain(pushed[0].newSecret);
  });

  it('--stage prints a new secret once, --activate makes it current, --discard drops one; nothing else prints a secret', async () => {
    const where = { tenant: tenantId, integration: 'stripe', connection: 'main' };
    await expect(cli({ ...where, stage: true, activate: true })).rejects.toThrow(/at most one of --stage, --activate, --discard/);
    await expect(cli({ ...where, rotation: 'r1' })).rejects.toThrow(/--rotation goes with --activate or --discard/);
    await expect(cli({ ...where, activate: true })).rejects.toMatchObject({ codeName: 'WEBHOOK_NOTHING_STAGED' });

    const staged = await cli({ ...where, stage: true });
    const secret = staged.result.secret as string;
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(staged.result).toMatchObject({ credentialId, replacesVersion: 2 });
    // The command it names runs as printed: all the flags --activate needs, not only --rotation.
    expect(staged.result.next).toContain(
      `\`npm run -s cli -- webhook:rotate --tenant ${tenantId} --integration stripe --connection main --activate --rotation ${String(staged.result.rotationId)}\``,
    );
    await expect(cli({ ...where, stage: true })).rejects.toMatchObject({ codeName: 'WEBHOOK_SECRET_ALREADY_STAGED' });

    const activated = await cli({ ...where, activate: true, rotation: staged.result.rotationId });
    expect(activated.result).toMatchObject({ credentialId, outcome: 'rotated', rotationId: staged.result.rotationId, version: 3, previousVersion: 2 });
    expect(activated.text).not.toContain(secret);

    const dropped = await cli({ ...where, stage: true });
    const discarded = await cli({ ...where, discard: true });
    expect(discarded.result).toEqual({ credentialId, rotationId: dropped.result.rotationId, version: 3 });
    expect(discarded.text).not.toContain(dropped.result.secret as string);

    // The host, started again on the same database and vault, serves and verifies with the activated secret.
    const app = await createApp(loadAppConfig(host.env));
    try {
      expect((await app.get(CredentialsService).get({ tenantId, actor: { id: 'ops' } }, credentialId)).value).toBe(secret);
      const versions = await app.get(WebhookSecretsService).versions({ tenantId, actor: { id: 'ops' } }, credentialId);
      expect(versions.map((v) => [v.version, v.state, v.lastError])).toEqual([
        [null, 'retired', 'DISCARDED'],
        [3, 'current', null],
        [2, 'live', null],
        [1, 'live', null],
      ]);
    } finally {
      await app.close();
    }
  });
});
