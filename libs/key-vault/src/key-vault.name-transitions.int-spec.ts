/**
 * Integration: names in transition — a recover the vault has answered but not completed — with the real SDK over
 * HTTPS against the local vault, whose `operationDelayMs` keeps that window open as Azure does for seconds. A set in a
 * recover's window answers 409 ObjectIsBeingRecovered.
 */
import { Test, type TestingModule } from '@nestjs/testing';
import { KeyVaultEmulator, emulatorSecretClient } from '@app/keyvault-emulator';
import { emulatorKeyVaultOptions, rejection } from '@app/testing';
import { KeyVaultErrorCode as C, KeyVaultModule, KeyVaultProvider, type KeyVaultError } from './index';

/** The vault's purge / recover window. */
const WINDOW_MS = 300;
const failure = (p: Promise<unknown>) => rejection(p) as Promise<KeyVaultError>;

describe('Key Vault names in transition (emulator, real SDK)', () => {
  let emu: KeyVaultEmulator;
  let moduleRef: TestingModule;
  let shortRef: TestingModule;
  let kv: KeyVaultProvider;
  /** Two attempts 20 ms apart: spent well inside the window. */
  let impatient: KeyVaultProvider;
  const sent = (operation: string) => emu.stats().byOperation[operation] ?? 0;

  beforeAll(async () => {
    emu = await KeyVaultEmulator.start({ quiet: true, throttle: false, operationDelayMs: WINDOW_MS });
    // 4 attempts, 100 + 200 + 400 ms (jittered to half at least): outlasts the window.
    const resilience = { maxAttempts: 4, initialDelayMs: 100, maxDelayMs: 2000, pollIntervalMs: 50 };
    moduleRef = await Test.createTestingModule({ imports: [KeyVaultModule.forRoot(emulatorKeyVaultOptions(emu, { resilience }))] }).compile();
    shortRef = await Test.createTestingModule({
      imports: [KeyVaultModule.forRoot(emulatorKeyVaultOptions(emu, { resilience: { maxAttempts: 2, initialDelayMs: 20, maxDelayMs: 20 } }))],
    }).compile();
    kv = moduleRef.get(KeyVaultProvider);
    impatient = shortRef.get(KeyVaultProvider);
  }, 60_000);
  afterAll(async () => {
    await moduleRef?.close();
    await shortRef?.close();
    await emu?.stop();
  });

  describe('a set while a recover completes (409 ObjectIsBeingRecovered)', () => {
    it('is retried as a transient fault: the caller just sees the write', async () => {
      await kv.setSecret('set-while-recovering', 'v1');
      await kv.deleteSecret('set-while-recovering');
      // The recover is answered at once and completes WINDOW_MS later (no poller waits for it here).
      await emulatorSecretClient(emu, { maxRetries: 0 }).beginRecoverDeletedSecret('set-while-recovering');
      const before = sent('setSecret');
      const written = await kv.setSecret('set-while-recovering', 'v2');
      expect(sent('setSecret') - before).toBeGreaterThan(1);
      expect((await kv.getSecret('set-while-recovering')).properties.version).toBe(written.properties.version);
    });

    it('whose recover outlasts the attempts surfaces OBJECT_BEING_RECOVERED (HTTP 409, retry later)', async () => {
      await kv.setSecret('set-recover-too-slow', 'v1');
      await kv.deleteSecret('set-recover-too-slow');
      await emulatorSecretClient(emu, { maxRetries: 0 }).beginRecoverDeletedSecret('set-recover-too-slow');
      const e = await failure(impatient.setSecret('set-recover-too-slow', 'v2'));
      expect([e.code, e.statusCode, e.azureCode]).toEqual([C.OBJECT_BEING_RECOVERED, 409, 'Conflict']);
      expect(e.message).toMatch(/retry later$/);
    });
  });
});
