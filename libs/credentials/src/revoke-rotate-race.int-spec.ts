/**
 * Integration: a revoke racing a rotation of the same credential, on SQLite (one process) and PostgreSQL (the rotation
 * on a second replica: its own module stack on the same database and vault), with the real SDK against the local vault.
 * Each step is held at a real call of the code under test (the revoke before its vault listing, the rotation between
 * its vault write and its commit), so every interleaving named here happens, not just may. Whatever the order, the end
 * state is consistent: never an active credential whose current value is disabled, never an enabled value of a revoked one.
 */
import { randomBytes } from 'node:crypto';
import { Test, type TestingModule } from '@nestjs/testing';
import type { OperationContext } from '@app/common';
import { KeyVaultProvider } from '@app/key-vault';
import { KeyVaultEmulator } from '@app/keyvault-emulator';
import { createTestDatabase, credentialsStackImports, DATABASE_KINDS, type TestDatabase } from '@app/testing';
import { CredentialConflictError, CredentialRevokedError, CredentialRevokeIncompleteError, CredentialsService, CredentialStatus, CredentialType, credentialSecretName } from './index';
import { VaultValueStore } from './stores/vault-value-store';

jest.setTimeout(60_000);

/** Holds the next call of `object[method]` (before it runs, or after it returned) until released. */
function holdNext<T extends object, K extends keyof T>(object: T, method: K, at: 'before' | 'after') {
  const original = (object[method] as (...args: unknown[]) => Promise<unknown>).bind(object);
  let reach!: () => void;
  const reached = new Promise<void>((resolve) => (reach = resolve));
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  const spy = jest.spyOn(object, method as never).mockImplementationOnce((async (...args: unknown[]) => {
    if (at === 'before') {
      reach();
      await released;
      return original(...args);
    }
    const result = await original(...args);
    reach();
    await released;
    return result;
  }) as never);
  return { reached, release, restore: () => spy.mockRestore() };
}

const settle = <T>(p: Promise<T>) => p.then((value) => ({ value }), (error: unknown) => ({ error }));

