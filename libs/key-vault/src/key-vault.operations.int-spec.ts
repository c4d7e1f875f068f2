/**
 * Integration: the real Azure SDK over real HTTPS against the local Key Vault emulator, through
 * KeyVaultModule registered with forRoot and forRootAsync.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Injectable, Module } from '@nestjs/common';
import { Test, type TestingModule } from '@nestjs/testing';
import { KeyVaultEmulator } from '@app/keyvault-emulator';
import { emulatorKeyVaultOptions } from '@app/testing';
import {
  KeyVaultErrorCode as C,
  KeyVaultModule,
  KeyVaultProvider,
  type KeyVaultError,
  type KeyVaultModuleOptions,
  type KeyVaultOptionsFactory,
} from './index';

/** Fast retries, yet patient enough (60 + 120 + 240 ms) to outlast the emulator's 150 ms purge. */
function optionsFor(vault: KeyVaultEmulator, extra: Partial<KeyVaultModuleOptions> = {}): KeyVaultModuleOptions {
  return emulatorKeyVaultOptions(vault, { resilience: { initialDelayMs: 60, maxDelayMs: 2000, pollIntervalMs: 50 }, ...extra });
}

async function failure(p: Promise<unknown>): Promise<KeyVaultError> {
  try {
    await p;
  } catch (e) {
    return e as KeyVaultError;
  }
  throw new Error('expected the call to fail');
}

