/**
 * Integration: names in transition — a purge or a recover the vault has answered but not completed — with the real
 * SDK over HTTPS against the local vault, whose `operationDelayMs` keeps that window open as Azure does for seconds.
 * A restore in a purge's window is answered as one over a live name (recorded: 409 Conflict, no inner code): the lib
 * tells the two apart by reading the name. A set in a recover's window answers 409 ObjectIsBeingRecovered; a restore
 * there reads as one in a purge's (the emulator answers it as over a live name): only the provider's own recover tells.
 *
 * The cases whose point is a window that outlasts a short provider's attempts run on a second vault whose window is
 * long (SLOW_WINDOW_MS): on a loaded CI machine 300 ms can pass between the vault's answer and the attempts' reads,
 * and the window's end then answered them (the name soft-deleted, or live again).
 */
import { Test, type TestingModule } from '@nestjs/testing';
import { RestError } from '@azure/core-rest-pipeline';
import type { Counter } from 'prom-client';
import { KeyVaultEmulator, emulatorKeyClient, emulatorSecretClient } from '@app/keyvault-emulator';
import { emulatorKeyVaultOptions, rejection } from '@app/testing';
import { KeyVaultErrorCode as C, KeyVaultKeysProvider, KeyVaultMetrics, KeyVaultModule, KeyVaultProvider, type KeyVaultError } from './index';

/** The vault's purge / recover window. */
const WINDOW_MS = 300;
/** The second vault's window: outlasts the impatient providers' two attempts and their reads however loaded the machine. */
const SLOW_WINDOW_MS = 2000;
const failure = (p: Promise<unknown>) => rejection(p) as Promise<KeyVaultError>;

