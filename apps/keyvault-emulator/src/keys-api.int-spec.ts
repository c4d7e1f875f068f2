import { CryptographyClient, KeyClient, KeyVaultKey } from '@azure/keyvault-keys';
import { constants, createHash, createPublicKey, JsonWebKey as NodeJwk, KeyObject, publicEncrypt, randomBytes, verify as nodeVerify } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KeyVaultEmulator } from './index';
import { emulatorCryptographyClient, emulatorKeyClient, emulatorSecretClient, rawRequest, restError } from './testing';

const API = 'api-version=2025-07-01';
const b64u = (b: Uint8Array) => Buffer.from(b).toString('base64url');

/** The public key node:crypto builds from the JWK the vault returned (its own name for P-256K). */
function nodePublicKey(key: KeyVaultKey): KeyObject {
  const k = key.key!;
  const jwk: NodeJwk = k.n
    ? { kty: 'RSA', n: b64u(k.n), e: b64u(k.e!) }
    : { kty: 'EC', crv: k.crv === 'P-256K' ? 'secp256k1' : k.crv, x: b64u(k.x!), y: b64u(k.y!) };
  return createPublicKey({ key: jwk, format: 'jwk' });
}

const SIGNING = [
  { alg: 'RS256', hash: 'sha256', key: 'rsa' },
  { alg: 'RS384', hash: 'sha384', key: 'rsa' },
  { alg: 'RS512', hash: 'sha512', key: 'rsa' },
  { alg: 'PS256', hash: 'sha256', key: 'rsa' },
  { alg: 'PS384', hash: 'sha384', key: 'rsa' },
  { alg: 'PS512', hash: 'sha512', key: 'rsa' },
  { alg: 'ES256', hash: 'sha256', key: 'P-256' },
  { alg: 'ES384', hash: 'sha384', key: 'P-384' },
  { alg: 'ES512', hash: 'sha512', key: 'P-521' },
  { alg: 'ES256K', hash: 'sha256', key: 'P-256K' },
] as const;

/** node:crypto's verification of a signature over `message`, with the padding/encoding of the JWA algorithm. */
function nodeVerifies(alg: string, hash: string, key: KeyObject, message: Buffer, signature: Uint8Array): boolean {
  if (alg.startsWith('PS')) {
    const saltLength = createHash(hash).digest().length;
    return nodeVerify(hash, message, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength }, signature);
  }
  if (alg.startsWith('ES')) return nodeVerify(hash, message, { key, dsaEncoding: 'ieee-p1363' }, signature);
  return nodeVerify(hash, message, key, signature);
}

