import 'reflect-metadata';
import { Test, type TestingModule } from '@nestjs/testing';
import { getDataSourceToken } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import { AuditAnchorService, AuditService } from '@credential-vault/nest/audit';
import type { OperationContext } from '@credential-vault/nest/common';
import { auditAnchorSecretName, CredentialEntity, CredentialsService, CredentialType } from '@credential-vault/nest/credentials';
import { emulatorSecretClient, KeyVaultEmulator } from '@credential-vault/nest/keyvault-emulator';
import { OAuthProviderRegistry, OAuthRefreshService } from '@credential-vault/nest/oauth-refresh';
import { AppModule } from '../src/app.module';

// This app's own test, run from its own directory by `npm test`: the local vault from the package's
// test entry, PostgreSQL and an OAuth server from the environment (DATABASE_URL, DATABASE_SCHEMA, OAUTH_*).
describe('an app embedding @credential-vault/nest', () => {
  let vault: KeyVaultEmulator;
  let app: TestingModule;
  const ctx: OperationContext = { tenantId: 'acme', actor: { id: 'user:alice' }, correlationId: 'scratch-1' };

  beforeAll(async () => {
    vault = await KeyVaultEmulator.start({ quiet: true });
    process.env.KEY_VAULT_URL = vault.vaultUrl;
    process.env.KEY_VAULT_CA_FILE = vault.caCertPath;
    process.env.OAUTH_PROACTIVE_REFRESH = 'false';
    app = await Test.createTestingModule({ imports: [AppModule] }).compile();
    await app.init();
  });

  afterAll(async () => {
    await app?.close();
    await vault?.stop();
  });

  it('ran the migrations of the modules it registered', async () => {
    const ds = app.get<DataSource>(getDataSourceToken());
    expect(await ds.showMigrations()).toBe(false);
    const tables = (await ds.query('SELECT table_name FROM information_schema.tables WHERE table_schema = $1', [process.env.DATABASE_SCHEMA])) as Array<{ table_name: string }>;
    expect(tables.map((t) => t.table_name)).toEqual(expect.arrayContaining(['cv_credentials', 'cv_credential_versions', 'cv_audit_log']));
  });

  it('stores a credential in the local vault and reads it back', async () => {
    const credentials = app.get(CredentialsService);
    const stored = await credentials.store(ctx, { integrationId: 'stripe', connectionId: 'acct-1', type: CredentialType.API_KEY, value: 'sk_test_scratch_0123456789' });
    expect((await credentials.get(ctx, stored.id)).value).toBe('sk_test_scratch_0123456789');
    // The value lives in the vault (one secret holding it), not in the database.
    const client = emulatorSecretClient(vault);
    const values: string[] = [];
    for await (const props of client.listPropertiesOfSecrets()) values.push((await client.getSecret(props.name)).value ?? '');
    expect(values).toContain('sk_test_scratch_0123456789');
    const rows = await app.get<DataSource>(getDataSourceToken()).getRepository(CredentialEntity).find();
    expect(rows.map((r) => r.id)).toContain(stored.id);
    expect(JSON.stringify(rows)).not.toContain('sk_test_scratch_0123456789');
  });

  it("anchors the tenant's audit chain in the vault, and verify checks the chain against it", async () => {
    // The cron job's run, now (the store is the package's Key Vault one).
    await app.get(AuditAnchorService).runOnce();
    const anchor = JSON.parse((await emulatorSecretClient(vault).getSecret(auditAnchorSecretName('acme'))).value ?? '{}') as { tenantId?: string; sequence?: number };
    expect(anchor).toMatchObject({ tenantId: 'acme', sequence: expect.any(Number) });
    expect(await app.get(AuditService).verify({ tenantId: 'acme' })).toMatchObject({ valid: true, anchorsChecked: 1 });
  });

  it('refreshes an OAuth access token at the OAuth server', async () => {
    const env = (name: string) => {
      const v = process.env[name];
      if (!v) throw new Error(`${name} is not set`);
      return v;
    };
    const credentials = app.get(CredentialsService);
    const system: OperationContext = { tenantId: 'system', actor: { id: 'system:setup' } };
    const secret = await credentials.store(system, { integrationId: 'idp', connectionId: 'client-secret', type: CredentialType.CUSTOM_SECRET, value: env('OAUTH_CLIENT_SECRET') });
    app.get(OAuthProviderRegistry).register({
      integrationId: 'idp',
      issuer: env('OAUTH_ISSUER'),
      clientId: env('OAUTH_CLIENT_ID'),
      clientSecret: { tenantId: 'system', credentialId: secret.id },
      allowInsecureRequests: true, // the test's OAuth server speaks http on loopback
    });
    const oauth = app.get(OAuthRefreshService);
    const tokens = JSON.parse(env('OAUTH_TOKENS')) as { access_token: string; refresh_token: string };
    await oauth.storeOAuthCredentials(ctx, 'idp', 'user-1', tokens);
    expect((await oauth.getAccessToken(ctx, 'idp', 'user-1')).accessToken).toBe(tokens.access_token);

    // The provider's API rejected the token: a refresh grant gets a new one, which is then served.
    const refreshed = await oauth.reportTokenRejected(ctx, 'idp', 'user-1', tokens.access_token);
    expect(refreshed.accessToken).not.toBe(tokens.access_token);
    expect((await oauth.getAccessToken(ctx, 'idp', 'user-1')).accessToken).toBe(refreshed.accessToken);
  });
});
