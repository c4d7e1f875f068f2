import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KeyVaultEmulator } from '@app/keyvault-emulator';
import { WebhookSecretsService, WebhookSecretUpdaterRegistry, type WebhookSecretUpdate } from '@app/rotation';
import { WebhookRotateCommand } from '../apps/cli/src/commands/rotation.command';
import { startTestHost, TestHost } from './support/host';

/** `cli webhook:rotate` with the host's environment and an external vault. */
describe('cli webhook:rotate', () => {
  let vault: KeyVaultEmulator;
  let vaultDir: string;
  let host: TestHost;
  const tenantId = 'cli-webhooks';
  let first: string;
  let credentialId: string;

  const cli = async (flags: Record<string, unknown>) => {
    const savedEnv = process.env;
    const out: string[] = [];
    const write = jest.spyOn(process.stdout, 'write').mockImplementation((chunk) => (out.push(String(chunk)), true));
    process.env = { ...host.env };
    try {
      await new WebhookRotateCommand().run([], flags);
      return { text: out.join(''), result: JSON.parse(out.join('')) as Record<string, unknown> };
    } finally {
      process.env = savedEnv;
      write.mockRestore();
    }
  };

  beforeAll(async () => {
    vaultDir = mkdtempSync(join(tmpdir(), 'cv-cli-webhook-vault-'));
    vault = await KeyVaultEmulator.start({ dataDir: vaultDir, port: 0, quiet: true });
    host = await startTestHost('sqlite', {
      KEY_VAULT_URL: vault.vaultUrl,
      KEY_VAULT_CREDENTIAL: 'static',
      KEY_VAULT_CA_CERT_PATH: vault.caCertPath,
      KEY_VAULT_DISABLE_CHALLENGE_RESOURCE_VERIFICATION: 'true',
      ROTATION_EXPIRY_MONITOR_ENABLED: 'false',
      ROTATION_CHECK_ENABLED: 'false',
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
});
