import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Test } from '@nestjs/testing';
import { KeyVaultModule, KeyVaultProvider } from '@app/key-vault';
import { KeyVaultEmulator } from '@app/keyvault-emulator';
import { emulatorKeyVaultOptions } from '@app/testing';
import { createApp } from '../apps/api/src/bootstrap';
import { generateApiKey } from '../apps/api/src/auth/api-keys';
import { ConfigValidationError } from '../apps/api/src/config/app.config';
import { loadAppConfigResolvingReferences } from '../apps/api/src/config/keyvault-references';

/** Writes secrets into a local vault through the real SDK. */
async function seed(vault: KeyVaultEmulator, secrets: Record<string, string>): Promise<Record<string, string>> {
  const moduleRef = await Test.createTestingModule({ imports: [KeyVaultModule.forRoot({ ...emulatorKeyVaultOptions(vault), isGlobal: true })] }).compile();
  const provider = moduleRef.get(KeyVaultProvider);
  const versions: Record<string, string> = {};
  for (const [name, value] of Object.entries(secrets)) versions[name] = (await provider.setSecret(name, value)).properties.version!;
  await moduleRef.close();
  return versions;
}

describe('Key Vault references in the host configuration (real SDK, local vault over HTTPS)', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'cv-kvref-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('an external vault: the host starts with its API keys read from the vault, and a pinned version stays pinned', async () => {
    const vault = await KeyVaultEmulator.start({ dataDir: join(dir, 'vault'), quiet: true });
    try {
      writeFileSync(join(dir, 'ca.pem'), vault.caCertPem);
      const admin = generateApiKey('refkey', 'tenant-ref', ['credentials:read', 'credentials:write']);
      const versions = await seed(vault, { 'host-api-keys': JSON.stringify([admin.entry]), 'rate-limit': '77' });
      await seed(vault, { 'rate-limit': '99' }); // a newer version that the pin must not pick up
      const env = {
        NODE_ENV: 'test',
        PORT: '0',
        LOG_LEVEL: 'error',
        DATABASE_PATH: join(dir, 'db.sqlite'),
        KEY_VAULT_URL: vault.vaultUrl,
        KEY_VAULT_CREDENTIAL: 'static',
        KEY_VAULT_CA_CERT_PATH: join(dir, 'ca.pem'),
        KEY_VAULT_DISABLE_CHALLENGE_RESOURCE_VERIFICATION: 'true',
        AUTH_API_KEYS: '@keyvault:host-api-keys',
        RATE_LIMIT_PER_MINUTE: `@keyvault:rate-limit/${versions['rate-limit']}`,
      };
      const config = await loadAppConfigResolvingReferences(env);
      expect(config.rateLimit.perMinute).toBe(77);
      expect(config.auth.apiKeys).toEqual([admin.entry]);

      const app = await createApp(config);
      try {
        const base = (await app.getUrl()).replace('[::1]', '127.0.0.1');
        const stored = await fetch(`${base}/v1/credentials`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-api-key': admin.key },
          body: JSON.stringify({ integrationId: 'stripe', connectionId: 'c1', type: 'api_key', value: 'sk_live_kvref_0123456789' }),
        });
        expect(stored.status).toBe(201);
        const denied = await fetch(`${base}/v1/credentials`, { headers: { 'x-api-key': 'cvk_nobody_xxxxxxxx' } });
        expect(denied.status).toBe(401);
      } finally {
        await app.close();
      }
    } finally {
      await vault.stop();
    }
  });

  it('an external vault: a missing secret stops the start with the variable named; production never falls back', async () => {
    const vault = await KeyVaultEmulator.start({ dataDir: join(dir, 'vault'), quiet: true });
    try {
      writeFileSync(join(dir, 'ca.pem'), vault.caCertPem);
      const env = {
        NODE_ENV: 'production',
        AUTH_API_KEYS: '@keyvault:no-such-secret',
        AUTH_API_KEYS_FALLBACK: '[]',
        KEY_VAULT_URL: vault.vaultUrl,
        KEY_VAULT_CREDENTIAL: 'static',
        KEY_VAULT_CA_CERT_PATH: join(dir, 'ca.pem'),
        KEY_VAULT_DISABLE_CHALLENGE_RESOURCE_VERIFICATION: 'true',
      };
      const error = await loadAppConfigResolvingReferences(env).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ConfigValidationError);
      expect((error as ConfigValidationError).problems).toEqual([
        'AUTH_API_KEYS: the Key Vault reference to no-such-secret could not be resolved: no such secret (or version) in the vault',
      ]);
    } finally {
      await vault.stop();
    }
  });

  it('the embedded local vault: references resolve from its data directory before the host starts it', async () => {
    const dataDir = join(dir, 'vault');
    const seeded = await KeyVaultEmulator.start({ dataDir, quiet: true });
    await seed(seeded, { 'dev-rate-limit': '123' });
    await seeded.stop();

    const config = await loadAppConfigResolvingReferences({
      NODE_ENV: 'test',
      LOG_LEVEL: 'error',
      EMULATOR_PORT: '0',
      EMULATOR_DATA_DIR: dataDir,
      RATE_LIMIT_PER_MINUTE: '@keyvault:dev-rate-limit',
    });
    expect(config.rateLimit.perMinute).toBe(123);

    // Development fallback when the secret is not there.
    const warnings: string[] = [];
    const fallback = await loadAppConfigResolvingReferences(
      { NODE_ENV: 'development', LOG_LEVEL: 'error', EMULATOR_PORT: '0', EMULATOR_DATA_DIR: dataDir, RATE_LIMIT_PER_MINUTE: '@keyvault:absent', RATE_LIMIT_PER_MINUTE_FALLBACK: '5' },
      { warn: (m) => warnings.push(m) },
    );
    expect(fallback.rateLimit.perMinute).toBe(5);
    expect(warnings).toEqual([expect.stringMatching(/^RATE_LIMIT_PER_MINUTE: .*RATE_LIMIT_PER_MINUTE_FALLBACK/)]);
  });

  it('the embedded local vault: its port is checked against the HTTP API as configured, not at its default (EMULATOR_PORT=3000 beside PORT=4000 starts)', async () => {
    const dataDir = join(dir, 'vault');
    const seeded = await KeyVaultEmulator.start({ dataDir, quiet: true });
    await seed(seeded, { 'dev-rate-limit': '77' });
    await seeded.stop();

    // Port 3000 is PORT's default: the vault opened to resolve the reference listens there (and closes after).
    const base = { NODE_ENV: 'test', LOG_LEVEL: 'error', EMULATOR_PORT: '3000', EMULATOR_DATA_DIR: dataDir, RATE_LIMIT_PER_MINUTE: '@keyvault:dev-rate-limit' };
    const moved = await loadAppConfigResolvingReferences({ ...base, PORT: '4000', GRPC_ENABLED: 'true', GRPC_PORT: '4001' });
    expect({ http: moved.http.port, grpc: moved.grpc.port, rateLimit: moved.rateLimit.perMinute }).toEqual({ http: 4000, grpc: 4001, rateLimit: 77 });
    // PORT at its default, but the HTTP API not on the loopback address the vault listens on.
    const elsewhere = await loadAppConfigResolvingReferences({ ...base, HOST: '10.0.0.5' });
    expect({ host: elsewhere.http.host, port: elsewhere.http.port, rateLimit: elsewhere.rateLimit.perMinute }).toEqual({ host: '10.0.0.5', port: 3000, rateLimit: 77 });
    // The rule still holds where it should: the same port on the loopback address is refused.
    const clash = await loadAppConfigResolvingReferences({ ...base, PORT: '3000' }).catch((e: unknown) => e);
    expect(clash).toBeInstanceOf(ConfigValidationError);
    expect((clash as ConfigValidationError).problems).toEqual(['EMULATOR_PORT: must differ from PORT (the embedded local vault listens beside the HTTP API)']);
  });
});
