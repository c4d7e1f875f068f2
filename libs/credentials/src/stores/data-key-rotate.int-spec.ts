/**
 * Integration: `DataKeyService.rotate` refuses a tenant with no data key (a mistyped id) — but only that one. With the
 * real SDK against the local vault (secret data keys, no key-encryption key): a key secret whose version list answers
 * an empty first page with a nextLink (as Azure sometimes does) still rotates, a disabled latest version still
 * rotates, and a key secret soft-deleted at the vault is refused saying so (recover it), nothing written.
 */
import { Test, type TestingModule } from '@nestjs/testing';
import { KeyVaultProvider, type SecretProperties } from '@app/key-vault';
import { KeyVaultEmulator } from '@app/keyvault-emulator';
import { createTestDatabase, credentialsStackImports, type TestDatabase } from '@app/testing';
import { CredentialErrorCode, CredentialsService, CredentialType, DataKeyService, ValueStoreKind } from '../index';

jest.setTimeout(60_000);

describe('DataKeyService.rotate against the local vault (secret data keys)', () => {
  let emu: KeyVaultEmulator;
  let db: TestDatabase;
  let moduleRef: TestingModule;
  let keys: DataKeyService;
  let vault: KeyVaultProvider;
  let n = 0;

  beforeAll(async () => {
    emu = await KeyVaultEmulator.start({ quiet: true, throttle: false, operationDelayMs: 0 });
    db = await createTestDatabase('sqlite');
    moduleRef = await Test.createTestingModule({
      imports: credentialsStackImports({ database: db.options, vault: emu, keyVault: { resilience: { maxAttempts: 1, pollIntervalMs: 20 } } }),
    }).compile();
    await moduleRef.init();
    keys = moduleRef.get(DataKeyService);
    vault = moduleRef.get(KeyVaultProvider);
  });

  afterEach(() => emu.clearFaults());

  afterAll(async () => {
    await moduleRef?.close();
    await emu?.stop();
    await db?.drop();
  });

  /** A tenant with an envelope value, hence a data key secret; the service's cache forgotten (another process's view). */
  async function tenantWithKey(): Promise<string> {
    const tenantId = `dkr-${++n}`;
    await moduleRef.get(CredentialsService).store({ tenantId, actor: { id: 'user:ops' } }, { integrationId: 'a', connectionId: 'c', type: CredentialType.CUSTOM_SECRET, value: 'an-envelope-value-123', valueStore: ValueStoreKind.ENVELOPE });
    keys.clear();
    return tenantId;
  }

  async function versionsOf(tenantId: string): Promise<SecretProperties[]> {
    const out: SecretProperties[] = [];
    for await (const v of vault.listAllSecretVersions(keys.nameFor(tenantId))) out.push(v);
    return out;
  }

  it('a key secret whose version list answers an empty first page (with a nextLink) still rotates', async () => {
    const tenantId = await tenantWithKey();
    emu.injectFault({ kind: 'emptyPage', operations: ['listSecretVersions'], count: 1 });
    const rotated = await keys.rotate(tenantId);
    expect((await versionsOf(tenantId)).map((v) => v.version)).toContain(rotated.version);
  });

  it('a disabled latest version still rotates', async () => {
    const tenantId = await tenantWithKey();
    const [only] = await versionsOf(tenantId);
    await vault.updateSecretProperties(keys.nameFor(tenantId), only.version, { enabled: false });
    const rotated = await keys.rotate(tenantId);
    expect((await versionsOf(tenantId)).find((v) => v.version === rotated.version)?.enabled).toBe(true);
  });

  it('a key secret soft-deleted at the vault is refused saying so, nothing written', async () => {
    const tenantId = await tenantWithKey();
    await vault.deleteSecret(keys.nameFor(tenantId));
    const err = await keys.rotate(tenantId).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: CredentialErrorCode.DATA_KEY_NOT_FOUND, tenantId, message: expect.stringContaining('soft-deleted') });
    expect((err as Error).message).not.toContain('no envelope value was ever stored');
    // Still soft-deleted (no version written, nothing recovered): the operator's to recover.
    await expect(vault.getDeletedSecret(keys.nameFor(tenantId))).resolves.toBeDefined();
    expect(await versionsOf(tenantId)).toEqual([]);
  });

  it('a tenant that never had a key is refused as before', async () => {
    expect(await keys.rotate('dkr-never').catch((e: unknown) => e)).toMatchObject({ code: CredentialErrorCode.DATA_KEY_NOT_FOUND, message: expect.stringContaining('has no data key') });
  });
});
