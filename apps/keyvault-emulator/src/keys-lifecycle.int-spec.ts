import { KeyClient } from '@azure/keyvault-keys';
import { createHash, randomBytes, verify as nodeVerify, createPublicKey } from 'node:crypto';
import { KeyVaultEmulator } from './index';
import { emulatorCryptographyClient, emulatorKeyClient, rawRequest, restError } from './testing';

const API = 'api-version=7.6';
const b64u = (b: Uint8Array) => Buffer.from(b).toString('base64url');
const poll = { intervalInMs: 50 };

describe('Key Vault emulator: keys lifecycle through the official KeyClient', () => {
  let emu: KeyVaultEmulator;
  let keys: KeyClient;
  beforeAll(async () => {
    emu = await KeyVaultEmulator.start({ quiet: true, throttle: false, operationDelayMs: 300, softDeleteRetentionDays: 7 });
    keys = emulatorKeyClient(emu, { maxRetries: 0 });
  });
  afterAll(() => emu.stop());

  describe('list', () => {
    beforeAll(async () => {
      await Promise.all(Array.from({ length: 30 }, (_, i) => keys.createEcKey(`listed-${String(i).padStart(2, '0')}`, { tags: { n: String(i) } })));
      for (let i = 0; i < 9; i++) await keys.createEcKey('many-versions');
    });

    it('pages over keys with maxPageSize and absolute nextLinks; items carry kid, attributes and tags, never key material', async () => {
      const pageSizes: number[] = [];
      const names: string[] = [];
      for await (const page of keys.listPropertiesOfKeys().byPage({ maxPageSize: 7 })) {
        pageSizes.push(page.length);
        names.push(...page.map((p) => p.name));
      }
      expect(names.filter((n) => n.startsWith('listed-'))).toEqual(Array.from({ length: 30 }, (_, i) => `listed-${String(i).padStart(2, '0')}`));
      expect(pageSizes.slice(0, -1).every((n) => n === 7)).toBe(true);

      const first = await rawRequest(emu, 'GET', `/keys?${API}&maxresults=5`);
      expect(first.json.value).toHaveLength(5);
      expect(first.json.value[0]).toEqual({ kid: `${emu.vaultUrl}/keys/listed-00`, attributes: expect.objectContaining({ enabled: true, exportable: false }), tags: { n: '0' } });
      expect(first.json.nextLink).toMatch(new RegExp(`^${emu.vaultUrl}/keys\\?api-version=7\\.6&\\$skiptoken=[A-Za-z0-9_-]+&maxresults=5$`));
      const second = await rawRequest(emu, 'GET', first.json.nextLink.slice(emu.vaultUrl.length));
      expect(second.json.value[0].kid).toBe(`${emu.vaultUrl}/keys/listed-05`);
    });

    it('pages over the versions of a key (ids with versions); an unknown name has none', async () => {
      const versions: string[] = [];
      let pages = 0;
      for await (const page of keys.listPropertiesOfKeyVersions('many-versions').byPage({ maxPageSize: 4 })) {
        pages++;
        versions.push(...page.map((p) => p.version!));
      }
      expect([pages, new Set(versions).size]).toEqual([3, 9]);
      const none = [];
      for await (const p of keys.listPropertiesOfKeyVersions('never-created')) none.push(p);
      expect(none).toEqual([]);
    });
  });

  describe('update and rotate', () => {
    it('updates enabled, expiry, tags and key_ops of the current version or of a given one', async () => {
      const v1 = await keys.createRsaKey('updated', { tags: { a: '1' } });
      const v2 = await keys.createRsaKey('updated');
      const latest = await keys.updateKeyProperties('updated', { enabled: false, tags: { b: '2' } });
      expect([latest.properties.version, latest.properties.enabled, latest.properties.tags]).toEqual([v2.properties.version, false, { b: '2' }]);
      const expiresOn = new Date('2019-01-01T00:00:00Z');
      const old = await keys.updateKeyProperties('updated', v1.properties.version!, { expiresOn, keyOps: ['verify'] });
      expect([old.properties.expiresOn, old.keyOperations, old.properties.tags]).toEqual([expiresOn, ['verify'], { a: '1' }]);
      expect(old.properties.updatedOn!.getTime()).toBeGreaterThanOrEqual(old.properties.createdOn!.getTime());
      // a disabled key can be updated too
      expect((await keys.updateKeyProperties('updated', v2.properties.version!, { expiresOn })).properties.expiresOn).toEqual(expiresOn);
      // the narrowed key_ops apply at once
      const sign = await rawRequest(emu, 'POST', `/keys/updated/${v1.properties.version}/sign?${API}`, { body: { alg: 'RS256', value: b64u(randomBytes(32)) } });
      expect([sign.status, sign.json.error.innererror.code]).toEqual([403, 'KeyOperationForbidden']);
      expect((await restError(keys.updateKeyProperties('no-such-key', { enabled: false }))).statusCode).toBe(404);
      const bad = await rawRequest(emu, 'PATCH', `/keys/updated/?${API}`, { body: { key_ops: ['fly'] } });
      expect([bad.status, bad.json.error.code]).toEqual([400, 'BadParameter']);
    });

    it('rotates a key: a new current version of the same type and size with new key material; the old one still works', async () => {
      // (the SDK 4.10 does not send publicExponent, so the REST call sets it)
      const created = await rawRequest(emu, 'POST', `/keys/rotated/create?${API}`, { body: { kty: 'RSA', key_size: 3072, public_exponent: 3, key_ops: ['sign', 'verify'] } });
      expect([created.status, created.json.key.e]).toEqual([200, 'Aw']);
      const rsa = await keys.getKey('rotated');
      const rotated = await keys.rotateKey('rotated');
      expect(rotated.id).not.toBe(rsa.id);
      expect([rotated.keyType, rotated.key!.n!.length, b64u(rotated.key!.e!), rotated.keyOperations]).toEqual(['RSA', 384, 'Aw', ['sign', 'verify']]);
      expect(b64u(rotated.key!.n!)).not.toBe(b64u(rsa.key!.n!));
      expect((await keys.getKey('rotated')).id).toBe(rotated.id);

      const message = Buffer.from('signed by the old version');
      const oldCrypto = emulatorCryptographyClient(emu, rsa, { maxRetries: 0 });
      const { result } = await oldCrypto.sign('RS256', createHash('sha256').update(message).digest());
      const oldPublic = createPublicKey({ key: { kty: 'RSA', n: b64u(rsa.key!.n!), e: b64u(rsa.key!.e!) }, format: 'jwk' });
      expect(nodeVerify('sha256', message, oldPublic, result)).toBe(true);

      const ec = await keys.createEcKey('rotated-ec', { curve: 'P-384' });
      const ecRotated = await keys.rotateKey('rotated-ec');
      expect([ecRotated.keyType, ecRotated.key!.crv]).toEqual(['EC', 'P-384']);
      expect(b64u(ecRotated.key!.x!)).not.toBe(b64u(ec.key!.x!));
      expect((await restError(keys.rotateKey('no-such-key'))).code).toBe('KeyNotFound');
    });
  });

  describe('rotation policy (kept; applied by rotate, never triggered on its own)', () => {
    it("gives a rotated version the policy's expiryTime from its creation, and none without one", async () => {
      await keys.createRsaKey('expiring');
      const plain = await keys.rotateKey('expiring');
      expect(plain.properties.expiresOn).toBeUndefined();

      await keys.updateKeyRotationPolicy('expiring', { expiresIn: 'P90D', lifetimeActions: [{ action: 'Rotate', timeAfterCreate: 'P60D' }] });
      const before = Date.now();
      const rotated = await keys.rotateKey('expiring');
      const days = (rotated.properties.expiresOn!.getTime() - rotated.properties.createdOn!.getTime()) / 86_400_000;
      expect(days).toBe(90);
      expect(rotated.properties.expiresOn!.getTime()).toBeGreaterThanOrEqual(before + 90 * 86_400_000 - 1000);
      expect((await keys.getKey('expiring')).properties.expiresOn).toEqual(rotated.properties.expiresOn);
      // The policy does not touch earlier versions.
      expect((await keys.getKey('expiring', { version: plain.properties.version! })).properties.expiresOn).toBeUndefined();

      const bad = await rawRequest(emu, 'PUT', `/keys/expiring/rotationpolicy?${API}`, {
        body: { attributes: { expiryTime: 'P90D' }, lifetimeActions: [{ trigger: { timeAfterCreate: 'P85D' }, action: { type: 'Rotate' } }] },
      });
      expect([bad.status, bad.json.error.code]).toEqual([400, 'BadParameter']);
      expect(bad.json.error.message).toMatch(/7 days before "attributes.expiryTime"/);
    });


    it('sets, reads and replaces a key rotation policy; an unknown key answers 404; a key without one reports the default', async () => {
      const key = await keys.createRsaKey('with-policy');
      const initial = await keys.getKeyRotationPolicy('with-policy');
      expect(initial.lifetimeActions).toEqual([{ action: 'Notify', timeBeforeExpiry: 'P30D', timeAfterCreate: undefined }]);
      expect([initial.id, initial.createdOn, initial.expiresIn]).toEqual([undefined, undefined, undefined]);
      // the service's body for a key that never had a policy (recorded: azure-sdk-assets, js keyvault-keys keyrotation
      // "get a key rotation policy", 2026-04): the default action, no id, attributes null
      const raw = await rawRequest(emu, 'GET', `/keys/with-policy/rotationpolicy?${API}`);
      expect(raw.json).toEqual({ lifetimeActions: [{ trigger: { timeBeforeExpiry: 'P30D' }, action: { type: 'Notify' } }], attributes: null });

      const created = await keys.updateKeyRotationPolicy(key.name, { expiresIn: 'P90D', lifetimeActions: [{ action: 'Rotate', timeBeforeExpiry: 'P30D' }] });
      expect(await keys.getKeyRotationPolicy('with-policy')).toEqual(created);
      expect(created.createdOn).toBeInstanceOf(Date);

      await keys.updateKeyRotationPolicy(key.name, { lifetimeActions: [{ action: 'Rotate', timeAfterCreate: 'P2M' }] });
      const updated = await keys.updateKeyRotationPolicy(key.name, { expiresIn: 'P90D', lifetimeActions: [{ action: 'Notify', timeBeforeExpiry: 'P30D' }] });
      expect(updated).toEqual({
        id: updated.id,
        createdOn: updated.createdOn,
        updatedOn: updated.updatedOn,
        expiresIn: 'P90D',
        lifetimeActions: [{ timeAfterCreate: undefined, action: 'Notify', timeBeforeExpiry: 'P30D' }],
      });

      expect((await restError(keys.getKeyRotationPolicy('no-such-key'))).statusCode).toBe(404);
      const bad = await rawRequest(emu, 'PUT', `/keys/with-policy/rotationpolicy?${API}`, { body: { lifetimeActions: [{ trigger: { timeAfterCreate: 'soon' }, action: { type: 'Rotate' } }] } });
      expect([bad.status, bad.json.error.code]).toEqual([400, 'BadParameter']);
    });
  });

  describe('delete, recover and purge (long-running operations)', () => {
    it('deletes through the poller: not yet deleted right after the DELETE, then visible in deletedkeys', async () => {
      await keys.createRsaKey('to-delete', { tags: { t: 'x' } });
      emu.resetStats();
      const started = Date.now();
      const poller = await keys.beginDeleteKey('to-delete', poll);
      expect(poller.getResult()!.name).toBe('to-delete');
      expect(poller.isDone()).toBe(false);
      expect((await restError(keys.getKey('to-delete'))).statusCode).toBe(404);
      expect((await restError(keys.getDeletedKey('to-delete'))).message).toBe('Deleted Key not found: to-delete');
      // the name is taken while it is being deleted
      const during = await restError(keys.createRsaKey('to-delete'));
      expect([during.statusCode, during.code, during.details.error.innerError.code]).toEqual([409, 'Conflict', 'ObjectIsBeingDeleted']);

      const deleted = await poller.pollUntilDone();
      expect(Date.now() - started).toBeGreaterThanOrEqual(250);
      expect(deleted.properties.recoveryId).toBe(`${emu.vaultUrl}/deletedkeys/to-delete`);
      expect(deleted.properties.deletedOn).toBeInstanceOf(Date);
      expect((deleted.properties.scheduledPurgeDate!.getTime() - deleted.properties.deletedOn!.getTime()) / 86_400_000).toBe(7);
      expect(emu.stats().byOperationAndStatus).toMatchObject({ 'deleteKey:200': 1, 'getDeletedKey:200': 1 });

      const raw = await rawRequest(emu, 'GET', `/deletedkeys/to-delete?${API}`);
      expect(raw.json).toMatchObject({ recoveryId: deleted.properties.recoveryId, deletedDate: expect.any(Number), tags: { t: 'x' }, key: { kty: 'RSA' } });
      expect(raw.json.key.d).toBeUndefined();

      const after = await restError(keys.createRsaKey('TO-DELETE'));
      expect([after.statusCode, after.details.error.innerError.code]).toEqual([409, 'ObjectIsDeletedButRecoverable']);
      expect(after.message).toMatch(/^Key to-delete is currently in a deleted but recoverable state/);
      const deletedNames: string[] = [];
      for await (const d of keys.listDeletedKeys()) deletedNames.push(d.name);
      expect(deletedNames).toContain('to-delete');
      const rawList = await rawRequest(emu, 'GET', `/deletedkeys?${API}&maxresults=1`);
      expect(rawList.json.value[0]).toMatchObject({ recoveryId: expect.stringContaining('/deletedkeys/'), kid: expect.stringContaining('/keys/') });
    });

    // Recorded service answers (azure-sdk-for-js keyvault-keys recordings, "fails if one tries to recover a
    // non-existing deleted key"): 404 KeyNotFound with the not-found message of a live key's GET, not the
    // "Deleted Key not found" of GET /deletedkeys. A live key has no deleted object either: the same answer, and it
    // stays live and unchanged.
    it('answers POST /deletedkeys/{name}/recover of a live key, or of a name never used, 404 KeyNotFound as the service does', async () => {
      const live = await keys.createEcKey('live-not-deleted');
      const notFound = (name: string) => ({
        status: 404,
        json: { error: { code: 'KeyNotFound', message: `A key with (name/id) ${name} was not found in this key vault. If you recently deleted this key you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182` } },
      });
      for (const name of ['live-not-deleted', 'never-created']) {
        const r = await rawRequest(emu, 'POST', `/deletedkeys/${name}/recover?${API}`);
        expect({ status: r.status, json: r.json }).toEqual(notFound(name));
      }
      expect((await keys.getKey('live-not-deleted')).id).toBe(live.id);
    });

    it('recovers through the poller (GET /keys/{name}/ until 200) with its versions and key material', async () => {
      const v1 = await keys.createRsaKey('to-recover');
      const v2 = await keys.rotateKey('to-recover');
      await (await keys.beginDeleteKey('to-recover', poll)).pollUntilDone();
      const poller = await keys.beginRecoverDeletedKey('to-recover', poll);
      expect(poller.getOperationState().isStarted).toBe(true);
      expect(poller.isDone()).toBe(false);
      const recovered = await poller.pollUntilDone();
      expect(recovered.id).toBe(v2.id);
      expect((await keys.getKey('to-recover', { version: v1.properties.version })).key!.n).toEqual(v1.key!.n);
      const names: string[] = [];
      for await (const d of keys.listDeletedKeys()) names.push(d.name);
      expect(names).not.toContain('to-recover');
    });

    it('purges a deleted key (204); purge of an unknown one and delete of an unknown key answer 404 KeyNotFound', async () => {
      await keys.createEcKey('to-purge');
      await (await keys.beginDeleteKey('to-purge', poll)).pollUntilDone();
      const purge = await rawRequest(emu, 'DELETE', `/deletedkeys/to-purge?${API}`);
      expect([purge.status, purge.text]).toEqual([204, '']);
      expect((await restError(keys.purgeDeletedKey('to-purge'))).code).toBe('KeyNotFound');
      const missing = await restError(keys.beginDeleteKey('never-existed', poll));
      expect([missing.statusCode, missing.code]).toEqual([404, 'KeyNotFound']);
      // The purge completes asynchronously (300 ms here): the name is refused meanwhile, then free.
      expect((await restError(keys.createEcKey('to-purge'))).details.error.innerError.code).toBe('ObjectIsBeingDeleted');
      await new Promise((r) => setTimeout(r, 350));
      expect((await keys.createEcKey('to-purge')).name).toBe('to-purge');
    });

    it('restoring a key whose purge is completing answers as over a live name (409 Conflict, no inner code), then restores', async () => {
      const created = await keys.createEcKey('purge-then-restore');
      const backup = (await keys.backupKey('purge-then-restore'))!;
      await (await keys.beginDeleteKey('purge-then-restore', poll)).pollUntilDone();
      await keys.purgeDeletedKey('purge-then-restore');
      const refused = await restError(keys.restoreKeyBackup(backup));
      expect([refused.statusCode, refused.code, refused.details.error.innerError]).toEqual([409, 'Conflict', undefined]);
      expect(refused.message).toBe(
        `There was a conflict restoring the key '${created.id}'. This can happen if either: a second key with the same name was created after the first key was deleted; thus trying to restore a key whose name is already in use. To fix this, rename the second key to something else so that the restore works. The second probable cause of this exception is when multiple operations are performed in parallel against the key. To avoid this error, perform operations against a key in a sequential manner.`,
      );
      await new Promise((r) => setTimeout(r, 350));
      expect((await keys.restoreKeyBackup(backup)).id).toBe(created.id);
    });

    // What the service answered azure-sdk-for-python's backup_restore_operations.py sample of 2021, which restored a key's
    // backup right after begin_delete_key(...).result() (its poller's result() does not wait for the delete): "There
    // was a conflict restoring the key. This can happen if either: a second key with the same name…" (issue #17630).
    it('restoring a key whose delete is still completing answers as over a live name (409 Conflict, no inner code)', async () => {
      const created = await keys.createEcKey('delete-then-restore');
      const backup = (await keys.backupKey('delete-then-restore'))!;
      const deleting = await keys.beginDeleteKey('delete-then-restore', poll);
      const refused = await restError(keys.restoreKeyBackup(backup));
      expect([refused.statusCode, refused.code, refused.details.error.innerError]).toEqual([409, 'Conflict', undefined]);
      expect(refused.message).toMatch(new RegExp(`^There was a conflict restoring the key '${created.id}'\\. This can happen if either: a second key`));
      await deleting.pollUntilDone();
      // once deleted, a restore meets the soft-deleted name (unverified: see the README)
      const deleted = await restError(keys.restoreKeyBackup(backup));
      expect([deleted.statusCode, deleted.details.error.innerError?.code]).toEqual([409, 'ObjectIsDeletedButRecoverable']);
    });

    it('refuses purge (403) under purge protection', async () => {
      const protectedVault = await KeyVaultEmulator.start({ quiet: true, purgeProtection: true, operationDelayMs: 0 });
      try {
        const client = emulatorKeyClient(protectedVault, { maxRetries: 0 });
        expect((await client.createEcKey('kept')).properties.recoveryLevel).toBe('Recoverable');
        await (await client.beginDeleteKey('kept', poll)).pollUntilDone();
        const err = await restError(client.purgeDeletedKey('kept'));
        expect([err.statusCode, err.code]).toEqual([403, 'Forbidden']);
        expect((await client.getDeletedKey('kept')).name).toBe('kept');
      } finally {
        await protectedVault.stop();
      }
    });
  });

  describe('at the default operationDelayMs (Azure-like)', () => {
    let azureLike: KeyVaultEmulator;
    let client: KeyClient;
    beforeAll(async () => {
      azureLike = await KeyVaultEmulator.start({ quiet: true, throttle: false });
      client = emulatorKeyClient(azureLike, { maxRetries: 0 });
    });
    afterAll(() => azureLike.stop());

    it("can resume a key delete from a stopped poller (the SDK's own scenario)", async () => {
      await client.createEcKey('resume-delete');
      const poller = await client.beginDeleteKey('resume-delete', poll);
      const first = poller.pollUntilDone().then(
        () => 'done',
        (e: Error) => e.name,
      );
      await poller.poll();
      poller.stopPolling();
      expect(poller.isStopped()).toBe(true);
      expect(poller.getOperationState().isCompleted).toBeFalsy();
      const during = await restError(client.createEcKey('resume-delete'));
      expect(during.details.error.innerError.code).toBe('ObjectIsBeingDeleted');

      const resumed = await client.beginDeleteKey('resume-delete', { resumeFrom: poller.toString(), ...poll });
      const deleted = await resumed.pollUntilDone();
      expect([deleted.name, resumed.getOperationState().isCompleted]).toEqual(['resume-delete', true]);
      expect(await first).toBe('PollerStoppedError');
      expect((await client.getDeletedKey('resume-delete')).properties.recoveryId).toBe(`${azureLike.vaultUrl}/deletedkeys/resume-delete`);
    });

    it("can resume a key recovery from a stopped poller (the SDK's own scenario)", async () => {
      const key = await client.createRsaKey('resume-recover');
      await (await client.beginDeleteKey('resume-recover', { intervalInMs: 100 })).pollUntilDone();
      const poller = await client.beginRecoverDeletedKey('resume-recover', poll);
      expect(poller.getOperationState().isStarted).toBe(true);
      const first = poller.pollUntilDone().then(
        () => 'done',
        (e: Error) => e.name,
      );
      await poller.poll();
      poller.stopPolling();
      expect(poller.isStopped()).toBe(true);
      expect(poller.getOperationState().isCompleted).toBeFalsy();
      expect((await restError(client.getKey('resume-recover'))).statusCode).toBe(404);

      const resumed = await client.beginRecoverDeletedKey('resume-recover', { resumeFrom: poller.toString(), ...poll });
      const recovered = await resumed.pollUntilDone();
      expect([recovered.id, resumed.getOperationState().isCompleted]).toEqual([key.id, true]);
      expect(await first).toBe('PollerStoppedError');
    });
  });

  describe('backup and restore', () => {
    it('backs up every version and restores them after a purge, into this vault or another one', async () => {
      const v1 = await keys.createRsaKey('Backed-Up-Key', { tags: { v: '1' } });
      const v2 = await keys.rotateKey('backed-up-key');
      const blob = (await keys.backupKey('backed-up-key'))!;
      expect(blob).toBeInstanceOf(Uint8Array);
      expect(Buffer.from(blob).toString('latin1')).not.toMatch(/PRIVATE KEY|Backed-Up-Key/);

      // the service's restore conflict (recorded: azure-sdk-for-js keyvault-keys "can restore a key with a given backup")
      const exists = await restError(keys.restoreKeyBackup(blob));
      expect([exists.statusCode, exists.code, exists.details.error.innerError]).toEqual([409, 'Conflict', undefined]);
      expect(exists.message).toMatch(
        new RegExp(`^There was a conflict restoring the key '${emu.vaultUrl}/keys/Backed-Up-Key/${v2.properties.version}'\\. This can happen if either: a second key with the same name was created after the first key was deleted; thus trying to restore a key whose name is already in use\\. `),
      );
      await (await keys.beginDeleteKey('backed-up-key', poll)).pollUntilDone();
      const deleted = await restError(keys.restoreKeyBackup(blob));
      expect(deleted.details.error.innerError.code).toBe('ObjectIsDeletedButRecoverable');
      await keys.purgeDeletedKey('backed-up-key');
      await new Promise((r) => setTimeout(r, 350)); // the purge completes

      const restored = await keys.restoreKeyBackup(blob);
      expect([restored.name, restored.id]).toEqual(['Backed-Up-Key', v2.id]);
      const old = await keys.getKey('backed-up-key', { version: v1.properties.version });
      expect([old.properties.tags, old.key!.n]).toEqual([{ v: '1' }, v1.key!.n]);

      const other = await KeyVaultEmulator.start({ quiet: true, operationDelayMs: 0 });
      try {
        const otherKeys = emulatorKeyClient(other, { maxRetries: 0 });
        const inOther = await otherKeys.restoreKeyBackup(blob);
        expect(inOther.id).toBe(`${other.vaultUrl}/keys/Backed-Up-Key/${v2.properties.version}`);
        // the restored private key signs; the original public key verifies
        const message = Buffer.from('restored elsewhere');
        const { result } = await emulatorCryptographyClient(other, inOther, { maxRetries: 0 }).sign('PS256', createHash('sha256').update(message).digest());
        const pub = createPublicKey({ key: { kty: 'RSA', n: b64u(v2.key!.n!), e: b64u(v2.key!.e!) }, format: 'jwk' });
        expect(nodeVerify('sha256', message, { key: pub, padding: 6, saltLength: 32 }, result)).toBe(true);
      } finally {
        await other.stop();
      }
    });

    it('rejects a malformed or tampered blob, and a secret backup, with 400 "Backup blob contains invalid or corrupt version."', async () => {
      await keys.createEcKey('blob-source');
      const good = Buffer.from((await keys.backupKey('blob-source'))!);
      const tampered = Buffer.from(good);
      tampered[tampered.length - 2] ^= 0xff;
      for (const blob of [new Uint8Array(300), tampered]) {
        const err = await restError(keys.restoreKeyBackup(blob));
        expect([err.statusCode, err.code, err.message]).toEqual([400, 'BadParameter', 'Backup blob contains invalid or corrupt version.']);
      }
      const secretBackup = await rawRequest(emu, 'PUT', `/secrets/s-for-backup?${API}`, { body: { value: 'v' } }).then(() =>
        rawRequest(emu, 'POST', `/secrets/s-for-backup/backup?${API}`),
      );
      const asKey = await rawRequest(emu, 'POST', `/keys/restore?${API}`, { body: { value: secretBackup.json.value } });
      expect([asKey.status, asKey.json.error.message]).toEqual([400, 'Backup blob contains invalid or corrupt version.']);
    });
  });
});
