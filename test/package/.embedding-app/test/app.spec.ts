import 'reflect-metadata';
import { createServer, request, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Test, type TestingModule } from '@nestjs/testing';
import { getDataSourceToken } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import { AuditAnchorService, AuditService } from '@credential-vault/nest/audit';
import type { OperationContext } from '@credential-vault/nest/common';
import { auditAnchorSecretName, CredentialEntity, CredentialsService, CredentialType } from '@credential-vault/nest/credentials';
import { emulatorSecretClient, KeyVaultEmulator } from '@credential-vault/nest/keyvault-emulator';
import { OAuthProviderRegistry, OAuthRefreshService } from '@credential-vault/nest/oauth-refresh';
import { AppModule } from '../src/app.module';
import { ConnectionsController } from '../src/connections.controller';

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
    // The type as a plain string, as an app fed by JSON writes it: the published declarations take it (this app's tsc).
    const stored = await credentials.store(ctx, { integrationId: 'stripe', connectionId: 'acct-1', type: 'api_key', value: 'sk_test_scratch_0123456789' });
    expect(stored.type).toBe(CredentialType.API_KEY);
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

  it("reads through its controller's context (withCallerSignal): served to a client that stays, dropped for one that left", async () => {
    const credentials = app.get(CredentialsService);
    const stored = await credentials.store(ctx, { integrationId: 'stripe', connectionId: 'acct-2', type: CredentialType.API_KEY, value: 'sk_test_caller_0123456789' });
    const controller = new ConnectionsController(credentials);
    const check = (res: ServerResponse) => controller.check(stored.id, { user: { tenantId: 'acme', id: 'user:alice' } }, res);
    // A real HTTP server (Express's res is a Node ServerResponse) whose route is the controller's.
    let arrived!: (res: ServerResponse) => void;
    const server = createServer((_, res) => arrived(res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const send = () => {
      const exchange = new Promise<ServerResponse>((resolve) => (arrived = resolve));
      const client = request({ port: (server.address() as AddressInfo).port, host: '127.0.0.1', path: '/', agent: false });
      client.on('error', () => undefined);
      const answer = new Promise<string>((resolve) =>
        client.on('response', (res) => {
          let body = '';
          res.setEncoding('utf8').on('data', (c: string) => (body += c)).on('end', () => resolve(body));
        }),
      );
      client.end();
      return { exchange, answer, leave: () => client.destroy() };
    };
    try {
      // The client left before the route read the credential (not cached yet): the vault read is never sent.
      const gone = send();
      const res = await gone.exchange;
      gone.leave();
      await new Promise((r) => res.once('close', r));
      expect(await check(res).catch((e: unknown) => e)).toMatchObject({ code: 1019, codeName: 'CANCELLED' });
      // A client that stays is served.
      const stays = send();
      const served = await stays.exchange;
      served.end(JSON.stringify(await check(served)));
      expect(JSON.parse(await stays.answer)).toEqual({ integrationId: 'stripe', connectionId: 'acct-2', maskedValue: '***789' });
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
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
