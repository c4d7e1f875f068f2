/**
 * Integration (SQLite and PostgreSQL, real SDK against the local vault): the Key Vault secret name a new credential's
 * store writes to, when the store does not run alone — two replicas storing one slot at once, and a store that crashed
 * between its vault write and its commit, then retried. The live credential must be the only one pointing at its
 * secret's name, and the loser's or the crash's value must be readable nowhere once the winner is deleted.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { Test, type TestingModule } from '@nestjs/testing';
import type { OperationContext } from '@app/common';
import { isKeyVaultError, KeyVaultErrorCode, KeyVaultProvider, type SecretProperties } from '@app/key-vault';
import { KeyVaultEmulator } from '@app/keyvault-emulator';
import { createTestDatabase, credentialsStackImports, DATABASE_KINDS, type TestDatabase } from '@app/testing';
import { CredentialErrorCode, CredentialsService, CredentialType, credentialSecretName, ValueStoreKind } from './index';

jest.setTimeout(120_000);

describe.each(DATABASE_KINDS)('the secret name of a store that does not run alone, on %s', (kind) => {
  let emu: KeyVaultEmulator;
  let db: TestDatabase;
  const replicas: TestingModule[] = [];
  let vault: KeyVaultProvider;
  const run = randomBytes(3).toString('hex');
  const ctx: OperationContext = { tenantId: `slot_${run}`, actor: { id: 'user:ops' } };
  const secret = () => `tok_${randomBytes(18).toString('base64url')}`;
  const slot = (connectionId: string) => ({ integrationId: 'github', connectionId, type: CredentialType.API_KEY });
  const nameOf = (connectionId: string, generation: number) => credentialSecretName({ tenantId: ctx.tenantId, ...slot(connectionId) }, generation);
  const service = (i: number) => replicas[i].get(CredentialsService);

  beforeAll(async () => {
    emu = await KeyVaultEmulator.start({ quiet: true, throttle: false, operationDelayMs: 0 });
    db = await createTestDatabase(kind);
    // Two replicas: one database, one vault, each its own process state (cache, locks, pools).
    for (let i = 0; i < 2; i++) {
      const moduleRef = await Test.createTestingModule({
        imports: credentialsStackImports({
          database: db.options,
          vault: emu,
          persistence: { outbox: { dispatch: i === 0 } },
          credentials: { valueStores: { api_key: ValueStoreKind.VAULT } },
        }),
      }).compile();
      await moduleRef.init();
      replicas.push(moduleRef);
    }
    vault = replicas[0].get(KeyVaultProvider);
  });

  afterEach(() => emu.clearFaults());

  afterAll(async () => {
    for (const r of replicas) await r.close();
    await emu?.stop();
    await db?.drop();
  });

  async function allVersions(name: string): Promise<SecretProperties[]> {
    const out: SecretProperties[] = [];
    for await (const v of vault.listAllSecretVersions(name)) out.push(v);
    return out;
  }

  async function isSoftDeleted(name: string): Promise<boolean> {
    return vault.getDeletedSecret(name).then(
      () => true,
      (e: unknown) => {
        if (isKeyVaultError(e, KeyVaultErrorCode.KEY_NOT_FOUND)) return false;
        throw e;
      },
    );
  }

  it('two replicas storing one slot at once: one credential, the loser gets ALREADY_EXISTS and its vault version is disabled', async () => {
    // Both read the slot before either writes its value: the vault answers each write after 400 ms.
    emu.injectFault({ kind: 'latency', latencyMs: 400, operations: ['setSecret'], count: 2 });
    const values = [secret(), secret()];
    const outcomes = await Promise.allSettled(values.map((value, i) => service(i).store(ctx, { ...slot('race'), value })));
    const won = outcomes.flatMap((o, i) => (o.status === 'fulfilled' ? [{ i, meta: o.value }] : []));
    expect(won).toHaveLength(1);
    const [{ i: winner, meta }] = won;
    expect((outcomes[1 - winner] as PromiseRejectedResult).reason).toMatchObject({ code: CredentialErrorCode.ALREADY_EXISTS });
    expect((outcomes[1 - winner] as PromiseRejectedResult).reason.message).toContain(meta.id);

    // Both planned the same name; in it, only the winner's version is enabled.
    const versions = await allVersions(nameOf('race', 0));
    expect(versions).toHaveLength(2);
    expect(versions.filter((v) => v.enabled).map((v) => v.tags['cv-credential'])).toEqual([meta.id]);
    expect((await service(1 - winner).get(ctx, meta.id)).value).toBe(values[winner]);

    // The winner's delete soft-deletes the name: the loser's value is in no live secret.
    await service(0).delete(ctx, meta.id);
    expect(await isSoftDeleted(nameOf('race', 0))).toBe(true);
    const next = await service(1).store(ctx, { ...slot('race'), value: secret() });
    expect((await allVersions(nameOf('race', 1))).map((v) => v.tags['cv-credential'])).toEqual([next.id]);
  });

  it('a store that crashed between its vault write and its commit, retried: the same name, the credential alone live in it, and its delete takes the orphan', async () => {
    // What the crash leaves: a version in the slot's next name, tagged for an id no row has.
    const crashed = await vault.setSecret(nameOf('crash', 0), secret(), { tags: { 'cv-credential': randomUUID(), 'cv-version': '1' } });
    const meta = await service(0).store(ctx, { ...slot('crash'), value: secret() });
    const versions = await allVersions(nameOf('crash', 0));
    expect(versions).toHaveLength(2);
    expect(versions.map((v) => v.version)).toContain(crashed.properties.version);
    expect(versions.filter((v) => v.tags['cv-credential'] === meta.id)).toHaveLength(1);

    await service(1).delete(ctx, meta.id);
    expect(await isSoftDeleted(nameOf('crash', 0))).toBe(true);
  });
});
