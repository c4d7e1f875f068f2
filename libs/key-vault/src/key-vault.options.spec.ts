import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Global, Module } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { Registry } from 'prom-client';
import { KeyVaultErrorCode } from './errors/key-vault-error-code';
import { KeyVaultError } from './errors/key-vault.error';
import { CapturingLogger, rejection } from '@app/testing';
import type { KeyVaultModuleOptions, KeyVaultOptionsFactory } from './interfaces/key-vault-module-options.interface';
import { KeyVaultModule } from './key-vault.module';
import { isLocalHost, resolveKeyVaultOptions } from './key-vault.options';
import { KeyVaultProvider } from './key-vault.provider';

const PEM = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
const azure: KeyVaultModuleOptions = { vaultUrl: 'https://myvault.vault.azure.net', credential: { type: 'managed-identity' } };
const local: KeyVaultModuleOptions = { vaultUrl: 'https://localhost:8443', credential: { type: 'static' } };

function configError(options: unknown): KeyVaultError {
  try {
    resolveKeyVaultOptions(options as KeyVaultModuleOptions);
  } catch (e) {
    expect(e).toBeInstanceOf(KeyVaultError);
    expect((e as KeyVaultError).code).toBe(KeyVaultErrorCode.CONFIGURATION);
    return e as KeyVaultError;
  }
  throw new Error('expected a configuration error');
}

