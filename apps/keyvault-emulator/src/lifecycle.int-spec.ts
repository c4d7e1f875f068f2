import { SecretClient } from '@azure/keyvault-secrets';
import { DEFAULT_OPERATION_DELAY_MS, KeyVaultEmulator } from './index';
import { emulatorSecretClient, rawRequest, restError } from './testing';

const API = 'api-version=7.6';
/**
 * The first describe's delete / recover / purge window. Its cases send a request inside a window the one before opened:
 * at 300 ms a loaded CI machine let the window close in between (a purge right after a delete found it done: no 409).
 */
const WINDOW_MS = 1000;

describe('Key Vault emulator: soft delete, recover, purge, backup and restore', () => {
  describe('with a non-zero operationDelayMs (the SDK pollers must wait)', () => {
    let emu: KeyVaultEmulator;
    let client: SecretClient;
    beforeAll(async () => {
      emu = await KeyVaultEmulator.start({ quiet: true, operationDelayMs: WINDOW_MS, softDeleteRetentionDays: 7 });
      client = emulatorSecretClient(emu, { maxRetries: 0 });
    });
    afterAll(() => emu.stop());

    it('soft-deletes through the delete poller, which polls GET /deletedsecrets until 200', async () => {
      await client.setSecret('to-delete', 'v1', { tags: { a: '1' } });
      emu.resetStats();
      const started = Date.now();
      const poller = await client.beginDeleteSecret('to-delete', { intervalInMs: 50 });
      // right after the DELETE the deleted secret is not visible yet and the name is not readable
      expect(poller.isDone()).toBe(false);
      expect(await client.getSecret('to-delete').catch((e: { statusCode: number }) => e.statusCode)).toBe(404);
      const deleted = await poller.pollUntilDone();
      expect(Date.now() - started).toBeGreaterThanOrEqual(WINDOW_MS - 50);
      expect(deleted.name).toBe('to-delete');
      expect(deleted.properties.recoveryId).toBe(`${emu.vaultUrl}/deletedsecrets/to-delete`);
      expect(deleted.properties.deletedOn).toBeInstanceOf(Date);
      const days = (deleted.properties.scheduledPurgeDate!.getTime() - deleted.properties.deletedOn!.getTime()) / 86_400_000;
      expect(days).toBe(7);
      expect(deleted.properties.recoveryLevel).toBe('CustomizedRecoverable+Purgeable');
      expect(deleted.properties.recoverableDays).toBe(7);
      const stats = emu.stats();
      expect(stats.byOperationAndStatus['deleteSecret:200']).toBe(1);
      expect(stats.byOperationAndStatus['getDeletedSecret:404']).toBeGreaterThanOrEqual(1);
      expect(stats.byOperationAndStatus['getDeletedSecret:200']).toBe(1);

      const raw = await rawRequest(emu, 'GET', `/deletedsecrets/to-delete?${API}`);
      expect(raw.json).toMatchObject({
        recoveryId: `${emu.vaultUrl}/deletedsecrets/to-delete`,
        deletedDate: expect.any(Number),
        scheduledPurgeDate: raw.json.deletedDate + 7 * 86400,
        id: expect.stringMatching(new RegExp(`^${emu.vaultUrl}/secrets/to-delete/[0-9a-f]{32}$`)),
        tags: { a: '1' },
      });
      expect(raw.json.value).toBeUndefined();
    });

    // As recorded from the service (azure-sdk-for-js keyvault-secrets recordings, "can recover a deleted secret
    // (non existing)"): 404 SecretNotFound with the not-found message of GET /secrets; a live secret stays as it was.
    it('answers POST /deletedsecrets/{name}/recover of a live secret, or of a name never used, 404 SecretNotFound as the service does', async () => {
      const live = await client.setSecret('live-not-deleted', 'kept');
      for (const name of ['live-not-deleted', 'never-created']) {
        const r = await rawRequest(emu, 'POST', `/deletedsecrets/${name}/recover?${API}`);
        expect({ status: r.status, json: r.json }).toEqual({
          status: 404,
          json: { error: { code: 'SecretNotFound', message: `A secret with (name/id) ${name} was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182` } },
        });
      }
      expect((await client.getSecret('live-not-deleted')).properties.version).toBe(live.properties.version);
    });

    it('lists deleted secrets and recovers one through the recover poller (GET /secrets/{name}/ until 200)', async () => {
      await client.setSecret('to-recover', 'precious');
      await (await client.beginDeleteSecret('to-recover', { intervalInMs: 50 })).pollUntilDone();
      const deletedNames = [];
      for await (const d of client.listDeletedSecrets()) deletedNames.push(d.name);
      expect(deletedNames).toContain('to-recover');

      emu.resetStats();
      const poller = await client.beginRecoverDeletedSecret('to-recover', { intervalInMs: 50 });
      const recovered = await poller.pollUntilDone();
      expect(recovered.name).toBe('to-recover');
      expect((await client.getSecret('to-recover')).value).toBe('precious');
      const stats = emu.stats();
      expect(stats.byOperationAndStatus['recoverDeletedSecret:200']).toBe(1);
      expect(stats.byOperationAndStatus['getSecret:404']).toBeGreaterThanOrEqual(2); // poller start + polls during the delay
      const after = [];
      for await (const d of client.listDeletedSecrets()) after.push(d.name);
      expect(after).not.toContain('to-recover');
    });

    it('refuses to set a name that is being deleted or is soft-deleted (409), until purged', async () => {
      await client.setSecret('reuse-me', 'old');
      const poller = await client.beginDeleteSecret('reuse-me', { intervalInMs: 50 });
      const during = await restError(client.setSecret('reuse-me', 'new'));
      expect(during.statusCode).toBe(409);
      await poller.pollUntilDone();
      const err = await restError(client.setSecret('REUSE-ME', 'new'));
      expect(err.statusCode).toBe(409);
      expect(err.code).toBe('Conflict');
      expect(err.message).toBe(
        'Secret reuse-me is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the secret can only be recovered or purged.',
      );
      expect(err.details.error.innerError.code).toBe('ObjectIsDeletedButRecoverable');

      await client.purgeDeletedSecret('reuse-me');
      const purgedAgain = await restError(client.purgeDeletedSecret('reuse-me'));
      expect([purgedAgain.statusCode, purgedAgain.code]).toEqual([404, 'SecretNotFound']);
      // Azure completes a purge asynchronously: the name is refused (409) for a moment, then free.
      const purging = await restError(client.setSecret('reuse-me', 'too soon'));
      expect([purging.statusCode, purging.code, purging.details.error.innerError.code]).toEqual([409, 'Conflict', 'ObjectIsBeingDeleted']);
      expect(purging.message).toBe('Secret reuse-me is currently being deleted and cannot be re-created; retry later.');
      await new Promise((r) => setTimeout(r, WINDOW_MS + 50));
      expect((await client.setSecret('Reuse-Me', 'new')).name).toBe('Reuse-Me');
      expect((await client.getSecret('reuse-me')).value).toBe('new');
    });

    // The service's answers to a set while a delete or a recover completes, as users report them: Azure/azure-sdk-for-net
    // #34322 ("…is currently being deleted and cannot be re-created; retry later.", ObjectIsBeingDeleted) and #31581 /
    // microsoft/AzureTRE #2824 ("…is currently being recovered and cannot be re-created; retry later.", ObjectIsBeingRecovered).
    it('answers a set while the delete or the recover completes with the service\'s 409 messages', async () => {
      const setConflict = async () => {
        const err = await restError(client.setSecret('in-flight', 'again'));
        return [err.statusCode, err.code, err.details.error.innerError.code, err.message];
      };
      await client.setSecret('in-flight', 'v');
      const deleting = await client.beginDeleteSecret('in-flight', { intervalInMs: 50 });
      expect(await setConflict()).toEqual([409, 'Conflict', 'ObjectIsBeingDeleted', 'Secret in-flight is currently being deleted and cannot be re-created; retry later.']);
      await deleting.pollUntilDone();
      const recovering = await client.beginRecoverDeletedSecret('in-flight', { intervalInMs: 50 });
      expect(await setConflict()).toEqual([409, 'Conflict', 'ObjectIsBeingRecovered', 'Secret in-flight is currently being recovered and cannot be re-created; retry later.']);
      await recovering.pollUntilDone();
      expect((await client.setSecret('in-flight', 'again')).value).toBe('again');
    });

    // The service's answer, quoted in hashicorp/terraform-provider-azurerm #10454 (a purge of secret-sauce right after its
    // delete): Status=409 Code="Conflict" Message="Secret is currently being deleted." InnerError ObjectIsBeingDeleted.
    it('a purge sent while the delete is still completing answers 409, as Azure does (not 404)', async () => {
      await client.setSecret('purge-early', 'x');
      const poller = await client.beginDeleteSecret('purge-early', { intervalInMs: 50 });
      const early = await restError(client.purgeDeletedSecret('purge-early'));
      expect([early.statusCode, early.code, early.details.error.innerError.code]).toEqual([409, 'Conflict', 'ObjectIsBeingDeleted']);
      expect(early.message).toBe('Secret is currently being deleted.');
      await poller.pollUntilDone();
      const blob = await client.setSecret('purge-restore', 'y').then(() => client.backupSecret('purge-restore'));
      await (await client.beginDeleteSecret('purge-restore', { intervalInMs: 50 })).pollUntilDone();
      await Promise.all([client.purgeDeletedSecret('purge-early'), client.purgeDeletedSecret('purge-restore')]);
      // Restoring over a name whose purge is completing is refused too, then allowed. The service answers it as a restore
      // over a live name (recorded, azure-sdk-assets js keyvault-secrets "can restore a secret"): 409, no inner code.
      const restoring = await restError(client.restoreSecretBackup(blob!));
      expect([restoring.statusCode, restoring.code, restoring.details.error.innerError]).toEqual([409, 'Conflict', undefined]);
      expect(restoring.message).toMatch(new RegExp(`^There was a conflict restoring the secret '${emu.vaultUrl}/secrets/purge-restore/[0-9a-f]{32}'\\. This can happen if either: a second secret with the same name`));
      await new Promise((r) => setTimeout(r, WINDOW_MS + 50));
      expect((await client.restoreSecretBackup(blob!)).name).toBe('purge-restore');
    });

    it('purge answers 204 and deleting an unknown secret answers 404', async () => {
      await client.setSecret('purge-raw', 'x');
      await (await client.beginDeleteSecret('purge-raw', { intervalInMs: 50 })).pollUntilDone();
      const res = await rawRequest(emu, 'DELETE', `/deletedsecrets/purge-raw?${API}`);
      expect(res.status).toBe(204);
      expect(res.text).toBe('');
      const del = await rawRequest(emu, 'DELETE', `/secrets/purge-raw?${API}`);
      expect([del.status, del.json.error.code]).toEqual([404, 'SecretNotFound']);
      const gone = await restError(client.getDeletedSecret('purge-raw'));
      expect(gone.statusCode).toBe(404);
      expect(gone.message).toBe('Deleted Secret not found: purge-raw');
    });
  });

  describe('at the default operationDelayMs: deletes and recoveries complete asynchronously, as in Azure', () => {
    let emu: KeyVaultEmulator;
    let client: SecretClient;
    beforeAll(async () => {
      emu = await KeyVaultEmulator.start({ quiet: true });
      client = emulatorSecretClient(emu, { maxRetries: 0 });
    });
    afterAll(() => emu.stop());

    it('keeps a delete pending for 1 s: the name answers 409 ObjectIsBeingDeleted, nothing is readable yet', async () => {
      expect(DEFAULT_OPERATION_DELAY_MS).toBe(1000);
      await client.setSecret('pending', 'v');
      const deletedAt = Date.now();
      await rawRequest(emu, 'DELETE', `/secrets/pending?${API}`);
      const during = await restError(client.setSecret('pending', 'again'));
      expect([during.statusCode, during.details.error.innerError.code]).toEqual([409, 'ObjectIsBeingDeleted']);
      // a racing second delete finds nothing live: 404 (the service's answer in this window is unverified, README)
      const again = await rawRequest(emu, 'DELETE', `/secrets/pending?${API}`);
      expect([again.status, again.json.error.code]).toEqual([404, 'SecretNotFound']);
      expect((await restError(client.getSecret('pending'))).statusCode).toBe(404);
      expect((await restError(client.getDeletedSecret('pending'))).statusCode).toBe(404);
      while ((await rawRequest(emu, 'GET', `/deletedsecrets/pending?${API}`)).status === 404) await new Promise((r) => setTimeout(r, 50));
      expect(Date.now() - deletedAt).toBeGreaterThanOrEqual(DEFAULT_OPERATION_DELAY_MS - 50);
      const after = await restError(client.setSecret('pending', 'again'));
      expect(after.details.error.innerError.code).toBe('ObjectIsDeletedButRecoverable');
    });

    it("can resume a delete from a stopped poller (the SDK's own scenario)", async () => {
      await client.setSecret('resume-delete', 'v');
      const poller = await client.beginDeleteSecret('resume-delete', { intervalInMs: 50 });
      const first = poller.pollUntilDone().then(
        () => 'done',
        (e: Error) => e.name,
      );
      await poller.poll();
      poller.stopPolling();
      expect(poller.isStopped()).toBe(true);
      expect(poller.getOperationState().isCompleted).toBeFalsy();
      const serialized = poller.toString();

      const resumed = await client.beginDeleteSecret('resume-delete', { resumeFrom: serialized, intervalInMs: 50 });
      expect(resumed.getOperationState().isStarted).toBe(true);
      const deleted = await resumed.pollUntilDone();
      expect([deleted.name, resumed.getOperationState().isCompleted]).toEqual(['resume-delete', true]);
      expect(await first).toBe('PollerStoppedError');
      expect((await client.getDeletedSecret('resume-delete')).name).toBe('resume-delete');
    });

    it("can resume a recover from a stopped poller (the SDK's own scenario)", async () => {
      await client.setSecret('resume-recover', 'precious');
      await (await client.beginDeleteSecret('resume-recover', { intervalInMs: 100 })).pollUntilDone();
      const poller = await client.beginRecoverDeletedSecret('resume-recover', { intervalInMs: 50 });
      expect(poller.getOperationState().isStarted).toBe(true);
      const first = poller.pollUntilDone().then(
        () => 'done',
        (e: Error) => e.name,
      );
      await poller.poll();
      poller.stopPolling();
      expect(poller.isStopped()).toBe(true);
      expect(poller.getOperationState().isCompleted).toBeFalsy();
      // a recovered secret is not readable until the recovery completes
      expect((await restError(client.getSecret('resume-recover'))).statusCode).toBe(404);

      const resumed = await client.beginRecoverDeletedSecret('resume-recover', { resumeFrom: poller.toString(), intervalInMs: 50 });
      const recovered = await resumed.pollUntilDone();
      expect([recovered.name, resumed.getOperationState().isCompleted]).toEqual(['resume-recover', true]);
      expect(await first).toBe('PollerStoppedError');
      expect((await client.getSecret('resume-recover')).value).toBe('precious');
    });
  });

  describe('with purge protection', () => {
    let emu: KeyVaultEmulator;
    let client: SecretClient;
    beforeAll(async () => {
      emu = await KeyVaultEmulator.start({ quiet: true, purgeProtection: true, operationDelayMs: 0 });
      client = emulatorSecretClient(emu, { maxRetries: 0 });
    });
    afterAll(() => emu.stop());

    it('reports recoveryLevel Recoverable and refuses purge with 403 Forbidden', async () => {
      const s = await client.setSecret('protected', 'x');
      expect(s.properties.recoveryLevel).toBe('Recoverable');
      await (await client.beginDeleteSecret('protected')).pollUntilDone();
      const err = await restError(client.purgeDeletedSecret('protected'));
      expect(err.statusCode).toBe(403);
      expect(err.code).toBe('Forbidden');
      expect(err.message).toMatch(/^Operation "purge" is not allowed because purge protection is enabled for this vault/);
      // still there, still recoverable
      expect((await client.getDeletedSecret('protected')).name).toBe('protected');
      await (await client.beginRecoverDeletedSecret('protected')).pollUntilDone();
      expect((await client.getSecret('protected')).value).toBe('x');
    });
  });

  describe('backup and restore', () => {
    let emu: KeyVaultEmulator;
    let client: SecretClient;
    beforeAll(async () => {
      emu = await KeyVaultEmulator.start({ quiet: true, throttle: false, operationDelayMs: 0 });
      client = emulatorSecretClient(emu, { maxRetries: 0 });
    });
    afterAll(() => emu.stop());

    it('backs up all versions and restores them after a purge, keeping ids and attributes', async () => {
      const v1 = await client.setSecret('Backed-Up', 'first', { tags: { v: '1' } });
      const v2 = await client.setSecret('backed-up', 'second', { contentType: 'text/plain' });
      const blob = await client.backupSecret('backed-up');
      expect(blob).toBeInstanceOf(Uint8Array);
      expect(Buffer.from(blob!).toString('latin1')).not.toContain('first');

      // restoring over an existing secret is a conflict, in the service's words (recorded: azure-sdk-assets, js
      // keyvault-secrets "can restore a secret" — its one restore-conflict message names the backup's latest version)
      const exists = await restError(client.restoreSecretBackup(blob!));
      expect([exists.statusCode, exists.code, exists.details.error.innerError]).toEqual([409, 'Conflict', undefined]);
      expect(exists.message).toBe(
        `There was a conflict restoring the secret '${emu.vaultUrl}/secrets/Backed-Up/${v2.properties.version}'. This can happen if either: a second secret with the same name was created after the first secret was deleted; thus trying to restore a secret whose name is already in use. To fix this, rename the second secret to something else so that the restore works. The second probable cause of this exception is when multiple operations are performed in parallel against the secret. To avoid this error, perform operations against a secret in a sequential manner.`,
      );
      await (await client.beginDeleteSecret('backed-up')).pollUntilDone();
      const deleted = await restError(client.restoreSecretBackup(blob!));
      expect(deleted.statusCode).toBe(409);
      expect(deleted.details.error.innerError.code).toBe('ObjectIsDeletedButRecoverable');
      await client.purgeDeletedSecret('backed-up');

      const restored = await client.restoreSecretBackup(blob!);
      expect(restored.name).toBe('Backed-Up');
      expect(restored.version).toBe(v2.properties.version);
      expect((await client.getSecret('backed-up')).value).toBe('second');
      const old = await client.getSecret('backed-up', { version: v1.properties.version });
      expect(old.value).toBe('first');
      expect(old.properties.tags).toEqual({ v: '1' });
      expect(old.properties.createdOn).toEqual(v1.properties.createdOn);
    });

    it('restores a backup into another emulator vault', async () => {
      await client.setSecret('portable', 'p');
      const blob = await client.backupSecret('portable');
      const other = await KeyVaultEmulator.start({ quiet: true });
      try {
        const otherClient = emulatorSecretClient(other, { maxRetries: 0 });
        await otherClient.restoreSecretBackup(blob!);
        expect((await otherClient.getSecret('portable')).value).toBe('p');
      } finally {
        await other.stop();
      }
    });

    it('rejects a malformed backup with 400 "Backup blob contains invalid or corrupt version."', async () => {
      const err = await restError(client.restoreSecretBackup(new Uint8Array(4728)));
      expect(err.statusCode).toBe(400);
      expect(err.code).toBe('BadParameter');
      expect(err.message).toBe('Backup blob contains invalid or corrupt version.');
      const good = Buffer.from((await client.backupSecret('portable'))!);
      good[good.length - 1] ^= 0xff; // tampered
      const tampered = await restError(client.restoreSecretBackup(good));
      expect(tampered.message).toBe('Backup blob contains invalid or corrupt version.');
    });

    it('refuses to back up a secret with more than 500 versions', async () => {
      const name = 'many-versions';
      for (let batch = 0; batch < 501; batch += 50) {
        await Promise.all(
          Array.from({ length: Math.min(50, 501 - batch) }, (_, i) => client.setSecret(name, `v${batch + i}`)),
        );
      }
      const err = await restError(client.backupSecret(name));
      expect(err.statusCode).toBe(400);
      expect(err.code).toBe('BadParameter');
      expect(err.message).toMatch(/more than 500 versions/);
    });

    it('backs up exactly 500 versions', async () => {
      const name = 'five-hundred';
      for (let batch = 0; batch < 500; batch += 50) {
        await Promise.all(
          Array.from({ length: 50 }, (_, i) => client.setSecret(name, `v${batch + i}`)),
        );
      }
      const blob = await client.backupSecret(name);
      expect(blob!.length).toBeGreaterThan(500 * 40);
    });
  });
});
