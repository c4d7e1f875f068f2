/**
 * Integration: the messages of the vault's real failures (the Azure SDK over HTTPS against the local
 * vault) quote neither the secret's name (it carries the tenant id) nor the vault's own text, which
 * repeats the name ("A secret with (name/id) <name> was not found ...").
 */
import { Test, type TestingModule } from '@nestjs/testing';
import { KeyVaultEmulator } from '@app/keyvault-emulator';
import { emulatorKeyVaultOptions } from '@app/testing';
import { KeyVaultErrorCode as C, KeyVaultModule, KeyVaultProvider, type KeyVaultError } from '../index';

const failure = (p: Promise<unknown>): Promise<KeyVaultError> =>
  p.then(
    () => Promise.reject(new Error('expected the call to fail')),
    (e: KeyVaultError) => e,
  );

describe('KeyVaultError messages against the local vault', () => {
  let vault: KeyVaultEmulator;
  let moduleRef: TestingModule;
  let kv: KeyVaultProvider;
  const tenant = `tenant-${Date.now().toString(36)}`;
  const name = (what: string) => `cv-${tenant}-${what}`;

  beforeAll(async () => {
    vault = await KeyVaultEmulator.start({ quiet: true, throttle: false, operationDelayMs: 0 });
    moduleRef = await Test.createTestingModule({ imports: [KeyVaultModule.forRoot(emulatorKeyVaultOptions(vault, { resilience: { maxAttempts: 1, pollIntervalMs: 20 } }))] }).compile();
    kv = moduleRef.get(KeyVaultProvider);
  });
  afterAll(async () => {
    await moduleRef?.close();
    await vault?.stop();
  });

  it('say what failed in the caller\'s terms (no SDK operation name), the code and status, keep the name off the message and out of JSON', async () => {
    await kv.setSecret(name('off'), 'value-1', { enabled: false });
    await kv.setSecret(name('gone'), 'value-2');
    await kv.deleteSecret(name('gone'));
    const failures = [
      await failure(kv.getSecret(name('missing'))),
      await failure(kv.getSecret(name('off'))),
      await failure(kv.setSecret(name('gone'), 'value-3')),
      await failure(kv.getSecret(`${name('bad')}_!`)),
    ];
    expect(failures.map((e) => [e.code, e.message])).toEqual([
      [C.KEY_NOT_FOUND, 'Reading the secret failed: KEY_NOT_FOUND (HTTP 404 SecretNotFound; no secret of that name or version)'],
      [C.DISABLED, 'Reading the secret failed: DISABLED (HTTP 403 Forbidden; the object or this version is disabled)'],
      [C.DELETED_BUT_RECOVERABLE, 'Writing the secret failed: DELETED_BUT_RECOVERABLE (HTTP 409 Conflict; the name is soft-deleted; recover or purge it first)'],
      [C.INVALID_REQUEST, 'Reading the secret was refused: INVALID_REQUEST (secret names are 1-127 characters of 0-9, a-z, A-Z and -)'],
    ]);
    for (const e of failures) {
      expect(e.message).not.toMatch(/Key Vault|getSecret|setSecret/);
      for (const leak of [tenant, 'value-', 'not found', 'with (name/id)']) expect(JSON.stringify({ message: e.message, json: e })).not.toContain(leak);
    }
    // The caller still has the name it passed.
    expect(failures[0].secretName).toBe(name('missing'));
  });
});