describe('Key Vault emulator: keys API through the official KeyClient and CryptographyClient', () => {
  let emu: KeyVaultEmulator;
  let keys: KeyClient;
  const signers: Record<string, KeyVaultKey> = {};

  beforeAll(async () => {
    emu = await KeyVaultEmulator.start({ quiet: true, throttle: false, operationDelayMs: 0 });
    keys = emulatorKeyClient(emu, { maxRetries: 0 });
    signers.rsa = await keys.createRsaKey('signer-rsa');
    for (const crv of ['P-256', 'P-384', 'P-521', 'P-256K'] as const) signers[crv] = await keys.createEcKey(`signer-${crv}`, { curve: crv });
  });
  afterAll(() => emu.stop());

  it('answers an unauthenticated keys request with the bearer challenge', async () => {
    const res = await rawRequest(emu, 'POST', `/keys/any/create?${API}`, { token: null });
    expect(res.status).toBe(401);
    expect(res.headers['www-authenticate']).toMatch(/^Bearer authorization="https:\/\/login\.microsoftonline\.com\/.+", resource="https:\/\/vault\.azure\.net"$/);
  });

  it('creates RSA keys of 2048, 3072 and 4096 bits (2048 by default) with public parts only', async () => {
    for (const [size, kty] of [
      [undefined, 'RSA'],
      [3072, 'RSA'],
      [4096, 'RSA-HSM'],
    ] as const) {
      const name = `rsa-${size ?? 'default'}`;
      const key = await keys.createKey(name, kty, size ? { keySize: size } : {});
      expect(key.keyType).toBe(kty);
      expect(key.key!.n!.length * 8).toBe(size ?? 2048);
      expect(b64u(key.key!.e!)).toBe('AQAB');
      expect(key.id).toBe(`${emu.vaultUrl}/keys/${name}/${key.properties.version}`);
      expect(key.properties.version).toMatch(/^[0-9a-f]{32}$/);
      expect(key.keyOperations).toEqual(['encrypt', 'decrypt', 'sign', 'verify', 'wrapKey', 'unwrapKey']);
      for (const priv of ['d', 'p', 'q', 'dp', 'dq', 'qi'] as const) expect(key.key![priv]).toBeUndefined();
    }
    const raw = await rawRequest(emu, 'GET', `/keys/rsa-3072?${API}`);
    expect(Object.keys(raw.json.key).sort()).toEqual(['e', 'key_ops', 'kid', 'kty', 'n']);
    expect(raw.json.attributes).toEqual({
      enabled: true,
      created: expect.any(Number),
      updated: expect.any(Number),
      recoveryLevel: 'Recoverable+Purgeable',
      recoverableDays: 90,
      exportable: false,
      // the service's platform label: "0" for a software key (recorded: azure-sdk-assets js keyvault-keys, 2026-04)
      hsmPlatform: '0',
    });
    // an HSM key is labelled with the current HSM platform, "2" (az keyvault key create --kty RSA-HSM outputs, 2026)
    expect((await keys.getKey('rsa-4096')).properties.hsmPlatform).toBe('2');
  });

  it('creates EC keys on P-256 (default), P-384, P-521 and P-256K with sign/verify as default key_ops', async () => {
    const sizes = { 'P-256': 32, 'P-384': 48, 'P-521': 66, 'P-256K': 32 };
    for (const [crv, key] of Object.entries(signers).filter(([k]) => k !== 'rsa')) {
      expect([key.keyType, key.key!.crv, key.key!.x!.length, key.key!.y!.length]).toEqual(['EC', crv, sizes[crv as 'P-256'], sizes[crv as 'P-256']]);
      expect(key.keyOperations).toEqual(['sign', 'verify']);
      expect(key.key!.d).toBeUndefined();
    }
    const byDefault = await keys.createKey('ec-default', 'EC-HSM');
    expect([byDefault.keyType, byDefault.key!.crv]).toEqual(['EC-HSM', 'P-256']);
    const raw = await rawRequest(emu, 'GET', `/keys/ec-default/?${API}`);
    expect(Object.keys(raw.json.key).sort()).toEqual(['crv', 'key_ops', 'kid', 'kty', 'x', 'y']);
    // a name may start with a digit, or be all digits (recorded: azure-sdk-for-net Azure.Security.KeyVault.Keys
    // SessionRecords/KeyClientLiveTests/CreateKey.json creates "62898117")
    expect((await keys.createEcKey('62898117')).name).toBe('62898117');
  });

  it('answers recoverableDays from api-version 7.1 on only; 2016-10-01 and 7.0 carry recoveryLevel alone, as the service does', async () => {
    // Recorded: Azure/azure-sdk-for-python sdk/keyvault/azure-keyvault-keys/tests/recordings/
    // test_crypto_client.pyTestCryptoClienttest_ec_key_id[2016-10-01_vault|7.0_vault].json (create and get of an EC key)
    for (const v of ['2016-10-01', '7.0']) {
      const created = await rawRequest(emu, 'POST', `/keys/recov-days/create?api-version=${v}`, { body: { kty: 'EC' } });
      const got = await rawRequest(emu, 'GET', `/keys/recov-days?api-version=${v}`);
      const listed = await rawRequest(emu, 'GET', `/keys?api-version=${v}`);
      const item = listed.json.value.find((k: { kid: string }) => k.kid.endsWith('/keys/recov-days'));
      for (const a of [created.json.attributes, got.json.attributes, item.attributes]) {
        expect([v, a.recoveryLevel, 'recoverableDays' in a]).toEqual([v, 'Recoverable+Purgeable', false]);
      }
    }
    const current = await rawRequest(emu, 'GET', `/keys/recov-days?api-version=7.1`);
    expect([current.json.attributes.recoveryLevel, current.json.attributes.recoverableDays]).toEqual(['Recoverable+Purgeable', 90]);
  });

  it('gets the latest key at /keys/{name} and /keys/{name}/, and any version by id', async () => {
    const v1 = await keys.createRsaKey('Versioned', { tags: { purpose: 'test' }, keyOps: ['sign', 'verify'], notBefore: new Date('2020-01-01T00:00:00Z') });
    const v2 = await keys.createEcKey('versioned');
    expect((await keys.getKey('VERSIONED')).id).toBe(v2.id);
    for (const path of ['/keys/versioned', '/keys/versioned/']) {
      expect((await rawRequest(emu, 'GET', `${path}?${API}`)).json.key.kid).toBe(v2.id);
    }
    const old = await keys.getKey('versioned', { version: v1.properties.version });
    expect(old.id).toBe(v1.id);
    expect(old.keyType).toBe('RSA');
    expect(old.properties.tags).toEqual({ purpose: 'test' });
    expect(old.keyOperations).toEqual(['sign', 'verify']);
    expect(old.properties.notBefore).toEqual(new Date('2020-01-01T00:00:00Z'));
  });

  describe('sign and verify', () => {
    for (const { alg, hash, key: which } of SIGNING) {
      it(`${alg}: the vault signs a digest, node:crypto verifies it from the public JWK, and the vault verifies node's signatures`, async () => {
        const key = signers[which];
        const crypto = emulatorCryptographyClient(emu, key, { maxRetries: 0 });
        const message = randomBytes(100);
        const digest = createHash(hash).update(message).digest();
        const signed = await crypto.sign(alg, digest);
        expect(signed.keyID).toBe(key.id);
        expect(nodeVerifies(alg, hash, nodePublicKey(key), message, signed.result)).toBe(true);

        // verify(digest) is always remote in the SDK: the vault's own verification
        expect((await crypto.verify(alg, digest, signed.result)).result).toBe(true);
        const tampered = Buffer.from(signed.result);
        tampered[tampered.length - 3] ^= 0x40;
        expect((await crypto.verify(alg, digest, tampered)).result).toBe(false);
        const otherDigest = createHash(hash).update('other').digest();
        expect((await crypto.verify(alg, otherDigest, signed.result)).result).toBe(false);
      });
    }

    // (RS* only: the SDK 4.10 verifies PS* locally with PKCS#1 v1.5 padding, which fails against Azure too)
    it('local verification (the SDK, from the public key) and remote verification agree', async () => {
      const crypto = emulatorCryptographyClient(emu, signers.rsa.id!, { maxRetries: 0 });
      for (const alg of ['RS256', 'RS384'] as const) {
        const data = randomBytes(64);
        const { result } = await crypto.signData(alg, data);
        emu.resetStats();
        const local = await crypto.verifyData(alg, data, result);
        expect(emu.stats().byOperation.verify).toBeUndefined(); // done in process by the SDK
        const digest = createHash(`sha${alg.slice(2)}`).update(data).digest();
        const remote = await crypto.verify(alg, digest, result);
        expect(emu.stats().byOperationAndStatus['verify:200']).toBe(1);
        expect([local.result, remote.result]).toEqual([true, true]);
        const bad = Buffer.from(result);
        bad[0] ^= 1;
        expect([(await crypto.verifyData(alg, data, bad)).result, (await crypto.verify(alg, digest, bad)).result]).toEqual([false, false]);
      }
    });

    it('a CryptographyClient built from a versionless key id uses the current version', async () => {
      const crypto = emulatorCryptographyClient(emu, `${emu.vaultUrl}/keys/signer-P-384`, { maxRetries: 0 });
      const digest = createHash('sha384').update('current').digest();
      const { result, keyID } = await crypto.sign('ES384', digest);
      expect(keyID).toBe(signers['P-384'].id);
      expect((await crypto.verify('ES384', digest, result)).result).toBe(true);
    });

    it('checks the digest length and that the algorithm fits the key (400 BadParameter)', async () => {
      const rsa = emulatorCryptographyClient(emu, signers.rsa, { maxRetries: 0 });
      const short = await restError(rsa.sign('RS256', randomBytes(20)));
      expect([short.statusCode, short.code]).toEqual([400, 'BadParameter']);
      expect((await restError(rsa.sign('RS512', randomBytes(32)))).statusCode).toBe(400);
      expect((await restError(rsa.sign('ES256', randomBytes(32)))).statusCode).toBe(400);
      const ec = emulatorCryptographyClient(emu, signers['P-256'], { maxRetries: 0 });
      expect((await restError(ec.sign('ES384', randomBytes(48)))).statusCode).toBe(400);
      const unknown = await rawRequest(emu, 'POST', `/keys/signer-rsa//sign?${API}`, { body: { alg: 'HS256', value: b64u(randomBytes(32)) } });
      expect([unknown.status, unknown.json.error.code]).toEqual([400, 'BadParameter']);
      const notBase64 = await rawRequest(emu, 'POST', `/keys/signer-rsa//sign?${API}`, { body: { alg: 'RS256', value: 'a b' } });
      expect(notBase64.status).toBe(400);
    });
  });

  describe('encrypt, decrypt, wrap and unwrap', () => {
    let rsa: KeyVaultKey;
    beforeAll(async () => {
      rsa = await keys.createRsaKey('cipher-rsa', { keySize: 3072 });
    });

    for (const alg of ['RSA-OAEP', 'RSA-OAEP-256', 'RSA1_5'] as const) {
      it(`${alg}: round trips through the REST endpoints, and the vault decrypts what node:crypto encrypted with the public JWK`, async () => {
        const crypto = emulatorCryptographyClient(emu, rsa, { maxRetries: 0 });
        const plaintext = randomBytes(48);
        // the REST encrypt endpoint (the SDK encrypts RSA-OAEP and RSA1_5 locally when it has the key)
        const enc = await rawRequest(emu, 'POST', `/keys/cipher-rsa/${rsa.properties.version}/encrypt?${API}`, { body: { alg, value: b64u(plaintext) } });
        expect(enc.status).toBe(200);
        expect(enc.json.kid).toBe(rsa.id);
        const ciphertext = Buffer.from(enc.json.value, 'base64url');
        expect(ciphertext).toHaveLength(384);
        const decrypted = await crypto.decrypt({ algorithm: alg, ciphertext });
        expect(Buffer.from(decrypted.result).equals(plaintext)).toBe(true);

        // the SDK's own encrypt, whichever side does it
        const sdkEncrypted = await crypto.encrypt({ algorithm: alg, plaintext });
        expect(Buffer.from((await crypto.decrypt({ algorithm: alg, ciphertext: sdkEncrypted.result })).result).equals(plaintext)).toBe(true);

        // interop: node:crypto encrypts with the public JWK, the vault decrypts
        const padding = alg === 'RSA1_5' ? constants.RSA_PKCS1_PADDING : constants.RSA_PKCS1_OAEP_PADDING;
        const oaepHash = alg === 'RSA-OAEP-256' ? 'sha256' : 'sha1';
        const byNode = publicEncrypt({ key: nodePublicKey(rsa), padding, oaepHash }, plaintext);
        expect(Buffer.from((await crypto.decrypt({ algorithm: alg, ciphertext: byNode })).result).equals(plaintext)).toBe(true);

        // wrapkey / unwrapkey: the REST wrap, then the SDK's unwrap (always remote)
        const dataKey = randomBytes(32);
        const wrapped = await rawRequest(emu, 'POST', `/keys/cipher-rsa//wrapkey?${API}`, { body: { alg, value: b64u(dataKey) } });
        expect([wrapped.status, wrapped.json.kid]).toEqual([200, rsa.id]);
        const unwrapped = await crypto.unwrapKey(alg, Buffer.from(wrapped.json.value, 'base64url'));
        expect(Buffer.from(unwrapped.result).equals(dataKey)).toBe(true);
        const sdkWrapped = await crypto.wrapKey(alg, dataKey);
        expect(Buffer.from((await crypto.unwrapKey(alg, sdkWrapped.result)).result).equals(dataKey)).toBe(true);
      });
    }

    it('RSA-OAEP-256 encryption goes to the vault through the SDK too', async () => {
      const crypto = emulatorCryptographyClient(emu, rsa.id!, { maxRetries: 0 });
      emu.resetStats();
      const { result } = await crypto.encrypt({ algorithm: 'RSA-OAEP-256', plaintext: Buffer.from('remote please') });
      expect(emu.stats().byOperationAndStatus['encrypt:200']).toBe(1);
      expect(Buffer.from((await crypto.decrypt({ algorithm: 'RSA-OAEP-256', ciphertext: result })).result).toString()).toBe('remote please');
    });

    it('refuses a ciphertext that is not valid for the key, a plaintext that is too long, and EC keys (400)', async () => {
      const crypto = emulatorCryptographyClient(emu, rsa, { maxRetries: 0 });
      const bad = await restError(crypto.decrypt({ algorithm: 'RSA-OAEP', ciphertext: randomBytes(384) }));
      expect([bad.statusCode, bad.code]).toEqual([400, 'BadParameter']);
      expect((await restError(crypto.decrypt({ algorithm: 'RSA-OAEP', ciphertext: randomBytes(10) }))).statusCode).toBe(400);
      const long = await rawRequest(emu, 'POST', `/keys/cipher-rsa//encrypt?${API}`, { body: { alg: 'RSA-OAEP', value: b64u(randomBytes(400)) } });
      expect([long.status, long.json.error.code]).toEqual([400, 'BadParameter']);
      const ec = await rawRequest(emu, 'POST', `/keys/signer-P-256//encrypt?${API}`, { body: { alg: 'RSA-OAEP', value: 'AAAA' } });
      expect(ec.status).toBeGreaterThanOrEqual(400);
    });
  });

  describe("Azure's errors", () => {
    it('KeyNotFound (404) for an unknown key or version, with the service message', async () => {
      const err = await restError(keys.getKey('no-such-key'));
      expect([err.statusCode, err.code]).toEqual([404, 'KeyNotFound']);
      expect(err.message).toMatch(/^A key with \(name\/id\) no-such-key was not found in this key vault\./);
      const version = await restError(keys.getKey('signer-rsa', { version: '0123456789abcdef0123456789abcdef' }));
      expect([version.statusCode, version.code]).toEqual([404, 'KeyNotFound']);
      const sign = await rawRequest(emu, 'POST', `/keys/no-such-key//sign?${API}`, { body: { alg: 'RS256', value: b64u(randomBytes(32)) } });
      expect([sign.status, sign.json.error.code]).toEqual([404, 'KeyNotFound']);
    });

    it('BadParameter (400) for a bad kty, key size, curve, key operation or name', async () => {
      const cases: Array<[string, Record<string, unknown>]> = [
        ['k', {}],
        ['k', { kty: 'oct' }],
        ['k', { kty: 'RSA', key_size: 1024 }],
        ['k', { kty: 'EC', crv: 'P-192' }],
        ['k', { kty: 'RSA', key_ops: ['launch'] }],
        ['k', { kty: 'RSA', tags: { a: 1 } }],
        // a key's tags: 256-character names and values (about-keys-details, "Key tags"; secrets allow 512)
        ['k', { kty: 'EC', tags: { a: 'v'.repeat(257) } }],
        ['k', { kty: 'EC', tags: { ['t'.repeat(257)]: 'v' } }],
        ['bad_name', { kty: 'RSA' }],
      ];
      for (const [name, body] of cases) {
        const res = await rawRequest(emu, 'POST', `/keys/${name}/create?${API}`, { body });
        expect([JSON.stringify(body), res.status, res.json.error.code]).toEqual([JSON.stringify(body), 400, 'BadParameter']);
      }
      const sdk = await restError(keys.createKey('k', 'RSA', { keySize: 1024 }));
      expect(sdk.statusCode).toBe(400);
    });

    it("a key's 16th tag (create or update): 400 BadParameter with a message of ours, not the secrets' \"Property  has invalid value\"", async () => {
      // What the service answers for a key is unverified (README); the secrets' answer is reported for secrets and certificates only.
      const tags16 = Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`t${i}`, 'v']));
      const ours = { code: 'BadParameter', message: 'The number of tags (16) exceeds the maximum of 15.' };
      const created = await rawRequest(emu, 'POST', `/keys/tags16/create?${API}`, { body: { kty: 'EC', tags: tags16 } });
      expect([created.status, created.json]).toEqual([400, { error: ours }]);
      const key = await keys.createEcKey('tags16');
      const updated = await rawRequest(emu, 'PATCH', `/keys/tags16/${key.properties.version}?${API}`, { body: { tags: tags16 } });
      expect([updated.status, updated.json]).toEqual([400, { error: ours }]);
    });

    it('refuses an exportable key or a release policy with the service\'s AKV.SKR answers instead of creating a non-exportable key', async () => {
      // Recorded (Azure/azure-sdk-for-js sdk/keyvault/keyvault-keys/recordings/node/
      // keys_client__create_read_update_and_delete_operations_releasekey/, api-version 7.4-preview.1): exportable without a
      // policy, and a policy on a non-exportable key, each 400 BadParameter with these words.
      const policy = { encodedPolicy: Buffer.from(JSON.stringify({ anyOf: [], version: '1.0.0' })) };
      const noPolicy = await restError(keys.createRsaKey('skr-exportable', { hsm: true, exportable: true }));
      expect([noPolicy.statusCode, noPolicy.code, noPolicy.message]).toEqual([400, 'BadParameter', 'AKV.SKR.1004: Exportable keys must have release policy.']);
      const notExportable = await restError(keys.createRsaKey('skr-policy', { hsm: true, releasePolicy: policy }));
      expect([notExportable.statusCode, notExportable.code, notExportable.message]).toEqual([
        400,
        'BadParameter',
        'AKV.SKR.1005: Non-exportable keys must not have release policy.',
      ]);
      // No secure key release here: both answer as a vault without it does (the service's words, as azure-sdk-for-net's
      // PartiallyDeployedAttributeTests quote them), and so does the exportable attribute before api-version 7.3.
      const unsupported = "AKV.SKR.1001: The exportable attribute is only supported with premium vaults and API version >= '7.3-preview'.";
      const both = await restError(keys.createRsaKey('skr-both', { hsm: true, exportable: true, releasePolicy: policy }));
      expect([both.statusCode, both.code, both.message]).toEqual([400, 'BadParameter', unsupported]);
      const older = await restError(emulatorKeyClient(emu, { maxRetries: 0, serviceVersion: '7.2' }).createRsaKey('skr-7-2', { exportable: true }));
      expect([older.statusCode, older.code, older.message]).toEqual([400, 'BadParameter', unsupported]);
      for (const name of ['skr-exportable', 'skr-policy', 'skr-both', 'skr-7-2']) expect((await restError(keys.getKey(name))).statusCode).toBe(404);
      // exportable: false, as the SDK may send it, stays what it was: a non-exportable key
      const plain = await keys.createRsaKey('skr-false', { exportable: false });
      expect(plain.properties.exportable).toBe(false);
    });

    it('403 Forbidden for an operation the key_ops do not permit (KeyOperationForbidden)', async () => {
      const verifyOnly = await keys.createRsaKey('verify-only', { keyOps: ['verify'] });
      const res = await rawRequest(emu, 'POST', `/keys/verify-only/${verifyOnly.properties.version}/sign?${API}`, {
        body: { alg: 'RS256', value: b64u(randomBytes(32)) },
      });
      expect(res.status).toBe(403);
      expect(res.json.error).toEqual({ code: 'Forbidden', message: 'Operation sign is not permitted on this key.', innererror: { code: 'KeyOperationForbidden' } });
      // the SDK refuses before it calls, from the key_ops it fetched
      const crypto = emulatorCryptographyClient(emu, verifyOnly.id!, { maxRetries: 0 });
      await expect(crypto.sign('RS256', randomBytes(32))).rejects.toThrow(/Operation sign is not supported/);
      for (const op of ['decrypt', 'unwrapkey']) {
        const r = await rawRequest(emu, 'POST', `/keys/verify-only//${op}?${API}`, { body: { alg: 'RSA-OAEP', value: b64u(randomBytes(256)) } });
        expect([op, r.status, r.json.error.innererror.code]).toEqual([op, 403, 'KeyOperationForbidden']);
      }
    });

    it('403 for a disabled key (KeyDisabled) on every crypto operation; its public part stays readable', async () => {
      const disabled = await keys.createRsaKey('disabled-key', { enabled: false });
      expect(disabled.properties.enabled).toBe(false);
      expect((await keys.getKey('disabled-key')).properties.enabled).toBe(false);
      for (const [op, alg] of [
        ['sign', 'RS256'],
        ['encrypt', 'RSA-OAEP'],
        ['decrypt', 'RSA-OAEP'],
        ['wrapkey', 'RSA-OAEP'],
      ]) {
        const r = await rawRequest(emu, 'POST', `/keys/disabled-key//${op}?${API}`, { body: { alg, value: b64u(randomBytes(op === 'decrypt' ? 256 : 32)) } });
        expect([op, r.status, r.json.error.code, r.json.error.innererror.code]).toEqual([op, 403, 'Forbidden', 'KeyDisabled']);
      }
    });

    it('an expired or not-yet-valid key refuses encrypt, sign and wrapKey, but still decrypts, verifies and unwraps (as Azure does)', async () => {
      const now = Math.floor(Date.now() / 1000);
      for (const [name, attributes, inner] of [
        ['expired-key', { exp: now - 60 }, 'KeyExpired'],
        ['future-key', { nbf: now + 3600 }, 'KeyNotYetValid'],
      ] as const) {
        const created = await rawRequest(emu, 'POST', `/keys/${name}/create?${API}`, { body: { kty: 'RSA', attributes } });
        expect(created.status).toBe(200);
        for (const [op, alg] of [
          ['sign', 'RS256'],
          ['encrypt', 'RSA-OAEP'],
          ['wrapkey', 'RSA-OAEP'],
        ]) {
          const r = await rawRequest(emu, 'POST', `/keys/${name}//${op}?${API}`, { body: { alg, value: b64u(randomBytes(32)) } });
          expect([name, op, r.status, r.json.error.innererror.code]).toEqual([name, op, 403, inner]);
        }
        const pub = createPublicKey({ key: { kty: 'RSA', n: created.json.key.n, e: created.json.key.e }, format: 'jwk' });
        const ct = publicEncrypt({ key: pub, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha1' }, Buffer.from('still readable'));
        const dec = await rawRequest(emu, 'POST', `/keys/${name}//decrypt?${API}`, { body: { alg: 'RSA-OAEP', value: b64u(ct) } });
        expect([dec.status, Buffer.from(dec.json.value ?? '', 'base64url').toString()]).toEqual([200, 'still readable']);
        const ver = await rawRequest(emu, 'POST', `/keys/${name}//verify?${API}`, {
          body: { alg: 'RS256', digest: b64u(randomBytes(32)), value: b64u(randomBytes(256)) },
        });
        expect([ver.status, ver.json.value]).toEqual([200, false]);
      }
    });
  });

  it('counts keys operations in stats under their names and injects faults by name', async () => {
    emu.resetStats();
    const crypto = emulatorCryptographyClient(emu, signers['P-256'], { maxRetries: 0 });
    await crypto.sign('ES256', randomBytes(32));
    await keys.getKey('signer-P-256');
    emu.injectFault({ kind: 'status', status: 503, operations: ['sign'], count: 1 });
    const failed = await restError(crypto.sign('ES256', randomBytes(32)));
    expect(failed.statusCode).toBe(503);
    await crypto.sign('ES256', randomBytes(32));
    const { 'challenge:401': challenges, ...counted } = emu.stats().byOperationAndStatus;
    expect(challenges).toBe(1); // the new client's first request
    expect(counted).toEqual({ 'sign:200': 2, 'getKey:200': 1, 'sign:503': 1 });
  });
});