describe('KeyVaultModule against the emulator (forRoot)', () => {
  let vault: KeyVaultEmulator;
  let moduleRef: TestingModule;
  let kv: KeyVaultProvider;

  beforeAll(async () => {
    vault = await KeyVaultEmulator.start({ quiet: true, throttle: false, operationDelayMs: 150 });
    moduleRef = await Test.createTestingModule({ imports: [KeyVaultModule.forRoot(optionsFor(vault))] }).compile();
    kv = moduleRef.get(KeyVaultProvider);
  });
  afterAll(async () => {
    await moduleRef?.close();
    await vault?.stop();
  });

  it('sets, gets (latest and by version), updates properties and lists versions', async () => {
    const v1 = await kv.setSecret('crud-a', 'first', { contentType: 'text/plain', tags: { tenant: 't1' } });
    expect(v1.value).toBe('first');
    expect(v1.properties).toMatchObject({ name: 'crud-a', enabled: true, contentType: 'text/plain', tags: { tenant: 't1' } });
    expect(v1.properties.id).toBe(`${vault.vaultUrl}/secrets/crud-a/${v1.properties.version}`);
    const v2 = await kv.setSecret('crud-a', 'second');
    expect(v2.properties.version).not.toBe(v1.properties.version);

    expect((await kv.getSecret('crud-a')).value).toBe('second');
    expect((await kv.getSecret('crud-a', v1.properties.version)).value).toBe('first');

    const updated = await kv.updateSecretProperties('crud-a', v1.properties.version, { tags: { tenant: 't1', rotated: 'yes' } });
    expect(updated.tags).toEqual({ tenant: 't1', rotated: 'yes' });
    expect(updated.version).toBe(v1.properties.version);

    const versions: string[] = [];
    for await (const p of kv.listAllSecretVersions('crud-a')) versions.push(p.version);
    expect(versions.sort()).toEqual([v1.properties.version, v2.properties.version].sort());
  });

  it('pages listSecrets with maxPageSize and continuation tokens; listAllSecrets sees every secret', async () => {
    const names = Array.from({ length: 7 }, (_, i) => `page-${i}`);
    for (const n of names) await kv.setSecret(n, 'v');
    const seen: string[] = [];
    let token: string | undefined;
    let pages = 0;
    do {
      const page = await kv.listSecrets({ maxPageSize: 3, continuationToken: token });
      expect(page.items.length).toBeLessThanOrEqual(3);
      pages += 1;
      seen.push(...page.items.map((i) => i.name));
      token = page.continuationToken;
    } while (token);
    expect(pages).toBeGreaterThanOrEqual(3);
    expect(seen).toEqual(expect.arrayContaining(names));
    expect(new Set(seen).size).toBe(seen.length);

    const all: string[] = [];
    for await (const p of kv.listAllSecrets()) all.push(p.name);
    expect(all.sort()).toEqual([...seen].sort());

    const versionsPage = await kv.listSecretVersions('page-0', { maxPageSize: 1 });
    expect(versionsPage.items).toHaveLength(1);
    expect(versionsPage.continuationToken).toBeUndefined();
  });

  describe('secret dates: the whole seconds the vault stores (nbf / exp), the SDK would cut toward zero', () => {
    const at = (iso: string) => new Date(iso);
    const datesOf = (p: { notBefore?: Date; expiresOn?: Date }) => [p.notBefore?.toISOString(), p.expiresOn?.toISOString()];

    it('rounds them inward: notBefore up, expiresOn down (the SDK alone stored notBefore half a second early)', async () => {
      const set = await kv.setSecret('dates-a', 'v', { notBefore: at('2029-06-01T12:00:00.500Z'), expiresOn: at('2029-06-02T12:00:00.500Z') });
      expect(datesOf(set.properties)).toEqual(['2029-06-01T12:00:01.000Z', '2029-06-02T12:00:00.000Z']);
      expect(datesOf((await kv.getSecret('dates-a')).properties)).toEqual(['2029-06-01T12:00:01.000Z', '2029-06-02T12:00:00.000Z']);
    });

    it('rounds an expiry before 1970 down too (cutting toward zero moved it half a second later)', async () => {
      const set = await kv.setSecret('dates-c', 'v');
      const updated = await kv.updateSecretProperties('dates-c', set.properties.version, { expiresOn: at('1969-12-31T23:59:59.500Z'), notBefore: at('1969-12-31T23:59:57.500Z') });
      expect(datesOf(updated)).toEqual(['1969-12-31T23:59:58.000Z', '1969-12-31T23:59:59.000Z']);
    });

    it('refuses, before any call, a date the SDK would wrap (32-bit seconds) and a window rounding leaves empty', async () => {
      const sets = vault.stats().byOperation.setSecret ?? 0;
      // 1901-12-13T20:45:51Z would be stored as 2038-01-19T03:14:07Z: an expired secret recorded as valid for years.
      for (const options of [{ expiresOn: at('1901-12-13T20:45:51Z') }, { notBefore: at('2038-01-19T03:14:08Z') }, { notBefore: at('2030-01-01T00:00:00.200Z'), expiresOn: at('2030-01-01T00:00:00.900Z') }]) {
        expect(await failure(kv.setSecret('dates-b', 'v', options))).toMatchObject({ code: C.INVALID_REQUEST, operation: 'setSecret' });
      }
      expect((vault.stats().byOperation.setSecret ?? 0) - sets).toBe(0);
    });
  });

  it("list items carry no version (Key Vault's secret lists name none), never version ''; versions, gets and deletes do", async () => {
    const set = await kv.setSecret('listed-a', 'v');
    const listed = (await kv.listSecrets({ maxPageSize: 25 })).items.find((i) => i.name === 'listed-a');
    expect(listed).toBeDefined();
    expect(listed).not.toHaveProperty('version');
    for await (const p of kv.listAllSecrets()) expect(p).not.toHaveProperty('version');
    expect((await kv.listSecretVersions('listed-a')).items.map((v) => v.version)).toEqual([set.properties.version]);

    const deleted = await kv.deleteSecret('listed-a');
    expect(deleted.properties.version).toBe(set.properties.version);
    expect((await kv.getDeletedSecret('listed-a')).properties.version).toBe(set.properties.version);
    const deletedItem = (await kv.listDeletedSecrets({ maxPageSize: 25 })).items.find((d) => d.properties.name === 'listed-a');
    expect(deletedItem).toBeDefined();
    expect(deletedItem!.properties).not.toHaveProperty('version');
    await kv.purgeDeletedSecret('listed-a');
  });

  it('delete waits until visible; get/list deleted; the soft-deleted name is DELETED_BUT_RECOVERABLE; recover; purge', async () => {
    await kv.setSecret('life-a', 'v1');
    const deleted = await kv.deleteSecret('life-a');
    expect(deleted.properties.name).toBe('life-a');
    expect(deleted.recoveryId).toBe(`${vault.vaultUrl}/deletedsecrets/life-a`);
    expect(deleted.deletedOn).toBeInstanceOf(Date);
    expect(deleted.scheduledPurgeDate).toBeInstanceOf(Date);

    // deleteSecret returned only once the deletion is visible (operationDelayMs = 150).
    expect((await kv.getDeletedSecret('life-a')).recoveryId).toBe(deleted.recoveryId);
    expect((await failure(kv.getSecret('life-a'))).code).toBe(C.KEY_NOT_FOUND);

    const deletedPage = await kv.listDeletedSecrets({ maxPageSize: 25 });
    expect(deletedPage.items.map((d) => d.properties.name)).toContain('life-a');

    const blocked = await failure(kv.setSecret('life-a', 'again'));
    expect(blocked).toMatchObject({ code: C.DELETED_BUT_RECOVERABLE, statusCode: 409, secretName: 'life-a', operation: 'setSecret' });
    expect(blocked.message).not.toContain('again');

    const recovered = await kv.recoverDeletedSecret('life-a');
    expect(recovered.name).toBe('life-a');
    expect((await kv.getSecret('life-a')).value).toBe('v1');

    await kv.deleteSecret('life-a');
    await kv.purgeDeletedSecret('life-a');
    expect((await failure(kv.getDeletedSecret('life-a'))).code).toBe(C.KEY_NOT_FOUND);
    // Azure completes a purge asynchronously: the name answers 409 ObjectIsBeingDeleted for a moment
    // (150 ms here), which the provider retries like a transient fault: the caller just sees the write.
    const sets = vault.stats().byOperation.setSecret ?? 0;
    await kv.setSecret('life-a', 'reborn');
    expect((vault.stats().byOperation.setSecret ?? 0) - sets).toBeGreaterThan(1);
    expect((await kv.getSecret('life-a')).value).toBe('reborn');
  });

  it('backs up and restores a secret with all its versions; a corrupt blob is BACKUP_FAILED', async () => {
    await kv.setSecret('bk-a', 'one');
    await kv.setSecret('bk-a', 'two');
    const blob = await kv.backupSecret('bk-a');
    expect(blob.length).toBeGreaterThan(0);
    expect(Buffer.from(blob).toString('utf8')).not.toContain('two');

    await kv.deleteSecret('bk-a');
    await kv.purgeDeletedSecret('bk-a');
    const restored = await kv.restoreSecretBackup(blob);
    expect(restored.name).toBe('bk-a');
    expect((await kv.getSecret('bk-a')).value).toBe('two');
    const versions: string[] = [];
    for await (const v of kv.listAllSecretVersions('bk-a')) versions.push(v.version);
    expect(versions).toHaveLength(2);

    const corrupt = await failure(kv.restoreSecretBackup(new Uint8Array([1, 2, 3, 4])));
    expect(corrupt).toMatchObject({ code: C.BACKUP_FAILED, statusCode: 400 });
    expect((await failure(kv.backupSecret('no-such-secret'))).code).toBe(C.KEY_NOT_FOUND);
  });

  it('maps the vault errors: disabled → DISABLED, unknown → KEY_NOT_FOUND, invalid → INVALID_REQUEST', async () => {
    const s = await kv.setSecret('off-a', 'hidden-value', { enabled: false });
    const disabled = await failure(kv.getSecret('off-a'));
    expect(disabled).toMatchObject({ code: C.DISABLED, statusCode: 403, secretName: 'off-a' });
    expect(disabled.message).not.toContain('hidden-value');
    await kv.updateSecretProperties('off-a', s.properties.version, { enabled: true });
    expect((await kv.getSecret('off-a')).value).toBe('hidden-value');

    const missing = await failure(kv.getSecret('never-created'));
    expect(missing).toMatchObject({ code: C.KEY_NOT_FOUND, statusCode: 404, azureCode: 'SecretNotFound' });

    // Refused before the call (the name would otherwise reach the URL path) ...
    expect((await failure(kv.getSecret('bad_name!'))).code).toBe(C.INVALID_REQUEST);
    // ... and the vault's own 400 (value over 25 KB) maps the same way.
    const tooBig = await failure(kv.setSecret('big-a', 'x'.repeat(26 * 1024)));
    expect(tooBig).toMatchObject({ code: C.INVALID_REQUEST, statusCode: 400, azureCode: 'BadParameter' });
    expect(tooBig.message).not.toContain('xxxxxxxx');
  });

  /** The error of a first call through a module built with `options`. */
  async function firstCallError(options: KeyVaultModuleOptions): Promise<KeyVaultError> {
    const other = await Test.createTestingModule({ imports: [KeyVaultModule.forRoot(options)] }).compile();
    try {
      return await failure(other.get(KeyVaultProvider).getSecret('crud-a'));
    } finally {
      await other.close();
    }
  }

  it('trusts the emulator CA only when configured: without it the TLS failure is a CONFIGURATION error naming the option', async () => {
    const { tls: _tls, ...noCa } = optionsFor(vault);
    const e = await firstCallError(noCa);
    expect(e.code).toBe(C.CONFIGURATION);
    expect(e.message).toContain('pass its CA in the KeyVaultModule option tls.caCertPath or tls.caCertPem');
  });

  it("without disableChallengeResourceVerification the emulator's challenge is a CONFIGURATION error naming that option", async () => {
    const { disableChallengeResourceVerification: _skip, ...strict } = optionsFor(vault);
    const e = await firstCallError(strict);
    expect(e.code).toBe(C.CONFIGURATION);
    expect(e.message).toContain('for a local vault set the KeyVaultModule option disableChallengeResourceVerification: true');
  });

  it('an https:// vaultUrl on a plain-HTTP port fails at once as CONFIGURATION naming vaultUrl, not as an outage to retry', async () => {
    let connections = 0;
    const plain = createServer((_req, res) => res.end('{}')).on('connection', () => connections++);
    await new Promise<void>((resolve) => plain.listen(0, '127.0.0.1', resolve));
    try {
      const e = await firstCallError({ ...optionsFor(vault), vaultUrl: `https://127.0.0.1:${(plain.address() as AddressInfo).port}` });
      expect(e.code).toBe(C.CONFIGURATION);
      expect(e.message).toContain("vaultUrl (the stock host's KEY_VAULT_URL) must be the vault's https:// address");
      expect(e.message).not.toContain('retry');
      expect(connections).toBe(1); // not retried: maxAttempts is 4
    } finally {
      plain.close();
    }
  });
});

