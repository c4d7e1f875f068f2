import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { Test } from '@nestjs/testing';
import { KeyVaultModule } from '@app/key-vault';
import { parseEmulatorCliFlags } from '@app/keyvault-emulator';
import { load } from 'js-yaml';
import { Registry } from 'prom-client';
import { CONFIG_VARIABLES, ConfigValidationError, loadAppConfig } from '../../apps/api/src/config/app.config';
import { keyVaultOptions } from '../../apps/api/src/vault/vault.module';
import { buildHost, HostBuild } from './replicas';

/**
 * docker-compose.yml and the Dockerfile, checked without a Docker engine (there is none in CI): the
 * file parses, the api is scalable and waits for healthy dependencies, its environment is one the
 * host accepts, the vault service's command really starts the emulator and exports the CA the api
 * trusts, and the dev vault switches are refused in production.
 */
const ROOT = resolve(__dirname, '../..');

interface Service {
  build?: unknown;
  image?: string;
  command?: string[];
  environment?: Record<string, string>;
  ports?: string[];
  volumes?: string[];
  networks?: Record<string, { aliases?: string[] }>;
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] };
  container_name?: string;
  restart?: string;
}

const compose = load(readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8')) as { services: Record<string, Service>; volumes: Record<string, unknown> };
const { api, keyvault, postgres, redis } = compose.services;
const apiEnv = api.environment ?? {};
/** `name:/path[:ro]` → [name, path, mode]. */
const mounts = (s: Service) => (s.volumes ?? []).map((v) => v.split(':'));

describe('docker-compose.yml', () => {
  it('has the api, postgres, redis and the local vault as its own service', () => {
    expect(Object.keys(compose.services).sort()).toEqual(['api', 'keyvault', 'postgres', 'redis']);
    expect(postgres.image).toMatch(/^postgres:/);
    expect(redis.image).toMatch(/^redis:/);
    expect(keyvault.command?.slice(0, 2)).toEqual(['node', 'dist/apps/keyvault-emulator/src/main.js']);
  });

  it('lets the api scale (`--scale api=3`): no container name, a host port range with a port per replica', () => {
    expect(api.container_name).toBeUndefined();
    for (const p of api.ports ?? []) {
      const m = /^(?:[\d.]+:)?(\d+)-(\d+):(\d+)$/.exec(p);
      expect(m).not.toBeNull();
      expect(Number(m![2]) - Number(m![1]) + 1).toBeGreaterThanOrEqual(3);
      expect(m![3]).toBe(apiEnv.PORT);
    }
    // No other service publishes a fixed host port that could collide with a local PostgreSQL or Redis.
    for (const s of [postgres, redis, keyvault]) expect(s.ports ?? []).toEqual([]);
  });

  it('gives every service a health check and starts the api once its dependencies are healthy', () => {
    for (const [name, s] of Object.entries(compose.services)) {
      expect([name, s.healthcheck?.test?.[0]]).toEqual([name, expect.stringMatching(/^CMD(-SHELL)?$/)]);
    }
    expect(api.depends_on).toEqual({
      postgres: { condition: 'service_healthy' },
      redis: { condition: 'service_healthy' },
      keyvault: { condition: 'service_healthy' },
    });
    expect(api.healthcheck?.test.join(' ')).toContain(`http://127.0.0.1:${apiEnv.PORT}/health/ready`);
  });

  it("sets only variables the host knows, and the host accepts the api's environment: PostgreSQL, Redis, the vault over HTTPS", () => {
    expect(Object.keys(apiEnv).filter((k) => !CONFIG_VARIABLES.includes(k))).toEqual([]);
    const config = loadAppConfig(apiEnv, '/app');
    expect(config.env).toBe('development');
    expect(config.database).toMatchObject({ type: 'postgres', url: expect.stringContaining('@postgres:5432/') });
    expect(config.redis).toEqual({ url: 'redis://redis:6379', keyPrefix: 'cv:' });
    expect(config.keyVault).toMatchObject({ mode: 'external', url: 'https://keyvault.localhost:8443', credential: 'static', caCertPath: '/vault-ca/ca.pem' });
    expect(config.auth.apiKeys).toHaveLength(1);
    expect(config.auth.devApiKeyFile).toBeUndefined(); // one key for every replica, not one file each
  });

  it('points the api at the vault service: its host alias, port, and the CA it exports on a volume the api mounts read-only', () => {
    const flags = parseEmulatorCliFlags(keyvault.command!.slice(2));
    if (flags === 'help') throw new Error('the vault command asks for help');
    const url = new URL(apiEnv.KEY_VAULT_URL);
    expect(keyvault.networks?.default?.aliases).toContain(url.hostname);
    expect(flags.host).toBe(url.hostname);
    expect(String(flags.port)).toBe(url.port);
    expect(flags.caExportPath).toBe(apiEnv.KEY_VAULT_CA_CERT_PATH);
    const caDir = dirname(apiEnv.KEY_VAULT_CA_CERT_PATH);
    const vaultSide = mounts(keyvault).find(([, path]) => path === caDir);
    const apiSide = mounts(api).find(([, path]) => path === caDir);
    expect(vaultSide?.[0]).toBeDefined();
    expect(apiSide).toEqual([vaultSide![0], caDir, 'ro']);
    expect(Object.keys(compose.volumes)).toContain(vaultSide![0]);
    // The CA key stays in the vault's data dir, which the api does not mount.
    expect(mounts(api).some(([, path]) => flags.dataDir !== undefined && path.startsWith(flags.dataDir))).toBe(false);
  });

  it('refuses the dev vault switches in production, naming each variable', () => {
    let error: unknown;
    try {
      loadAppConfig({ ...apiEnv, NODE_ENV: 'production' });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigValidationError);
    const problems = (error as ConfigValidationError).problems.join('\n');
    for (const v of ['KEY_VAULT_CA_CERT_PATH', 'KEY_VAULT_CREDENTIAL', 'KEY_VAULT_DISABLE_CHALLENGE_RESOURCE_VERIFICATION']) {
      expect(problems).toMatch(new RegExp(`^${v}: .*production`, 'm'));
    }
  });

  describe("the vault service's command, run as a process", () => {
    let build: HostBuild | undefined;
    let dir: string;
    let child: ReturnType<typeof spawn> | undefined;

    beforeAll(async () => {
      build = await buildHost();
      dir = mkdtempSync(join(tmpdir(), 'cv-compose-'));
    });

    afterAll(async () => {
      if (child && child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child!.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      build?.remove();
      rmSync(dir, { recursive: true, force: true });
    });

    it('starts the emulator, exports its CA, passes its own health check; the api accepts that vault and CA', async () => {
      // The compose command with loopback and temp paths instead of the container's (no Docker DNS here).
      const args = keyvault.command!.slice(2).map((a) =>
        a === 'keyvault.localhost' ? '127.0.0.1' : a === '8443' ? '0' : a.replace('/app/data/vault', join(dir, 'data')).replace('/vault-ca', join(dir, 'ca')),
      );
      const emulatorJs = join(dirname(build!.mainJs), '../../keyvault-emulator/src/main.js');
      child = spawn(process.execPath, [emulatorJs, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      // Never outlive a jest worker that exits without running afterAll.
      const orphan = () => child?.kill('SIGKILL');
      process.once('exit', orphan);
      child.once('exit', () => process.off('exit', orphan));
      let out = '';
      child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
      const deadline = Date.now() + 30_000;
      while (!/CA certificate exported to/.test(out)) {
        if (Date.now() > deadline || child.exitCode !== null) throw new Error(`the vault did not start:\n${out}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      const vaultUrl = /Vault URL: (\S+)/.exec(out)![1];
      const caPath = join(dir, 'ca', 'ca.pem');
      expect(existsSync(caPath)).toBe(true);
      const ca = readFileSync(caPath, 'utf8');
      expect(ca).toContain('-----BEGIN CERTIFICATE-----');
      expect(ca).not.toMatch(/PRIVATE KEY/);

      // The service's health check, verbatim but for the host name and the CA path.
      const check = keyvault.healthcheck!.test.slice(1);
      const script = check[2].replace('https://keyvault.localhost:8443', vaultUrl).replace('/vault-ca/ca.pem', caPath);
      const code = await new Promise<number | null>((res) => spawn(check[0] === 'node' ? process.execPath : check[0], [check[1], script]).once('exit', res));
      expect(code).toBe(0);

      // The api's vault options from its compose environment, validated by the key-vault lib.
      const hostCa = join(dir, 'api-ca.pem');
      writeFileSync(hostCa, ca);
      const config = loadAppConfig({ ...apiEnv, KEY_VAULT_CA_CERT_PATH: hostCa }, '/app');
      const options = keyVaultOptions(config, undefined as never);
      expect(options).toMatchObject({ vaultUrl: 'https://keyvault.localhost:8443', credential: { type: 'static' }, disableChallengeResourceVerification: true, tls: { caCertPem: ca } });
      const moduleRef = await Test.createTestingModule({ imports: [KeyVaultModule.forRoot({ ...options, metrics: { registry: new Registry() } })] }).compile();
      await moduleRef.close();
    });
  });
});

describe('Dockerfile', () => {
  const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
  const stages = dockerfile.split(/^FROM /m).slice(1);

  it('builds in one stage (npm ci, npm run build) and runs from another, as a non-root user', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    const [build] = stages;
    const runtime = stages[stages.length - 1];
    expect(build).toMatch(/^RUN npm ci\b/m);
    expect(build).toMatch(/npm run build/);
    expect(runtime).toMatch(/^COPY --from=build .*\/dist/m);
    expect(runtime).not.toMatch(/npm (ci|install)/);
    const user = /^USER (\S+)/m.exec(runtime)?.[1];
    expect(user).toBeDefined();
    expect(['root', '0']).not.toContain(user);
    expect(runtime).toMatch(/^CMD \["node", "dist\/apps\/api\/src\/main\.js"\]/m);
  });

  it('is a production image: NODE_ENV=production, dev dependencies pruned, a health check on /health/live', () => {
    const [build] = stages;
    const runtime = stages[stages.length - 1];
    expect(runtime).toMatch(/^ENV .*\bNODE_ENV=production\b/m);
    expect(build).toMatch(/npm prune --omit=dev/);
    expect(runtime).toMatch(/^COPY --from=build \/app\/node_modules /m);
    expect(runtime).toMatch(/^HEALTHCHECK .*\n?.*\/health\/live/m);
  });

  it('runs files the build produces (package.json build: swc apps → dist/apps)', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    expect(pkg.scripts.build).toMatch(/swc apps .*-d dist\b/);
    expect(existsSync(join(ROOT, 'apps/api/src/main.ts'))).toBe(true);
    expect(existsSync(join(ROOT, 'apps/keyvault-emulator/src/main.ts'))).toBe(true);
  });

  it('ships the gRPC service definition the host loads from proto/ when GRPC_ENABLED is set', () => {
    const runtime = stages[stages.length - 1];
    expect(runtime).toMatch(/^COPY --from=build \/app\/proto \.\/proto$/m);
    expect(existsSync(join(ROOT, 'proto/credential_vault/keys/v1/keys.proto'))).toBe(true);
  });

  it('keeps node_modules, dist, data and .git out of the build context', () => {
    const ignored = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim());
    for (const p of ['node_modules', 'dist', 'data', '.git']) expect(ignored).toContain(p);
  });
});
