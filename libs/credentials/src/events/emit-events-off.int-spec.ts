/**
 * Integration (real SDK, local vault, SQLite and PostgreSQL): `emitEvents: false` keeps the app's bus quiet — no
 * `credential.*` event reaches EventEmitter2, no `credential.*` outbox row — and nothing more. The lib's own work that
 * rides on a change's outbox event still happens: the cache eviction that reaches a process the writer's own eviction
 * did not (another process on the SQLite file, as the CLI; on PostgreSQL a writer without fan-out, as one that died
 * after its commit), the vault side of a delete and of a revoke (their own events, never `credential.*`).
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter2 } from '@nestjs/event-emitter';
import { Test, type TestingModule } from '@nestjs/testing';
import { OutboxDispatcher, OutboxEventEntity, type OperationContext } from '@app/common';
import { isKeyVaultError, KeyVaultErrorCode, KeyVaultProvider } from '@app/key-vault';
import { KeyVaultEmulator } from '@app/keyvault-emulator';
import { createTestDatabase, credentialsStackImports, DATABASE_KINDS, type TestDatabase } from '@app/testing';
import { DataSource, Like } from 'typeorm';
import { VAULT_VALUE_REVOKE_EVENT } from '../credentials.constants';
import { CredentialNotFoundError, CredentialRevokedError, CredentialsService, CredentialType, credentialSecretName, ValueStoreKind } from '../index';

jest.setTimeout(60_000);

describe.each(DATABASE_KINDS)('CredentialsModule with emitEvents: false on %s', (kind) => {
  let emu: KeyVaultEmulator;
  let db: TestDatabase;
  /** A: the process that reads (and caches). B: another process on the same database that writes. */
  const apps: TestingModule[] = [];
  const heard: string[] = [];
  const run = randomBytes(3).toString('hex');
  const ctx: OperationContext = { tenantId: `noev_${run}`, actor: { id: 'user:ops' } };
  let seq = 0;

  beforeAll(async () => {
    emu = await KeyVaultEmulator.start({ quiet: true, throttle: false });
    db = await createTestDatabase(kind);
    for (let i = 0; i < 2; i++) {
      const app = await Test.createTestingModule({
        imports: credentialsStackImports({
          database: db.options,
          vault: emu,
          keyVault: { resilience: { maxAttempts: 1, pollIntervalMs: 20, breaker: { consecutiveFailures: 1000 } } },
          persistence: { outbox: { dispatch: false } },
          // No fan-out: only the outbox tells A of B's writes.
          credentials: { emitEvents: false, valueStores: { api_key: ValueStoreKind.VAULT }, cache: { invalidation: 'none' } },
        }),
      }).compile();
      await app.init();
      app.get(EventEmitter2).onAny((name: string | string[]) => heard.push(String(name)));
      apps.push(app);
    }
  });

  afterAll(async () => {
    for (const app of apps.splice(0)) await app.close();
    await db?.drop();
    await emu?.stop();
  });

  const svc = (i: number) => apps[i].get(CredentialsService);
  /** A's dispatcher delivers what is in the outbox (B's events included), as it would on its next poll. */
  const dispatchOnA = () => apps[0].get(OutboxDispatcher).drain();

  /** The vault secret of the last credential `cachedOnA` stored (generation 0). */
  const secretName = () => credentialSecretName({ tenantId: ctx.tenantId, integrationId: 'github', connectionId: `c${seq}`, type: CredentialType.API_KEY }, 0);

  async function cachedOnA(): Promise<{ id: string; value: string }> {
    const value = `tok_${randomBytes(18).toString('base64url')}`;
    const { id } = await svc(1).store(ctx, { integrationId: 'github', connectionId: `c${++seq}`, type: CredentialType.API_KEY, value });
    expect((await svc(0).get(ctx, id)).value).toBe(value); // now in A's cache
    return { id, value };
  }

  it("a revoke by another process is refused by this one's cache once the outbox is dispatched; the revoke's vault side is queued", async () => {
    const { id } = await cachedOnA();
    await svc(1).updateMetadata(ctx, id, { status: 'revoked' });
    await dispatchOnA();
    await expect(svc(0).get(ctx, id)).rejects.toBeInstanceOf(CredentialRevokedError);
    // Its Key Vault versions are disabled by the outbox once the revoke's grace is over (credential-delete-vault int-spec).
    const completion = await apps[0].get(DataSource).getRepository(OutboxEventEntity).findBy({ tenantId: ctx.tenantId, name: VAULT_VALUE_REVOKE_EVENT });
    expect(completion.map((e) => e.payload)).toEqual([{ credentialId: id }]);
  });

  it("a delete by another process is NOT_FOUND from this one's cache once the outbox is dispatched, and its vault secret is deleted", async () => {
    const { id } = await cachedOnA();
    await svc(1).delete(ctx, id);
    await dispatchOnA();
    await expect(svc(0).get(ctx, id)).rejects.toBeInstanceOf(CredentialNotFoundError);
    const deleted = await apps[0].get(KeyVaultProvider).getDeletedSecret(secretName()).then(
      () => true,
      (e: unknown) => (isKeyVaultError(e, KeyVaultErrorCode.KEY_NOT_FOUND) ? false : Promise.reject(e)),
    );
    expect(deleted).toBe(true);
  });

  it('a store, one or many, writes no outbox row: no clean-up rides on a fresh id (a bulk load wrote one per credential, for no one)', async () => {
    const tenant: OperationContext = { ...ctx, tenantId: `${ctx.tenantId}_st` };
    const value = () => `tok_${randomBytes(18).toString('base64url')}`;
    await svc(1).store(tenant, { integrationId: 'github', connectionId: 'one', type: CredentialType.API_KEY, value: value() });
    const many = Array.from({ length: 20 }, (_, i) => ({ ctx: tenant, input: { integrationId: 'github', connectionId: `many-${i}`, type: CredentialType.API_KEY, value: value() } }));
    expect((await svc(1).storeMany(many)).filter((r) => r.error !== undefined)).toEqual([]);
    expect(await apps[0].get(DataSource).getRepository(OutboxEventEntity).findBy({ tenantId: tenant.tenantId })).toEqual([]);
  });

  // An app's onAny (or wildcard) listener heard the lib's own events: `credentials.change.credential.rotated`, the
  // delete's and revoke's vault sides (the cases above) — the changes emitEvents: false is to keep from it, renamed.
  it('the app hears no event of the lib (credential.* nor its own work), and the outbox holds no credential.* row', async () => {
    const { id } = await cachedOnA();
    await svc(1).rotate(ctx, id, `tok_${randomBytes(18).toString('base64url')}`);
    await dispatchOnA();
    expect(heard.filter((name) => /^credentials?\./.test(name))).toEqual([]);
    expect(await apps[0].get(DataSource).getRepository(OutboxEventEntity).countBy({ tenantId: ctx.tenantId, name: Like('credential.%') })).toBe(0);
  });
});
