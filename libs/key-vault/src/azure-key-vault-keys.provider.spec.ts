import { generateKeyPairSync } from 'node:crypto';
import { Test } from '@nestjs/testing';
import type { DeletedKey, KeyVaultKey as SdkKey } from '@azure/keyvault-keys';
import { Registry } from 'prom-client';
import type { CryptographyClientFactory, KeyVaultCryptographyClient, KeyVaultKeyClient } from './client/key-client.factory';
import { KeyVaultErrorCode as C } from './errors/key-vault-error-code';
import type { KeyVaultError } from './errors/key-vault.error';
import { KEY_VAULT_CRYPTOGRAPHY_CLIENTS, KEY_VAULT_KEY_CLIENT, KEY_VAULT_SECRET_CLIENT } from './key-vault.internal-constants';
import { KeyVaultKeysProvider } from './key-vault-keys.provider';
import { KeyVaultModule } from './key-vault.module';
import { KeyVaultProvider } from './key-vault.provider';
import { FAKE_VAULT, FAKE_VAULT_OPTIONS, createFakeSecretClient, restError } from './testing/fake-secret-client';

const VERSION = 'b'.repeat(32);
const ref = { name: 'tenant-key', version: VERSION };

function sdkRsaKey(name: string): SdkKey {
  const jwk = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' }) as Record<string, string>;
  const b = (s: string) => new Uint8Array(Buffer.from(s, 'base64url'));
  const id = `${FAKE_VAULT}/keys/${name}/${VERSION}`;
  return {
    name,
    id,
    key: { kid: id, kty: 'RSA', keyOps: ['sign', 'verify', 'wrapKey'], n: b(jwk.n), e: b(jwk.e), d: b(jwk.d), p: b(jwk.p) },
    properties: { name, id, version: VERSION, vaultUrl: FAKE_VAULT, enabled: true, tags: { team: 'a' } },
  };
}

async function setup() {
  const keyClient = { createRsaKey: jest.fn(), createEcKey: jest.fn(), getKey: jest.fn(), getDeletedKey: jest.fn(), purgeDeletedKey: jest.fn(), restoreKeyBackup: jest.fn() } as unknown as jest.Mocked<KeyVaultKeyClient>;
  const crypto = { sign: jest.fn(), verify: jest.fn(), encrypt: jest.fn(), decrypt: jest.fn(), wrapKey: jest.fn(), unwrapKey: jest.fn() } as jest.Mocked<KeyVaultCryptographyClient>;
  const built: string[] = [];
  const factory: CryptographyClientFactory = (keyId) => {
    built.push(keyId);
    return crypto;
  };
  const secrets = createFakeSecretClient();
  const registry = new Registry();
  const moduleRef = await Test.createTestingModule({
    imports: [
      KeyVaultModule.forRoot({
        ...FAKE_VAULT_OPTIONS,
        metrics: { registry, prefix: 'kvkeys_' },
        resilience: { initialDelayMs: 1, maxDelayMs: 50, timeoutMs: 300, maxAttempts: 3, breaker: { consecutiveFailures: 3, halfOpenAfterMs: 60_000 } },
      }),
    ],
  })
    .overrideProvider(KEY_VAULT_KEY_CLIENT)
    .useValue(keyClient)
    .overrideProvider(KEY_VAULT_CRYPTOGRAPHY_CLIENTS)
    .useValue(factory)
    .overrideProvider(KEY_VAULT_SECRET_CLIENT)
    .useValue(secrets)
    .compile();
  return { keys: moduleRef.get(KeyVaultKeysProvider), secretsProvider: moduleRef.get(KeyVaultProvider), keyClient, crypto, built, secrets, registry };
}

const failure = (p: Promise<unknown>) => p.then(() => Promise.reject(new Error('expected a failure')), (e: KeyVaultError) => e);

