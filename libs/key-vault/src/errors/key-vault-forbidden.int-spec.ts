/**
 * Integration: an identity without a permission (Azure's 403 Forbidden, inner ForbiddenByRbac or
 * ForbiddenByPolicy) through the real SDK against the local vault: one typed FORBIDDEN error, not retried,
 * not taken for a disabled object even when the name (which Azure's RBAC message quotes) says "disabled".
 */
import { Test, type TestingModule } from '@nestjs/testing';
import { KeyVaultEmulator } from '@app/keyvault-emulator';
import { emulatorKeyVaultOptions } from '@app/testing';
import { KEY_VAULT_ERROR_HTTP_STATUS, KeyVaultErrorCode as C, KeyVaultHealthIndicator, KeyVaultKeysProvider, KeyVaultModule, KeyVaultProvider, type KeyVaultError } from '../index';

const failure = (p: Promise<unknown>): Promise<KeyVaultError> =>
  p.then(
    () => Promise.reject(new Error('expected the call to fail')),
    (e: KeyVaultError) => e,
  );

describe('KeyVaultError on a denied permission (403) against the local vault', () => {
  let vault: KeyVaultEmulator;
  let moduleRef: TestingModule;
  let kv: KeyVaultProvider;
  let keys: KeyVaultKeysProvider;

  beforeAll(async () => {
    vault = await KeyVaultEmulator.start({ quiet: true, throttle: false, operationDelayMs: 0 });
    // Retries enabled (the default 4 attempts, fast): a 403 must still be tried once.
    const options = emulatorKeyVaultOptions(vault, { resilience: { initialDelayMs: 10, maxDelayMs: 50, pollIntervalMs: 20 } });
    moduleRef = await Test.createTestingModule({ imports: [KeyVaultModule.forRoot(options)] }).compile();
    kv = moduleRef.get(KeyVaultProvider);
    keys = moduleRef.get(KeyVaultKeysProvider);
  });
  afterEach(() => vault.clearDenials());
  afterAll(async () => {
    await moduleRef?.close();
    await vault?.stop();
  });

  it.each(['rbac', 'accessPolicy'] as const)('%s: FORBIDDEN (1010), one request, a message without name or value', async (model) => {
    // A tenant or connection id may well say "disabled": Azure's RBAC message quotes the resource's path.
    const name = `cv-disabled-accounts-${model}`;
    await kv.setSecret(name, 'secret-value-1');
    vault.deny({ operations: ['getSecret', 'setSecret'], model });
    vault.resetStats();

    const read = await failure(kv.getSecret(name));
    const write = await failure(kv.setSecret(name, 'secret-value-2'));
    for (const e of [read, write]) {
      expect(e.code).toBe(C.FORBIDDEN);
      expect(e.statusCode).toBe(403);
      expect(e.message).toMatch(/^(Reading|Writing) the secret failed: FORBIDDEN \(HTTP 403 Forbidden; the host's identity lacks this permission \(access policy or RBAC role\)\)$/);
      for (const leak of [name, 'secret-value', 'Caller', 'appid']) expect(JSON.stringify({ message: e.message, json: e })).not.toContain(leak);
    }
    expect(KEY_VAULT_ERROR_HTTP_STATUS[read.code]).toBe(502); // our identity's permissions: not the client's fault
    expect(vault.stats().byOperationAndStatus).toEqual({ 'getSecret:403': 1, 'setSecret:403': 1 });

    vault.clearDenials();
    expect((await kv.getSecret(name)).value).toBe('secret-value-1'); // the refused write changed nothing
  });

  it('a denied key operation is FORBIDDEN too, not a disabled key', async () => {
    await keys.createKey('cv-k-disabled-signer', { keyType: 'RSA' });
    vault.deny({ operations: ['getKey'] });
    vault.resetStats();
    const e = await failure(keys.getKey('cv-k-disabled-signer'));
    expect(e.code).toBe(C.FORBIDDEN);
    expect(vault.stats().byOperationAndStatus).toEqual({ 'getKey:403': 1 });
  });

  it.each([
    ['the vault list', undefined, 'listSecrets'],
    // A probe secret whose read is denied is no 404 or disabled secret: the identity cannot read what it serves.
    ['a probe secret', 'cv-disabled-probe', 'getSecret'],
  ] as const)('readiness through %s: down, FORBIDDEN, with the permission named, the probe tried once', async (_what, probeSecretName, operation) => {
    const ref = await Test.createTestingModule({
      imports: [KeyVaultModule.forRoot(emulatorKeyVaultOptions(vault, { health: { timeoutMs: 2000, ...(probeSecretName ? { probeSecretName } : {}) } }))],
    }).compile();
    try {
      const health = ref.get(KeyVaultHealthIndicator);
      expect((await health.isHealthy()).keyVault.status).toBe('up');
      vault.deny({ operations: [operation] });
      vault.resetStats();
      const down = (await health.isHealthy()).keyVault;
      expect(down).toMatchObject({ status: 'down', code: 'FORBIDDEN', message: expect.stringContaining('lacks this permission') });
      expect(JSON.stringify(down)).not.toContain('Caller');
      expect(vault.stats().byOperationAndStatus).toEqual({ [`${operation}:403`]: 1 });
      vault.clearDenials();
      expect((await health.isHealthy()).keyVault.status).toBe('up'); // FORBIDDEN is no breaker failure that outlives the grant
    } finally {
      await ref.close();
    }
  });
});