describe.each(DATABASE_KINDS)('revoke racing a rotation on %s', (kind) => {
  let emu: KeyVaultEmulator;
  let db: TestDatabase;
  const modules: TestingModule[] = [];
  /** A revokes; B rotates (another replica on PostgreSQL, the same process and module on SQLite). */
  let a: CredentialsService;
  let b: CredentialsService;
  let bStore: VaultValueStore;
  let aStore: VaultValueStore;
  let vault: KeyVaultProvider;
  const ctx: OperationContext = { tenantId: `race_${randomBytes(3).toString('hex')}`, actor: { id: 'user:ops' } };
  const secret = () => `tok_${randomBytes(18).toString('base64url')}`;

  const stack = async () => {
    const m = await Test.createTestingModule({
      imports: credentialsStackImports({ database: db.options, vault: emu, keyVault: { resilience: { maxAttempts: 1, pollIntervalMs: 20 } } }),
    }).compile();
    await m.init();
    modules.push(m);
    return m;
  };

  beforeAll(async () => {
    emu = await KeyVaultEmulator.start({ quiet: true, throttle: false, operationDelayMs: 0 });
    db = await createTestDatabase(kind);
    const ma = await stack();
    const mb = kind === 'postgres' ? await stack() : ma;
    [a, b] = [ma.get(CredentialsService), mb.get(CredentialsService)];
    [aStore, bStore] = [ma.get(VaultValueStore), mb.get(VaultValueStore)];
    vault = ma.get(KeyVaultProvider);
  });

  afterEach(() => jest.restoreAllMocks());

  afterAll(async () => {
    for (const m of modules.reverse()) await m.close();
    await emu?.stop();
    await db?.drop();
  });

  const store = async (connectionId: string) => {
    const value = secret();
    const meta = await a.store(ctx, { integrationId: 'race', connectionId, type: CredentialType.API_KEY, value });
    return { id: meta.id, value, name: credentialSecretName({ tenantId: ctx.tenantId, integrationId: 'race', connectionId, type: CredentialType.API_KEY }, 0) };
  };
  const enabledVersions = async (name: string) => {
    const out: string[] = [];
    for await (const v of vault.listAllSecretVersions(name)) if (v.enabled) out.push(v.version);
    return out;
  };
  const readError = async (id: string) => (await settle(a.get(ctx, id))) as { error?: unknown; value?: { value: string } };

  it('a rotation committed between the revoke’s status change and its vault listing: the revoke withdraws its value too', async () => {
    const { id, name } = await store('committed-between');
    const revokeHeld = holdNext(aStore, 'enabledVersions', 'before');
    const revoking = settle(a.revoke(ctx, id));
    await revokeHeld.reached; // revoked in the metadata, nothing disabled in the vault yet
    const rotatedValue = secret();
    const rotated = await b.rotate(ctx, id, rotatedValue); // a revoked credential may be rotated: it becomes active
    expect(rotated).toMatchObject({ version: 2, status: CredentialStatus.ACTIVE });
    revokeHeld.release();
    expect(await revoking).toMatchObject({ value: { metadata: { status: CredentialStatus.REVOKED } } });

    // The revoke returned last: the credential is revoked, the rotation's version with it, and nothing is enabled.
    expect((await a.getMetadata(ctx, id)).status).toBe(CredentialStatus.REVOKED);
    expect(await enabledVersions(name)).toEqual([]);
    expect((await readError(id)).error).toBeInstanceOf(CredentialRevokedError);
    expect((await a.listVersions(ctx, id)).map((v) => [v.version, v.revokedAt !== null])).toEqual([[2, true], [1, true]]);
    // Un-revoke lifts the last revoke: the rotation's value is served again; the value revoked before it stays withdrawn.
    await a.unrevoke(ctx, id);
    expect((await a.get(ctx, id)).value).toBe(rotatedValue);
    expect(await enabledVersions(name)).toHaveLength(1);
    expect(((await settle(a.getVersion(ctx, id, 1))) as { error?: unknown }).error).toBeInstanceOf(CredentialRevokedError);
  });

  it.each([
    ['without expectedVersion: retried after the revoke, its value current and enabled', false],
    ['with expectedVersion: CONFLICT, and nothing changes', true],
  ])('a rotation of the revoked row that wrote its value before the revoke’s listing and commits after it (%s)', async (_label, conditional) => {
    const { id, name } = await store(`commits-after-${conditional}`);
    const revokeHeld = holdNext(aStore, 'enabledVersions', 'before');
    const revoking = settle(a.revoke(ctx, id));
    await revokeHeld.reached;
    const revokedRow = await b.getMetadata(ctx, id);
    expect(revokedRow.status).toBe(CredentialStatus.REVOKED);
    const rotateHeld = holdNext(bStore, 'write', 'after');
    const next = secret();
    const rotating = settle(b.rotate(ctx, id, next, conditional ? { expectedVersion: revokedRow.rowVersion } : {}));
    await rotateHeld.reached; // the rotation's value is in the vault (enabled, unreferenced); its commit is to come
    revokeHeld.release();
    expect(await revoking).toMatchObject({ value: { metadata: { status: CredentialStatus.REVOKED } } });
    rotateHeld.release();
    const outcome = await rotating;

    const meta = await a.getMetadata(ctx, id);
    if (conditional) {
      // The revoke won: the rotation fails with a typed error and changes nothing.
      expect((outcome as { error?: unknown }).error).toBeInstanceOf(CredentialConflictError);
      expect(meta).toMatchObject({ status: CredentialStatus.REVOKED, version: 1 });
      expect(await enabledVersions(name)).toEqual([]);
      expect((await readError(id)).error).toBeInstanceOf(CredentialRevokedError);
    } else {
      // The rotation came after the revoke: active, its value current, enabled and served; the revoked value stays withdrawn.
      expect(outcome).toMatchObject({ value: { status: CredentialStatus.ACTIVE } });
      expect(meta.status).toBe(CredentialStatus.ACTIVE);
      const read = await readError(id);
      expect(read.error).toBeUndefined();
      expect(read.value?.value).toBe(next);
      expect(await enabledVersions(name)).toHaveLength(1);
      expect(((await settle(a.getVersion(ctx, id, 1))) as { error?: unknown }).error).toBeInstanceOf(CredentialRevokedError);
    }
  });

  it('a revoke whose vault step fails half way still fences out the rotation whose value it disabled', async () => {
    const { id, name } = await store('vault-fails');
    const nextGeneration = credentialSecretName({ tenantId: ctx.tenantId, integrationId: 'race', connectionId: 'vault-fails', type: CredentialType.API_KEY }, 1);
    const revokeHeld = holdNext(aStore, 'enabledVersions', 'before');
    const revoking = settle(a.revoke(ctx, id));
    await revokeHeld.reached;
    const rotateHeld = holdNext(bStore, 'write', 'after');
    const next = secret();
    const rotating = settle(b.rotate(ctx, id, next));
    await rotateHeld.reached;
    // The revoke disables the rotation's version (listed first), then the vault refuses to list the next generation's.
    emu.deny({ operations: ['listSecretVersions'], names: [nextGeneration] });
    try {
      revokeHeld.release();
      expect((await revoking) as { error?: unknown }).toMatchObject({ error: expect.objectContaining({ codeName: 'FORBIDDEN' }) });
    } finally {
      emu.clearDenials();
    }
    rotateHeld.release();
    expect(await rotating).toMatchObject({ value: { status: CredentialStatus.ACTIVE } });
    // Its first attempt lost to the fence; the retry's value is current, enabled and served.
    const read = await readError(id);
    expect(read.error).toBeUndefined();
    expect(read.value?.value).toBe(next);
    expect(await enabledVersions(name)).toHaveLength(1);
  });

  it('a rotation without expectedVersion that loses every attempt to concurrent rotations: CONFLICT saying another change landed first', async () => {
    const { id } = await store('rotate-loses');
    // After each of A's value writes, B rotates and commits first (B's own writes pass through on SQLite: one store).
    const write = aStore.write.bind(aStore);
    let competing = false;
    let won = 0;
    jest.spyOn(aStore, 'write').mockImplementation(async (request) => {
      const pointer = await write(request);
      if (!competing) {
        competing = true;
        try {
          await b.rotate(ctx, id, secret());
          won++;
        } finally {
          competing = false;
        }
      }
      return pointer;
    });
    const outcome = (await settle(a.rotate(ctx, id, secret()))) as { error?: CredentialConflictError };
    expect(won).toBe(3);
    expect(outcome.error).toBeInstanceOf(CredentialConflictError);
    expect(outcome.error).toMatchObject({ code: 2003, codeName: 'CONFLICT', credentialId: id, expectedVersion: undefined });
    // The caller sent no expectedVersion: the message names what happened, not a precondition it never set.
    expect(outcome.error?.message).not.toMatch(/expected/i);
    expect(outcome.error?.message).toMatch(/another change of it committed first/);
    expect((await a.getMetadata(ctx, id)).version).toBe(4);
  });

  it('writes that keep committing during the revoke: REVOKE_INCOMPLETE after 10 passes, the credential stays revoked, revoking again completes', async () => {
    const { id, name } = await store('never-fenced');
    // Every pass, between the revoke's look at the row and its fence, another replica commits a metadata change.
    let commits = 0;
    const spy = jest.spyOn(aStore, 'enabledVersions').mockImplementation(async (secretName: string) => {
      if (secretName === name) await b.updateMetadata(ctx, id, { tags: { write: String(++commits) } }); // once a pass
      return VaultValueStore.prototype.enabledVersions.call(aStore, secretName);
    });
    const outcome = (await settle(a.revoke(ctx, id))) as { error?: unknown };
    spy.mockRestore();
    expect(outcome.error).toBeInstanceOf(CredentialRevokeIncompleteError);
    expect(outcome.error).toMatchObject({ code: 2013, codeName: 'REVOKE_INCOMPLETE', credentialId: id });
    expect((outcome.error as Error).message).not.toContain(name);
    // Bounded: the status change, then nine fences lost (one write each), and no more.
    expect(commits).toBe(9);
    // Revoked all along: refused, and its value disabled at the vault.
    expect((await a.getMetadata(ctx, id)).status).toBe(CredentialStatus.REVOKED);
    expect((await readError(id)).error).toBeInstanceOf(CredentialRevokedError);
    expect(await enabledVersions(name)).toEqual([]);
    // Calling again finishes it: the fence holds once nothing commits in between.
    const rowVersion = (await a.getMetadata(ctx, id)).rowVersion;
    expect(await a.revoke(ctx, id)).toMatchObject({ metadata: { status: CredentialStatus.REVOKED, rowVersion: rowVersion + 1 } });
    expect(await enabledVersions(name)).toEqual([]);
  });
});
