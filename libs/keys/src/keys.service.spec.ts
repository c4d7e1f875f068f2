import { createHash, createPublicKey, verify as nodeVerify } from 'node:crypto';
import { Test } from '@nestjs/testing';
import { SpanStatusCode, trace } from '@opentelemetry/api';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { AuditService, type AuditEventInput } from '@app/audit';
import { ManualClock, type OperationContext } from '@app/common';
import { KeyVaultError, KeyVaultErrorCode, KeyVaultKeysProvider, isKeyVaultError } from '@app/key-vault';
import { KeysErrorCode, isKeysError } from './errors/keys.errors';
import { KeysModule } from './keys.module';
import type { KeysModuleOptions } from './keys.options';
import { KeysService } from './keys.service';
import { KeysMetrics } from './metrics/keys.metrics';
import { tenantKeyVaultName } from './naming/tenant-key-name';
import { FakeVaultKeys } from './testing/fake-vault-keys';

class RecordingAudit {
  readonly events: AuditEventInput[] = [];
  async record(e: AuditEventInput) {
    this.events.push(e);
    return {} as never;
  }
  async recordRead(e: AuditEventInput) {
    this.events.push(e);
  }
}

const ctxA: OperationContext = { tenantId: 'acme', actor: { id: 'user:alice' } };
const ctxB: OperationContext = { tenantId: 'globex', actor: { id: 'user:mallory' } };
const sha256 = (s: string) => new Uint8Array(createHash('sha256').update(s).digest());

async function setup(options: KeysModuleOptions = {}) {
  const vault = new FakeVaultKeys();
  const audit = new RecordingAudit();
  const clock = new ManualClock(new Date('2026-12-01T00:00:00Z'));
  const moduleRef = await Test.createTestingModule({ imports: [KeysModule.forRoot({ clock, ...options })] })
    .useMocker((token) => (token === KeyVaultKeysProvider ? vault : token === AuditService ? audit : undefined))
    .compile();
  return { vault, audit, clock, keys: moduleRef.get(KeysService), metrics: moduleRef.get(KeysMetrics) };
}

const code = async (p: Promise<unknown>) => {
  try {
    await p;
  } catch (e) {
    return (e as { code?: number }).code;
  }
  return 'resolved';
};

