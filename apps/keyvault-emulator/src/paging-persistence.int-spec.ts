import { cpSync, readFileSync, statSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KeyVaultEmulator } from './index';
import { emulatorSecretClient, rawRequest } from './testing';

const API = 'api-version=7.6';

describe('Key Vault emulator: paging', () => {
  let emu: KeyVaultEmulator;
  beforeAll(async () => {
    emu = await KeyVaultEmulator.start({ quiet: true, throttle: false });
    const client = emulatorSecretClient(emu, { maxRetries: 0 });
    for (let i = 0; i < 120; i += 30) {
      await Promise.all(Array.from({ length: 30 }, (_, j) => client.setSecret(`paged-${String(i + j).padStart(3, '0')}`, `value-${i + j}`)));
    }
    await Promise.all(Array.from({ length: 30 }, (_, j) => client.setSecret('many', `v${j}`)));
  });
  afterAll(() => emu.stop());

  it('pages over 120 secrets with maxPageSize and absolute nextLinks, items without values', async () => {
    const client = emulatorSecretClient(emu, { maxRetries: 0 });
    const pageSizes: number[] = [];
    const names: string[] = [];
    for await (const page of client.listPropertiesOfSecrets().byPage({ maxPageSize: 7 })) {
      pageSizes.push(page.length);
      names.push(...page.map((p) => p.name));
    }
    const paged = names.filter((n) => n.startsWith('paged-'));
    expect(paged).toHaveLength(120);
    expect(new Set(names).size).toBe(names.length);
    expect(pageSizes.slice(0, -1).every((n) => n === 7)).toBe(true);
    expect(pageSizes.reduce((a, b) => a + b, 0)).toBe(121);

    const first = await rawRequest(emu, 'GET', `/secrets?${API}&maxresults=25`);
    expect(first.json.value).toHaveLength(25);
    expect(first.json.value[0]).toEqual({ id: `${emu.vaultUrl}/secrets/many`, attributes: expect.any(Object) });
    expect(first.json.nextLink).toMatch(new RegExp(`^${emu.vaultUrl}/secrets\\?api-version=7\\.6&\\$skiptoken=[A-Za-z0-9_-]+&maxresults=25$`));
    const second = await rawRequest(emu, 'GET', first.json.nextLink.slice(emu.vaultUrl.length));
    expect(second.json.value[0].id).toBe(`${emu.vaultUrl}/secrets/paged-024`);
    // Called as localhost, the next page is on localhost too (a client refuses a link to another origin).
    const asLocalhost = await rawRequest(emu, 'GET', `/secrets?${API}&maxresults=25`, { headers: { host: `localhost:${emu.port}` } });
    expect(asLocalhost.json.nextLink).toMatch(new RegExp(`^https://localhost:${emu.port}/secrets\\?api-version=7\\.6&`));
  });

  it('ends with nextLink null and never repeats or skips an item while following nextLinks', async () => {
    const seen: string[] = [];
    let path: string | null = `/secrets?${API}&maxresults=25`;
    let pages = 0;
    while (path) {
      const res = await rawRequest(emu, 'GET', path);
      expect(res.status).toBe(200);
      seen.push(...res.json.value.map((i: { id: string }) => i.id));
      pages++;
      path = res.json.nextLink === null ? null : res.json.nextLink.slice(emu.vaultUrl.length);
    }
    expect(pages).toBe(5);
    expect(seen).toHaveLength(121);
    expect(new Set(seen).size).toBe(121);
  });

  it('pages over versions of one secret', async () => {
    const client = emulatorSecretClient(emu, { maxRetries: 0 });
    const versions: string[] = [];
    let pages = 0;
    for await (const page of client.listPropertiesOfSecretVersions('many').byPage({ maxPageSize: 4 })) {
      pages++;
      versions.push(...page.map((p) => p.version!));
    }
    expect(pages).toBe(8);
    expect(new Set(versions).size).toBe(30);
  });

  it('rejects maxresults outside 1..25 and a bad $skiptoken with 400 BadParameter', async () => {
    for (const m of ['0', '26', 'abc', '-1']) {
      const res = await rawRequest(emu, 'GET', `/secrets?${API}&maxresults=${m}`);
      expect([m, res.status, res.json.error.code]).toEqual([m, 400, 'BadParameter']);
    }
    expect((await rawRequest(emu, 'GET', `/secrets?${API}&maxresults=1`)).json.value).toHaveLength(1);
    const bad = await rawRequest(emu, 'GET', `/secrets?${API}&$skiptoken=%%%`);
    expect(bad.status).toBe(400);
  });
});

