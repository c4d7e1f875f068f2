/**
 * Integration: the expiry the vault value store gives Key Vault — through the real SDK against the
 * local vault. The SDK sends dates as 32-bit seconds, so an expiry past 2038-01-19 would be recorded
 * in the vault as a date before 1970, and one before 1901-12-13 as a later one; the store leaves such an
 * expiry off (the service enforces expiry from its own metadata either way). And a write past the last secret name generation.
 */
import { randomBytes } from 'node:crypto';
import { Test, type TestingModule } from '@nestjs/testing';
import type { OperationContext } from '@app/common';
import { KeyVaultProvider } from '@app/key-vault';
import { KeyVaultEmulator } from '@app/keyvault-emulator';
import { createTestDatabase, credentialsStackImports, type TestDatabase } from '@app/testing';
import { DataSource } from 'typeorm';
import { CredentialErrorCode, CredentialsService, CredentialType } from '../index';
import { MAX_GENERATION } from '../naming/vault-secret-name';
import { VaultValueStore } from './vault-value-store';

describe('vault value store: the secret expiry it records, the last generation', () => {
  let emu: KeyVaultEmulator;
  let db: TestDatabase;
  let app: TestingModule;
  const ctx: OperationContext = { tenantId: `exp-${randomBytes(3).toString('hex')}`, actor: { id: 'user:e' } };

  beforeAll(async () => {
    emu = await KeyVaultEmulator.start({ quiet: true, throttle: false });
    db = await createTestDatabase('sqlite');
    app = await Test.createTestingModule({ imports: credentialsStackImports({ database: db.options, vault: emu }) }).compile();
    await app.init();
  });

  afterAll(async () => {
    await app?.close();
    await emu?.stop();
    await db?.drop();
  });

  const vaultExpiryOf = async (credentialId: string) => {
    const [row] = (await app.get(DataSource).query('SELECT vault_secret_name AS name FROM cv_credential_versions WHERE credential_id = ?', [credentialId])) as Array<{ name: string }>;
    return (await app.get(KeyVaultProvider).getSecret(row.name)).properties.expiresOn;
  };

  it('records an expiry the SDK can carry, and none (never a wrapped pre-1970 date) past 2038-01-19', async () => {
    const svc = app.get(CredentialsService);
    const soon = new Date('2031-05-01T00:00:00Z');
    const a = await svc.store(ctx, { integrationId: 'gh', connectionId: 'a', type: CredentialType.API_KEY, value: `k-${randomBytes(12).toString('hex')}`, expiresAt: soon });
    expect((await vaultExpiryOf(a.id))?.toISOString()).toBe(soon.toISOString());

    const late = new Date('2099-01-01T00:00:00Z');
    const b = await svc.store(ctx, { integrationId: 'gh', connectionId: 'b', type: CredentialType.API_KEY, value: `k-${randomBytes(12).toString('hex')}`, expiresAt: late });
    expect(await vaultExpiryOf(b.id)).toBeUndefined();
    // The credential itself keeps its real expiry and reads as active.
    expect((await svc.getMetadata(ctx, b.id)).expiresAt?.toISOString()).toBe(late.toISOString());
    expect((await svc.get(ctx, b.id)).metadata.status).toBe('active');
  });

  it('records none before 1901-12-13T20:45:52Z either (the SDK wrapped it to a later date: 1901-12-13T20:45:51Z became 2038)', async () => {
    const svc = app.get(CredentialsService);
    const early = new Date('1901-12-13T20:45:51Z');
    const c = await svc.store(ctx, { integrationId: 'gh', connectionId: 'c', type: CredentialType.API_KEY, value: `k-${randomBytes(12).toString('hex')}`, expiresAt: early });
    expect(await vaultExpiryOf(c.id)).toBeUndefined();
    expect((await svc.getMetadata(ctx, c.id)).expiresAt?.toISOString()).toBe(early.toISOString());
    await expect(svc.get(ctx, c.id)).rejects.toMatchObject({ codeName: 'EXPIRED' });
  });

  it('a write that would roll over past the last generation name is GENERATIONS_EXHAUSTED (2015) and sends nothing', async () => {
    const vault = app.get(KeyVaultProvider);
    const sets = jest.spyOn(vault, 'setSecret');
    try {
      const request = {
        tenantId: ctx.tenantId, credentialId: '6f1c2d3e-4b5a-4c6d-8e7f-8091a2b3c4d5', integrationId: 'gh', connectionId: 'full', type: CredentialType.API_KEY,
        version: 2, value: `k-${randomBytes(12).toString('hex')}`, vaultGeneration: MAX_GENERATION, versionsInGeneration: 10_000,
      };
      await expect(app.get(VaultValueStore).write(request)).rejects.toMatchObject({
        code: CredentialErrorCode.GENERATIONS_EXHAUSTED,
        codeName: 'GENERATIONS_EXHAUSTED',
        credentialId: request.credentialId,
        message: expect.not.stringContaining(request.value),
      });
      expect(sets).not.toHaveBeenCalled();
    } finally {
      sets.mockRestore();
    }
  });
});