describe('KeysService (fake vault)', () => {
  it('creates keys in the tenant scope; another tenant cannot get, use, list or delete them (a 404 like a missing key)', async () => {
    const { keys, vault } = await setup();
    const created = await keys.createKey(ctxA, { name: 'webhooks', type: 'RSA', size: 3072, tags: { team: 'payments' } });
    expect(created).toMatchObject({ name: 'webhooks', type: 'RSA', size: 3072, tags: { team: 'payments' }, enabled: true });
    expect(created.publicKey).toMatchObject({ kty: 'RSA', key_ops: expect.arrayContaining(['sign', 'encrypt']) });
    expect(created.publicKey).not.toHaveProperty('d');

    const missing = await code(keys.getKey(ctxB, 'nothing-here'));
    expect(missing).toBe(KeyVaultErrorCode.KEY_NOT_FOUND);
    expect(await code(keys.getKey(ctxB, 'webhooks'))).toBe(missing);
    expect(await code(keys.sign(ctxB, { name: 'webhooks', algorithm: 'RS256', digest: sha256('x') }))).toBe(missing);
    expect(await code(keys.deleteKey(ctxB, 'webhooks'))).toBe(missing);
    expect((await keys.listKeys(ctxB)).items).toEqual([]);
    expect((await keys.listKeys(ctxA)).items.map((k) => k.name)).toEqual(['webhooks']);
    expect(await keys.getKey(ctxA, 'WEBHOOKS')).toMatchObject({ version: created.version });
    expect(vault.calls.createKey).toBe(1);
  });

  it('signs through the vault and verifies locally (no vault call), agreeing with node:crypto', async () => {
    const { keys, vault, metrics } = await setup();
    await keys.createKey(ctxA, { name: 'jwt', type: 'RSA' });
    const data = 'header.payload';
    const digest = sha256(data);
    const signed = await keys.sign(ctxA, { name: 'jwt', algorithm: 'RS256', digest });
    const jwk = (await keys.getKey(ctxA, 'jwt')).publicKey;
    expect(nodeVerify('sha256', Buffer.from(data), createPublicKey({ key: { kty: 'RSA', n: jwk.n, e: jwk.e }, format: 'jwk' }), signed.signature)).toBe(true);

    const before = vault.calls.verify ?? 0;
    const local = await keys.verify(ctxA, { name: 'jwt', version: signed.version, algorithm: 'RS256', digest, signature: signed.signature });
    expect(local).toMatchObject({ valid: true, verifiedIn: 'local', version: signed.version });
    const tampered = Uint8Array.from(signed.signature);
    tampered[10] ^= 1;
    expect(await keys.verify(ctxA, { name: 'jwt', algorithm: 'RS256', digest, signature: tampered })).toMatchObject({ valid: false, verifiedIn: 'local' });
    expect(vault.calls.verify ?? 0).toBe(before);
    expect(await keys.verify(ctxA, { name: 'jwt', algorithm: 'RS256', digest, signature: signed.signature, remote: true })).toMatchObject({ verifiedIn: 'vault' });
    expect(vault.calls.verify).toBe(before + 1);
    expect(metrics.snapshot()).toEqual(expect.arrayContaining([{ operation: 'verify', outcome: 'success', verifiedIn: 'local', count: 2 }]));
  });

  it('verify: remote by option', async () => {
    const { keys, vault } = await setup({ verify: 'remote' });
    await keys.createKey(ctxA, { name: 'k', type: 'RSA' });
    const s = await keys.sign(ctxA, { name: 'k', algorithm: 'RS384', digest: new Uint8Array(48) });
    expect(await keys.verify(ctxA, { name: 'k', algorithm: 'RS384', digest: new Uint8Array(48), signature: s.signature })).toMatchObject({ verifiedIn: 'vault' });
    expect(vault.calls.verify).toBe(1);
  });

  it('refuses to create a key under a taken name (the vault would add a version, of any type): KEY_ALREADY_EXISTS, the key unchanged', async () => {
    const { keys } = await setup();
    await keys.createKey(ctxA, { name: 'signer', type: 'EC', tags: { team: 'a' } });
    expect(await code(keys.createKey(ctxA, { name: 'signer', type: 'RSA' }))).toBe(KeysErrorCode.KEY_ALREADY_EXISTS);
    expect(await keys.getKey(ctxA, 'signer')).toMatchObject({ type: 'EC', tags: { team: 'a' } });
    // Another tenant's names are its own.
    await expect(keys.createKey(ctxB, { name: 'signer', type: 'RSA' })).resolves.toMatchObject({ type: 'RSA' });
  });

  it('refuses bad requests before any vault call, with the lib codes', async () => {
    const { keys, vault } = await setup();
    await keys.createKey(ctxA, { name: 'rsa', type: 'RSA' });
    await keys.createKey(ctxA, { name: 'ec', type: 'EC', curve: 'P-384' });
    const calls = JSON.stringify(vault.calls);
    const cases: Array<[Promise<unknown>, number]> = [
      [keys.createKey(ctxA, { name: 'bad name!', type: 'RSA' }), KeysErrorCode.KEYS_VALIDATION],
      [keys.createKey(ctxA, { name: 'x', type: 'RSA', size: 1024 as 2048 }), KeysErrorCode.KEYS_VALIDATION],
      [keys.createKey(ctxA, { name: 'x', type: 'EC', curve: 'secp256k1' as 'P-256' }), KeysErrorCode.KEYS_VALIDATION],
      [keys.createKey(ctxA, { name: 'x', type: 'EC', keyOps: ['encrypt'] }), KeysErrorCode.KEY_TYPE_MISMATCH],
      [keys.sign(ctxA, { name: 'rsa', algorithm: 'RS256', digest: new Uint8Array(31) }), KeysErrorCode.KEYS_VALIDATION],
      [keys.sign(ctxA, { name: 'rsa', algorithm: 'HS256' as 'RS256', digest: new Uint8Array(32) }), KeysErrorCode.ALGORITHM_NOT_ALLOWED],
      [keys.encrypt(ctxA, { name: 'rsa', algorithm: 'RSA1_5', plaintext: new Uint8Array(8) }), KeysErrorCode.ALGORITHM_NOT_ALLOWED],
      [keys.wrapKey(ctxA, { name: 'rsa', algorithm: 'RSA1_5', key: new Uint8Array(32) }), KeysErrorCode.ALGORITHM_NOT_ALLOWED],
      [keys.listKeys(ctxA, { maxPageSize: 26 }), KeysErrorCode.KEYS_VALIDATION],
      [keys.listKeys(ctxA, { continuationToken: 'https://evil.example/keys' }), KeysErrorCode.KEYS_VALIDATION],
      // Longer than any RSA block (RSA-4096: 512 bytes), as the HTTP DTOs say: gRPC callers reach the lib directly.
      [keys.encrypt(ctxA, { name: 'rsa', algorithm: 'RSA-OAEP-256', plaintext: new Uint8Array(513) }), KeysErrorCode.KEYS_VALIDATION],
      [keys.decrypt(ctxA, { name: 'rsa', algorithm: 'RSA-OAEP-256', ciphertext: new Uint8Array(1024) }), KeysErrorCode.KEYS_VALIDATION],
      [keys.unwrapKey(ctxA, { name: 'rsa', algorithm: 'RSA-OAEP-256', wrappedKey: new Uint8Array(513) }), KeysErrorCode.KEYS_VALIDATION],
      // A lone surrogate cannot be stored as sent; a date before 1901-12-13 would wrap to 1970..2038 in the SDK.
      [keys.createKey(ctxA, { name: 'x', type: 'RSA', tags: { t: 'a\ud800b' } }), KeysErrorCode.KEYS_VALIDATION],
      [keys.createKey(ctxA, { name: 'x', type: 'RSA', expiresOn: new Date('1897-04-11T00:00:00Z') }), KeysErrorCode.KEYS_VALIDATION],
      [keys.createKey(ctxA, { name: 'x', type: 'RSA', notBefore: new Date('1901-12-13T20:45:51Z'), expiresOn: new Date('2030-01-01T00:00:00Z') }), KeysErrorCode.KEYS_VALIDATION],
    ];
    for (const [p, expected] of cases) expect(await code(p)).toBe(expected);
    // A context the audit refuses (one call at a time: they reached the vault): the key was created, then the call failed at its audit row.
    for (const call of [
      () => keys.createKey({ ...ctxA, actor: { id: 'x'.repeat(257) } }, { name: 'x', type: 'RSA' }),
      () => keys.createKey({ ...ctxA, actor: { id: '' } }, { name: 'x', type: 'RSA' }),
      () => keys.deleteKey({ ...ctxA, tenantId: '' }, 'rsa'),
      () => keys.sign({ ...ctxA, tenantId: 'a'.repeat(129) }, { name: 'rsa', algorithm: 'RS256', digest: new Uint8Array(32) }),
    ]) {
      expect(await code(call())).toBe(KeysErrorCode.KEYS_VALIDATION);
    }
    expect(JSON.stringify(vault.calls)).toBe(calls);
    // Checks against the (cached) key: no crypto call reaches the vault.
    expect(await code(keys.sign(ctxA, { name: 'ec', algorithm: 'RS256', digest: new Uint8Array(32) }))).toBe(KeysErrorCode.KEY_TYPE_MISMATCH);
    expect(await code(keys.sign(ctxA, { name: 'ec', algorithm: 'ES256', digest: new Uint8Array(32) }))).toBe(KeysErrorCode.KEY_TYPE_MISMATCH);
    expect(await code(keys.encrypt(ctxA, { name: 'ec', algorithm: 'RSA-OAEP', plaintext: new Uint8Array(8) }))).toBe(KeysErrorCode.KEY_OPERATION_NOT_PERMITTED);
    expect(vault.calls.sign ?? 0).toBe(0);
    expect(vault.calls.encrypt ?? 0).toBe(0);
  });

  // One RSA block holds k − 2·hLen − 2 bytes under OAEP (RSA-2048: 214 with SHA-1, 190 with SHA-256) and k − 11 under
  // PKCS#1 v1.5. Longer went to the vault (a transaction) and came back 400 INVALID_REQUEST, naming no limit.
  it("refuses a plaintext or key to wrap longer than the key's RSA block takes as KEYS_VALIDATION naming the limit, before any vault call", async () => {
    const { keys, vault } = await setup({ allowRsa1_5: true });
    await keys.createKey(ctxA, { name: 'rsa', type: 'RSA', size: 2048 });
    const refusal = (p: Promise<unknown>) => p.then(() => 'resolved', (e: unknown) => (isKeysError(e) ? { code: e.code, field: e.field, message: e.message } : e));
    const over = [
      [() => keys.encrypt(ctxA, { name: 'rsa', algorithm: 'RSA-OAEP-256', plaintext: new Uint8Array(191) }), 'plaintext', 190],
      [() => keys.encrypt(ctxA, { name: 'rsa', algorithm: 'RSA-OAEP', plaintext: new Uint8Array(215) }), 'plaintext', 214],
      [() => keys.wrapKey(ctxA, { name: 'rsa', algorithm: 'RSA1_5', key: new Uint8Array(246) }), 'key', 245],
    ] as const;
    for (const [call, field, max] of over) {
      expect(await refusal(call())).toEqual({ code: KeysErrorCode.KEYS_VALIDATION, field, message: expect.stringContaining(`at most ${max} bytes`) });
    }
    expect(vault.calls.encrypt ?? 0).toBe(0);
    expect(vault.calls.wrapKey ?? 0).toBe(0);
    // The longest that fits still goes through.
    await expect(keys.encrypt(ctxA, { name: 'rsa', algorithm: 'RSA-OAEP-256', plaintext: new Uint8Array(190) })).resolves.toMatchObject({ name: 'rsa' });
  });

  it('a tag value holding a control character (NUL, line breaks, ESC, DEL) is refused on create and update, naming the tag by position, before any vault call', async () => {
    const { keys, vault } = await setup();
    await keys.createKey(ctxA, { name: 'rsa', type: 'RSA', tags: { team: 'core' } });
    const calls = JSON.stringify(vault.calls);
    const refusal = (p: Promise<unknown>) => p.then(() => 'resolved', (e: unknown) => (isKeysError(e) ? { code: e.code, field: e.field, message: e.message } : e));
    for (const bad of ['a\u0000b', 'two\nlines', 'cr\r', 'tab\t', 'esc\u001b[0m', 'del\u007f']) {
      const expected = { code: KeysErrorCode.KEYS_VALIDATION, field: 'tags', message: expect.stringMatching(/^the value of tag #2 .*control characters/) };
      expect({ bad, r: await refusal(keys.createKey(ctxA, { name: 'x', type: 'RSA', tags: { team: 'core', note: bad } })) }).toEqual({ bad, r: expected });
      expect({ bad, r: await refusal(keys.updateKeyProperties(ctxA, 'rsa', { tags: { team: 'core', note: bad } })) }).toEqual({ bad, r: expected });
    }
    expect(JSON.stringify(vault.calls)).toBe(calls);
    expect((await keys.getKey(ctxA, 'rsa')).tags).toEqual({ team: 'core' });
    // One line of any other text is kept: spaces, accents, astral characters.
    const kept = { note: 'Zoë\u2019s key 🔑 — two words' };
    expect((await keys.updateKeyProperties(ctxA, 'rsa', { tags: kept })).tags).toEqual(kept);
    // A list filter writes nothing: it still finds a key tagged so before the rule (or in the vault directly), to fix it.
    await vault.createKey(tenantKeyVaultName(ctxA.tenantId, 'legacy', 'cv'), { keyType: 'EC', tags: { note: 'two\nlines' } });
    expect((await keys.listKeys(ctxA, { tags: { note: 'two\nlines' } })).items.map((k) => k.name)).toEqual(['legacy']);
  });

  it('RSA1_5 works once allowed; encrypt/decrypt and wrap/unwrap round-trip', async () => {
    const { keys } = await setup({ allowRsa1_5: true });
    await keys.createKey(ctxA, { name: 'enc', type: 'RSA' });
    const plaintext = FakeVaultKeys.bytes(32);
    for (const algorithm of ['RSA-OAEP', 'RSA-OAEP-256'] as const) {
      const { ciphertext, version } = await keys.encrypt(ctxA, { name: 'enc', algorithm, plaintext });
      expect((await keys.decrypt(ctxA, { name: 'enc', version, algorithm, ciphertext })).plaintext).toEqual(plaintext);
      const { wrappedKey } = await keys.wrapKey(ctxA, { name: 'enc', algorithm, key: plaintext });
      expect((await keys.unwrapKey(ctxA, { name: 'enc', algorithm, wrappedKey })).key).toEqual(plaintext);
    }
    expect(await code(keys.encrypt(ctxA, { name: 'enc', algorithm: 'RSA1_5', plaintext }))).not.toBe(KeysErrorCode.ALGORITHM_NOT_ALLOWED);
  });

  it('refuses a disabled or expired key without a vault call, and uses the new version after a rotation', async () => {
    const { keys, vault, clock } = await setup();
    const v1 = await keys.createKey(ctxA, { name: 'k', type: 'RSA', expiresOn: new Date('2026-12-02T00:00:00Z') });
    clock.advance(2 * 86_400_000);
    expect(await code(keys.sign(ctxA, { name: 'k', algorithm: 'RS256', digest: new Uint8Array(32) }))).toBe(KeysErrorCode.KEY_NOT_USABLE);
    expect(await code(keys.encrypt(ctxA, { name: 'k', algorithm: 'RSA-OAEP-256', plaintext: new Uint8Array(16) }))).toBe(KeysErrorCode.KEY_NOT_USABLE);
    const v2 = await keys.rotateKey(ctxA, 'k');
    expect(v2.version).not.toBe(v1.version);
    await keys.updateKeyProperties(ctxA, 'k', { version: v2.version, expiresOn: new Date('2027-01-01T00:00:00Z') });
    expect((await keys.sign(ctxA, { name: 'k', algorithm: 'RS256', digest: new Uint8Array(32) })).version).toBe(v2.version);
    await keys.updateKeyProperties(ctxA, 'k', { version: v2.version, enabled: false });
    const signs = vault.calls.sign;
    expect(await code(keys.sign(ctxA, { name: 'k', algorithm: 'RS256', digest: new Uint8Array(32) }))).toBe(KeysErrorCode.KEY_NOT_USABLE);
    expect(vault.calls.sign).toBe(signs);
  });

  it('outside its dates a key still decrypts, unwraps and verifies what was made while it was valid (as Key Vault does)', async () => {
    const { keys, clock } = await setup();
    await keys.createKey(ctxA, { name: 'old', type: 'RSA', expiresOn: new Date(clock.now().getTime() + 86_400_000) });
    const digest = new Uint8Array(32).fill(3);
    const plaintext = new Uint8Array(32).fill(9);
    const { signature } = await keys.sign(ctxA, { name: 'old', algorithm: 'RS256', digest });
    const { ciphertext } = await keys.encrypt(ctxA, { name: 'old', algorithm: 'RSA-OAEP-256', plaintext });
    const { wrappedKey } = await keys.wrapKey(ctxA, { name: 'old', algorithm: 'RSA-OAEP-256', key: plaintext });
    clock.advance(2 * 86_400_000);
    expect((await keys.decrypt(ctxA, { name: 'old', algorithm: 'RSA-OAEP-256', ciphertext })).plaintext).toEqual(plaintext);
    expect((await keys.unwrapKey(ctxA, { name: 'old', algorithm: 'RSA-OAEP-256', wrappedKey })).key).toEqual(plaintext);
    expect((await keys.verify(ctxA, { name: 'old', algorithm: 'RS256', digest, signature })).valid).toBe(true);
    for (const refused of [
      keys.sign(ctxA, { name: 'old', algorithm: 'RS256', digest }),
      keys.encrypt(ctxA, { name: 'old', algorithm: 'RSA-OAEP-256', plaintext }),
      keys.wrapKey(ctxA, { name: 'old', algorithm: 'RSA-OAEP-256', key: plaintext }),
    ]) {
      expect(await code(refused)).toBe(KeysErrorCode.KEY_NOT_USABLE);
    }
    // Not valid yet: the same split.
    await keys.createKey(ctxA, { name: 'future', type: 'RSA', notBefore: new Date(clock.now().getTime() + 86_400_000) });
    expect(await code(keys.sign(ctxA, { name: 'future', algorithm: 'RS256', digest }))).toBe(KeysErrorCode.KEY_NOT_USABLE);
    expect((await keys.verify(ctxA, { name: 'future', algorithm: 'RS256', digest, signature: new Uint8Array(256) })).valid).toBe(false);
  });

  it('an update gives an EC key no operation it cannot perform, as creation does, and changes nothing', async () => {
    const { keys } = await setup();
    await keys.createKey(ctxA, { name: 'ec', type: 'EC' });
    expect(await code(keys.updateKeyProperties(ctxA, 'ec', { keyOps: ['encrypt', 'sign'] }))).toBe(KeysErrorCode.KEY_TYPE_MISMATCH);
    expect((await keys.getKey(ctxA, 'ec')).keyOps.sort()).toEqual(['sign', 'verify']);
    expect((await keys.updateKeyProperties(ctxA, 'ec', { keyOps: ['verify'] })).keyOps).toEqual(['verify']);
    await keys.createKey(ctxA, { name: 'rsa', type: 'RSA' });
    expect((await keys.updateKeyProperties(ctxA, 'rsa', { keyOps: ['decrypt', 'unwrapKey'] })).keyOps).toEqual(['decrypt', 'unwrapKey']);
  });

  it('lists the tenant keys across vault pages with tag filters and a continuation token', async () => {
    const { keys } = await setup();
    for (let i = 0; i < 30; i++) await keys.createKey(i % 3 ? ctxB : ctxA, { name: `k${String(i).padStart(2, '0')}`, type: 'EC', tags: { even: String(i % 2 === 0) } });
    const seen: string[] = [];
    let token: string | undefined;
    do {
      const page = await keys.listKeys(ctxA, { maxPageSize: 3, continuationToken: token });
      seen.push(...page.items.map((k) => k.name));
      token = page.continuationToken;
    } while (token);
    expect(seen).toEqual(['k00', 'k03', 'k06', 'k09', 'k12', 'k15', 'k18', 'k21', 'k24', 'k27']);
    expect((await keys.listKeys(ctxA, { tags: { even: 'true' } })).items.map((k) => k.name)).toEqual(['k00', 'k06', 'k12', 'k18', 'k24']);
  });

  it('audits every use with key, operation and algorithm — never digest, signature, plaintext or ciphertext', async () => {
    const { keys, audit } = await setup();
    await keys.createKey(ctxA, { name: 'a', type: 'RSA' });
    const digest = sha256('audited');
    const s = await keys.sign(ctxA, { name: 'a', algorithm: 'RS256', digest });
    await keys.verify(ctxA, { name: 'a', algorithm: 'RS256', digest, signature: s.signature });
    const plaintext = FakeVaultKeys.bytes(24);
    const e = await keys.encrypt(ctxA, { name: 'a', algorithm: 'RSA-OAEP-256', plaintext });
    await keys.decrypt(ctxA, { name: 'a', algorithm: 'RSA-OAEP-256', ciphertext: e.ciphertext });
    await code(keys.sign(ctxA, { name: 'gone', algorithm: 'RS256', digest }));
    expect(audit.events.map((x) => [x.action, x.resource, x.result, x.details?.algorithm])).toEqual([
      ['key.create', 'key:a', 'success', undefined],
      ['key.sign', 'key:a', 'success', 'RS256'],
      ['key.verify', 'key:a', 'success', 'RS256'],
      ['key.encrypt', 'key:a', 'success', 'RSA-OAEP-256'],
      ['key.decrypt', 'key:a', 'success', 'RSA-OAEP-256'],
      ['key.sign', 'key:gone', 'failure', 'RS256'],
    ]);
    expect(audit.events[1].details).toMatchObject({ keyVersion: s.version, operation: 'sign' });
    expect(audit.events[5].errorCode).toBe('1003:KEY_NOT_FOUND');
    const text = JSON.stringify(audit.events);
    for (const secret of [digest, s.signature, plaintext, e.ciphertext]) {
      const b = Buffer.from(secret);
      for (const enc of [b.toString('base64'), b.toString('base64url'), b.toString('hex')]) expect(text).not.toContain(enc.slice(0, 16));
    }
  });

  it('backs up into a blob bound to the tenant: another tenant cannot restore it', async () => {
    const { keys, vault } = await setup();
    await keys.createKey(ctxA, { name: 'b', type: 'RSA' });
    vault.backupKey = async () => new Uint8Array([1, 2, 3]);
    const blob = await keys.backupKey(ctxA, 'b');
    expect(await code(keys.restoreKey(ctxB, blob))).toBe(KeysErrorCode.INVALID_KEY_BACKUP);
    expect(await code(keys.restoreKey(ctxA, new Uint8Array([1, 2, 3])))).toBe(KeysErrorCode.INVALID_KEY_BACKUP);
  });

  it('a backup names a version it holds, handed to the vault on restore to confirm a lost answer; an older backup without one still restores', async () => {
    const { keys, vault } = await setup();
    const created = await keys.createKey(ctxA, { name: 'b', type: 'RSA' });
    const vaultName = tenantKeyVaultName(ctxA.tenantId, 'b', 'cv');
    vault.backupKey = async () => new Uint8Array([1, 2, 3]);
    const restore = jest.spyOn(vault, 'restoreKeyBackup').mockImplementation(async () => vault.getKey(vaultName));
    const blob = await keys.backupKey(ctxA, 'b');
    await keys.restoreKey(ctxA, blob);
    expect(restore.mock.calls[0][1]).toEqual({ name: vaultName, version: created.version });

    const { version: _v, ...older } = JSON.parse(Buffer.from(blob).toString('utf8')) as Record<string, unknown>;
    await keys.restoreKey(ctxA, new Uint8Array(Buffer.from(JSON.stringify(older))));
    expect(restore.mock.calls[1][1]).toBeUndefined();
    const forged = new Uint8Array(Buffer.from(JSON.stringify({ ...older, version: '../x' })));
    expect(await code(keys.restoreKey(ctxA, forged))).toBe(KeysErrorCode.INVALID_KEY_BACKUP);
  });

  it("a backup's header names a version the vault lists, never the key cache's: a key another replica replaced (deleted, purged, made again) is named by a version the backup holds", async () => {
    const { keys, vault } = await setup();
    const first = await keys.createKey(ctxA, { name: 'b', type: 'RSA' }); // this replica's cache: `first` is the latest
    const vaultName = tenantKeyVaultName(ctxA.tenantId, 'b', 'cv');
    // Another replica (or an operator) replaces the key: nothing tells this replica's cache.
    await vault.deleteKey(vaultName);
    await vault.purgeDeletedKey();
    const again = await vault.createKey(vaultName, { keyType: 'RSA' });
    vault.backupKey = async () => new Uint8Array([1, 2, 3]); // the blob of what the vault holds now: `again` only

    const header = JSON.parse(Buffer.from(await keys.backupKey(ctxA, 'b')).toString('utf8')) as { version?: string };
    expect(header.version).toBe(again.properties.version);
    expect(header.version).not.toBe(first.version);
  });

  it('vault failures keep the gateway codes', async () => {
    const { keys } = await setup();
    const e = await keys.getKey(ctxA, 'nope').catch((x: unknown) => x);
    expect(isKeyVaultError(e, KeyVaultErrorCode.KEY_NOT_FOUND)).toBe(true);
    expect(isKeysError(e)).toBe(false);
    // Neither the vault's name for the key (prefix, tenant hash), nor the vault's text, nor the request's name.
    expect((e as Error).message).toBe(`Reading the key failed: ${(e as KeyVaultError).codeName} (HTTP 404 KeyNotFound; no key of that name or version)`);
  });

  it('refuses dates the vault cannot hold (the SDK sends 32-bit seconds) before calling it', async () => {
    const { keys, vault } = await setup();
    expect(await code(keys.createKey(ctxA, { name: 'late', type: 'RSA', expiresOn: new Date('2099-01-01T00:00:00Z') }))).toBe(KeysErrorCode.KEYS_VALIDATION);
    expect(vault.calls.createKey ?? 0).toBe(0);
    await keys.createKey(ctxA, { name: 'late', type: 'RSA', expiresOn: new Date('2038-01-19T03:14:07Z') });
  });
});

describe('KeysService key cache', () => {
  it('concurrent uses of a cold key share one vault lookup', async () => {
    const { keys, vault } = await setup();
    await keys.createKey(ctxA, { name: 'hot', type: 'RSA' });
    keys.clearCache();
    const before = vault.calls.getKey ?? 0;
    await Promise.all(Array.from({ length: 20 }, () => keys.sign(ctxA, { name: 'hot', algorithm: 'RS256', digest: new Uint8Array(32) })));
    expect((vault.calls.getKey ?? 0) - before).toBe(1);
    expect(vault.calls.sign).toBe(20);
  });

  it("hands the caller's signal to the vault; a call dropped before it was sent audits nothing, one aborted in the vault is audited as cancelled (never a failure)", async () => {
    const { keys, vault, audit, metrics } = await setup();
    await keys.createKey(ctxA, { name: 'left', type: 'RSA' });
    await keys.getKey(ctxA, 'left');
    const signals: Array<AbortSignal | undefined> = [];
    const cancelled = (sent: boolean) => new KeyVaultError(KeyVaultErrorCode.CANCELLED, 'Signing with the key failed: CANCELLED (the caller left)', { operation: 'sign', sent });
    const sign = jest.spyOn(vault, 'sign');
    sign.mockImplementationOnce(async (_k, _a, _d, call) => {
      signals.push(call?.signal);
      throw cancelled(false);
    });
    sign.mockImplementationOnce(async (_k, _a, _d, call) => {
      signals.push(call?.signal);
      throw cancelled(true);
    });
    const gone = new AbortController();
    gone.abort();
    const ctx: OperationContext = { ...ctxA, signal: gone.signal };
    const before = audit.events.length;
    expect(await code(keys.sign(ctx, { name: 'left', algorithm: 'RS256', digest: sha256('x') }))).toBe(KeyVaultErrorCode.CANCELLED);
    expect(audit.events.length).toBe(before);
    expect(await code(keys.sign(ctx, { name: 'left', algorithm: 'RS256', digest: sha256('x') }))).toBe(KeyVaultErrorCode.CANCELLED);
    expect(audit.events.slice(before).map((e) => [e.action, e.result, e.errorCode])).toEqual([['key.sign', 'cancelled', '1019:CANCELLED']]);
    expect(signals).toEqual([gone.signal, gone.signal]);
    expect(metrics.snapshot()).toEqual(expect.arrayContaining([{ operation: 'sign', outcome: 'cancelled', count: 2 }]));
  });

  it('a caller who leaves a shared cold lookup stops waiting (CANCELLED, audited as cancelled); the lookup is aborted only when all have left', async () => {
    const { keys, vault, audit } = await setup();
    await keys.createKey(ctxA, { name: 'shared', type: 'RSA' });
    keys.clearCache();
    // The vault's lookups wait for the test; each records its signal.
    const lookups: Array<{ signal?: AbortSignal; release: () => void }> = [];
    const getKey = vault.getKey.bind(vault);
    jest.spyOn(vault, 'getKey').mockImplementation(async (name, version, call) => {
      await new Promise<void>((release) => lookups.push({ signal: call?.signal, release }));
      return getKey(name, version);
    });
    const use = (signal: AbortSignal) => keys.sign({ ...ctxA, signal }, { name: 'shared', algorithm: 'RS256', digest: sha256('x') });
    const callers = [new AbortController(), new AbortController(), new AbortController()];
    const before = audit.events.length;
    const [first, second, staying] = callers.map((c) => use(c.signal));
    await new Promise((r) => setImmediate(r));
    expect(lookups).toHaveLength(1);

    callers[0].abort();
    expect(await code(first)).toBe(KeyVaultErrorCode.CANCELLED);
    expect(lookups[0].signal?.aborted).toBe(false);
    lookups[0].release();
    expect(await staying).toMatchObject({ name: 'shared', algorithm: 'RS256' });
    expect(await second).toMatchObject({ name: 'shared' });
    const rows = audit.events.slice(before).map((e) => [e.action, e.result]);
    expect(rows).toEqual(expect.arrayContaining([['key.sign', 'cancelled'], ['key.sign', 'success']]));
    expect(rows.filter(([, result]) => result !== 'success' && result !== 'cancelled')).toEqual([]);

    // Cold again; every caller leaves: the lookup is aborted, and a caller after them looks the key up afresh.
    keys.clearCache();
    const leaving = [new AbortController(), new AbortController()];
    const gone = leaving.map((c) => use(c.signal));
    await new Promise((r) => setImmediate(r));
    leaving.forEach((c) => c.abort());
    expect(await Promise.all(gone.map(code))).toEqual([KeyVaultErrorCode.CANCELLED, KeyVaultErrorCode.CANCELLED]);
    expect(lookups[1].signal?.aborted).toBe(true);
    const late = use(new AbortController().signal);
    await new Promise((r) => setImmediate(r));
    expect(lookups).toHaveLength(3);
    lookups[2].release();
    expect(await late).toMatchObject({ name: 'shared' });
    lookups[1].release();
  });

  it('a lookup in flight while the key is deleted is not cached: the next use looks the key up again', async () => {
    const { keys, vault } = await setup();
    await keys.createKey(ctxA, { name: 'doomed', type: 'RSA' });
    keys.clearCache();
    const getKey = vault.getKey.bind(vault);
    let release!: () => void;
    const spy = jest.spyOn(vault, 'getKey').mockImplementationOnce(async (name, version) => {
      const key = await getKey(name, version); // read before the delete lands
      await new Promise<void>((r) => (release = r));
      return key;
    });
    const sign = () => keys.sign(ctxA, { name: 'doomed', algorithm: 'RS256', digest: sha256('x') });
    const inFlight = sign();
    await new Promise((r) => setImmediate(r));
    await keys.deleteKey(ctxA, 'doomed');
    release();
    await inFlight.catch(() => undefined); // its sign reaches a vault where the key is gone
    spy.mockRestore();
    // Deleted: the next use looks the key up (the vault says it is gone) instead of using the one read before the delete.
    const before = vault.calls.getKey ?? 0;
    expect(await code(sign())).toBe(KeyVaultErrorCode.KEY_NOT_FOUND);
    expect((vault.calls.getKey ?? 0) - before).toBe(1);
  });

  it('a caller who left ends its span UNSET, marked cancelled with the stage (not an error); a failure still ends ERROR', async () => {
    const spans = new InMemorySpanExporter();
    trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] }));
    try {
      const { keys, vault } = await setup();
      await keys.createKey(ctxA, { name: 'left', type: 'RSA' });
      const sign = jest.spyOn(vault, 'sign');
      for (const sent of [false, true]) {
        sign.mockRejectedValueOnce(new KeyVaultError(KeyVaultErrorCode.CANCELLED, 'Signing with the key failed: CANCELLED (the caller left)', { operation: 'sign', sent }));
      }
      sign.mockRejectedValueOnce(new KeyVaultError(KeyVaultErrorCode.SERVICE_UNAVAILABLE, 'Signing with the key failed: SERVICE_UNAVAILABLE; retry later', { operation: 'sign' }));
      for (let i = 0; i < 3; i++) await code(keys.sign(ctxA, { name: 'left', algorithm: 'RS256', digest: sha256('x') }));
      const signs = spans.getFinishedSpans().filter((s) => s.name === 'keys sign');
      expect(signs.map((s) => [s.status.code, s.attributes['keys.cancelled'], s.attributes['error.type'] === undefined])).toEqual([
        [SpanStatusCode.UNSET, 'not_sent', true],
        [SpanStatusCode.UNSET, 'in_flight', true],
        [SpanStatusCode.ERROR, undefined, false],
      ]);
    } finally {
      trace.disable();
    }
  });
});