describe('resolveKeyVaultOptions', () => {
  it('applies every documented default', () => {
    const r = resolveKeyVaultOptions(azure);
    expect(r).toMatchObject({
      vaultUrl: 'https://myvault.vault.azure.net',
      isLocalVault: false,
      disableChallengeResourceVerification: false,
      resilience: {
        maxAttempts: 4,
        initialDelayMs: 200,
        maxDelayMs: 16000,
        timeoutMs: 10000,
        pollIntervalMs: 500,
        breaker: { consecutiveFailures: 5, halfOpenAfterMs: 30000 },
        bulkhead: { maxConcurrent: 64, maxQueued: 1000 },
      },
      metrics: { enabled: true, prefix: 'credential_vault_keyvault_' },
      health: { timeoutMs: 3000, degradedAfterMs: 1000 },
    });
    expect(r.caCertPem).toBeUndefined();
  });

  it('keeps partial nested options and fills the rest', () => {
    const r = resolveKeyVaultOptions({ ...azure, resilience: { maxAttempts: 2, breaker: { consecutiveFailures: 9 } } });
    expect(r.resilience.maxAttempts).toBe(2);
    expect(r.resilience.breaker).toEqual({ consecutiveFailures: 9, halfOpenAfterMs: 30000 });
    expect(r.resilience.bulkhead.maxConcurrent).toBe(64);
  });

  it('names each wrong field and what to fix', () => {
    const e = configError({
      vaultUrl: 'https://myvault.vault.azure.net',
      credential: { type: 'client-secret', tenantId: 't', clientId: '' },
      resilience: { maxAttempts: 0, timeoutMs: -1 },
      metrics: { prefix: 'bad prefix' },
    });
    expect(e.message).toContain('credential.clientId: clientId must not be empty');
    expect(e.message).toContain('credential.clientSecret: clientSecret is required');
    expect(e.message).toContain('resilience.maxAttempts');
    expect(e.message).toContain('resilience.timeoutMs');
    expect(e.message).toContain('metrics.prefix must be a valid Prometheus name prefix');
  });

  it('refuses a missing vaultUrl, an unknown credential type and unknown keys', () => {
    expect(configError({ credential: { type: 'azure-cli' } }).message).toContain('vaultUrl is required');
    expect(configError({ ...azure, credential: { type: 'password' } }).message).toContain(
      'credential.type must be one of managed-identity, client-secret',
    );
    expect(configError({ ...azure, retries: 3 }).message).toMatch(/retries/);
  });

  it('requires exactly one of certificatePath / certificate', () => {
    const base = { type: 'client-certificate', tenantId: 't', clientId: 'c' };
    expect(configError({ ...azure, credential: base }).message).toContain('exactly one of certificatePath');
    expect(
      configError({ ...azure, credential: { ...base, certificatePath: '/a.pem', certificate: PEM } }).message,
    ).toContain('exactly one of certificatePath');
    // Also next to a field of the wrong type: the one error lists both.
    const both = configError({ ...azure, credential: { ...base, sendCertificateChain: 'yes' } }).message;
    expect(both).toContain('exactly one of certificatePath');
    expect(both).toMatch(/sendCertificateChain/);
  });

  it('requires https, a bare origin, and normalises a trailing slash', () => {
    expect(configError({ ...azure, vaultUrl: 'http://myvault.vault.azure.net' }).message).toContain('must be an https:// URL');
    expect(configError({ ...azure, vaultUrl: 'https://myvault.vault.azure.net/prefix' }).message).toContain(
      'with no credentials, path, query or fragment',
    );
    expect(configError({ ...azure, vaultUrl: 'not a url' }).message).toContain('vaultUrl: vaultUrl is not a URL');
    expect(resolveKeyVaultOptions({ ...azure, vaultUrl: 'https://myvault.vault.azure.net/' }).vaultUrl).toBe(
      'https://myvault.vault.azure.net',
    );
  });

  // No Key Vault, Azure's or the local one, speaks plain HTTP: an http:// URL to the local vault failed at the first call
  // as SERVICE_UNAVAILABLE, 'retry later' (its TLS port hung up on the plain request).
  it.each(['http://127.0.0.1:8443', 'http://localhost:8443', 'http://[::1]:8443', 'HTTP://myvault.vault.azure.net'])(
    'refuses %s at start, for a local vault too, with every other problem in the same error',
    (vaultUrl) => {
      const e = configError({ ...local, vaultUrl, resilience: { maxAttempts: 99 } });
      expect(e.message).toContain('vaultUrl: vaultUrl must be an https:// URL');
      expect(e.message).toContain('resilience.maxAttempts');
    },
  );

  describe('local-only development switches', () => {
    it.each([
      ['tls.caCertPem', { tls: { caCertPem: PEM } }, 'tls (custom CA trust)'],
      ['disableChallengeResourceVerification', { disableChallengeResourceVerification: true }, 'disableChallengeResourceVerification'],
      ['static credential', { credential: { type: 'static' } }, "credential type 'static'"],
    ])('refuses %s for a non-local vault', (_label, extra, named) => {
      const e = configError({ ...azure, ...extra });
      expect(e.message).toContain(named);
      expect(e.message).toContain('only for a local vault');
      expect(e.message).not.toContain('myvault');
    });

    it.each(['https://localhost:8443', 'https://127.0.0.1:8443', 'https://127.3.2.1', 'https://[::1]:8443', 'https://vault.localhost'])(
      'accepts them for %s',
      (vaultUrl) => {
        const r = resolveKeyVaultOptions({ ...local, vaultUrl, tls: { caCertPem: PEM }, disableChallengeResourceVerification: true });
        expect(r.isLocalVault).toBe(true);
        expect(r.caCertPem).toBe(PEM);
        expect(r.disableChallengeResourceVerification).toBe(true);
      },
    );

    it('does not take look-alike hosts for local ones', () => {
      for (const h of ['localhost.evil.com', '128.0.0.1', '10.0.0.1', '::2', 'mylocalhost']) expect(isLocalHost(h)).toBe(false);
      expect(configError({ ...local, vaultUrl: 'https://localhost.evil.com' }).message).toContain('only for a local vault');
    });
  });

  it('lists every problem in one error: schema issues next to the URL, local-only and CA checks', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kv-opts-'));
    const e = configError({
      vaultUrl: 'https://myvault.vault.azure.net/path',
      credential: { type: 'static' },
      tls: { caCertPath: join(dir, 'missing.pem') },
      resilience: { maxAttempts: 0 },
      metrics: { prefix: 'bad prefix' },
      cahce: true,
    });
    expect(e.message).toContain('vaultUrl: vaultUrl must be the vault');
    expect(e.message).toContain('resilience.maxAttempts');
    expect(e.message).toContain('metrics.prefix');
    expect(e.message).toMatch(/cahce/);
    expect(e.message).toContain("tls (custom CA trust), credential type 'static' are accepted only for a local vault");
    expect(e.message).toContain('tls.caCertPath: tls.caCertPath cannot be read (ENOENT)');
    expect(e.message).not.toContain(dir);
    // A bad nested value does not hide the URL check.
    const both = configError({ ...azure, vaultUrl: 'http://myvault.vault.azure.net', resilience: 'fast' }).message;
    expect(both).toContain('resilience:');
    expect(both).toContain('vaultUrl: vaultUrl must be an https:// URL');
  });

  it('never echoes the vaultUrl (it may hold credentials)', () => {
    const vaultUrl = 'https://user:S3cretPassw0rd@myvault.vault.azure.net/path';
    for (const opts of [
      { ...azure, vaultUrl },
      { ...azure, vaultUrl, credential: { type: 'static' }, disableChallengeResourceVerification: true },
      { ...azure, vaultUrl: 'https://user:S3cretPassw0rd@myvault.vault.azure.net', resilience: { maxAttempts: 99 } },
      { ...azure, vaultUrl: 'http://user:S3cretPassw0rd@myvault.vault.azure.net' },
      { ...azure, vaultUrl: 'https://user:S3cretPassw0rd@bad host' },
    ]) {
      const e = configError(opts);
      expect(e.message).toContain('vaultUrl');
      expect(e.message).not.toContain('S3cretPassw0rd');
      expect(e.message).not.toContain('user:');
      expect(JSON.stringify(e)).not.toContain('S3cretPassw0rd');
    }
    expect(configError({ ...azure, vaultUrl }).message).toContain('with no credentials, path, query or fragment');
  });

  it('reads tls.caCertPath once and refuses unreadable or non-PEM files', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kv-opts-'));
    const good = join(dir, 'ca.crt');
    writeFileSync(good, PEM);
    expect(resolveKeyVaultOptions({ ...local, tls: { caCertPath: good } }).caCertPem).toBe(PEM);
    expect(configError({ ...local, tls: { caCertPath: join(dir, 'missing.pem') } }).message).toContain('cannot be read (ENOENT)');
    const bad = join(dir, 'bad.crt');
    writeFileSync(bad, 'hello');
    expect(configError({ ...local, tls: { caCertPath: bad } }).message).toContain('not a PEM certificate');
    expect(configError({ ...local, tls: { caCertPath: good, caCertPem: PEM } }).message).toContain('at most one of');
  });

  it('fails module bootstrap with the configuration error (forRoot)', async () => {
    const compile = Test.createTestingModule({
      imports: [KeyVaultModule.forRoot({ ...azure, credential: { type: 'static' }, metrics: { registry: new Registry() } })],
    }).compile();
    await expect(compile).rejects.toMatchObject({ code: KeyVaultErrorCode.CONFIGURATION, codeName: 'KEY_VAULT_CONFIGURATION' });
  });

  it('fails bootstrap when the app registers it twice (with other options, the first would win silently)', async () => {
    const registry = new Registry();
    const twice = Test.createTestingModule({
      imports: [KeyVaultModule.forRoot({ ...local, metrics: { registry } }), KeyVaultModule.forRoot({ ...local, vaultUrl: 'https://127.0.0.1:9443', metrics: { registry } })],
    }).compile();
    await expect(twice).rejects.toMatchObject({ codeName: 'KEY_VAULT_CONFIGURATION', message: expect.stringMatching(/^KeyVaultModule is registered 2 times in this application .*: register it once, in the host module — with `isGlobal: true` when providers of other modules inject its services$/) });
  });

  it('builds a working module for valid options (forRoot and forRootAsync)', async () => {
    const registry = new Registry();
    const a = await Test.createTestingModule({ imports: [KeyVaultModule.forRoot({ ...local, metrics: { registry } })] }).compile();
    expect(a.get(KeyVaultProvider).vaultUrl).toBe('https://localhost:8443');
    const b = await Test.createTestingModule({
      imports: [KeyVaultModule.forRootAsync({ useFactory: async () => ({ ...local, metrics: { registry } }) })],
    }).compile();
    expect(b.get(KeyVaultProvider).vaultUrl).toBe('https://localhost:8443');
    // Both modules share the registry: the metrics are registered once, not twice.
    expect((await registry.getMetricsAsJSON()).filter((m) => m.name === 'credential_vault_keyvault_operations_total')).toHaveLength(1);
  });
});

