import { ManualClock } from '@app/common';
import type { KeyVaultProvider } from '@app/key-vault';
import { resolveCredentialsOptions } from '../credentials.options';
import { CredentialErrorCode, CredentialIntegrityError } from '../errors/credential-errors';
import type { CredentialsPersistence } from '../persistence/credentials-persistence';
import type { WrappedDataKeyRepository } from '../persistence/wrapped-data-key.repository';
import { DataKeyService } from './data-key.service';

const TENANT = 'acmecorpeu';
const SECRET_VERSION = '0f3c9a7e5d1b42c8a6e4f2d0b8c6a4e2';

describe('DataKeyService: a data key secret that is not a key', () => {
  /** The vault holds 5 bytes where a 32-byte data key should be (edited out of band, or another secret). */
  const vault = { getSecret: async () => ({ value: Buffer.from('short').toString('base64'), properties: { version: SECRET_VERSION } }) } as unknown as KeyVaultProvider;
  const persistence = { runner: { inTransaction: () => false } } as unknown as CredentialsPersistence;
  const service = new DataKeyService(persistence, vault, new ManualClock(new Date('2026-01-01T00:00:00Z')), resolveCredentialsOptions({}), {} as WrappedDataKeyRepository);
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
