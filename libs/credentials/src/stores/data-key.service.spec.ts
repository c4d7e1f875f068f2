import { randomBytes } from 'node:crypto';
import { ManualClock } from '@app/common';
import { callerLeftError, KeyVaultError, KeyVaultErrorCode, type KeyVaultCallOptions, type KeyVaultKeysProvider, type KeyVaultProvider } from '@app/key-vault';
import { rejection } from '@app/testing';
import { resolveCredentialsOptions } from '../credentials.options';
import type { WrappedDataKeyEntity } from '../entities/wrapped-data-key.entity';
import { CredentialErrorCode, CredentialIntegrityError } from '../errors/credential-errors';
import type { CredentialsPersistence } from '../persistence/credentials-persistence';
import type { WrappedDataKeyRepository } from '../persistence/wrapped-data-key.repository';
import { DataKeyService, WRAPPED_DATA_KEY_NAME } from './data-key.service';
import { KeyEncryptionKeyHealthCheck } from './key-encryption-key-health-check';

const TENANT = 'acmecorpeu';
const SECRET_VERSION = '0f3c9a7e5d1b42c8a6e4f2d0b8c6a4e2';

describe('DataKeyService: a data key secret that is not a key', () => {
  /** The vault holds 5 bytes where a 32-byte data key should be (edited out of band, or another secret). */
  const vault = { getSecret: async () => ({ value: Buffer.from('short').toString('base64'), properties: { version: SECRET_VERSION } }) } as unknown as KeyVaultProvider;
  const persistence = { runner: { inTransaction: () => false } } as unknown as CredentialsPersistence;
  const clock = new ManualClock(new Date('2026-01-01T00:00:00Z'));
  const options = resolveCredentialsOptions({});
  const service = new DataKeyService(persistence, vault, clock, options, {} as WrappedDataKeyRepository, new KeyEncryptionKeyHealthCheck(clock, options));
  const secretName = service.nameFor(TENANT);

  it.each([
    ['the current key', () => service.currentKey(TENANT)],
    ['a key version read for decryption', () => service.keyVersion(secretName, SECRET_VERSION, TENANT)],
  ])('%s: an INTEGRITY error naming the key by its version, never by its secret name (it carries the tenant)', async (_what, read) => {
    const err = await read().catch((e: unknown) => e);

    expect(err).toBeInstanceOf(CredentialIntegrityError);
    expect(err).toMatchObject({ code: CredentialErrorCode.INTEGRITY, message: `the data key of version ${SECRET_VERSION} is not 32 bytes of base64` });
    expect(secretName).toContain(TENANT); // what must not leak
    expect((err as Error).message).not.toContain(TENANT);
    expect((err as Error).message).not.toContain(secretName);
  });
});