describe('KeyVaultModule.forRootAsync with an options factory class', () => {
  const vaultUrlOf = async (imports: Parameters<typeof Test.createTestingModule>[0]['imports'], logger = new CapturingLogger()) => {
    const app = await Test.createTestingModule({ imports }).setLogger(logger).compile();
    try {
      return app.get(KeyVaultProvider).vaultUrl;
    } finally {
      await app.close();
    }
  };

  it('calls create(), the method every lib module\'s options factory has (useClass and useExisting)', async () => {
    class Factory implements KeyVaultOptionsFactory {
      create(): KeyVaultModuleOptions {
        return { ...local, vaultUrl: 'https://localhost:42443', metrics: { registry: new Registry() } };
      }
    }
    expect(await vaultUrlOf([KeyVaultModule.forRootAsync({ useClass: Factory })])).toBe('https://localhost:42443');
    @Global()
    @Module({ providers: [Factory], exports: [Factory] })
    class ConfigModule {}
    expect(await vaultUrlOf([ConfigModule, KeyVaultModule.forRootAsync({ useExisting: Factory })])).toBe('https://localhost:42443');
  });

  it('still calls the deprecated createKeyVaultOptions() of a factory written for it, with a warning naming create()', async () => {
    class OldFactory implements KeyVaultOptionsFactory {
      createKeyVaultOptions(): KeyVaultModuleOptions {
        return { ...local, vaultUrl: 'https://localhost:42444', metrics: { registry: new Registry() } };
      }
    }
    const logger = new CapturingLogger();
    expect(await vaultUrlOf([KeyVaultModule.forRootAsync({ useClass: OldFactory, isGlobal: true })], logger)).toBe('https://localhost:42444');
    expect(logger.lines.filter((l) => l.startsWith('warn '))).toEqual([
      expect.stringMatching(/^warn OldFactory\.createKeyVaultOptions\(\) is deprecated: name the options factory's method create\(\), as for every lib module/),
    ]);
  });

  it('fails bootstrap with the configuration error when the factory has neither method', async () => {
    class NoFactory {}
    const err = await rejection(vaultUrlOf([KeyVaultModule.forRootAsync({ useClass: NoFactory as never })]));
    expect(err).toMatchObject({ codeName: 'KEY_VAULT_CONFIGURATION', message: expect.stringContaining('the options factory NoFactory (useClass / useExisting) has no create() method') });
  });
});