describe('AzureKeyVaultKeysProvider', () => {
  it('returns the public JWK only, with type, size and operations; the name found free before the create is no vault error', async () => {
    const { keys, keyClient, registry } = await setup();
    keyClient.getKey.mockRejectedValueOnce(restError(404, 'KeyNotFound', 'x'));
    keyClient.createRsaKey.mockResolvedValue(sdkRsaKey('tenant-key'));
    const key = await keys.createKey('tenant-key', { keyType: 'RSA', keySize: 2048, tags: { team: 'a' } });
    expect(keyClient.createRsaKey).toHaveBeenCalledWith('tenant-key', expect.objectContaining({ keySize: 2048, tags: { team: 'a' } }));
    expect(key.properties).toMatchObject({ name: 'tenant-key', version: VERSION, keyType: 'RSA', keySize: 2048, keyOps: ['sign', 'verify', 'wrapKey'] });
    expect(Object.keys(key.publicKey).sort()).toEqual(['e', 'key_ops', 'kid', 'kty', 'n']);
    expect((await registry.getSingleMetric('kvkeys_errors_total')!.get()).values).toEqual([]);
    expect((await registry.getSingleMetric('kvkeys_operations_total')!.get()).values.map((v) => v.labels)).toEqual([
      { operation: 'getKey', outcome: 'not_found' },
      { operation: 'createKey', outcome: 'success' },
    ]);
  });

  describe('restoreKeyBackup: a 409 (a taken name, a purge still completing, an earlier attempt that landed)', () => {
    const blob = new Uint8Array([1, 2, 3]);
    // The service's answer to a restore over a live name and while the name's purge completes alike (recorded).
    const exists = () => restError(409, 'Conflict', `There was a conflict restoring the key 'https://myvault.vault.azure.net/keys/tenant-key/${VERSION}'. This can happen if either: …`);
    const notFound = () => restError(404, 'KeyNotFound', 'x');
    const latestReads = (client: jest.Mocked<KeyVaultKeyClient>) => client.getKey.mock.calls.map((c) => [c[0], c[1]?.version]);

    it('a 409 on the first attempt, the key live, is a conflict: one restore, one read of the latest version', async () => {
      const { keys, keyClient } = await setup();
      keyClient.restoreKeyBackup.mockRejectedValue(exists());
      keyClient.getKey.mockResolvedValue(sdkRsaKey('tenant-key'));
      expect((await failure(keys.restoreKeyBackup(blob))).code).toBe(C.CONFLICT);
      expect([keyClient.restoreKeyBackup.mock.calls.length, latestReads(keyClient)]).toEqual([1, [['tenant-key', undefined]]]);
      expect(keyClient.getDeletedKey).not.toHaveBeenCalled();
    });

    it('a 409 after a 429 (which proves the first did nothing), the key live, is a conflict too', async () => {
      const { keys, keyClient } = await setup();
      keyClient.restoreKeyBackup.mockRejectedValueOnce(restError(429, 'Throttled', 'x', { 'retry-after': '0' })).mockRejectedValueOnce(exists());
      keyClient.getKey.mockResolvedValue(sdkRsaKey('tenant-key'));
      expect((await failure(keys.restoreKeyBackup(blob, ref))).code).toBe(C.CONFLICT);
    });

    it('a 409 while no key of the name is live or deleted (a purge completing) is retried: the next attempt restores it', async () => {
      const { keys, keyClient } = await setup();
      keyClient.restoreKeyBackup.mockRejectedValueOnce(exists()).mockResolvedValueOnce(sdkRsaKey('tenant-key'));
      keyClient.getKey.mockRejectedValue(notFound());
      keyClient.getDeletedKey.mockRejectedValue(notFound());
      expect((await keys.restoreKeyBackup(blob)).properties.version).toBe(VERSION);
      expect(keyClient.restoreKeyBackup).toHaveBeenCalledTimes(2);
    });

    it('a 409 whose key then reads soft-deleted (its delete completed since) is DELETED_BUT_RECOVERABLE; one that cannot be read (forbidden) stays a conflict', async () => {
      const { keys, keyClient } = await setup();
      keyClient.restoreKeyBackup.mockRejectedValue(exists());
      keyClient.getKey.mockRejectedValueOnce(notFound()).mockRejectedValueOnce(restError(403, 'Forbidden', 'Caller is not authorized to perform action on resource.'));
      keyClient.getDeletedKey.mockResolvedValueOnce({ name: 'tenant-key' } as DeletedKey);
      const deleted = await failure(keys.restoreKeyBackup(blob));
      expect([deleted.code, deleted.secretName]).toEqual([C.DELETED_BUT_RECOVERABLE, 'tenant-key']);
      expect((await failure(keys.restoreKeyBackup(blob))).code).toBe(C.CONFLICT);
      expect(keyClient.restoreKeyBackup).toHaveBeenCalledTimes(2);
    });

    it("after a 5xx: the key holding the backup's version is the restore (its latest version the answer); a key without it cannot be told", async () => {
      const { keys, keyClient } = await setup();
      keyClient.restoreKeyBackup.mockRejectedValueOnce(restError(503, 'ServiceUnavailable', 'x')).mockRejectedValueOnce(exists());
      keyClient.getKey.mockResolvedValue(sdkRsaKey('tenant-key'));
      expect((await keys.restoreKeyBackup(blob, ref)).properties.version).toBe(VERSION);
      expect(latestReads(keyClient)).toEqual([
        ['tenant-key', undefined],
        ['tenant-key', VERSION],
      ]);

      keyClient.restoreKeyBackup.mockRejectedValueOnce(restError(503, 'ServiceUnavailable', 'x')).mockRejectedValueOnce(exists());
      keyClient.getKey.mockResolvedValueOnce(sdkRsaKey('tenant-key')).mockRejectedValueOnce(notFound());
      expect((await failure(keys.restoreKeyBackup(blob, ref))).code).toBe(C.OUTCOME_UNKNOWN);
    });

    it('5xx until the attempts are spent (the breaker opening on the last): OUTCOME_UNKNOWN, not SERVICE_UNAVAILABLE; the next call, never sent, CIRCUIT_OPEN', async () => {
      const { keys, keyClient } = await setup();
      keyClient.restoreKeyBackup.mockRejectedValue(restError(503, 'ServiceUnavailable', 'x'));
      const spent = await failure(keys.restoreKeyBackup(blob, ref));
      expect([spent.code, spent.secretName, (spent.cause as KeyVaultError | undefined)?.code]).toEqual([C.OUTCOME_UNKNOWN, 'tenant-key', C.SERVICE_UNAVAILABLE]);
      expect((await failure(keys.restoreKeyBackup(blob, ref))).code).toBe(C.CIRCUIT_OPEN);
      expect(keyClient.restoreKeyBackup).toHaveBeenCalledTimes(3);
    });
  });

  it('never repeats a create the vault answered with a 5xx; nothing new read back: the 5xx stands', async () => {
    const { keys, keyClient } = await setup();
    keyClient.getKey.mockRejectedValue(restError(404, 'KeyNotFound', 'x'));
    keyClient.createRsaKey.mockRejectedValue(restError(500, 'InternalServerError', 'x'));
    expect((await failure(keys.createKey('tenant-key', { keyType: 'RSA' }))).code).toBe(C.SERVICE_UNAVAILABLE);
    expect(keyClient.createRsaKey).toHaveBeenCalledTimes(1);
    expect(keyClient.getKey).toHaveBeenCalledTimes(2); // before, and the read-back
  });

  it('a create answered with a 5xx that did happen: the version read back is the result', async () => {
    const { keys, keyClient } = await setup();
    keyClient.getKey.mockRejectedValueOnce(restError(404, 'KeyNotFound', 'x')).mockResolvedValueOnce(sdkRsaKey('tenant-key'));
    keyClient.createRsaKey.mockRejectedValue(restError(500, 'InternalServerError', 'x'));
    expect((await keys.createKey('tenant-key', { keyType: 'RSA' })).properties.version).toBe(VERSION);
    expect(keyClient.createRsaKey).toHaveBeenCalledTimes(1);
  });

  it('refuses bad input before any call (INVALID_REQUEST)', async () => {
    const { keys, keyClient, crypto } = await setup();
    for (const p of [
      keys.createKey('bad/name', { keyType: 'RSA' }),
      keys.createKey('k', { keyType: 'RSA', keySize: 1024 as 2048 }),
      keys.createKey('k', { keyType: 'EC', keySize: 2048 }),
      keys.createKey('k', { keyType: 'RSA', keyOps: ['fly' as 'sign'] }),
      keys.sign(ref, 'RS256', new Uint8Array(48)),
      keys.sign({ name: 'k', version: '../x' }, 'RS256', new Uint8Array(32)),
      keys.encrypt(ref, 'A256GCM' as 'RSA-OAEP', new Uint8Array(8)),
      keys.decrypt(ref, 'RSA-OAEP', new Uint8Array(0)),
      keys.listKeys({ continuationToken: 'https://elsewhere.example/keys?x' }),
    ]) {
      expect((await failure(p)).code).toBe(C.INVALID_REQUEST);
    }
    expect(keyClient.createRsaKey).not.toHaveBeenCalled();
    expect(crypto.sign).not.toHaveBeenCalled();
  });

  it('signs with one cached CryptographyClient per key version and reports the version the vault used', async () => {
    const { keys, crypto, built } = await setup();
    crypto.sign.mockResolvedValue({ result: new Uint8Array([1, 2]), algorithm: 'RS256', keyID: `${FAKE_VAULT}/keys/tenant-key/${VERSION}` });
    await keys.sign(ref, 'RS256', new Uint8Array(32));
    const r = await keys.sign(ref, 'RS256', new Uint8Array(32));
    expect(r).toEqual({ key: ref, signature: new Uint8Array([1, 2]) });
    expect(built).toEqual([`${FAKE_VAULT}/keys/tenant-key/${VERSION}`]);
  });

  it('maps vault answers to the shared codes and retries only transient ones', async () => {
    const { keys, keyClient, crypto } = await setup();
    keyClient.getKey.mockRejectedValueOnce(restError(404, 'KeyNotFound', 'A key with (name/id) x was not found'));
    const notFound = await failure(keys.getKey('x'));
    expect([notFound.code, notFound.message, notFound.secretName]).toEqual([C.KEY_NOT_FOUND, 'Reading the key failed: KEY_NOT_FOUND (HTTP 404 KeyNotFound; no key of that name or version)', 'x']);
    keyClient.getKey.mockRejectedValueOnce(restError(403, 'Forbidden', 'The user does not have keys get permission'));
    expect((await failure(keys.getKey('x'))).code).toBe(C.FORBIDDEN);
    keyClient.purgeDeletedKey.mockRejectedValueOnce(restError(403, 'Forbidden', 'Operation "purge" is not allowed because purge protection is enabled for this vault.'));
    expect((await failure(keys.purgeDeletedKey('x'))).code).toBe(C.PURGE_PROTECTED);

    crypto.unwrapKey.mockRejectedValueOnce(restError(429, 'Throttled', 'slow down', { 'retry-after-ms': '1' })).mockResolvedValueOnce({
      result: new Uint8Array(32),
      algorithm: 'RSA-OAEP-256',
      keyID: `${FAKE_VAULT}/keys/tenant-key/${VERSION}`,
    });
    expect((await keys.unwrapKey(ref, 'RSA-OAEP-256', new Uint8Array(256))).unwrappedKey).toHaveLength(32);
    expect(crypto.unwrapKey).toHaveBeenCalledTimes(2);

    crypto.decrypt.mockRejectedValue(restError(400, 'BadParameter', 'bad ciphertext'));
    expect((await failure(keys.decrypt(ref, 'RSA-OAEP', new Uint8Array(256)))).code).toBe(C.INVALID_REQUEST);
    expect(crypto.decrypt).toHaveBeenCalledTimes(1);
    // The SDK's own local key check (key_ops, expiry) is a refusal of the request, not a vault failure.
    crypto.wrapKey.mockRejectedValue(new Error(`Operation wrapKey is not supported on key ${FAKE_VAULT}/keys/tenant-key/${VERSION}`));
    expect((await failure(keys.wrapKey(ref, 'RSA-OAEP', new Uint8Array(32)))).code).toBe(C.INVALID_REQUEST);
  });

  it('shares one breaker with the secrets side: secret outages open it for keys too', async () => {
    const { keys, secretsProvider, secrets, crypto } = await setup();
    (secrets.getSecret as jest.Mock).mockRejectedValue(restError(503, 'ServiceUnavailable', 'down'));
    await failure(secretsProvider.getSecret('s'));
    const e = await failure(keys.sign(ref, 'ES256', new Uint8Array(32)));
    expect(e.code).toBe(C.CIRCUIT_OPEN);
    expect(crypto.sign).not.toHaveBeenCalled();
  });
});