describe('DataKeyService: callers who leave a shared data-key load', () => {
  const KEY = randomBytes(32);
  /** Vault calls held until the test answers them; each rejects CANCELLED once its signal aborts, as the gateway does. */
  const held = () => {
    const calls: Array<{ signal?: AbortSignal; answer: () => void }> = [];
    const call = <T>(value: T, signal?: AbortSignal) =>
      new Promise<T>((resolve, reject) => {
        calls.push({ signal, answer: () => resolve(value) });
        signal?.addEventListener('abort', () => reject(callerLeftError('getSecret', 'in_flight')), { once: true });
      });
    return { calls, call };
  };
  type Vault = ReturnType<typeof held>;
  const persistence = { runner: { inTransaction: () => false } } as unknown as CredentialsPersistence;
  const clock = new ManualClock(new Date('2026-01-01T00:00:00Z'));
  const tick = () => new Promise((r) => setImmediate(r));
  const leaving = () => new AbortController();

  /** Two callers share the load; one leaves, the other is answered; then both of a second load leave and a third starts afresh. */
  async function leaveAndStay(read: (signal: AbortSignal | undefined) => Promise<Buffer>, vault: Vault) {
    const [a, b] = [leaving(), leaving()];
    const stays = read(b.signal);
    const leaves = read(a.signal);
    await tick();
    expect(vault.calls).toHaveLength(1);
    a.abort();
    // The caller who left is answered at once, while the vault call is still unanswered and kept for the other.
    expect(await rejection(leaves)).toMatchObject({ code: KeyVaultErrorCode.CANCELLED, sent: true });
    expect(vault.calls[0].signal?.aborted).toBe(false);
    vault.calls[0].answer();
    expect((await stays).equals(KEY)).toBe(true);
  }

  async function allLeave(read: (signal: AbortSignal | undefined) => Promise<Buffer>, vault: Vault) {
    const [a, b] = [leaving(), leaving()];
    const first = [read(a.signal), read(b.signal)];
    await tick();
    expect(vault.calls).toHaveLength(1);
    a.abort();
    expect(vault.calls[0].signal?.aborted).toBe(false);
    b.abort();
    // Nobody waits any more: the vault call is aborted, and a caller who comes now gets a load of its own.
    expect(vault.calls[0].signal?.aborted).toBe(true);
    for (const p of first) expect(await rejection(p)).toMatchObject({ code: KeyVaultErrorCode.CANCELLED });
    const later = read(undefined);
    await tick();
    expect(vault.calls).toHaveLength(2);
    vault.calls[1].answer();
    expect((await later).equals(KEY)).toBe(true);
  }

  /** Keys kept as vault secrets: the shared call is the secret's read. */
  const secretKeys = () => {
    const vault = held();
    const getSecret = (_name: string, version: string | undefined, call?: KeyVaultCallOptions) =>
      vault.call({ value: KEY.toString('base64'), properties: { version: version ?? SECRET_VERSION } }, call?.signal);
    const options = resolveCredentialsOptions({});
    const service = new DataKeyService(persistence, { getSecret } as unknown as KeyVaultProvider, clock, options, {} as WrappedDataKeyRepository, new KeyEncryptionKeyHealthCheck(clock, options));
    return { vault, service, version: (signal?: AbortSignal) => service.keyVersion(service.nameFor(TENANT), SECRET_VERSION, TENANT, { signal }) };
  };
  /** Keys wrapped by a vault key: the shared call is the unwrap. */
  const wrappedKeys = () => {
    const KEK = 'cv-kek';
    const row = { id: 'r1', tenantId: TENANT, version: 'a1b2', kekName: KEK, kekVersion: 'k1', wrappedKey: Buffer.from('wrapped').toString('base64') } as WrappedDataKeyEntity;
    const vault = held();
    const vaultKeys = {
      getKey: async () => ({ properties: { name: KEK, version: 'k1' } }),
      unwrapKey: (key: { name: string; version: string }, _alg: string, _wrapped: Uint8Array, call?: KeyVaultCallOptions) => vault.call({ key, unwrappedKey: new Uint8Array(KEY) }, call?.signal),
    } as unknown as KeyVaultKeysProvider;
    const wrapped = { find: async () => row, latestOfTenant: async () => row } as unknown as WrappedDataKeyRepository;
    const options = resolveCredentialsOptions({ envelope: { keyEncryptionKey: KEK } });
    const service = new DataKeyService(persistence, {} as KeyVaultProvider, clock, options, wrapped, new KeyEncryptionKeyHealthCheck(clock, options, vaultKeys), vaultKeys);
    return { vault, service, version: (signal?: AbortSignal) => service.keyVersion(WRAPPED_DATA_KEY_NAME, row.version, TENANT, { signal }) };
  };

  describe.each([
    ['a key kept as a vault secret', secretKeys],
    ['a key wrapped by a vault key (CANCELLED, never a configuration error)', wrappedKeys],
  ])('%s', (_kind, setup: () => { vault: Vault; service: DataKeyService; version: (signal?: AbortSignal) => Promise<Buffer> }) => {
    it('a caller who leaves stops waiting at once (CANCELLED); the vault call goes on for the one still waiting', async () => {
      const { vault, version } = setup();
      await leaveAndStay(version, vault);
    });

    it('the vault call is aborted once every caller has left, and a later caller starts a fresh one', async () => {
      const { vault, version } = setup();
      await allLeave(version, vault);
    });

    it('the current key too', async () => {
      const { vault, service } = setup();
      const current = async (signal?: AbortSignal) => (await service.currentKey(TENANT, { signal })).key;
      await leaveAndStay(current, vault);
      service.clear();
      vault.calls.splice(0);
      await allLeave(current, vault);
    });
  });
});