describe('KeyVaultModule against the emulator (forRootAsync)', () => {
  let vault: KeyVaultEmulator;
  beforeAll(async () => {
    vault = await KeyVaultEmulator.start({ quiet: true, throttle: false });
  });
  afterAll(() => vault?.stop());

  @Injectable()
  class VaultConfig {
    get(): KeyVaultModuleOptions {
      return optionsFor(vault);
    }
  }
  @Module({ providers: [VaultConfig], exports: [VaultConfig] })
  class VaultConfigModule {}

  @Injectable()
  class VaultOptionsFactory implements KeyVaultOptionsFactory {
    create(): KeyVaultModuleOptions {
      return optionsFor(vault);
    }
  }

  it('useFactory with imports + inject', async () => {
    const m = await Test.createTestingModule({
      imports: [
        KeyVaultModule.forRootAsync({
          imports: [VaultConfigModule],
          inject: [VaultConfig],
          useFactory: async (config: VaultConfig) => config.get(),
        }),
      ],
    }).compile();
    try {
      const kv = m.get(KeyVaultProvider);
      await kv.setSecret('async-a', 'v');
      expect((await kv.getSecret('async-a')).value).toBe('v');
    } finally {
      await m.close();
    }
  });

  it('useClass, registered globally (isGlobal)', async () => {
    @Injectable()
    class Consumer {
      constructor(readonly kv: KeyVaultProvider) {}
    }
    @Module({ providers: [Consumer], exports: [Consumer] })
    class FeatureModule {}

    const m = await Test.createTestingModule({
      imports: [KeyVaultModule.forRootAsync({ useClass: VaultOptionsFactory, isGlobal: true }), FeatureModule],
    }).compile();
    try {
      const kv = m.get(Consumer).kv;
      await kv.setSecret('async-b', 'w');
      expect((await kv.getSecret('async-b')).value).toBe('w');
    } finally {
      await m.close();
    }
  });
});

describe('KeyVaultModule against a purge-protected emulator', () => {
  it('purge → PURGE_PROTECTED', async () => {
    const vault = await KeyVaultEmulator.start({ quiet: true, throttle: false, purgeProtection: true, operationDelayMs: 0 });
    const m = await Test.createTestingModule({ imports: [KeyVaultModule.forRoot(optionsFor(vault))] }).compile();
    try {
      const kv = m.get(KeyVaultProvider);
      await kv.setSecret('pp-a', 'v');
      await kv.deleteSecret('pp-a');
      expect(await failure(kv.purgeDeletedSecret('pp-a'))).toMatchObject({ code: C.PURGE_PROTECTED, statusCode: 403 });
    } finally {
      await m.close();
      await vault.stop();
    }
  });
});
