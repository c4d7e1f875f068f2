import { KnownContentType, SecretClient } from '@azure/keyvault-secrets';
import { KeyVaultEmulator } from './index';
import { emulatorSecretClient, rawRequest, restError, RestErrorLike } from './testing';

const API = 'api-version=7.6';

describe('Key Vault emulator: secrets API through the official SecretClient', () => {
  let emu: KeyVaultEmulator;
  let client: SecretClient;

  beforeAll(async () => {
    emu = await KeyVaultEmulator.start({ quiet: true });
    client = emulatorSecretClient(emu, { maxRetries: 0 });
  });
  afterAll(() => emu.stop());

  it('exposes an https vault URL without trailing slash and the CA under dataDir', () => {
    expect(emu.vaultUrl).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    expect(emu.port).toBe(Number(new URL(emu.vaultUrl).port));
    expect(emu.caCertPath).toBe(`${emu.dataDir}/ca.pem`);
    expect(emu.caCertPem).toContain('BEGIN CERTIFICATE');
  });

  it('answers the first unauthenticated request with the bearer challenge before validating anything', async () => {
    const res = await rawRequest(emu, 'PUT', '/secrets/not_a_valid_name?api-version=0.1', { token: null });
    expect(res.status).toBe(401);
    expect(res.headers['www-authenticate']).toBe(
      'Bearer authorization="https://login.microsoftonline.com/00000000-0000-4000-8000-00000000e001", resource="https://vault.azure.net"',
    );
    // the service's wording since early 2026 (recordings of 2026-03, service 1.9.3070.1; "Bearer or PoP token." before)
    expect(res.json.error).toEqual({ code: 'Unauthorized', message: 'AKV10000: Request is missing a Bearer, PoP, or MTLS_POP token.' });
  });

  it('sets and gets a secret with tags, contentType and attributes in the real shapes', async () => {
    const notBefore = new Date('2030-01-01T00:00:00Z');
    const expiresOn = new Date('2020-01-01T00:00:00Z'); // already expired: Azure still serves it
    const set = await client.setSecret('Api-Key-1', 's3cr3t', { tags: { tenant: 't1' }, contentType: 'text/plain', notBefore, expiresOn });
    expect(set.value).toBe('s3cr3t');
    expect(set.properties.version).toMatch(/^[0-9a-f]{32}$/);
    expect(set.properties.id).toBe(`${emu.vaultUrl}/secrets/Api-Key-1/${set.properties.version}`);
    expect(set.properties.vaultUrl).toBe(emu.vaultUrl);
    expect(set.properties.tags).toEqual({ tenant: 't1' });
    expect(set.properties.contentType).toBe('text/plain');
    expect(set.properties.enabled).toBe(true);
    expect(set.properties.recoveryLevel).toBe('Recoverable+Purgeable');
    expect(set.properties.recoverableDays).toBe(90);
    expect(set.properties.createdOn).toBeInstanceOf(Date);

    // exp/nbf are informational only
    const got = await client.getSecret('Api-Key-1');
    expect(got.value).toBe('s3cr3t');
    expect(got.properties.expiresOn).toEqual(expiresOn);
    expect(got.properties.notBefore).toEqual(notBefore);

    // raw shape: unix seconds, attributes object
    const raw = await rawRequest(emu, 'GET', `/secrets/api-key-1/?${API}`);
    expect(raw.status).toBe(200);
    expect(raw.json).toEqual({
      value: 's3cr3t',
      contentType: 'text/plain',
      id: set.properties.id,
      attributes: {
        enabled: true,
        nbf: 1893456000,
        exp: 1577836800,
        created: expect.any(Number),
        updated: expect.any(Number),
        recoveryLevel: 'Recoverable+Purgeable',
        recoverableDays: 90,
      },
      tags: { tenant: 't1' },
    });
    // get latest without trailing slash too
    expect((await rawRequest(emu, 'GET', `/secrets/API-KEY-1?${API}`)).json.value).toBe('s3cr3t');
  });

  it('treats names case-insensitively and keeps the first-created casing', async () => {
    await client.setSecret('MixedCase', 'one');
    const second = await client.setSecret('mixedcase', 'two');
    expect(second.name).toBe('MixedCase');
    expect((await client.getSecret('MIXEDCASE')).value).toBe('two');
  });

  it('creates versions, gets a specific version and lists versions (without values)', async () => {
    const v1 = await client.setSecret('versioned', 'v1', { tags: { n: '1' } });
    const v2 = await client.setSecret('versioned', 'v2');
    expect(v1.properties.version).not.toBe(v2.properties.version);
    expect((await client.getSecret('versioned', { version: v1.properties.version })).value).toBe('v1');
    expect((await client.getSecret('versioned')).value).toBe('v2');
    // tags belong to a version
    expect((await client.getSecret('versioned')).properties.tags).toBeUndefined();

    const versions = [];
    for await (const p of client.listPropertiesOfSecretVersions('versioned')) versions.push(p);
    expect(versions.map((p) => p.version).sort()).toEqual([v1.properties.version, v2.properties.version].sort());
    const raw = await rawRequest(emu, 'GET', `/secrets/versioned/versions?${API}`);
    expect(raw.json.value.every((i: any) => i.value === undefined && /\/secrets\/versioned\/[0-9a-f]{32}$/.test(i.id))).toBe(true);
  });

  it('returns an empty list for the versions of an unknown name', async () => {
    const versions = [];
    for await (const p of client.listPropertiesOfSecretVersions('never-existed')) versions.push(p);
    expect(versions).toEqual([]);
    const raw = await rawRequest(emu, 'GET', `/secrets/never-existed/versions?${API}`);
    expect(raw.status).toBe(200);
    expect(raw.json).toEqual({ value: [], nextLink: null });
  });

  it('updates properties of a version (PATCH) without changing the value', async () => {
    const s = await client.setSecret('to-update', 'keep-me');
    const updated = await client.updateSecretProperties('to-update', s.properties.version!, {
      contentType: 'application/json',
      tags: { rotated: 'yes' },
      enabled: true,
      expiresOn: new Date('2031-05-05T00:00:00Z'),
    });
    expect(updated.tags).toEqual({ rotated: 'yes' });
    expect(updated.contentType).toBe('application/json');
    expect(updated.expiresOn).toEqual(new Date('2031-05-05T00:00:00Z'));
    const got = await client.getSecret('to-update');
    expect(got.value).toBe('keep-me');
    expect(got.properties.tags).toEqual({ rotated: 'yes' });
    // PATCH response carries no value
    const raw = await rawRequest(emu, 'PATCH', `/secrets/to-update/${s.properties.version}?${API}`, { body: { tags: { a: 'b' } } });
    expect(raw.status).toBe(200);
    expect(raw.json.value).toBeUndefined();
    expect(raw.json.tags).toEqual({ a: 'b' });
    expect(raw.json.contentType).toBe('application/json');
  });

  it('keeps an empty tag value, clears the tags with an empty tags object, and takes names that start with a digit', async () => {
    // Azure PowerShell's live data-plane tests (src/KeyVault/KeyVault.Test/Scripts/VaultSecretTests.ps1) set a tag whose
    // value is "" and read it back, then clear the tags with @{} (sent as "tags": {}); azure-sdk-for-net's recorded
    // sessions set secrets under all-digit names (SessionRecords/SecretClientLiveTests/SetSecret.json: "310736355").
    const set = await client.setSecret('310736355', 'v', { tags: { kept: '', other: 'x' } });
    expect(set.properties.tags).toEqual({ kept: '', other: 'x' });
    expect((await client.getSecret('310736355')).properties.tags).toEqual({ kept: '', other: 'x' });
    await client.updateSecretProperties('310736355', set.properties.version!, { tags: {} });
    expect(Object.keys((await client.getSecret('310736355')).properties.tags ?? {})).toEqual([]);
    expect((await client.setSecret('1secret', 'w')).name).toBe('1secret');
  });

  it('refuses to return the value of a disabled secret with 403 Forbidden, but lists it', async () => {
    const s = await client.setSecret('disabled-one', 'hidden', { enabled: false });
    expect(s.properties.enabled).toBe(false);
    const err = await restError(client.getSecret('disabled-one'));
    expect(err.statusCode).toBe(403);
    expect(err.code).toBe('Forbidden');
    expect(err.message).toBe('Operation get is not allowed on a disabled secret.');
    expect(err.details.error.innerError.code).toBe('SecretDisabled');
    const names = [];
    for await (const p of client.listPropertiesOfSecrets()) names.push(p.name);
    expect(names).toContain('disabled-one');
    // enabling it again makes it readable
    await client.updateSecretProperties('disabled-one', s.properties.version!, { enabled: true });
    expect((await client.getSecret('disabled-one')).value).toBe('hidden');
  });

  // Recorded from the service (azure-sdk-assets, js keyvault-secrets "outContentType and previousVersion (2025-07-01 API
  // features)"): a secret that no certificate backs is never converted. The recorded secret had no contentType: that one
  // whose contentType says PFX answers the same is ours (unverified, see the README).
  it('answers outContentType on a secret no certificate backs 400 BadParameter, as the service does (api-version 2025-07-01)', async () => {
    await client.setSecret('no-cert', 'plain');
    await client.setSecret('pfx-looking', 'plain', { contentType: KnownContentType.PFX });
    for (const [name, target, label] of [
      ['no-cert', KnownContentType.PEM, 'PEM'],
      ['pfx-looking', KnownContentType.PEM, 'PEM'],
      ['no-cert', KnownContentType.PFX, 'PFX'],
    ]) {
      const err = await restError(client.getSecret(name, { outContentType: target }));
      expect([name, err.statusCode, err.code, err.message]).toEqual([
        name,
        400,
        'BadParameter',
        `The 'Unsupported' to '${label}' transformation is not supported. Only PFX to PEM transformation is supported.`,
      ]);
    }
    const version = (await client.getSecret('no-cert')).properties.version!;
    const raw = await rawRequest(emu, 'GET', `/secrets/no-cert/${version}?api-version=2025-07-01&outContentType=application%2Fx-pem-file`);
    expect([raw.status, raw.json.error.code]).toEqual([400, 'BadParameter']);
    // without the parameter the value is served as stored; 7.x has no such parameter (the emulator ignores it there)
    expect((await client.getSecret('pfx-looking')).value).toBe('plain');
    const v76 = emulatorSecretClient(emu, { serviceVersion: '7.6', maxRetries: 0 });
    expect((await v76.getSecret('no-cert', { outContentType: KnownContentType.PEM })).value).toBe('plain');
  });

  it('404 SecretNotFound for an unknown name or version', async () => {
    const err = await restError(client.getSecret('nope'));
    expect(err.statusCode).toBe(404);
    expect(err.code).toBe('SecretNotFound');
    expect(err.message).toMatch(/^A secret with \(name\/id\) nope was not found in this key vault/);
    await client.setSecret('has-versions', 'x');
    const err2 = await restError(client.getSecret('has-versions', { version: '0123456789abcdef0123456789abcdef' }));
    expect(err2.statusCode).toBe(404);
    expect(err2.code).toBe('SecretNotFound');
  });

  it('400 BadParameter for invalid names', async () => {
    for (const bad of ['under_score', 'a'.repeat(128), 'dot.name', 'spa ce']) {
      const err = await restError(client.setSecret(bad, 'x'));
      expect(err.statusCode).toBe(400);
      expect(err.code).toBe('BadParameter');
    }
    await expect(client.setSecret('a'.repeat(127), 'x')).resolves.toBeDefined();
  });

  it('400 BadParameter for a value over 25 KB, more than 15 tags, long tags and a long contentType', async () => {
    await expect(client.setSecret('big-ok', 'x'.repeat(25 * 1024))).resolves.toBeDefined();
    // The service's answer, as az quotes it: "(BadParameter) Secret is beyond the maximum permitted length of 25600
    // characters. Inner error: { "code": "SecretTooLarge" }" (message also in Azure/azure-cli issue #5639).
    const tooBig = await restError(client.setSecret('big', 'x'.repeat(25 * 1024 + 1)));
    expect([tooBig.statusCode, tooBig.code, tooBig.details.error.innerError?.code]).toEqual([400, 'BadParameter', 'SecretTooLarge']);
    expect(tooBig.message).toBe('Secret is beyond the maximum permitted length of 25600 characters.');

    const tags16 = Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`t${i}`, 'v']));
    // The service's generic answer to an invalid body property, naming none (double space, CRLF): reported for 16 tags on
    // a secret (hashicorp/terraform-provider-azurerm #16780, PR #16947) and on a certificate (aztfmod/terraform-azurerm-caf
    // #813, #821); the raw body as azure-sdk-for-java users quote it.
    const manyTags = await restError(client.setSecret('tags', 'x', { tags: tags16 }));
    expect([manyTags.statusCode, manyTags.code, manyTags.message]).toEqual([400, 'BadParameter', 'Property  has invalid value\r\n']);
    const manyRaw = await rawRequest(emu, 'PUT', `/secrets/tags?${API}`, { body: { value: 'x', tags: tags16 } });
    expect([manyRaw.status, manyRaw.json]).toEqual([400, { error: { code: 'BadParameter', message: 'Property  has invalid value\r\n' } }]);
    // Azure (about-secrets, "Secret tags"): "up to 15 tags, each of which can have a 512 character name and a 512
    // character value" — keys' page says 256 (keys-api int-spec).
    const tags15 = Object.fromEntries(Array.from({ length: 15 }, (_, i) => [`t${i}`.padEnd(512, 'k'), 'v'.repeat(512)]));
    const set15 = await client.setSecret('tags', 'x', { tags: tags15 });
    expect(set15.properties.tags).toEqual(tags15);
    const longTag = await restError(client.setSecret('tags', 'x', { tags: { k: 'v'.repeat(513) } }));
    expect([longTag.statusCode, longTag.code]).toEqual([400, 'BadParameter']);
    const longName = await restError(client.setSecret('tags', 'x', { tags: { ['k'.repeat(513)]: 'v' } }));
    expect([longName.statusCode, longName.code]).toEqual([400, 'BadParameter']);
    const longUpdate = await restError(client.updateSecretProperties('tags', (await client.getSecret('tags')).properties.version!, { tags: { k: 'v'.repeat(513) } }));
    expect([longUpdate.statusCode, longUpdate.code]).toEqual([400, 'BadParameter']);
    const manyUpdate = await restError(client.updateSecretProperties('tags', (await client.getSecret('tags')).properties.version!, { tags: tags16 }));
    expect([manyUpdate.statusCode, manyUpdate.code, manyUpdate.message]).toEqual([400, 'BadParameter', 'Property  has invalid value\r\n']);
    expect(Object.keys((await client.getSecret('tags')).properties.tags ?? {})).toHaveLength(15);

    await expect(client.setSecret('ct', 'x', { contentType: 'c'.repeat(255) })).resolves.toBeDefined();
    const longCt = await restError(client.setSecret('ct', 'x', { contentType: 'c'.repeat(256) }));
    expect([longCt.statusCode, longCt.code]).toEqual([400, 'BadParameter']);
    // failed writes changed nothing
    expect((await client.getSecret('ct')).properties.contentType).toBe('c'.repeat(255));
    expect(await client.getSecret('big').catch((e: RestErrorLike) => e.statusCode)).toBe(404);
  });

  it('accepts api-versions 2016-10-01, 7.0 through 2026-04-01 and rejects missing or unknown ones with 400', async () => {
    await client.setSecret('apiv', 'x');
    // 2016-10-01 too: the oldest data-plane version the official Python SDK still speaks (azure-keyvault-secrets ApiVersion.V2016_10_01)
    for (const v of ['2016-10-01', '7.0', '7.2', '7.4', '7.5', '7.6', '2025-07-01', '2026-04-01']) {
      const res = await rawRequest(emu, 'GET', `/secrets/apiv?api%2Dversion=${v}`);
      expect([v, res.status]).toEqual([v, 200]);
    }
    const missing = await rawRequest(emu, 'GET', '/secrets/apiv');
    expect(missing.status).toBe(400);
    expect(missing.json.error.code).toBe('BadParameter');
    const unknown = await rawRequest(emu, 'GET', '/secrets/apiv?api-version=6.1');
    expect(unknown.status).toBe(400);
    expect(unknown.json.error.message).toMatch(/The specified version \(6\.1\) is not recognized/);
    // an older client version works end to end
    const old = emulatorSecretClient(emu, { serviceVersion: '7.2', maxRetries: 0 });
    expect((await old.getSecret('apiv')).value).toBe('x');
  });

  it('answers recoverableDays from api-version 7.1 on only; 2016-10-01 and 7.0 carry recoveryLevel alone, as the service does', async () => {
    // Recorded: Azure/azure-sdk-assets python/sdk/keyvault/azure-keyvault-secrets/tests/recordings/
    // test_samples_secrets.pyTestExamplesKeyVaulttest_example_secrets_recover[2016-10-01|7.0|7.1].json
    const attributesAt = async (v: string) => {
      const set = await rawRequest(emu, 'PUT', `/secrets/recov-days?api-version=${v}`, { body: { value: 'x' } });
      const got = await rawRequest(emu, 'GET', `/secrets/recov-days?api-version=${v}`);
      const listed = await rawRequest(emu, 'GET', `/secrets/recov-days/versions?api-version=${v}`);
      return [set.json.attributes, got.json.attributes, listed.json.value[0].attributes];
    };
    for (const v of ['2016-10-01', '7.0', '7.0-preview']) {
      for (const a of await attributesAt(v)) {
        expect([v, a.recoveryLevel, 'recoverableDays' in a]).toEqual([v, 'Recoverable+Purgeable', false]);
      }
    }
    for (const v of ['7.1', '7.6', '2025-07-01']) {
      for (const a of await attributesAt(v)) expect([v, a.recoveryLevel, a.recoverableDays]).toEqual([v, 'Recoverable+Purgeable', 90]);
    }
  });

  it('rejects malformed or incomplete JSON bodies with 400 BadParameter', async () => {
    const res = await rawRequest(emu, 'PUT', `/secrets/json?${API}`, { body: '{not json' });
    expect(res.status).toBe(400);
    expect(res.json.error.code).toBe('BadParameter');
    const noValue = await rawRequest(emu, 'PUT', `/secrets/json?${API}`, { body: { contentType: 'x' } });
    expect(noValue.status).toBe(400);
  });

  it('serves several vaults at once on separate ports with separate data', async () => {
    const other = await KeyVaultEmulator.start({ quiet: true });
    try {
      expect(other.port).not.toBe(emu.port);
      const otherClient = emulatorSecretClient(other, { maxRetries: 0 });
      await otherClient.setSecret('only-here', 'B');
      await client.setSecret('only-here', 'A');
      expect((await otherClient.getSecret('only-here')).value).toBe('B');
      expect((await client.getSecret('only-here')).value).toBe('A');
    } finally {
      await other.stop();
    }
  });
});
