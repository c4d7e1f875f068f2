/**
 * Integration: KeysModule over the real gateway (the Azure SDK's KeyClient and CryptographyClient over
 * HTTPS) against the local vault, with the real AuditService on SQLite and PostgreSQL. Vault traffic
 * is counted by the vault itself.
 */
import { createHash, createPublicKey, generateKeyPairSync, sign as nodeSign, verify as nodeVerify, constants, randomBytes } from 'node:crypto';
import { Test, type TestingModule } from '@nestjs/testing';
import { AuditService } from '@app/audit';
import type { OperationContext } from '@app/common';
import { KeyVaultErrorCode, KeyVaultHealthIndicator } from '@app/key-vault';
import { emulatorKeyClient, KeyVaultEmulator } from '@app/keyvault-emulator';
import { createTestDatabase, credentialsStackImports, DATABASE_KINDS, type TestDatabase } from '@app/testing';
import { KeysErrorCode, KeysModule, KeysService, type PublicJwk, type SignatureAlgorithm } from './index';
import { tenantKeyScope } from './naming/tenant-key-name';

const HASH = { '256': 'sha256', '384': 'sha384', '512': 'sha512' } as const;
const hashOf = (alg: SignatureAlgorithm) => HASH[alg.slice(2) as '256'];
const digestOf = (alg: SignatureAlgorithm, data: Buffer) => new Uint8Array(createHash(hashOf(alg)).update(data).digest());
const nodeKey = (jwk: PublicJwk) =>
  createPublicKey({ key: (jwk.kty === 'RSA' ? { kty: 'RSA', n: jwk.n, e: jwk.e } : { kty: 'EC', crv: jwk.crv, x: jwk.x, y: jwk.y }) as import('node:crypto').JsonWebKey, format: 'jwk' });
/** node:crypto's verify of a JOSE signature over the data (EC signatures are r‖s). */
const nodeVerifies = (alg: SignatureAlgorithm, jwk: PublicJwk, data: Buffer, signature: Uint8Array) =>
  nodeVerify(
    hashOf(alg),
    data,
    alg.startsWith('ES')
      ? { key: nodeKey(jwk), dsaEncoding: 'ieee-p1363' }
      : alg.startsWith('PS')
        ? { key: nodeKey(jwk), padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_AUTO }
        : nodeKey(jwk),
    signature,
  );

const codeOf = (p: Promise<unknown>) => p.then(
  () => 'resolved',
  (e: { code?: unknown }) => e.code,
);

