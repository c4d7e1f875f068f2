import 'reflect-metadata';
import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import { Test, type TestingModule } from '@nestjs/testing';
import { getDataSourceToken } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import type { OperationContext } from '@credential-vault/nest/common';
import { CredentialsService, CredentialType } from '@credential-vault/nest/credentials';
import { KeyVaultEmulator } from '@credential-vault/nest/keyvault-emulator';
import { KeysService } from '@credential-vault/nest/keys';
import { MigrationRunner, SqlLegacySource } from '@credential-vault/nest/migration';
import {
  ExpiryMonitorService,
  RevocationService,
  RotationCheckService,
  RotationPolicyService,
  WebhookSecretsService,
  WebhookSecretUpdaterRegistry,
} from '@credential-vault/nest/rotation';
import { RotationMigrationKeysModule } from './rotation-migration-keys.module';

// The other modules an embedder wires (same PostgreSQL schema as app.spec.ts, a tenant of its own).
describe('an app embedding Rotation, Migration and Keys', () => {
  let vault: KeyVaultEmulator;
  let app: TestingModule;
  const legacyKey = randomBytes(32);
  const ctx: OperationContext = { tenantId: 'globex', actor: { id: 'user:bob' }, correlationId: 'scratch-2' };
  const day = 86_400_000;

  beforeAll(async () => {
    vault = await KeyVaultEmulator.start({ quiet: true });
    process.env.KEY_VAULT_URL = vault.vaultUrl;
    process.env.KEY_VAULT_CA_FILE = vault.caCertPath;
    process.env.LEGACY_ENCRYPTION_KEY = legacyKey.toString('hex');
    app = await Test.createTestingModule({ imports: [RotationMigrationKeysModule] }).compile();
    await app.init();
  });

  afterAll(async () => {
    await app?.close();
    await vault?.stop();
  });

  it('rotates a credential due by policy through its handler (the rotation check), warns of one expiring (the expiry monitor), revokes it', async () => {
    const credentials = app.get(CredentialsService);
    const key = await credentials.store(ctx, { integrationId: 'stripe', connectionId: 'acct-1', type: CredentialType.API_KEY, value: 'sk_live_original_0123456789', createdAt: new Date(Date.now() - 100 * day) });
    await app.get(RotationPolicyService).set(ctx, { level: 'integration', target: 'stripe', rotateAfterDays: 30, rotation: 'automatic' });
    expect(await app.get(RotationCheckService).runOnce()).toMatchObject({ acquired: true, rotated: 1, failed: 0 });
    expect((await credentials.get(ctx, key.id)).value).toBe('sk_live_minted_after_v1_0123456789');

    const expiring = await credentials.store(ctx, { integrationId: 'github', connectionId: 'org-1', type: CredentialType.API_KEY, value: 'ghp_expiring_0123456789', expiresAt: new Date(Date.now() + 5 * day) });
    expect(await app.get(ExpiryMonitorService).runOnce()).toMatchObject({ acquired: true, warned: 1 });
    expect((await app.get(RevocationService).revoke(ctx, { credentialId: expiring.id }, { reason: 'leaked' })).revoked).toHaveLength(1);
    await expect(credentials.get(ctx, expiring.id)).rejects.toMatchObject({ codeName: 'REVOKED' });
  });

  it('rotates a webhook secret through its updater: the old secret still verifies in the overlap window', async () => {
    const webhooks = app.get(WebhookSecretsService);
    const pushed: string[] = [];
    app.get(WebhookSecretUpdaterRegistry).register('shopify', { update: async ({ rotationId }) => void pushed.push(rotationId) });
    const { credential } = await webhooks.create(ctx, { integrationId: 'shopify', connectionId: 'shop-1' });
    const target = { tenantId: ctx.tenantId, integrationId: 'shopify', connectionId: 'shop-1' };
    const body = '{"order":1}';
    // The headers signWebhook gives are what verifyWebhook takes (a receiver's test hands them over as they are).
    const before = await webhooks.signWebhook(target, 'msg_1', new Date(), body);
    expect(await webhooks.rotate(ctx, credential.id)).toMatchObject({ outcome: 'rotated', version: 2, previousVersion: 1 });
    expect(pushed).toHaveLength(1);
    expect(await webhooks.verifyWebhook(target, body, before)).toMatchObject({ version: 1 });
    expect(await webhooks.verifyWebhook(target, body, await webhooks.signWebhook(target, 'msg_2', new Date(), body))).toMatchObject({ version: 2 });
  });

  it('migrates legacy AES-256-GCM columns into the vault (a mapping that does not fit says what to set)', async () => {
    const ds = app.get<DataSource>(getDataSourceToken());
    const encrypt = (value: string) => {
      const iv = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', legacyKey, iv);
      const ct = Buffer.concat([cipher.update(value, 'utf8'), cipher.final()]);
      return `${iv.toString('hex')}:${cipher.getAuthTag().toString('hex')}:${ct.toString('hex')}`;
    };
    // The legacy table, in this app's schema (schema.table: the DataSource's connections do not search it).
    const table = `${process.env.DATABASE_SCHEMA}.legacy_integrations`;
    await ds.query(`CREATE TABLE ${table} (id INTEGER PRIMARY KEY, org_id TEXT, provider TEXT, account TEXT, api_key_enc TEXT)`);
    for (let i = 1; i <= 3; i++) await ds.query(`INSERT INTO ${table} VALUES ($1, $2, $3, $4, $5)`, [i, 'globex', 'sendgrid', `acct-${i}`, encrypt(`SG.legacy_${i}_0123456789`)]);
    const mapping = { table, tenantColumn: 'org_id', integrationColumn: 'provider', connectionColumn: 'account', fields: { api_key: 'api_key_enc' } };
    // A table without the default date columns: the error names them and their options.
    await expect(app.get(MigrationRunner).run(new SqlLegacySource(ds, mapping))).rejects.toThrow(/no column created_at \(mapping\.createdAtColumn\), expires_at \(mapping\.expiresAtColumn\)/);
    const summary = await app.get(MigrationRunner).run(new SqlLegacySource(ds, { ...mapping, createdAtColumn: null, expiresAtColumn: null }));
    expect(summary).toMatchObject({ totalConnections: 3, successfulMigrations: 3, failedMigrations: 0, totalCredentialsMigrated: 3 });
    const migrated = await app.get(CredentialsService).list(ctx, { integrationId: 'sendgrid' });
    expect(migrated.items.map((c) => c.connectionId).sort()).toEqual(['acct-1', 'acct-2', 'acct-3']);
    expect((await app.get(CredentialsService).get(ctx, migrated.items[0].id)).value).toMatch(/^SG\.legacy_\d_0123456789$/);
  });

  it('signs with a vault key and verifies the signature locally', async () => {
    const keys = app.get(KeysService);
    await keys.createKey(ctx, { name: 'invoices', type: 'RSA' });
    const digest = createHash('sha256').update('invoice 42').digest();
    const { signature } = await keys.sign(ctx, { name: 'invoices', algorithm: 'RS256', digest });
    expect(await keys.verify(ctx, { name: 'invoices', algorithm: 'RS256', digest, signature })).toMatchObject({ valid: true, verifiedIn: 'local' });
    const other = createHash('sha256').update('invoice 43').digest();
    expect(await keys.verify(ctx, { name: 'invoices', algorithm: 'RS256', digest: other, signature })).toMatchObject({ valid: false });
  });
});