describe('Key Vault emulator: persistence across restarts', () => {
  let dataDir: string;
  beforeAll(() => {
    dataDir = mkdtempSync(join(tmpdir(), 'kv-emu-persist-'));
  });
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

  it('keeps secrets, versions, deleted state and the CA; values are encrypted at rest', async () => {
    const marker = 'PLAINTEXT-MARKER-9f8e7d';
    const first = await KeyVaultEmulator.start({ quiet: true, dataDir, operationDelayMs: 0 });
    const c1 = emulatorSecretClient(first, { maxRetries: 0 });
    const v1 = await c1.setSecret('persisted', `${marker}-1`, { tags: { keep: 'me' } });
    await c1.setSecret('persisted', `${marker}-2`);
    await c1.setSecret('gone-soon', `${marker}-3`);
    await (await c1.beginDeleteSecret('gone-soon')).pollUntilDone();
    const ca = first.caCertPem;
    await first.stop();

    expect(statSync(join(dataDir, 'ca-key.pem')).mode & 0o777).toBe(0o600);
    expect(statSync(join(dataDir, 'tls-key.pem')).mode & 0o777).toBe(0o600);
    expect(statSync(join(dataDir, 'store.key')).mode & 0o777).toBe(0o600);
    const file = readFileSync(join(dataDir, 'secrets.json'), 'utf8');
    expect(file).toContain('persisted');
    expect(file).not.toContain(marker);

    const second = await KeyVaultEmulator.start({ quiet: true, dataDir, operationDelayMs: 0 });
    try {
      expect(second.caCertPem).toBe(ca);
      // a client that trusts the old CA still connects
      const c2 = emulatorSecretClient({ vaultUrl: second.vaultUrl, caCertPem: ca }, { maxRetries: 0 });
      expect((await c2.getSecret('persisted')).value).toBe(`${marker}-2`);
      const old = await c2.getSecret('persisted', { version: v1.properties.version });
      expect(old.value).toBe(`${marker}-1`);
      expect(old.properties.tags).toEqual({ keep: 'me' });
      expect((await c2.getDeletedSecret('gone-soon')).name).toBe('gone-soon');
      await (await c2.beginRecoverDeletedSecret('gone-soon')).pollUntilDone();
      expect((await c2.getSecret('gone-soon')).value).toBe(`${marker}-3`);
    } finally {
      await second.stop();
    }
  });

  it('answers a write only once it is on disk: the files as they are the moment it is answered hold it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kv-emu-durable-'));
    const crashed = mkdtempSync(join(tmpdir(), 'kv-emu-crashed-'));
    const emu = await KeyVaultEmulator.start({ quiet: true, dataDir: dir, operationDelayMs: 0 });
    try {
      const client = emulatorSecretClient(emu, { maxRetries: 0 });
      await client.setSecret('acked', 'first');
      // What a kill -9 right after each answer would leave on disk (the store is never closed or flushed).
      const written = await Promise.all(['second', 'third'].map((v) => client.setSecret('acked', v)));
      cpSync(dir, crashed, { recursive: true });
      await client.updateSecretProperties('acked', written[0].properties.version!, { enabled: false });
      cpSync(dir, join(crashed, 'after-update'), { recursive: true });
    } finally {
      await emu.stop();
    }
    for (const [data, disabled] of [[crashed, false], [join(crashed, 'after-update'), true]] as const) {
      const restarted = await KeyVaultEmulator.start({ quiet: true, dataDir: data, operationDelayMs: 0 });
      try {
        const client = emulatorSecretClient(restarted, { maxRetries: 0 });
        const versions = [];
        for await (const v of client.listPropertiesOfSecretVersions('acked')) versions.push(v);
        expect(versions).toHaveLength(3);
        expect(versions.filter((v) => v.enabled === false)).toHaveLength(disabled ? 1 : 0);
      } finally {
        await restarted.stop();
      }
    }
    rmSync(dir, { recursive: true, force: true });
    rmSync(crashed, { recursive: true, force: true });
  });

  it('refuses to start when the store cannot be decrypted with the key file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kv-emu-badkey-'));
    try {
      const emu = await KeyVaultEmulator.start({ quiet: true, dataDir: dir });
      await emulatorSecretClient(emu, { maxRetries: 0 }).setSecret('x', 'y');
      await emu.stop();
      const { writeFileSync } = await import('node:fs');
      writeFileSync(join(dir, 'store.key'), Buffer.alloc(32, 7).toString('base64'));
      await expect(KeyVaultEmulator.start({ quiet: true, dataDir: dir })).rejects.toThrow();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('removes its own temp dataDir on stop but never a given one', async () => {
    const own = await KeyVaultEmulator.start({ quiet: true });
    const ownDir = own.dataDir;
    await own.stop();
    expect(() => statSync(ownDir)).toThrow();
    const given = await KeyVaultEmulator.start({ quiet: true, dataDir });
    await given.stop();
    expect(statSync(dataDir).isDirectory()).toBe(true);
  });
});
