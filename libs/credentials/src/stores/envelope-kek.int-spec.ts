/**
 * Integration: envelope data keys wrapped by a vault RSA key (`envelope.keyEncryptionKey`) — the real
 * gateway (KeyClient + CryptographyClient over HTTPS) against the local vault, on SQLite and PostgreSQL.
 * A host first runs without the option (data keys as vault secrets), then with it.
 */
import { randomBytes } from 'node:crypto';
import { Test, type TestingModule } from '@nestjs/testing';
import { TransactionRunner, type OperationContext } from '@app/common';
import { KeyVaultKeysProvider, KeyVaultProvider } from '@app/key-vault';
import { KeyVaultEmulator } from '@app/keyvault-emulator';
import { createTestDatabase, credentialsStackImports, DATABASE_KINDS, type TestDatabase } from '@app/testing';
import { DataSource } from 'typeorm';
import { CredentialCache, CredentialsService, CredentialType, DataKeyService, dataKeySecretName, KeyEncryptionKeyHealthCheck, type CredentialsModuleOptions } from '../index';
import { WRAPPED_DATA_KEY_NAME } from './data-key.service';

describe.each(DATABASE_KINDS)('envelope data keys wrapped by a vault key on %s', (kind) => {
  let emu: KeyVaultEmulator;
  let db: TestDatabase;
  let app: TestingModule | undefined;
  const run = randomBytes(3).toString('hex');
  const kek = `cv-kek-${run}`;
  const ctx: OperationContext = { tenantId: `wrap-${run}`, actor: { id: 'user:w' } };
  const token = () => `ya29.${randomBytes(24).toString('base64url')}`;

  const start = async (credentials: CredentialsModuleOptions) => {
    await app?.close();
    app = await Test.createTestingModule({
      imports: credentialsStackImports({ database: db.options, vault: emu, keyVault: { resilience: { maxAttempts: 2, pollIntervalMs: 20 } }, credentials }),
    }).compile();
    await app.init();
    return app;
  };
  const rowsOf = (sql: string) => (app as TestingModule).get(DataSource).query(sql) as Promise<Array<Record<string, string>>>;
  const envelopeKey = async (credentialId: string) =>
    (await rowsOf(`SELECT data_key_name AS name, data_key_version AS version FROM cv_envelope_values WHERE credential_id = '${credentialId}'`))[0];
  const wrappedRows = () => rowsOf(`SELECT version, kek_name, kek_version, wrapped_key FROM cv_wrapped_data_keys WHERE tenant_id = '${ctx.tenantId}'`);
  /** A new process: nothing cached (values, unwrapped data keys, the vault key's latest version). */
  const coldStart = () => {
    (app as TestingModule).get(CredentialCache).clear();
    (app as TestingModule).get(DataKeyService).clear();
  };

  beforeAll(async () => {
    emu = await KeyVaultEmulator.start({ quiet: true, throttle: false });
    db = await createTestDatabase(kind);
  });

  afterAll(async () => {
    await app?.close();
    await emu?.stop();
    await db?.drop();
  });

  it('wraps new data keys with the vault key, keeps secret-stored keys readable, and re-wraps lazily after the vault key rotates', async () => {
    // 1. Without the option: the tenant's data key is a vault secret.
    let svc = (await start({})).get(CredentialsService);
    const v0 = token();
    const legacy = await svc.store(ctx, { integrationId: 'gh', connectionId: 'legacy', type: CredentialType.OAUTH_ACCESS_TOKEN, value: v0 });
    expect(await envelopeKey(legacy.id)).toMatchObject({ name: dataKeySecretName(ctx.tenantId) });

    // 2. The operator creates an RSA key for wrapping and turns the option on.
    svc = (await start({ envelope: { keyEncryptionKey: kek } })).get(CredentialsService);
    const vaultKeys = (app as TestingModule).get(KeyVaultKeysProvider);
    const kekV1 = (await vaultKeys.createKey(kek, { keyType: 'RSA', keySize: 2048, keyOps: ['wrapKey', 'unwrapKey'] })).properties.version;
    const secretVersions = async () => (await (app as TestingModule).get(KeyVaultProvider).listSecretVersions(dataKeySecretName(ctx.tenantId))).items.length;
    expect(await secretVersions()).toBe(1);

    const v1 = token();
    const a = await svc.store(ctx, { integrationId: 'gh', connectionId: 'a', type: CredentialType.OAUTH_ACCESS_TOKEN, value: v1 });
    const wrappedA = await envelopeKey(a.id);
    expect(wrappedA.name).toBe(WRAPPED_DATA_KEY_NAME);
    const [row] = await wrappedRows();
    expect(row).toMatchObject({ version: wrappedA.version, kek_name: kek, kek_version: kekV1 });
    expect(Buffer.from(row.wrapped_key, 'base64')).toHaveLength(256); // RSA-2048 OAEP output, not a 32-byte key
    expect(await secretVersions()).toBe(1); // no data key became a readable secret

    // The value written under the secret-stored key still reads, and moves to the wrapped key as it is read.
    coldStart();
    expect((await svc.get(ctx, legacy.id)).value).toBe(v0);
    expect(await envelopeKey(legacy.id)).toEqual(wrappedA);

    // 3. The vault key rotates. A new process reads the old value: unwrap with v1, re-wrap under v2.
    const kekV2 = (await vaultKeys.rotateKey(kek)).properties.version;
    coldStart();
    emu.resetStats();
    expect((await svc.get(ctx, a.id)).value).toBe(v1);
    expect(await wrappedRows()).toEqual([expect.objectContaining({ version: wrappedA.version, kek_version: kekV2 })]);
    expect(emu.stats().byOperation).toMatchObject({ unwrapKey: 1 });

    // Proof the row is wrapped by v2 alone: with v1 disabled, a cold process still reads everything.
    await vaultKeys.updateKeyProperties(kek, kekV1, { enabled: false });
    coldStart();
    emu.resetStats();
    const [ra, rl] = await Promise.all([svc.get(ctx, a.id), svc.get(ctx, legacy.id)]);
    expect([ra.value, rl.value]).toEqual([v1, v0]);
    expect(emu.stats().byOperation.unwrapKey).toBe(1); // one unwrap per data key per process
    expect(emu.stats().byOperation.getSecret ?? 0).toBe(0);

    // A rotated data key under the wrapped scheme: new rows use it, older ones stay readable.
    const next = await (app as TestingModule).get(DataKeyService).rotate(ctx.tenantId);
    expect(next.name).toBe(WRAPPED_DATA_KEY_NAME);
    const b = await svc.store(ctx, { integrationId: 'gh', connectionId: 'b', type: CredentialType.OAUTH_ACCESS_TOKEN, value: token() });
    expect((await envelopeKey(b.id)).version).toBe(next.version);
    expect(await wrappedRows()).toHaveLength(2);
    coldStart();
    expect((await svc.get(ctx, legacy.id)).value).toBe(v0);
  }, 60_000);

  it("a data key created in a caller's transaction that rolls back is never used afterwards: a cold process reads every committed value", async () => {
    const kek2 = `${kek}-tx`;
    const svc = (await start({ envelope: { keyEncryptionKey: kek2 } })).get(CredentialsService);
    await (app as TestingModule).get(KeyVaultKeysProvider).createKey(kek2, { keyType: 'RSA', keySize: 2048, keyOps: ['wrapKey', 'unwrapKey'] });
    const runner = (app as TestingModule).get(TransactionRunner, { strict: false });
    const tenant: OperationContext = { tenantId: `wraptx-${run}`, actor: { id: 'user:w' } };
    const keyRows = () => rowsOf(`SELECT version FROM cv_wrapped_data_keys WHERE tenant_id = '${tenant.tenantId}'`);
    const put = (connectionId: string, value: string) => svc.store(tenant, { integrationId: 'gh', connectionId, type: CredentialType.OAUTH_ACCESS_TOKEN, value });

    // The tenant's first data key is created inside a transaction that then fails: its row rolls back.
    await expect(runner.run(async () => {
      await put('lost-1', token());
      await put('lost-2', token());
      throw new Error('the caller gives up');
    })).rejects.toThrow('the caller gives up');
    expect(await keyRows()).toHaveLength(0);
    expect(await rowsOf(`SELECT id FROM cv_credentials WHERE tenant_id = '${tenant.tenantId}'`)).toHaveLength(0);

    // Later writes (alone, and two in one committed transaction) must use a key whose row exists.
    const values = [token(), token(), token()];
    const alone = await put('a', values[0]);
    const [b, c] = await runner.run(async () => [await put('b', values[1]), await put('c', values[2])]);
    const rows = await keyRows();
    for (const cred of [alone, b, c]) expect(rows.map((r) => r.version)).toContain((await envelopeKey(cred.id)).version);

    coldStart();
    expect(await Promise.all([alone, b, c].map(async (cred) => (await svc.get(tenant, cred.id)).value))).toEqual(values);
  }, 60_000);
  it('checkKeyEncryptionKey says whether the key can wrap and unwrap now, and why not: missing, disabled, wrong operations, not RSA', async () => {
    expect(await (await start({})).get(KeyEncryptionKeyHealthCheck).checkKeyEncryptionKey()).toBeNull();
    const name = `${kek}-health`;
    const health = (await start({ envelope: { keyEncryptionKey: name } })).get(KeyEncryptionKeyHealthCheck);
    const vaultKeys = (app as TestingModule).get(KeyVaultKeysProvider);
    const check = async () => {
      health.clear(); // a verdict stands for a while: each step asks afresh
      return health.checkKeyEncryptionKey();
    };
    expect(await check()).toMatchObject({ keyName: name, status: 'unusable', problem: 'the vault answered KEY_NOT_FOUND' });

    const created = await vaultKeys.createKey(name, { keyType: 'RSA', keySize: 2048, keyOps: ['wrapKey', 'unwrapKey'] });
    const usable = await check();
    expect(usable).toMatchObject({ keyName: name, status: 'usable', version: created.properties.version });
    expect(usable?.problem).toBeUndefined();
    // Within its time the verdict is not asked of the vault again, and concurrent callers share one check.
    await vaultKeys.updateKeyProperties(name, undefined, { enabled: false });
    expect(await health.checkKeyEncryptionKey()).toBe(usable);
    expect(await check()).toMatchObject({ status: 'unusable', problem: 'its latest version is disabled' });

    await vaultKeys.updateKeyProperties(name, undefined, { enabled: true, keyOps: ['sign', 'verify'] });
    expect(await check()).toMatchObject({ status: 'unusable', problem: 'its operations (sign, verify) do not include wrapKey and unwrapKey' });

    const ec = `${name}-ec`;
    await vaultKeys.createKey(ec, { keyType: 'EC', curve: 'P-256' });
    const ecHealth = (await start({ envelope: { keyEncryptionKey: ec } })).get(KeyEncryptionKeyHealthCheck);
    expect(await ecHealth.checkKeyEncryptionKey()).toMatchObject({ status: 'unusable', problem: expect.stringMatching(/^its key type is EC; wrapping data keys \(RSA-OAEP-256\) needs RSA$/) });
  }, 60_000);
});