describe.each(DATABASE_KINDS)('KeysModule on %s (local vault, real SDK, real audit)', (kind) => {
  let emu: KeyVaultEmulator;
  let db: TestDatabase;
  let moduleRef: TestingModule;
  let keys: KeysService;
  let audit: AuditService;
  const run = randomBytes(3).toString('hex');
  const ctxA: OperationContext = { tenantId: `acme-${run}`, actor: { id: 'user:alice' }, correlationId: 'c-keys' };
  const ctxB: OperationContext = { tenantId: `globex-${run}`, actor: { id: 'user:mallory' } };
  /** Every digest, signature, plaintext and ciphertext the suite handled: none may reach an audit row. */
  const material: Uint8Array[] = [];
  const vaultCalls = (op: string) => emu.stats().byOperation[op] ?? 0;

  beforeAll(async () => {
    // Deletes and recoveries complete at once (the SDK's pollers are exercised either way).
    emu = await KeyVaultEmulator.start({ quiet: true, throttle: false, operationDelayMs: 0 });
    db = await createTestDatabase(kind);
    moduleRef = await Test.createTestingModule({
      imports: [
        ...credentialsStackImports({ database: db.options, vault: emu, keyVault: { resilience: { maxAttempts: 2, pollIntervalMs: 20 } } }),
        kind === 'sqlite' ? KeysModule.forRoot({}) : KeysModule.forRootAsync({ useFactory: async () => ({ verify: 'local' as const, verifyEcLocally: true }) }),
      ],
    }).compile();
    await moduleRef.init();
    keys = moduleRef.get(KeysService);
    audit = moduleRef.get(AuditService);
  }, 60_000);

  afterAll(async () => {
    await moduleRef?.close();
    await emu?.stop();
    await db?.drop();
  });

  it('round-trips every algorithm through the gateway: RSA 2048 and 4096 (SQLite) or 3072 (PostgreSQL), EC P-256/384/521', async () => {
    const data = Buffer.from(`payload ${run}`);
    // Each large size once across the two runs (key generation is slow; the database plays no part in it).
    const sizes = kind === 'sqlite' ? ([2048, 4096] as const) : ([2048, 3072] as const);
    const rsa = await Promise.all(sizes.map((size) => keys.createKey(ctxA, { name: `rsa-${size}`, type: 'RSA', size })));
    expect(rsa.map((k) => [k.type, k.size])).toEqual(sizes.map((size) => ['RSA', size]));
    for (const key of rsa) {
      const algs: SignatureAlgorithm[] = key.size === 2048 ? ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'] : ['RS256', 'PS512'];
      for (const algorithm of algs) {
        const digest = digestOf(algorithm, data);
        const s = await keys.sign(ctxA, { name: key.name, algorithm, digest });
        material.push(digest, s.signature);
        expect(s.version).toBe(key.version);
        expect(nodeVerifies(algorithm, key.publicKey, data, s.signature)).toBe(true);
        const local = await keys.verify(ctxA, { name: key.name, version: s.version, algorithm, digest, signature: s.signature });
        const remote = await keys.verify(ctxA, { name: key.name, version: s.version, algorithm, digest, signature: s.signature, remote: true });
        expect([local.valid, local.verifiedIn, remote.valid, remote.verifiedIn]).toEqual([true, 'local', true, 'vault']);
        const forged = Uint8Array.from(s.signature);
        forged[forged.length - 1] ^= 0x01;
        const [l, r] = await Promise.all([
          keys.verify(ctxA, { name: key.name, algorithm, digest, signature: forged }),
          keys.verify(ctxA, { name: key.name, algorithm, digest, signature: forged, remote: true }),
        ]);
        expect([l.valid, r.valid]).toEqual([false, false]);
      }
      for (const algorithm of ['RSA-OAEP', 'RSA-OAEP-256'] as const) {
        const plaintext = new Uint8Array(randomBytes(32));
        const e = await keys.encrypt(ctxA, { name: key.name, algorithm, plaintext });
        const d = await keys.decrypt(ctxA, { name: key.name, version: e.version, algorithm, ciphertext: e.ciphertext });
        expect(Buffer.from(d.plaintext).equals(Buffer.from(plaintext))).toBe(true);
        const w = await keys.wrapKey(ctxA, { name: key.name, algorithm, key: plaintext });
        const u = await keys.unwrapKey(ctxA, { name: key.name, version: w.version, algorithm, wrappedKey: w.wrappedKey });
        expect(Buffer.from(u.key).equals(Buffer.from(plaintext))).toBe(true);
        material.push(plaintext, e.ciphertext, w.wrappedKey);
      }
    }
    for (const [curve, algorithm] of [
      ['P-256', 'ES256'],
      ['P-384', 'ES384'],
      ['P-521', 'ES512'],
    ] as const) {
      const key = await keys.createKey(ctxA, { name: `ec-${curve.slice(2)}`, type: 'EC', curve });
      expect([key.type, key.curve, key.keyOps.sort()]).toEqual(['EC', curve, ['sign', 'verify']]);
      const digest = digestOf(algorithm, data);
      const s = await keys.sign(ctxA, { name: key.name, algorithm, digest });
      material.push(digest, s.signature);
      expect(nodeVerifies(algorithm, key.publicKey, data, s.signature)).toBe(true);
      // EC verifies in the vault unless verifyEcLocally (on in the PostgreSQL run): both accept the vault's signature.
      expect(await keys.verify(ctxA, { name: key.name, algorithm, digest, signature: s.signature })).toMatchObject({ valid: true, verifiedIn: kind === 'postgres' ? 'local' : 'vault' });
      expect(await keys.verify(ctxA, { name: key.name, algorithm, digest, signature: s.signature, remote: true })).toMatchObject({ valid: true, verifiedIn: 'vault' });
      const forged = Uint8Array.from(s.signature);
      forged[3] ^= 0x01;
      expect((await keys.verify(ctxA, { name: key.name, algorithm, digest, signature: forged })).valid).toBe(false);
    }
  }, 120_000);

  it('interop: a vault signature verifies with node:crypto from the exported JWK; local and vault verification agree and local costs no vault call', async () => {
    const rsaKey = await keys.getKey(ctxA, 'rsa-2048');
    // A signature node:crypto made with another key: local and vault verification both refuse it.
    const foreign = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const data = Buffer.from('foreign');
    const digest = digestOf('RS256', data);
    const foreignSig = new Uint8Array(nodeSign('sha256', data, foreign.privateKey));
    const [l, r] = await Promise.all([
      keys.verify(ctxA, { name: rsaKey.name, algorithm: 'RS256', digest, signature: foreignSig }),
      keys.verify(ctxA, { name: rsaKey.name, algorithm: 'RS256', digest, signature: foreignSig, remote: true }),
    ]);
    expect([l.valid, r.valid]).toEqual([false, false]);

    // The vault's signature, checked with node:crypto from the exported JWK only (no SDK).
    const s = await keys.sign(ctxA, { name: rsaKey.name, algorithm: 'PS384', digest: digestOf('PS384', data) });
    expect(nodeVerifies('PS384', JSON.parse(JSON.stringify(rsaKey.publicKey)) as PublicJwk, data, s.signature)).toBe(true);
    material.push(digest, foreignSig, s.signature);

    // Local verification costs no vault transaction.
    const before = vaultCalls('verify');
    await keys.verify(ctxA, { name: rsaKey.name, algorithm: 'PS384', digest: digestOf('PS384', data), signature: s.signature });
    expect(vaultCalls('verify')).toBe(before);
  });

  it('tenant isolation: tenant B cannot get, use, list, rotate or delete tenant A keys — exactly like a missing key', async () => {
    const missing = await codeOf(keys.getKey(ctxB, `never-${run}`));
    expect(missing).toBe(KeyVaultErrorCode.KEY_NOT_FOUND);
    const digest = new Uint8Array(32);
    for (const attempt of [
      keys.getKey(ctxB, 'rsa-2048'),
      keys.sign(ctxB, { name: 'rsa-2048', algorithm: 'RS256', digest }),
      keys.verify(ctxB, { name: 'rsa-2048', algorithm: 'RS256', digest, signature: new Uint8Array(256) }),
      keys.encrypt(ctxB, { name: 'rsa-2048', algorithm: 'RSA-OAEP-256', plaintext: digest }),
      keys.listKeyVersions(ctxB, 'rsa-2048').then((p) => (p.items.length ? p : Promise.reject({ code: KeyVaultErrorCode.KEY_NOT_FOUND }))),
      keys.rotateKey(ctxB, 'rsa-2048'),
      keys.deleteKey(ctxB, 'rsa-2048'),
    ]) {
      expect(await codeOf(attempt)).toBe(missing);
    }
    expect((await keys.listKeys(ctxB)).items).toEqual([]);
    expect((await keys.getKey(ctxA, 'rsa-2048')).enabled).toBe(true);
    // A cursor forged to page A's versions, every deleted key, or the secrets is refused before any vault call, as a bad
    // continuationToken of this list (KEYS_VALIDATION, field continuationToken: hosts name it as their callers sent it).
    const forge = (l: string) => Buffer.from(JSON.stringify({ l, s: 0 }), 'utf8').toString('base64url');
    const aVersions = `${emu.vaultUrl}/keys/${tenantKeyScope(ctxA.tenantId, 'cv')}rsa-2048/versions?api-version=7.6&maxresults=25`;
    const listed = emu.stats().byOperation.listKeyVersions ?? 0;
    for (const l of [aVersions, `${emu.vaultUrl}/deletedkeys?api-version=7.6`, `${emu.vaultUrl}/secrets?api-version=7.6`]) {
      expect(await codeOf(keys.listKeyVersions(ctxB, 'anything', { continuationToken: forge(l) }))).toBe(KeysErrorCode.KEYS_VALIDATION);
      expect(await codeOf(keys.listKeys(ctxB, { continuationToken: forge(l) }))).toBe(KeysErrorCode.KEYS_VALIDATION);
    }
    expect(emu.stats().byOperation.listKeyVersions ?? 0).toBe(listed);
  });

  it("a vault failure's message says what failed in the caller's terms with the code, never the key's name, the tenant or the vault's text", async () => {
    const name = `never-${run}`;
    const failures = await Promise.all([keys.getKey(ctxB, name), keys.rotateKey(ctxB, name), keys.deleteKey(ctxB, name)].map((p) => p.then(() => undefined, (e: Error) => e)));
    expect(failures.map((e) => e?.message)).toEqual([
      'Reading the key failed: KEY_NOT_FOUND (HTTP 404 KeyNotFound; no key of that name or version)',
      'Rotating the key failed: KEY_NOT_FOUND (HTTP 404 KeyNotFound; no key of that name or version)',
      'Deleting the key failed: KEY_NOT_FOUND (HTTP 404 KeyNotFound; no key of that name or version)',
    ]);
    // No Azure SDK operation name (getKey, rotateKey...): the library's and the host's callers never called those.
    for (const e of failures) expect(e?.message).not.toMatch(/Key Vault|getKey|rotateKey|deleteKey/);
    // Nor the vault's own text ("A key with (name/id) <vault name> was not found ...") nor the tenant hash.
    const hash = tenantKeyScope(ctxB.tenantId, 'cv').split('-')[2];
    for (const e of failures) for (const leak of [name, ctxB.tenantId, hash, 'not found']) expect(JSON.stringify({ m: e?.message, j: e })).not.toContain(leak);
  });

  it("reports the expiry the vault's rotation policy gives a rotated version; a denied permission is FORBIDDEN, tried once", async () => {
    const ctxC: OperationContext = { tenantId: `initech-${run}`, actor: { id: 'user:carol' } }; // its keys listed by no other test
    await keys.createKey(ctxC, { name: 'with-policy', type: 'RSA' });
    // A policy set outside the service (portal, IaC): the vault applies its expiryTime to each rotated version.
    await emulatorKeyClient(emu).updateKeyRotationPolicy(`${tenantKeyScope(ctxC.tenantId, 'cv')}with-policy`, { expiresIn: 'P30D' });
    const rotated = await keys.rotateKey(ctxC, 'with-policy');
    expect((rotated.expiresOn!.getTime() - rotated.createdOn!.getTime()) / 86_400_000).toBe(30);
    expect((await keys.getKey(ctxC, 'with-policy')).expiresOn).toEqual(rotated.expiresOn);

    emu.deny({ operations: ['sign'] });
    try {
      const before = vaultCalls('sign');
      const e = (await keys.sign(ctxC, { name: 'with-policy', algorithm: 'RS256', digest: new Uint8Array(32) }).catch((err: unknown) => err)) as { code: number; message: string };
      expect([e.code, e.message]).toEqual([KeyVaultErrorCode.FORBIDDEN, "Signing with the key failed: FORBIDDEN (HTTP 403 Forbidden; the host's identity lacks this permission (access policy or RBAC role))"]);
      expect(vaultCalls('sign') - before).toBe(1);
    } finally {
      emu.clearDenials();
    }
  });

  it('manages keys: tags, paging, versions, update, rotate, delete / recover / purge, backup / restore', async () => {
    for (let i = 0; i < 4; i++) await keys.createKey(ctxB, { name: `m${i}`, type: 'EC', tags: { env: i % 2 ? 'prod' : 'dev' } });
    const names: string[] = [];
    let token: string | undefined;
    do {
      const page = await keys.listKeys(ctxB, { maxPageSize: 3, continuationToken: token });
      names.push(...page.items.map((k) => k.name));
      token = page.continuationToken;
    } while (token);
    expect(names.sort()).toEqual(['m0', 'm1', 'm2', 'm3']);
    expect((await keys.listKeys(ctxB, { tags: { env: 'prod' } })).items.map((k) => k.name).sort()).toEqual(['m1', 'm3']);

    const v1 = await keys.getKey(ctxB, 'm0');
    const v2 = await keys.rotateKey(ctxB, 'm0');
    expect(v2.version).not.toBe(v1.version);
    expect((await keys.listKeyVersions(ctxB, 'm0')).items.map((k) => k.version).sort()).toEqual([v1.version, v2.version].sort());
    const digest = new Uint8Array(32);
    expect((await keys.sign(ctxB, { name: 'm0', algorithm: 'ES256', digest })).version).toBe(v2.version);
    expect((await keys.sign(ctxB, { name: 'm0', version: v1.version, algorithm: 'ES256', digest })).version).toBe(v1.version);

    await keys.updateKeyProperties(ctxB, 'm0', { version: v2.version, enabled: false, tags: { env: 'retired' } });
    expect(await codeOf(keys.sign(ctxB, { name: 'm0', algorithm: 'ES256', digest }))).toBe(KeysErrorCode.KEY_NOT_USABLE);
    await keys.updateKeyProperties(ctxB, 'm0', { version: v2.version, enabled: true });

    const backup = await keys.backupKey(ctxB, 'm1');
    expect(await codeOf(keys.restoreKey(ctxA, backup))).toBe(KeysErrorCode.INVALID_KEY_BACKUP);
    const deleted = await keys.deleteKey(ctxB, 'm1');
    expect(deleted.name).toBe('m1');
    expect(await codeOf(keys.getKey(ctxB, 'm1'))).toBe(KeyVaultErrorCode.KEY_NOT_FOUND);
    await keys.recoverKey(ctxB, 'm1');
    expect((await keys.getKey(ctxB, 'm1')).tags).toEqual({ env: 'prod' });
    await keys.deleteKey(ctxB, 'm1');
    await keys.purgeKey(ctxB, 'm1');
    const restored = await keys.restoreKey(ctxB, backup);
    expect([restored.name, restored.tags]).toEqual(['m1', { env: 'prod' }]);
    // The gateway's health covers the keys side too (one key listed by the same identity).
    expect(await moduleRef.get(KeyVaultHealthIndicator).isKeysHealthy()).toMatchObject({ keyVaultKeys: { status: 'up' } });
  }, 60_000);

  it("a backup names a version of the key even when the vault answers an empty first page of versions (as Azure may), so a restore whose answer is lost can confirm itself", async () => {
    const created = await keys.createKey(ctxB, { name: 'paged-backup', type: 'EC' });
    emu.injectFault({ kind: 'emptyPage', operations: ['listKeyVersions'], count: 1 });
    const backup = await keys.backupKey(ctxB, 'paged-backup');
    const header = JSON.parse(Buffer.from(backup).toString('utf8')) as { version?: string };
    expect(header.version).toBe(created.version);
  });

  it('audits each use (key, operation, algorithm, version) in the database and never any data', async () => {
    await audit.flush();
    const rows = (await audit.query({ tenantId: ctxA.tenantId, limit: 500, order: 'asc' })).items;
    const signs = rows.filter((r) => r.action === 'key.sign' && r.result === 'success');
    expect(signs.length).toBeGreaterThanOrEqual(10);
    expect(signs[0]).toMatchObject({ resource: 'key:rsa-2048', actorId: 'user:alice', correlationId: 'c-keys', details: expect.objectContaining({ algorithm: 'RS256', keyVersion: expect.any(String) }) });
    const actions = new Set(rows.map((r) => r.action));
    for (const a of ['key.create', 'key.sign', 'key.verify', 'key.encrypt', 'key.decrypt', 'key.wrap', 'key.unwrap', 'key.get']) expect(actions).toContain(a);
    expect(rows.filter((r) => r.action === 'key.verify').map((r) => r.details?.verifiedIn)).toEqual(expect.arrayContaining(['local', 'vault']));
    const bRows = (await audit.query({ tenantId: ctxB.tenantId, limit: 500 })).items;
    expect(bRows.some((r) => r.action === 'key.sign' && r.result === 'failure' && r.errorCode === '1003:KEY_NOT_FOUND')).toBe(true);
    const text = JSON.stringify([...rows, ...bRows]);
    for (const m of material) {
      const b = Buffer.from(m);
      for (const enc of [b.toString('base64'), b.toString('base64url'), b.toString('hex')]) expect(text).not.toContain(enc.slice(0, 24));
    }
    expect((await audit.verify({ tenantId: ctxA.tenantId })).valid).toBe(true);
  });
});