describe('DataKeyService.rotate: only a tenant that has a data key', () => {
  const persistence = { runner: { inTransaction: () => false } } as unknown as CredentialsPersistence;
  const clock = new ManualClock(new Date('2026-01-01T00:00:00Z'));
  const KEK = 'cv-kek';

  /** A vault holding a data-key secret for `withSecret` only (an unknown name lists no versions), one wrapped row for `withRow`. */
  function build(keyEncryptionKey: string | undefined, { withSecret, withRow }: { withSecret?: string; withRow?: string }) {
    const options = resolveCredentialsOptions(keyEncryptionKey ? { envelope: { keyEncryptionKey } } : {});
    const writes: string[] = [];
    const vault = {
      listAllSecretVersions: async function* (name: string) {
        if (withSecret && name === service.nameFor(withSecret)) yield { version: SECRET_VERSION };
      },
      getDeletedSecret: async (name: string) => {
        throw new KeyVaultError(KeyVaultErrorCode.KEY_NOT_FOUND, `no deleted secret ${name}`, { operation: 'getDeletedSecret' });
      },
      setSecret: async (name: string, value: string) => (writes.push(`secret ${name}`), { value, properties: { version: 'a'.repeat(32) } }),
    } as unknown as KeyVaultProvider;
    const row = { tenantId: withRow, version: 'b'.repeat(32), kekName: KEK, kekVersion: 'v1', wrappedKey: 'x', createdAt: clock.now(), updatedAt: clock.now() } as WrappedDataKeyEntity;
    const wrapped = {
      latestOfTenant: async (tenant: string) => (tenant === withRow ? row : null),
      insert: async (r: WrappedDataKeyEntity) => void writes.push(`row ${r.tenantId}`),
    } as unknown as WrappedDataKeyRepository;
    const vaultKeys = {
      getKey: async () => ({ properties: { version: 'v1' } }),
      wrapKey: async () => ({ key: { version: 'v1' }, wrappedKey: new Uint8Array(256) }),
    } as unknown as KeyVaultKeysProvider;
    const service = new DataKeyService(persistence, vault, clock, options, wrapped, new KeyEncryptionKeyHealthCheck(clock, options), vaultKeys);
    return { service, writes };
  }

  it.each([
    ['vault secret data keys', undefined],
    ['wrapped data keys', KEK],
  ])('%s: a tenant with none (a mistyped id) is refused with DATA_KEY_NOT_FOUND naming it, and nothing is written', async (_mode, kek) => {
    const { service, writes } = build(kek, { withSecret: TENANT, withRow: TENANT });
    const err = await service.rotate('acmecorpue').catch((e: unknown) => e);
    expect(err).toMatchObject({ code: CredentialErrorCode.DATA_KEY_NOT_FOUND, tenantId: 'acmecorpue', message: expect.stringContaining('tenant acmecorpue has no data key') });
    expect(writes).toEqual([]);
  });

  it('with wrapped data keys, a tenant whose key is still a vault secret (made before the key-encryption key) rotates to a wrapped key', async () => {
    const { service, writes } = build(KEK, { withSecret: TENANT });
    expect((await service.rotate(TENANT)).name).toBe(WRAPPED_DATA_KEY_NAME);
    expect(writes).toEqual([`row ${TENANT}`]);
  });

  it('a tenant with a key rotates it: a new secret version, or a new wrapped row', async () => {
    const secret = build(undefined, { withSecret: TENANT });
    await secret.service.rotate(TENANT);
    expect(secret.writes).toEqual([`secret ${secret.service.nameFor(TENANT)}`]);
    const wrapped = build(KEK, { withRow: TENANT });
    await wrapped.service.rotate(TENANT);
    expect(wrapped.writes).toEqual([`row ${TENANT}`]);
  });
});
