import { AuditService } from '@app/audit';
import { createHash, createPublicKey, verify as nodeVerify, type JsonWebKey } from 'node:crypto';
import { emulatorKeyClient } from '@app/keyvault-emulator';
import { DATABASE_KINDS } from '@app/testing';
import { generateApiKey } from '../apps/api/src/auth/api-keys';
import { EmbeddedVault } from '../apps/api/src/vault/embedded-vault';
import { startTestHost, TestHost } from './support/host';

const b64u = (b: Buffer | string) => Buffer.from(b).toString('base64url');
const sha256 = (s: string) => createHash('sha256').update(s).digest();

/** The tenant-scoped keys API through real HTTP, a real database and the local vault (the official SDK over HTTPS). */
describe.each(DATABASE_KINDS)('keys HTTP API on %s', (kind) => {
  let host: TestHost;
  const user = generateApiKey('acme-keys', 'acme', ['keys:read', 'keys:write', 'keys:use']);
  const reader = generateApiKey('acme-keys-reader', 'acme', ['keys:read']);
  const manager = generateApiKey('acme-keys-manager', 'acme', ['keys:read', 'keys:write']);
  const auditor = generateApiKey('acme-auditor', 'acme', ['audit:read']);
  const other = generateApiKey('globex', 'globex', ['admin']);

  const call = async (k: { key: string } | null, method: string, path: string, body?: unknown) => {
    const res = await fetch(`${host.baseUrl}${path}`, {
      method,
      headers: { ...(k ? { 'x-api-key': k.key } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined, headers: res.headers, text };
  };
  const names = async (k: { key: string }) => ((await call(k, 'GET', '/v1/keys')).body.items as { name: string }[]).map((i) => i.name).sort();

  beforeAll(async () => {
    host = await startTestHost(kind, {
      AUTH_API_KEYS: JSON.stringify([user.entry, reader.entry, manager.entry, auditor.entry, other.entry]),
      LOG_LEVEL: 'debug', // log everything the host would, then look for data in it
    });
  });

  afterAll(async () => {
    await host?.close();
  });

  it('authenticates every route and enforces keys:read / keys:write / keys:use', async () => {
    for (const [method, path] of [
      ['GET', '/v1/keys'],
      ['POST', '/v1/keys'],
      ['GET', '/v1/keys/k'],
      ['POST', '/v1/keys/k/sign'],
      ['DELETE', '/v1/deleted-keys/k'],
    ]) {
      expect((await call(null, method, path, method === 'POST' ? {} : undefined)).status).toBe(401);
    }
    const denied = await call(reader, 'POST', '/v1/keys', { name: 'nope', type: 'EC' });
    expect(denied.status).toBe(403);
    expect(denied.body.message).toMatch(/keys:write/);
    const created = await call(manager, 'POST', '/v1/keys', { name: 'scoped', type: 'EC' });
    expect(created.status).toBe(201);
    // Managing a key is not using it.
    const sign = await call(manager, 'POST', '/v1/keys/scoped/sign', { algorithm: 'ES256', digest: b64u(sha256('x')) });
    expect(sign.status).toBe(403);
    expect(sign.body.message).toMatch(/keys:use/);
  });

  it('runs a key through its life: create, get, list, sign/verify, encrypt/decrypt, wrap/unwrap, rotate, versions, update, backup, delete, recover, purge, restore', async () => {
    const created = await call(user, 'POST', '/v1/keys', { name: 'api-signer', type: 'RSA', size: 3072, tags: { team: 'payments' }, expiresOn: '2031-01-01T00:00:00Z' });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ name: 'api-signer', type: 'RSA', size: 3072, enabled: true, tags: { team: 'payments' }, expiresOn: '2031-01-01T00:00:00.000Z' });
    expect(Object.keys(created.body.publicKey).sort()).toEqual(['e', 'key_ops', 'kid', 'kty', 'n']);
    const v1 = created.body.version as string;

    expect((await call(reader, 'GET', '/v1/keys/api-signer')).body).toMatchObject({ name: 'api-signer', version: v1, publicKey: { n: created.body.publicKey.n } });
    const listed = await call(reader, 'GET', '/v1/keys?tag=team=payments&limit=5');
    expect(listed.status).toBe(200);
    expect(listed.body.items.map((k: { name: string }) => k.name)).toEqual(['api-signer']);
    expect((await call(reader, 'GET', '/v1/keys?tag=team=other')).body.items).toEqual([]);

    // Signed in the vault, verified by node:crypto from the public JWK, and through the API.
    const signed = await call(user, 'POST', '/v1/keys/api-signer/sign', { algorithm: 'RS256', digest: b64u(sha256('payload')) });
    expect(signed.status).toBe(200);
    expect(signed.body).toMatchObject({ name: 'api-signer', version: v1, algorithm: 'RS256' });
    const signature = Buffer.from(signed.body.signature, 'base64url');
    expect(nodeVerify('sha256', Buffer.from('payload'), createPublicKey({ key: created.body.publicKey as JsonWebKey, format: 'jwk' }), signature)).toBe(true);
    const verify = (digest: Buffer, remote?: boolean) => call(user, 'POST', '/v1/keys/api-signer/verify', { algorithm: 'RS256', digest: b64u(digest), signature: b64u(signature), remote });
    expect((await verify(sha256('payload'))).body).toMatchObject({ valid: true, verifiedIn: 'local' });
    expect((await verify(sha256('payload'), true)).body).toMatchObject({ valid: true, verifiedIn: 'vault' });
    expect((await verify(sha256('tampered'))).body.valid).toBe(false);

    const plaintext = 'card-token-4242-secret';
    const encrypted = await call(user, 'POST', '/v1/keys/api-signer/encrypt', { algorithm: 'RSA-OAEP-256', plaintext: b64u(plaintext) });
    expect(encrypted.status).toBe(200);
    expect(encrypted.text).not.toContain(plaintext);
    const decrypted = await call(user, 'POST', '/v1/keys/api-signer/decrypt', { version: v1, algorithm: 'RSA-OAEP-256', ciphertext: encrypted.body.ciphertext });
    expect(Buffer.from(decrypted.body.plaintext, 'base64url').toString()).toBe(plaintext);
    expect(decrypted.headers.get('cache-control')).toBe('no-store');

    const dataKey = Buffer.alloc(32, 7);
    const wrapped = await call(user, 'POST', '/v1/keys/api-signer/wrap-key', { algorithm: 'RSA-OAEP', key: b64u(dataKey) });
    expect(wrapped.status).toBe(200);
    const unwrapped = await call(user, 'POST', '/v1/keys/api-signer/unwrap-key', { version: v1, algorithm: 'RSA-OAEP', wrappedKey: wrapped.body.wrappedKey });
    expect(Buffer.from(unwrapped.body.key, 'base64url').equals(dataKey)).toBe(true);

    // Rotation: a new version signs; the old one still decrypts what it encrypted.
    const rotated = await call(manager, 'POST', '/v1/keys/api-signer/rotate');
    expect(rotated.status).toBe(200);
    const v2 = rotated.body.version as string;
    expect(v2).not.toBe(v1);
    expect((await call(user, 'POST', '/v1/keys/api-signer/sign', { algorithm: 'RS256', digest: b64u(sha256('p')) })).body.version).toBe(v2);
    const versions = await call(reader, 'GET', '/v1/keys/api-signer/versions');
    expect(versions.body.items.map((v: { version: string }) => v.version).sort()).toEqual([v1, v2].sort());
    // The versions of no key: 404, as a get of it answers (an empty 200 before).
    expect((await call(reader, 'GET', '/v1/keys/no-such-signer/versions')).status).toBe(404);
    expect((await call(reader, 'GET', `/v1/keys/api-signer/versions/${v1}`)).body).toMatchObject({ version: v1, type: 'RSA' });

    // Disabling a version stops its use (409 KEY_NOT_USABLE); the latest keeps working; tags are replaced.
    expect((await call(manager, 'PATCH', `/v1/keys/api-signer/versions/${v1}`, { enabled: false })).body).toMatchObject({ version: v1, enabled: false });
    const disabled = await call(user, 'POST', '/v1/keys/api-signer/decrypt', { version: v1, algorithm: 'RSA-OAEP-256', ciphertext: encrypted.body.ciphertext });
    expect(disabled.status).toBe(409);
    expect(disabled.body).toMatchObject({ code: 10004, codeName: 'KEY_NOT_USABLE' });
    expect((await call(manager, 'PATCH', `/v1/keys/api-signer/versions/${v1}`, { enabled: true })).status).toBe(200);
    expect((await call(manager, 'PATCH', '/v1/keys/api-signer', { tags: { team: 'core' } })).body).toMatchObject({ version: v2, tags: { team: 'core' } });

    const backup = await call(manager, 'POST', '/v1/keys/api-signer/backup');
    expect(backup.status).toBe(200);
    expect(backup.headers.get('cache-control')).toBe('no-store');
    expect(backup.body.backup).toMatch(/^[A-Za-z0-9_-]+$/);

    const deleted = await call(manager, 'DELETE', '/v1/keys/api-signer');
    expect(deleted.status).toBe(200);
    expect(deleted.body.name).toBe('api-signer');
    // Said in the client's terms with the stable code: not the SDK's method ("Key Vault getKey failed"), nor the name.
    expect((await call(reader, 'GET', '/v1/keys/api-signer')).body).toMatchObject({
      statusCode: 404,
      code: 1003,
      codeName: 'KEY_NOT_FOUND',
      message: 'Reading the key failed: KEY_NOT_FOUND (HTTP 404 KeyNotFound; no key of that name or version)',
    });
    expect((await call(manager, 'POST', '/v1/deleted-keys/api-signer/recover')).body).toMatchObject({ name: 'api-signer', version: v2 });
    expect((await call(reader, 'GET', '/v1/keys/api-signer')).status).toBe(200);

    expect((await call(manager, 'DELETE', '/v1/keys/api-signer')).status).toBe(200);
    expect((await call(manager, 'DELETE', '/v1/deleted-keys/api-signer')).status).toBe(204);
    // As on Azure, the purge completes asynchronously (the vault's 1 s here) and the restore meanwhile answers 409 as over a
    // live name: the lib reads the name, finds it free and retries; if its attempts run out first, the answer says so
    // (1017) and a later restore works.
    let restored = await call(manager, 'POST', '/v1/keys/restore', { backup: backup.body.backup });
    if (restored.status !== 200) {
      expect([restored.status, restored.body.code]).toEqual([409, 1017]);
      await new Promise((r) => setTimeout(r, 1100));
      restored = await call(manager, 'POST', '/v1/keys/restore', { backup: backup.body.backup });
    }
    expect(restored.status).toBe(200);
    expect(restored.body).toMatchObject({ name: 'api-signer' });
    const again = await call(user, 'POST', '/v1/keys/api-signer/decrypt', { version: v1, algorithm: 'RSA-OAEP-256', ciphertext: encrypted.body.ciphertext });
    expect(Buffer.from(again.body.plaintext, 'base64url').toString()).toBe(plaintext);

    // No plaintext, ciphertext, signature, data key or backup in any log line.
    const logs = host.logs.join('\n');
    expect(logs.length).toBeGreaterThan(0);
    for (const data of [plaintext, b64u(plaintext), encrypted.body.ciphertext, signed.body.signature, b64u(dataKey), wrapped.body.wrappedKey, backup.body.backup.slice(0, 64)]) {
      expect(logs).not.toContain(data);
    }
  });

  it('a tag value holding a control character (NUL, line breaks, ESC, DEL) is 400 naming the tag by position, on create and update, changing nothing', async () => {
    expect((await call(manager, 'POST', '/v1/keys', { name: 'tagged', type: 'EC', tags: { team: 'core' } })).status).toBe(201);
    for (const bad of ['a\u0000b', 'two\nlines', 'cr\r', 'esc\u001b[2J', 'del\u007f']) {
      const created = await call(manager, 'POST', '/v1/keys', { name: 'tagged-bad', type: 'EC', tags: { team: 'core', note: bad } });
      const updated = await call(manager, 'PATCH', '/v1/keys/tagged', { tags: { team: 'core', note: bad } });
      for (const r of [created, updated]) {
        expect({ bad, status: r.status, code: r.body.codeName, message: r.body.message }).toEqual({
          bad,
          status: 400,
          code: 'KEYS_VALIDATION',
          message: expect.stringMatching(/^the value of tag #2 .*without control characters$/),
        });
      }
    }
    expect((await call(reader, 'GET', '/v1/keys/tagged-bad')).status).toBe(404);
    expect((await call(reader, 'GET', '/v1/keys/tagged')).body.tags).toEqual({ team: 'core' });
    // A list filter writes nothing and is still taken (it finds a key tagged so before the rule).
    expect((await call(reader, 'GET', '/v1/keys?tag=note=two%0Alines')).status).toBe(200);
  });

  // The vault keeps whole seconds (NumericDate) and the SDK cut the fraction off: notBefore .500 became .000, usable 500 ms early.
  it('stores sub-second dates rounded inward — notBefore up, expiresOn down — on create and update, and answers them as stored', async () => {
    const created = await call(manager, 'POST', '/v1/keys', { name: 'dated', type: 'EC', notBefore: '2029-06-01T12:00:00.500Z', expiresOn: '2031-01-01T00:00:00.999Z' });
    expect([created.status, created.body.notBefore, created.body.expiresOn]).toEqual([201, '2029-06-01T12:00:01.000Z', '2031-01-01T00:00:00.000Z']);
    const updated = await call(manager, 'PATCH', '/v1/keys/dated', { notBefore: '2029-07-01T00:00:00.001Z', expiresOn: '2030-01-01T00:00:59.999Z' });
    expect([updated.status, updated.body.notBefore, updated.body.expiresOn]).toEqual([200, '2029-07-01T00:00:01.000Z', '2030-01-01T00:00:59.000Z']);
    expect((await call(reader, 'GET', '/v1/keys/dated')).body).toMatchObject({ notBefore: '2029-07-01T00:00:01.000Z', expiresOn: '2030-01-01T00:00:59.000Z' });
    // Both in one second: no window is left once rounded, refused and nothing changed.
    const empty = await call(manager, 'PATCH', '/v1/keys/dated', { notBefore: '2030-01-01T00:00:00.200Z', expiresOn: '2030-01-01T00:00:00.800Z' });
    expect([empty.status, empty.body.codeName, empty.body.message]).toEqual([400, 'KEYS_VALIDATION', expect.stringMatching(/^notBefore must be before expiresOn \(in whole seconds/)]);
    expect((await call(reader, 'GET', '/v1/keys/dated')).body).toMatchObject({ notBefore: '2029-07-01T00:00:01.000Z', expiresOn: '2030-01-01T00:00:59.000Z' });
  });

  // The vault lists keys without their versions, and each item answered "version": "".
  it('lists keys without a version field (the versions route and a get name them)', async () => {
    const created = await call(manager, 'POST', '/v1/keys', { name: 'listed-one', type: 'EC', tags: { probe: 'list-version' } });
    const listed = await call(reader, 'GET', '/v1/keys?tag=probe=list-version');
    expect(listed.body.items).toEqual([expect.objectContaining({ name: 'listed-one', enabled: true, tags: { probe: 'list-version' } })]);
    expect(listed.body.items[0]).not.toHaveProperty('version');
    expect((await call(reader, 'GET', '/v1/keys/listed-one/versions')).body.items).toEqual([expect.objectContaining({ name: 'listed-one', version: created.body.version })]);
  });

  // It was stored as sent (keyOps ["sign","sign"]) and answered so by every read after.
  it('keyOps naming an operation twice is 400 KEYS_VALIDATION on create, update and a version update, changing nothing', async () => {
    const created = await call(manager, 'POST', '/v1/keys', { name: 'ops-once', type: 'RSA', keyOps: ['sign', 'verify'] });
    expect(created.status).toBe(201);
    const answers = [
      await call(manager, 'POST', '/v1/keys', { name: 'ops-twice', type: 'EC', keyOps: ['sign', 'sign'] }),
      await call(manager, 'PATCH', '/v1/keys/ops-once', { keyOps: ['sign', 'verify', 'sign'] }),
      await call(manager, 'PATCH', `/v1/keys/ops-once/versions/${created.body.version}`, { keyOps: ['encrypt', 'decrypt', 'decrypt'] }),
    ];
    expect(answers.map((r) => [r.status, r.body.codeName, r.body.message])).toEqual(
      Array(3).fill([400, 'KEYS_VALIDATION', 'keyOps must name each operation once']),
    );
    expect((await call(reader, 'GET', '/v1/keys/ops-twice')).status).toBe(404);
    expect((await call(reader, 'GET', '/v1/keys/ops-once')).body).toMatchObject({ version: created.body.version, keyOps: ['sign', 'verify'] });
  });

  // It answered 200 with the key: the SDK's recover poller reads the key first and stops there when it is live.
  it('answers a recover of a key that is not deleted 404, as for a key that never existed, and leaves it as it was', async () => {
    const created = await call(manager, 'POST', '/v1/keys', { name: 'live-one', type: 'EC' });
    expect(created.status).toBe(201);
    const live = await call(manager, 'POST', '/v1/deleted-keys/live-one/recover');
    const never = await call(manager, 'POST', '/v1/deleted-keys/never-made/recover');
    expect([live.status, live.body.code]).toEqual([404, never.body.code]);
    expect(live.body.message).toMatch(/not deleted/);
    expect((await call(reader, 'GET', '/v1/keys/live-one')).body).toMatchObject({ name: 'live-one', version: created.body.version, enabled: true });
  });

  // It answered 409 KEY_VAULT_CONFLICT, "a concurrent operation on the same object": the vault's 409 for a taken name.
  it('answers a restore whose key still exists 409 KEY_ALREADY_EXISTS, as a create of a taken name, and leaves the key as it was', async () => {
    expect((await call(manager, 'POST', '/v1/keys', { name: 'kept-one', type: 'EC' })).status).toBe(201);
    const backup = (await call(manager, 'POST', '/v1/keys/kept-one/backup')).body.backup as string;
    const rotated = await call(manager, 'POST', '/v1/keys/kept-one/rotate');
    const taken = await call(manager, 'POST', '/v1/keys/restore', { backup });
    expect([taken.status, taken.body.codeName, taken.body.message]).toEqual([409, 'KEY_ALREADY_EXISTS', 'a key of that name exists (a restore whose answer was lost may have made it: GET it and compare its versions with the backup before deleting anything); to restore over it, delete and purge it first']);
    expect((await call(reader, 'GET', '/v1/keys/kept-one')).body).toMatchObject({ name: 'kept-one', version: rotated.body.version });
  });

  // The vault's own answer to a restore over a soft-deleted name, and libs/key-vault's for a plain 409 whose name then reads
  // soft-deleted (f673a04): DELETED_BUT_RECOVERABLE, said in the client's terms, naming no vault name; recover works.
  it('answers a restore over a soft-deleted key 409 DELETED_BUT_RECOVERABLE (recover or purge it), and leaves it recoverable', async () => {
    const created = await call(manager, 'POST', '/v1/keys', { name: 'binned-one', type: 'EC' });
    const backup = (await call(manager, 'POST', '/v1/keys/binned-one/backup')).body.backup as string;
    expect((await call(manager, 'DELETE', '/v1/keys/binned-one')).status).toBe(200);
    const refused = await call(manager, 'POST', '/v1/keys/restore', { backup });
    expect([refused.status, refused.body.code, refused.body.codeName]).toEqual([409, 1008, 'DELETED_BUT_RECOVERABLE']);
    expect(refused.body.message).toMatch(/soft-deleted; recover or purge it first/);
    expect(refused.body.message).not.toMatch(/binned|acme/i);
    expect((await call(manager, 'POST', '/v1/deleted-keys/binned-one/recover')).body).toMatchObject({ name: 'binned-one', version: created.body.version });
  });

  // It answered 200 "deleted" after ≈ 10 s: the wait for the deleted key read it (404 for ever) to the attempt's timeout,
  // and the retry deleted the key the operator had recovered again.
  it('answers a delete whose key an operator recovers at the vault meanwhile 409 DELETE_UNDONE within seconds, and leaves the key live and usable', async () => {
    /** How long the vault holds the delete's answer back (the deletion done): room for the recover. */
    const HELD_MS = 2500;
    const created = await call(manager, 'POST', '/v1/keys', { name: 'recovered-meanwhile', type: 'EC' });
    const vault = host.app.get(EmbeddedVault).emulator!;
    const vaultName = `cv-key-${sha256('acme').toString('hex').slice(0, 24)}-recovered-meanwhile`;
    const operator = emulatorKeyClient(vault, { maxRetries: 0 });
    vault.injectFault({ kind: 'latency', phase: 'response', latencyMs: HELD_MS, operations: ['deleteKey'], names: [vaultName], count: 1 });
    const deletes = vault.stats().byOperation.deleteKey ?? 0;
    const started = Date.now();
    const deleting = call(manager, 'DELETE', '/v1/keys/recovered-meanwhile');
    while (!(await operator.getDeletedKey(vaultName).then(() => true, () => false))) await new Promise((r) => setTimeout(r, 10));
    await (await operator.beginRecoverDeletedKey(vaultName, { intervalInMs: 20 })).pollUntilDone();
    const answer = await deleting;
    expect(Date.now() - started).toBeLessThan(HELD_MS + 2000);
    expect([answer.status, answer.body.code, answer.body.codeName]).toEqual([409, 1021, 'DELETE_UNDONE']);
    expect(answer.body.message).toMatch(/recovered \(or created anew\) while its deletion completed; it is live/);
    expect(answer.text).not.toContain(vaultName);
    // One DELETE: nothing deleted the recovered key again. It is live, as it was, and signs.
    expect((vault.stats().byOperation.deleteKey ?? 0) - deletes).toBe(1);
    expect((await call(reader, 'GET', '/v1/keys/recovered-meanwhile')).body).toMatchObject({ version: created.body.version, enabled: true });
    expect((await call(user, 'POST', '/v1/keys/recovered-meanwhile/sign', { algorithm: 'ES256', digest: b64u(sha256('x')) })).status).toBe(200);
    await host.app.get(AuditService).flush();
    const rows = (await call(auditor, 'GET', '/v1/audit?action=key.delete&resource=key:recovered-meanwhile')).body.items as Array<Record<string, unknown>>;
    expect(rows.map((r) => [r.result, r.errorCode])).toEqual([['failure', '1021:DELETE_UNDONE']]);
  });

  it("answers another tenant's key exactly like a missing one, on every route, and changes nothing", async () => {
    await call(user, 'POST', '/v1/keys', { name: 'acme-private', type: 'RSA' });
    const backup = (await call(user, 'POST', '/v1/keys/acme-private/backup')).body.backup as string;
    const attempts: [string, string, unknown?][] = [
      ['GET', ''],
      ['GET', '/versions'],
      ['PATCH', '', { enabled: false }],
      ['POST', '/rotate'],
      ['POST', '/backup'],
      ['POST', '/sign', { algorithm: 'RS256', digest: b64u(sha256('x')) }],
      ['POST', '/encrypt', { algorithm: 'RSA-OAEP', plaintext: b64u('x') }],
      ['DELETE', ''],
    ];
    for (const [method, suffix, body] of attempts) {
      const foreign = await call(other, method, `/v1/keys/acme-private${suffix}`, body);
      const missing = await call(other, method, `/v1/keys/never-made${suffix}`, body);
      expect([method, suffix, foreign.status]).toEqual([method, suffix, missing.status]);
      expect(foreign.status).toBe(404);
      expect(foreign.body.code).toBe(missing.body.code);
      expect(foreign.body.message.replaceAll('acme-private', 'N')).toBe(missing.body.message.replaceAll('never-made', 'N'));
    }
    expect((await call(other, 'POST', '/v1/deleted-keys/acme-private/recover')).status).toBe(404);
    // acme's backup does not restore into another tenant.
    const stolen = await call(other, 'POST', '/v1/keys/restore', { backup });
    expect(stolen.status).toBe(400);
    expect(stolen.body.code).toBe(10007);
    // Refused like the other attempts, and audited like them in the caller's tenant (it was answered, unaudited).
    await host.app.get(AuditService).flush();
    const restores = (await call(other, 'GET', '/v1/audit?action=key.restore')).body.items as Array<Record<string, unknown>>;
    expect(restores.map((r) => [r.resource, r.result, r.errorCode, r.actorId])).toEqual([['key:*', 'failure', '10007:INVALID_KEY_BACKUP', 'api-key:globex']]);
    expect(await names(other)).toEqual([]);
    expect((await call(user, 'GET', '/v1/keys/acme-private')).body).toMatchObject({ enabled: true });
  });

  it.each([
    // The unknown name is never repeated (it could be pasted data); a near miss gets the declared name. 90001: the host's
    // VALIDATION_FAILED (its input checks), 100xx: the keys lib's.
    ['an unknown field', 'POST', '/v1/keys', { name: 'k1', type: 'RSA', sise: 2048 }, /not accepted \(did you mean size\?\)/, 90001],
    ['an unknown key type', 'POST', '/v1/keys', { name: 'k1', type: 'DSA' }, /type must be one of: RSA, EC/, 90001],
    ['an RSA size of 1024', 'POST', '/v1/keys', { name: 'k1', type: 'RSA', size: 1024 }, /size must be one of/, 90001],
    ['a bad key name', 'POST', '/v1/keys', { name: 'no_underscores!', type: 'EC' }, /key name/, 10005],
    ['a date that is not RFC 3339', 'POST', '/v1/keys', { name: 'k1', type: 'EC', expiresOn: 'tomorrow' }, /expiresOn must be an RFC 3339/, 90001],
    ['standard base64 instead of base64url', 'POST', '/v1/keys/bad-input/sign', { algorithm: 'RS256', digest: sha256('x').toString('base64') + '+/' }, /digest must be base64url/, 90001],
    ['padded base64url', 'POST', '/v1/keys/bad-input/encrypt', { algorithm: 'RSA-OAEP', plaintext: 'c2VjcmV0LXBsYWludGV4dA==' }, /plaintext must be base64url/, 90001],
    ['a digest that is a number', 'POST', '/v1/keys/bad-input/sign', { algorithm: 'RS256', digest: 42 }, /digest must be base64url/, 90001],
    ['an HMAC algorithm', 'POST', '/v1/keys/bad-input/sign', { algorithm: 'HS256', digest: b64u(sha256('x')) }, /algorithm must be one of: RS256/, 90001],
    ['a digest of the wrong size', 'POST', '/v1/keys/bad-input/sign', { algorithm: 'RS512', digest: b64u(sha256('x')) }, /64-byte digest/, 10005],
    ['an EC algorithm on an RSA key', 'POST', '/v1/keys/bad-input/sign', { algorithm: 'ES256', digest: b64u(sha256('x')) }, /needs an EC key/, 10002],
    ['RSA1_5 (legacy, off by default)', 'POST', '/v1/keys/bad-input/encrypt', { algorithm: 'RSA1_5', plaintext: b64u('secret-plaintext') }, /RSA1_5 is refused/, 10001],
    ['a bad tag filter', 'GET', '/v1/keys?tag=novalue', undefined, /name=value/, 90001],
    ['a page size over 25', 'GET', '/v1/keys?limit=26', undefined, /limit must be a decimal integer from 1 to 25/, 90001],
    // The query parameter is named as the caller sent it (`cursor`), never the lib's continuationToken.
    ['a forged cursor', 'GET', '/v1/keys?cursor=bm90LWEtY3Vyc29y', undefined, /^"cursor is not a cursor returned by this list"$/, 10005],
    ['a cursor carrying another vault list', 'GET', `/v1/keys?cursor=${b64u(JSON.stringify({ l: 'https://evil.example/keys?api-version=7.6', s: 0 }))}`, undefined, /^"cursor is not a cursor returned by this list"$/, 10005],
    ['a forged cursor of the versions', 'GET', '/v1/keys/bad-input/versions?cursor=bm90LWEtY3Vyc29y', undefined, /^"cursor is not a cursor returned by this list"$/, 10005],
    ['a bad key name in the path', 'GET', '/v1/keys/bad.name', undefined, /key name/, 10005],
  ])('rejects %s with 400, says what is wrong, never echoes data, and changes nothing', async (_name, method, path, body, message, code) => {
    if ((await call(user, 'GET', '/v1/keys/bad-input')).status === 404) await call(user, 'POST', '/v1/keys', { name: 'bad-input', type: 'RSA' });
    const before = await names(user);
    const r = await call(user, method, path, body);
    expect(r.status).toBe(400);
    expect(JSON.stringify(r.body.message)).toMatch(message);
    expect(r.body.code).toBe(code);
    expect(r.text).not.toContain('secret-plaintext');
    expect(r.text).not.toContain(b64u('secret-plaintext'));
    expect(r.text).not.toContain('c2VjcmV0LXBsYWludGV4dA');
    expect(await names(user)).toEqual(before);
  });

  it('audits every operation with the caller and algorithm, never the data', async () => {
    await call(user, 'POST', '/v1/keys', { name: 'audited', type: 'EC', curve: 'P-384' });
    const plaintextDigest = b64u(sha256('audited-payload'));
    const signed = await call(user, 'POST', '/v1/keys/audited/sign', { algorithm: 'ES384', digest: b64u(createHash('sha384').update('audited-payload').digest()) });
    expect(signed.status).toBe(200);
    expect((await call(user, 'POST', '/v1/keys/audited/sign', { algorithm: 'ES256', digest: plaintextDigest })).status).toBe(400);
    let rows: { action: string; result: string; actorId: string; details?: Record<string, unknown> }[] = [];
    for (let i = 0; i < 50 && rows.length < 3; i++) {
      await new Promise((r) => setTimeout(r, 100));
      rows = (await call(auditor, 'GET', '/v1/audit?resource=key:audited')).body.items;
    }
    expect(rows.map((r) => [r.action, r.result, r.actorId]).sort()).toEqual(
      [
        ['key.create', 'success', 'api-key:acme-keys'],
        ['key.sign', 'failure', 'api-key:acme-keys'],
        ['key.sign', 'success', 'api-key:acme-keys'],
      ].sort(),
    );
    expect(rows.find((r) => r.action === 'key.sign' && r.result === 'success')?.details).toMatchObject({ algorithm: 'ES384' });
    const trail = JSON.stringify((await call(auditor, 'GET', '/v1/audit?limit=500')).body);
    expect(trail).not.toContain(signed.body.signature);
    expect(trail).not.toContain(plaintextDigest);
    expect(trail).not.toContain('card-token-4242-secret');
  });

  it('documents every keys route in the OpenAPI document', async () => {
    const doc = (await call(null, 'GET', '/docs/json')).body as { paths: Record<string, Record<string, unknown>> };
    const routes = Object.entries(doc.paths)
      .filter(([p]) => p.startsWith('/v1/keys') || p.startsWith('/v1/deleted-keys'))
      .flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`))
      .sort();
    expect(routes).toEqual(
      [
        'POST /v1/keys',
        'GET /v1/keys',
        'POST /v1/keys/restore',
        'GET /v1/keys/{name}',
        'PATCH /v1/keys/{name}',
        'DELETE /v1/keys/{name}',
        'GET /v1/keys/{name}/versions',
        'GET /v1/keys/{name}/versions/{version}',
        'PATCH /v1/keys/{name}/versions/{version}',
        'POST /v1/keys/{name}/rotate',
        'POST /v1/keys/{name}/backup',
        'POST /v1/keys/{name}/sign',
        'POST /v1/keys/{name}/verify',
        'POST /v1/keys/{name}/encrypt',
        'POST /v1/keys/{name}/decrypt',
        'POST /v1/keys/{name}/wrap-key',
        'POST /v1/keys/{name}/unwrap-key',
        'POST /v1/deleted-keys/{name}/recover',
        'DELETE /v1/deleted-keys/{name}',
      ].sort(),
    );
  });
});
