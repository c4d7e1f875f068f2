/**
 * Integration: writes whose answer is lost (the vault did it, its answer came after the client's timeout),
 * with the real SDK over HTTPS against the local vault; the vault itself counts the requests and the versions.
 * Each Set Secret adds a version, so a blind retry would leave a second, phantom one; a restore's retry is
 * refused because the key (or secret) now exists, though the restore happened.
 */
import { Logger } from '@nestjs/common';
import { Test, type TestingModule } from '@nestjs/testing';
import { KeyVaultEmulator } from '@app/keyvault-emulator';
import { emulatorKeyVaultOptions, rejection } from '@app/testing';
import { KeyVaultErrorCode as C, KeyVaultKeysProvider, KeyVaultModule, KeyVaultProvider, type KeyVaultError } from './index';

const TIMEOUT_MS = 400;
/** How long the vault holds the answer of an operation it has done (counted from when it did it). */
const ANSWER_DELAY_MS = TIMEOUT_MS + 300;
/** Lets the vault send (and count) an answer the client stopped waiting for. */
const settle = () => new Promise((r) => setTimeout(r, ANSWER_DELAY_MS + 300));
const failure = (p: Promise<unknown>) => rejection(p) as Promise<KeyVaultError>;

describe('Key Vault writes whose answer is lost (emulator, real SDK)', () => {
  let emu: KeyVaultEmulator;
  let source: KeyVaultEmulator;
  let moduleRef: TestingModule;
  let sourceRef: TestingModule;
  let kv: KeyVaultProvider;
  let keys: KeyVaultKeysProvider;
  let sourceKeys: KeyVaultKeysProvider;
  let sourceKv: KeyVaultProvider;
  const versionsOf = async (name: string) => {
    const out: string[] = [];
    for await (const v of kv.listAllSecretVersions(name)) out.push(v.version);
    return out;
  };

  beforeAll(async () => {
    emu = await KeyVaultEmulator.start({ quiet: true, throttle: false, operationDelayMs: 0 });
    source = await KeyVaultEmulator.start({ quiet: true, throttle: false, operationDelayMs: 0 });
    const resilience = { maxAttempts: 3, timeoutMs: TIMEOUT_MS, initialDelayMs: 20, maxDelayMs: 50, breaker: { consecutiveFailures: 100 } };
    moduleRef = await Test.createTestingModule({ imports: [KeyVaultModule.forRoot(emulatorKeyVaultOptions(emu, { resilience }))] }).compile();
    sourceRef = await Test.createTestingModule({ imports: [KeyVaultModule.forRoot(emulatorKeyVaultOptions(source))] }).compile();
    kv = moduleRef.get(KeyVaultProvider);
    keys = moduleRef.get(KeyVaultKeysProvider);
    sourceKeys = sourceRef.get(KeyVaultKeysProvider);
    sourceKv = sourceRef.get(KeyVaultProvider);
    // The clients' challenge round trips happen here, not in the measured calls.
    await kv.setSecret('warm', 'w');
    await keys.createKey('warm-key', { keyType: 'EC' });
  }, 60_000);

  afterEach(() => emu.clearFaults());
  afterAll(async () => {
    await moduleRef?.close();
    await sourceRef?.close();
    await emu?.stop();
    await source?.stop();
  });

  describe('setSecret', () => {
    it('a set that took effect but whose answer came too late is not stored twice: one version, the one answered', async () => {
      const value = 'sk_live_lost_answer_0123456789';
      const warn = jest.spyOn(Logger.prototype, 'warn');
      emu.injectFault({ kind: 'latency', phase: 'response', latencyMs: ANSWER_DELAY_MS, count: 1, operations: ['setSecret'] });
      emu.resetStats();
      const secret = await kv.setSecret('lost-set', value, { tags: { team: 'a' }, contentType: 'text/plain' });
      await settle();

      expect(await versionsOf('lost-set')).toEqual([secret.properties.version]);
      expect(emu.stats().byOperation.setSecret).toBe(1);
      expect(secret.value).toBe(value);
      expect(secret.properties.tags).toEqual({ team: 'a' }); // the lib's own marker is not the caller's business
      expect((await kv.getSecret('lost-set')).properties.tags).toEqual({ team: 'a' });
      expect(JSON.stringify(warn.mock.calls)).not.toContain(value);
      warn.mockRestore();
    });

    it('a set the vault answered with a 5xx before storing it is sent again: one version', async () => {
      emu.injectFault({ kind: 'status', status: 500, count: 1, operations: ['setSecret'] });
      emu.resetStats();
      const secret = await kv.setSecret('failed-set', 'v1');
      expect(await versionsOf('failed-set')).toEqual([secret.properties.version]);
      expect(emu.stats().byOperationAndStatus).toMatchObject({ 'setSecret:500': 1, 'setSecret:200': 1 });
    });

    it('never takes an earlier version holding the same value for its own (the write path would reference, or discard, it)', async () => {
      const earlier = await kv.setSecret('same-value', 'unchanged');
      emu.injectFault({ kind: 'status', status: 500, count: 1, operations: ['setSecret'] });
      const again = await kv.setSecret('same-value', 'unchanged');
      expect(again.properties.version).not.toBe(earlier.properties.version);
      expect((await versionsOf('same-value')).sort()).toEqual([earlier.properties.version, again.properties.version].sort());
    });
  });

  describe('restoreKeyBackup', () => {
    /** A key made in another vault (two versions) and its backup, restored here as into a new vault. */
    async function backupOf(name: string) {
      await sourceKeys.createKey(name, { keyType: 'EC' });
      const latest = await sourceKeys.rotateKey(name);
      return { blob: await sourceKeys.backupKey(name), ref: { name, version: latest.properties.version } };
    }

    it('a restore that took effect but whose answer came too late: its retry is refused (the key exists), the key read back is the answer', async () => {
      const { blob, ref } = await backupOf('lost-restore');
      emu.injectFault({ kind: 'latency', phase: 'response', latencyMs: ANSWER_DELAY_MS, count: 1, operations: ['restoreKey'] });
      emu.resetStats();
      const restored = await keys.restoreKeyBackup(blob, ref);
      await settle();

      expect([restored.properties.name, restored.properties.version]).toEqual([ref.name, ref.version]);
      expect((await keys.listKeyVersions(ref.name)).items).toHaveLength(2);
      expect(emu.stats().byOperationAndStatus).toMatchObject({ 'restoreKey:200': 1, 'restoreKey:409': 1 });
    });

    it('without a version of the backup to compare, the refused retry cannot be told from a conflict: OUTCOME_UNKNOWN, not CONFLICT', async () => {
      const { blob, ref } = await backupOf('lost-restore-unknown');
      emu.injectFault({ kind: 'latency', phase: 'response', latencyMs: ANSWER_DELAY_MS, count: 1, operations: ['restoreKey'] });
      expect((await failure(keys.restoreKeyBackup(blob))).code).toBe(C.OUTCOME_UNKNOWN);
      await settle();
      expect((await keys.getKey(ref.name)).properties.version).toBe(ref.version); // it did happen
    });

    it('a restore over a key that was there before is still a conflict', async () => {
      const { blob, ref } = await backupOf('restored-twice');
      await keys.restoreKeyBackup(blob, ref);
      emu.resetStats();
      expect((await failure(keys.restoreKeyBackup(blob, ref))).code).toBe(C.CONFLICT);
      // One read tells the taken name from one whose purge is still completing (the vault answers both 409 alike).
      expect(emu.stats().byOperationAndStatus).toEqual({ 'restoreKey:409': 1, 'getKey:200': 1 });
    });
  });

  describe('restoreSecretBackup', () => {
    /** A secret made in another vault (two versions) and its backup, restored here as into a new vault. */
    async function backupOf(name: string) {
      await sourceKv.setSecret(name, 'first');
      const latest = await sourceKv.setSecret(name, 'second');
      return { blob: await sourceKv.backupSecret(name), ref: { name, version: latest.properties.version } };
    }

    it('a restore that took effect but whose answer came too late: its retry is refused (the secret exists), the secret read back is the answer', async () => {
      const { blob, ref } = await backupOf('lost-secret-restore');
      emu.injectFault({ kind: 'latency', phase: 'response', latencyMs: ANSWER_DELAY_MS, count: 1, operations: ['restoreSecret'] });
      emu.resetStats();
      const restored = await kv.restoreSecretBackup(blob, ref);
      await settle();

      expect([restored.name, restored.version]).toEqual([ref.name, ref.version]);
      expect(await versionsOf(ref.name)).toHaveLength(2);
      expect(emu.stats().byOperationAndStatus).toMatchObject({ 'restoreSecret:200': 1, 'restoreSecret:409': 1 });
    });

    it('without a version of the backup to compare, the refused retry cannot be told from a conflict: OUTCOME_UNKNOWN, not CONFLICT', async () => {
      const { blob, ref } = await backupOf('lost-secret-restore-unknown');
      emu.injectFault({ kind: 'latency', phase: 'response', latencyMs: ANSWER_DELAY_MS, count: 1, operations: ['restoreSecret'] });
      expect((await failure(kv.restoreSecretBackup(blob))).code).toBe(C.OUTCOME_UNKNOWN);
      await settle();
      expect((await kv.getSecret(ref.name)).properties.version).toBe(ref.version); // it did happen
    });

    it('a restore over a secret that was there before is still a conflict', async () => {
      const { blob, ref } = await backupOf('secret-restored-twice');
      await kv.restoreSecretBackup(blob, ref);
      emu.resetStats();
      expect((await failure(kv.restoreSecretBackup(blob, ref))).code).toBe(C.CONFLICT);
      // One read tells the taken name from one whose purge is still completing (the vault answers both 409 alike).
      expect(emu.stats().byOperationAndStatus).toEqual({ 'restoreSecret:409': 1, 'getSecret:200': 1 });
    });
  });

  // The SDK's recover pollers read the object first and stop, without sending the recover, when it is live: a
  // recover of a live key answered as done (200 through the host) though nothing was deleted. Only a retry may
  // take a live object as done — an earlier attempt's recover whose answer was lost.
  describe('recoverDeletedKey / recoverDeletedSecret', () => {
    it('of a live key or secret is KEY_NOT_FOUND, as the vault answers a recover of a name with no deleted object', async () => {
      await keys.createKey('live-key', { keyType: 'EC' });
      await kv.setSecret('live-secret', 'kept');
      const key = await failure(keys.recoverDeletedKey('live-key'));
      const secret = await failure(kv.recoverDeletedSecret('live-secret'));
      expect([key.code, key.operation, key.message]).toEqual([C.KEY_NOT_FOUND, 'recoverDeletedKey', expect.stringMatching(/not deleted/)]);
      expect([secret.code, secret.operation, secret.message]).toEqual([C.KEY_NOT_FOUND, 'recoverDeletedSecret', expect.stringMatching(/not deleted/)]);
      expect((await kv.getSecret('live-secret')).value).toBe('kept');
    });

    it('whose answer was lost is done on the retry, which finds the object live', async () => {
      const created = await keys.createKey('lost-recover', { keyType: 'EC' });
      await keys.deleteKey('lost-recover');
      await kv.setSecret('lost-recover-s', 'v1');
      await kv.deleteSecret('lost-recover-s');
      emu.injectFault({ kind: 'latency', phase: 'response', latencyMs: ANSWER_DELAY_MS, count: 2, operations: ['recoverDeletedKey', 'recoverDeletedSecret'] });
      emu.resetStats();
      expect((await keys.recoverDeletedKey('lost-recover')).properties.version).toBe(created.properties.version);
      expect((await kv.recoverDeletedSecret('lost-recover-s')).name).toBe('lost-recover-s');
      await settle();
      expect(emu.stats().byOperationAndStatus).toMatchObject({ 'recoverDeletedKey:200': 1, 'recoverDeletedSecret:200': 1 });
    });
  });
});
