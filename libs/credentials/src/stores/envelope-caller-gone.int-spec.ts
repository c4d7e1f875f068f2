/**
 * Integration: envelope values read by callers who leave while the tenant's data key is still loading — the real
 * SDK against the local vault, the cache off (each read is the caller's own; the data key's load is shared by all).
 */
import { randomBytes } from 'node:crypto';
import { Test, type TestingModule } from '@nestjs/testing';
import type { OperationContext } from '@app/common';
import { KeyVaultErrorCode } from '@app/key-vault';
import { KeyVaultEmulator } from '@app/keyvault-emulator';
import { createTestDatabase, credentialsStackImports, rejection, type TestDatabase } from '@app/testing';
import { CredentialsService, CredentialType, DataKeyService } from '../index';

/** The data key's first vault read answers after this; callers who leave do so after LEAVE_MS. */
const SLOW_READ_MS = 3_000;
const LEAVE_MS = 200;

describe('envelope reads whose callers leave while the data key loads (emulator, real SDK)', () => {
  let emu: KeyVaultEmulator;
  let db: TestDatabase;
  let app: TestingModule;
  let svc: CredentialsService;
  const tenantId = `gone-${randomBytes(3).toString('hex')}`;
  const ctx = (signal?: AbortSignal): OperationContext => ({ tenantId, actor: { id: 'user:g' }, signal });
  const token = () => `ya29.${randomBytes(24).toString('base64url')}`;
  const store = async (connectionId: string) => {
    const value = token();
    const { id } = await svc.store(ctx(), { integrationId: 'gh', connectionId, type: CredentialType.OAUTH_ACCESS_TOKEN, value });
    return { id, value };
  };
  /** A process that has not loaded the tenant's data key yet, whose next vault read of it is slow. */
  const coldAndSlow = () => {
    app.get(DataKeyService).clear();
    emu.resetStats();
    emu.injectFault({ kind: 'latency', latencyMs: SLOW_READ_MS, count: 1, operations: ['getSecret'] });
  };
  const dataKeyReads = () => emu.stats().byOperation.getSecret ?? 0;

  beforeAll(async () => {
    emu = await KeyVaultEmulator.start({ quiet: true, throttle: false });
    db = await createTestDatabase('sqlite');
    app = await Test.createTestingModule({ imports: credentialsStackImports({ database: db.options, vault: emu, credentials: { cache: { enabled: false } } }) }).compile();
    await app.init();
    svc = app.get(CredentialsService);
  }, 60_000);

  afterEach(() => emu.clearFaults());
  afterAll(async () => {
    await app?.close();
    await emu?.stop();
    await db?.drop();
  });

  it('a reader who leaves is answered CANCELLED at once; a reader of another value of the tenant still gets it', async () => {
    const [a, b] = [await store('a'), await store('b')];
    coldAndSlow();
    const stays = svc.get(ctx(), b.id);
    const leaves = svc.get(ctx(AbortSignal.timeout(LEAVE_MS)), a.id);

    expect(await rejection(leaves)).toMatchObject({ code: KeyVaultErrorCode.CANCELLED });
    expect(dataKeyReads()).toBe(0); // left before the vault answered the data key's read
    expect((await stays).value).toBe(b.value);
    expect(dataKeyReads()).toBe(1); // one read, shared
  }, 30_000);

  it('once every reader has left, the next one does not wait for the abandoned read: it makes its own', async () => {
    const [a, b] = [await store('c'), await store('d')];
    coldAndSlow();
    const left = [svc.get(ctx(AbortSignal.timeout(LEAVE_MS)), a.id), svc.get(ctx(AbortSignal.timeout(LEAVE_MS)), b.id)];
    for (const p of left) expect(await rejection(p)).toMatchObject({ code: KeyVaultErrorCode.CANCELLED });

    expect((await svc.get(ctx(), a.id)).value).toBe(a.value);
    expect(dataKeyReads()).toBe(1); // its own read answered, the abandoned one not (yet)
  }, 30_000);
});