describe('Key Vault emulator: keys share the vault with secrets', () => {
  it('one throttling window counts secrets and keys operations together (Set Secret and Create Key have budgets of their own)', async () => {
    const emu = await KeyVaultEmulator.start({ quiet: true, throttle: { limit: 4, windowMs: 60_000 }, operationDelayMs: 0 });
    try {
      const keys = emulatorKeyClient(emu, { maxRetries: 0 });
      const secrets = emulatorSecretClient(emu, { maxRetries: 0 });
      await keys.createEcKey('k1');
      await secrets.setSecret('s1', 'v');
      await keys.getKey('k1');
      await secrets.getSecret('s1');
      await keys.getKey('k1');
      await secrets.getSecret('s1');
      const err = await restError(keys.getKey('k1'));
      expect([err.statusCode, err.code]).toEqual([429, 'Throttled']);
      expect(Number(err.response!.headers.get('retry-after'))).toBeGreaterThan(50);
      expect((await restError(secrets.getSecret('s1'))).statusCode).toBe(429);
    } finally {
      await emu.stop();
    }
  });

  it('persists keys across restarts with the private keys encrypted at rest', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'kv-emu-keys-'));
    try {
      const first = await KeyVaultEmulator.start({ quiet: true, dataDir, operationDelayMs: 0 });
      const key = await emulatorKeyClient(first, { maxRetries: 0 }).createRsaKey('kept', { tags: { t: '1' } });
      await first.stop();
      const file = readFileSync(join(dataDir, 'keys.json'), 'utf8');
      expect(file).toContain('kept');
      expect(file).not.toMatch(/PRIVATE KEY|"d":/);

      const second = await KeyVaultEmulator.start({ quiet: true, dataDir, operationDelayMs: 0 });
      try {
        const again = await emulatorKeyClient(second, { maxRetries: 0 }).getKey('kept');
        expect([again.properties.version, again.properties.tags]).toEqual([key.properties.version, { t: '1' }]);
        const crypto: CryptographyClient = emulatorCryptographyClient(second, again, { maxRetries: 0 });
        const message = Buffer.from('signed after a restart');
        const { result } = await crypto.sign('RS256', createHash('sha256').update(message).digest());
        expect(nodeVerify('sha256', message, nodePublicKey(key), result)).toBe(true);
      } finally {
        await second.stop();
      }
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