describe('Key Vault names in transition (emulator, real SDK)', () => {
  let emu: KeyVaultEmulator;
  /** The vault of the impatient providers: its window is SLOW_WINDOW_MS. */
  let slow: KeyVaultEmulator;
  let moduleRef: TestingModule;
  let slowRef: TestingModule;
  let shortRef: TestingModule;
  let kv: KeyVaultProvider;
  let keys: KeyVaultKeysProvider;
  /** Patient providers on the slow vault, to set its names up. */
  let slowKv: KeyVaultProvider;
  let slowKeys: KeyVaultKeysProvider;
  /** Two attempts 20 ms apart, on the slow vault: spent well inside its window. */
  let impatient: KeyVaultProvider;
  let impatientKeys: KeyVaultKeysProvider;
  const sent = (operation: string, vault = emu) => vault.stats().byOperation[operation] ?? 0;
  /**
   * Resolves once `vault` has answered `operation` more than `before` times: the request reached it and its window has
   * begun. A provider's first request also answers the bearer challenge first: a fixed pause could end before that.
   */
  const answered = async (vault: KeyVaultEmulator, operation: string, before: number) => {
    while (sent(operation, vault) <= before) await new Promise((r) => setTimeout(r, 5));
  };
  const until = async (check: () => Promise<boolean>) => {
    while (!(await check())) await new Promise((r) => setTimeout(r, 10));
  };
  /** The sum of `metric`'s series with these labels. */
  const count = async (metric: Counter<string>, labels: Record<string, string>) =>
    (await metric.get()).values.filter((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x)).reduce((n, v) => n + v.value, 0);

  beforeAll(async () => {
    emu = await KeyVaultEmulator.start({ quiet: true, throttle: false, operationDelayMs: WINDOW_MS });
    slow = await KeyVaultEmulator.start({ quiet: true, throttle: false, operationDelayMs: SLOW_WINDOW_MS });
    // 4 attempts, 100 + 200 + 400 ms (jittered to half at least): outlasts the window.
    const resilience = { maxAttempts: 4, initialDelayMs: 100, maxDelayMs: 2000, pollIntervalMs: 50 };
    moduleRef = await Test.createTestingModule({ imports: [KeyVaultModule.forRoot(emulatorKeyVaultOptions(emu, { resilience }))] }).compile();
    slowRef = await Test.createTestingModule({ imports: [KeyVaultModule.forRoot(emulatorKeyVaultOptions(slow, { resilience }))] }).compile();
    shortRef = await Test.createTestingModule({
      imports: [KeyVaultModule.forRoot(emulatorKeyVaultOptions(slow, { resilience: { maxAttempts: 2, initialDelayMs: 20, maxDelayMs: 20 } }))],
    }).compile();
    kv = moduleRef.get(KeyVaultProvider);
    keys = moduleRef.get(KeyVaultKeysProvider);
    slowKv = slowRef.get(KeyVaultProvider);
    slowKeys = slowRef.get(KeyVaultKeysProvider);
    impatient = shortRef.get(KeyVaultProvider);
    impatientKeys = shortRef.get(KeyVaultKeysProvider);
  }, 60_000);
  afterAll(async () => {
    await moduleRef?.close();
    await slowRef?.close();
    await shortRef?.close();
    await emu?.stop();
    await slow?.stop();
  });

  /** A secret's backup and latest version, then the secret deleted and purged: its purge is still completing. */
  async function purgedSecret(name: string, provider = kv) {
    const latest = await provider.setSecret(name, 'kept-value');
    const blob = await provider.backupSecret(name);
    await provider.deleteSecret(name);
    await provider.purgeDeletedSecret(name);
    return { blob, ref: { name, version: latest.properties.version } };
  }

  describe('a restore right after a purge', () => {
    it('of a secret is retried until the purge completes, though the vault answers it as over a live name', async () => {
      const { blob, ref } = await purgedSecret('restore-after-purge');
      const before = sent('restoreSecret');
      const restored = await kv.restoreSecretBackup(blob);
      expect([restored.name, restored.version]).toEqual([ref.name, ref.version]);
      expect(sent('restoreSecret') - before).toBeGreaterThan(1); // the first was refused (409, no inner code)
      expect((await kv.getSecret(ref.name)).value).toBe('kept-value');
    });

    it('of a secret with the backup version given, as well', async () => {
      const { blob, ref } = await purgedSecret('restore-after-purge-ref');
      const restored = await kv.restoreSecretBackup(blob, ref);
      expect([restored.name, restored.version]).toEqual([ref.name, ref.version]);
    });

    it('of a key is retried until the purge completes', async () => {
      const key = await keys.createKey('key-after-purge', { keyType: 'EC' });
      const blob = await keys.backupKey('key-after-purge');
      await keys.deleteKey('key-after-purge');
      await keys.purgeDeletedKey('key-after-purge');
      const before = sent('restoreKey');
      const restored = await keys.restoreKeyBackup(blob);
      expect([restored.properties.name, restored.properties.version]).toEqual(['key-after-purge', key.properties.version]);
      expect(sent('restoreKey') - before).toBeGreaterThan(1);
    });

    it('whose purge outlasts the attempts says the name is still being deleted (retry later), not that it is taken', async () => {
      const { blob } = await purgedSecret('restore-purge-too-slow', slowKv);
      const e = await failure(impatient.restoreSecretBackup(blob));
      expect([e.code, e.statusCode, e.secretName]).toEqual([C.OBJECT_BEING_DELETED, 409, 'restore-purge-too-slow']);
      expect(e.message).not.toContain('restore-purge-too-slow');
      await new Promise((r) => setTimeout(r, SLOW_WINDOW_MS + 50));
      expect((await slowKv.restoreSecretBackup(blob)).name).toBe('restore-purge-too-slow');
    });
  });

  describe('a restore while a delete of the name completes (409 Conflict, no inner code: azure-sdk-for-python #17630)', () => {
    it('is retried as the name in transition it is, then answers what the soft-deleted name gets (DELETED_BUT_RECOVERABLE)', async () => {
      await kv.setSecret('restore-while-deleting', 'v1');
      const blob = await kv.backupSecret('restore-while-deleting');
      // The delete is answered at once and completes WINDOW_MS later (no poller waits for it here).
      await emulatorSecretClient(emu, { maxRetries: 0 }).beginDeleteSecret('restore-while-deleting');
      const before = sent('restoreSecret');
      const e = await failure(kv.restoreSecretBackup(blob));
      expect([e.code, e.statusCode, e.secretName]).toEqual([C.DELETED_BUT_RECOVERABLE, 409, 'restore-while-deleting']);
      expect(sent('restoreSecret') - before).toBeGreaterThan(1); // the first met the delete still completing
    });

    it('whose delete outlasts the attempts says the name is still being deleted (retry later), not that it is taken', async () => {
      await slowKv.setSecret('restore-delete-too-slow', 'v1');
      const blob = await slowKv.backupSecret('restore-delete-too-slow');
      await emulatorSecretClient(slow, { maxRetries: 0 }).beginDeleteSecret('restore-delete-too-slow');
      const e = await failure(impatient.restoreSecretBackup(blob));
      expect([e.code, e.statusCode, e.secretName]).toEqual([C.OBJECT_BEING_DELETED, 409, 'restore-delete-too-slow']);
    });
  });

  describe('a restore over a soft-deleted name (DELETED_BUT_RECOVERABLE), no version reference given', () => {
    it('of a secret names it on the error (the answer quotes it), never in the message: the caller can recover or purge it', async () => {
      await kv.setSecret('restore-over-deleted', 'v1');
      const blob = await kv.backupSecret('restore-over-deleted');
      await kv.deleteSecret('restore-over-deleted');
      const e = await failure(kv.restoreSecretBackup(blob));
      expect([e.code, e.statusCode, e.secretName]).toEqual([C.DELETED_BUT_RECOVERABLE, 409, 'restore-over-deleted']);
      expect(e.message).not.toContain('restore-over-deleted');
      expect(JSON.stringify(e)).not.toContain('restore-over-deleted');
      await kv.purgeDeletedSecret(e.secretName as string);
      expect((await kv.restoreSecretBackup(blob)).name).toBe('restore-over-deleted');
    });

    it('of a key names it on the error too', async () => {
      await keys.createKey('key-over-deleted', { keyType: 'EC' });
      const blob = await keys.backupKey('key-over-deleted');
      await keys.deleteKey('key-over-deleted');
      const e = await failure(keys.restoreKeyBackup(blob));
      expect([e.code, e.secretName]).toEqual([C.DELETED_BUT_RECOVERABLE, 'key-over-deleted']);
      expect((await keys.recoverDeletedKey(e.secretName as string)).properties.name).toBe('key-over-deleted');
    });
  });

  describe('a restore while a recover of the name completes (409 Conflict, no inner code; nothing live, nothing deleted)', () => {
    /** A secret's backup, then the secret deleted: ready to be recovered. */
    async function deletedSecret(name: string) {
      await slowKv.setSecret(name, 'v1');
      const blob = await slowKv.backupSecret(name);
      await slowKv.deleteSecret(name);
      return blob;
    }

    it('whose recover this provider is running surfaces OBJECT_BEING_RECOVERED (1020) once the attempts are spent', async () => {
      const blob = await deletedSecret('restore-own-recover');
      // Its poller waits (every 500 ms, the default) while the vault keeps the recover pending for SLOW_WINDOW_MS.
      const before = sent('recoverDeletedSecret', slow);
      const recovering = impatient.recoverDeletedSecret('restore-own-recover');
      await answered(slow, 'recoverDeletedSecret', before);
      const e = await failure(impatient.restoreSecretBackup(blob));
      expect([e.code, e.statusCode, e.secretName]).toEqual([C.OBJECT_BEING_RECOVERED, 409, 'restore-own-recover']);
      expect(e.message).toMatch(/a recover of the name is still completing.*retry later$/);
      expect(e.message).not.toContain('restore-own-recover');
      expect((await recovering).name).toBe('restore-own-recover');
      // Recovered: the name is taken, as answered.
      expect((await failure(impatient.restoreSecretBackup(blob))).code).toBe(C.CONFLICT);
    });

    it('of a key, likewise', async () => {
      await slowKeys.createKey('key-own-recover', { keyType: 'EC' });
      const blob = await slowKeys.backupKey('key-own-recover');
      await slowKeys.deleteKey('key-own-recover');
      // This provider's first key request: the recover reaches the vault after the challenge, past any fixed pause.
      const before = sent('recoverDeletedKey', slow);
      const recovering = impatientKeys.recoverDeletedKey('key-own-recover');
      await answered(slow, 'recoverDeletedKey', before);
      const e = await failure(impatientKeys.restoreKeyBackup(blob));
      expect([e.code, e.secretName]).toEqual([C.OBJECT_BEING_RECOVERED, 'key-own-recover']);
      await recovering;
    });

    it('recovered by another client: the name in transition, whose message does not claim a delete or purge (the reads cannot tell)', async () => {
      const blob = await deletedSecret('restore-other-recover');
      await emulatorSecretClient(slow, { maxRetries: 0 }).beginRecoverDeletedSecret('restore-other-recover');
      const e = await failure(impatient.restoreSecretBackup(blob));
      expect([e.code, e.statusCode]).toEqual([C.OBJECT_BEING_DELETED, 409]);
      expect(e.message).toMatch(/a delete, purge or recover of the name is still completing/);
      expect(e.message).not.toMatch(/a delete or purge of the name/);
    });
  });

  describe('a restore over a live name', () => {
    it('is still CONFLICT at once (one restore sent), for a secret and for a key', async () => {
      await kv.setSecret('taken-secret', 'v1');
      const secretBlob = await kv.backupSecret('taken-secret');
      await keys.createKey('taken-key', { keyType: 'EC' });
      const keyBlob = await keys.backupKey('taken-key');
      const [restores, keyRestores] = [sent('restoreSecret'), sent('restoreKey')];
      expect(await failure(kv.restoreSecretBackup(secretBlob))).toMatchObject({ code: C.CONFLICT, statusCode: 409, secretName: 'taken-secret' });
      expect((await failure(keys.restoreKeyBackup(keyBlob))).code).toBe(C.CONFLICT);
      expect([sent('restoreSecret') - restores, sent('restoreKey') - keyRestores]).toEqual([1, 1]);
    });

    it('of a disabled secret (its value unreadable) is CONFLICT too', async () => {
      await kv.setSecret('taken-disabled', 'v1', { enabled: false });
      const blob = await kv.backupSecret('taken-disabled');
      expect((await failure(kv.restoreSecretBackup(blob))).code).toBe(C.CONFLICT);
    });
  });

  describe('a delete whose secret or key another client recovers while its deletion is awaited', () => {
    /** How long the vault holds the delete's answer back (the deletion taken meanwhile): room for the recover, however loaded the machine. */
    const HELD_MS = 2500;

    /**
     * `remove` of `name`, its answer held while `operator` — once the name reads soft-deleted (WINDOW_MS after the
     * delete) — recovers it: before the delete's poll begins. Before: that poll read the deleted record (404 for ever) to
     * the attempt's timeout (10 s), and the retry deleted the recovered object again.
     */
    async function recoveredWhileAwaited(operation: 'deleteSecret' | 'deleteKey', name: string, remove: () => Promise<unknown>, operator: { deleted: () => Promise<unknown>; recover: () => Promise<unknown> }) {
      emu.injectFault({ kind: 'latency', phase: 'response', latencyMs: HELD_MS, operations: [operation], names: [name], count: 1 });
      const retries = () => count(moduleRef.get(KeyVaultMetrics).retries, { operation });
      const [deletes, retriedBefore] = [sent(operation), await retries()];
      const started = Date.now();
      const deleting = failure(remove());
      await until(() => operator.deleted().then(() => true, () => false));
      await operator.recover();
      const e = await deleting;
      expect(Date.now() - started).toBeLessThan(HELD_MS + 2000);
      expect([e.code, e.codeName, e.operation, e.secretName]).toEqual([C.DELETE_UNDONE, 'DELETE_UNDONE', operation, name]);
      expect(e.message).not.toContain(name);
      expect(sent(operation) - deletes).toBe(1);
      expect(await retries()).toBe(retriedBefore);
    }

    it('ends DELETE_UNDONE within a few polls of the secret being live again, not at the attempt timeout; not retried, so the recovery stands', async () => {
      const name = 'recovered-under-delete';
      await kv.setSecret(name, 'kept-value');
      const operator = emulatorSecretClient(emu, { maxRetries: 0 });
      await recoveredWhileAwaited('deleteSecret', name, () => kv.deleteSecret(name), {
        deleted: () => operator.getDeletedSecret(name),
        recover: async () => (await operator.beginRecoverDeletedSecret(name, { intervalInMs: 20 })).pollUntilDone(),
      });
      expect((await kv.getSecret(name)).value).toBe('kept-value');
    }, 60_000);

    it('of a key, likewise: DELETE_UNDONE within a few polls, one DELETE, no retry; the recovered key stands and signs', async () => {
      const name = 'key-recovered-under-delete';
      const key = await keys.createKey(name, { keyType: 'EC' });
      const operator = emulatorKeyClient(emu, { maxRetries: 0 });
      await recoveredWhileAwaited('deleteKey', name, () => keys.deleteKey(name), {
        deleted: () => operator.getDeletedKey(name),
        recover: async () => (await operator.beginRecoverDeletedKey(name, { intervalInMs: 20 })).pollUntilDone(),
      });
      expect((await keys.getKey(name)).properties.version).toBe(key.properties.version);
      const signed = await keys.sign({ name, version: key.properties.version }, 'ES256', new Uint8Array(32).fill(7));
      expect(signed.signature.length).toBe(64);
    }, 60_000);
  });

  describe('a delete meeting another delete of the name still completing (409 ObjectIsBeingDeleted)', () => {
    it('which its caller takes as done is that answer at once: one request, no retry, counted once', async () => {
      const metrics = moduleRef.get(KeyVaultMetrics);
      const before = await Promise.all([
        count(metrics.retries, { operation: 'deleteSecret' }),
        count(metrics.operations, { operation: 'deleteSecret', outcome: 'being_deleted' }),
        count(metrics.errors, {}),
      ]);
      // Azure's answer to a delete racing another replica's (the emulator answers that race 404): the SDK's call stands in.
      const sdk = (kv as unknown as { client: { beginDeleteSecret: (...args: unknown[]) => Promise<unknown> } }).client;
      const racing = jest.spyOn(sdk, 'beginDeleteSecret').mockRejectedValue(new RestError('Secret is currently being deleted.', { code: 'Conflict', statusCode: 409 }));
      try {
        expect((await failure(kv.deleteSecret('raced-delete', { notFoundExpected: true, beingDeletedExpected: true }))).code).toBe(C.OBJECT_BEING_DELETED);
        // Before: retried as any name in transition (4 attempts here, with their backoff), though its caller has its answer.
        expect(racing).toHaveBeenCalledTimes(1);
        const after = await Promise.all([
          count(metrics.retries, { operation: 'deleteSecret' }),
          count(metrics.operations, { operation: 'deleteSecret', outcome: 'being_deleted' }),
          count(metrics.errors, {}),
        ]);
        expect(after).toEqual([before[0], before[1] + 1, before[2]]);
      } finally {
        racing.mockRestore();
      }
    });
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
      await slowKv.setSecret('set-recover-too-slow', 'v1');
      await slowKv.deleteSecret('set-recover-too-slow');
      await emulatorSecretClient(slow, { maxRetries: 0 }).beginRecoverDeletedSecret('set-recover-too-slow');
      const e = await failure(impatient.setSecret('set-recover-too-slow', 'v2'));
      expect([e.code, e.statusCode, e.azureCode]).toEqual([C.OBJECT_BEING_RECOVERED, 409, 'Conflict']);
      expect(e.message).toMatch(/retry later$/);
    });
  });
});
