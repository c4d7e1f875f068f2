import { createHash, createPublicKey, verify as nodeVerify, type JsonWebKey } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { AuditService } from '@app/audit';
import { emulatorKeyClient } from '@app/keyvault-emulator';
import { generateApiKey } from '../apps/api/src/auth/api-keys';
import { UNAUTHENTICATED_TENANT } from '../apps/api/src/auth/auth.guard';
import { EmbeddedVault } from '../apps/api/src/vault/embedded-vault';
import { freePort, GrpcKeysClient, type GrpcReply } from './support/grpc-keys-client';
import { rawGrpcCall } from './support/raw-grpc-call';
import { startTestHost, TestHost } from './support/host';

const GRPC = { OK: 0, INVALID_ARGUMENT: 3, NOT_FOUND: 5, PERMISSION_DENIED: 7, RESOURCE_EXHAUSTED: 8, FAILED_PRECONDITION: 9, UNIMPLEMENTED: 12, UNAVAILABLE: 14, UNAUTHENTICATED: 16 };
const RATE_LIMIT = 40;
const b64 = (b: Buffer | string) => Buffer.from(b).toString('base64');
const sha256 = (s: string) => createHash('sha256').update(s).digest();

/** The ErrorInfo of a failed call's google.rpc.Status (from grpc-status-details-bin). */
function errorInfo(reply: GrpcReply) {
  return reply.error?.status?.details.find((d) => d.type === 'type.googleapis.com/google.rpc.ErrorInfo');
}

/** The keys API over gRPC, called by a real grpc-js client in another process, against a host on SQLite and its local vault. */
describe('keys gRPC API', () => {
  let host: TestHost;
  let client: GrpcKeysClient;
  let jwks: Server;
  let bearer: (claims: Record<string, unknown>, exp?: string) => Promise<string>;
  const user = generateApiKey('acme-keys', 'acme', ['keys:read', 'keys:write', 'keys:use']);
  const reader = generateApiKey('acme-keys-reader', 'acme', ['keys:read']);
  const auditor = generateApiKey('acme-auditor', 'acme', ['audit:read']);
  const other = generateApiKey('globex', 'globex', ['admin']);
  const flood = generateApiKey('acme-flood', 'acme', ['keys:read']);
  const as = (k: { key: string }) => ({ 'x-api-key': k.key });

  beforeAll(async () => {
    // An identity provider's JWKS, for bearer tokens in the call metadata.
    const { privateKey, publicKey } = await generateKeyPair('ES256');
    const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
    jwks = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk] })));
    await new Promise<void>((r) => jwks.listen(0, '127.0.0.1', r));
    bearer = (claims, exp = '5m') =>
      new SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).setSubject('svc-9').setIssuer('https://idp.example.test').setAudience('credential-vault').setIssuedAt().setExpirationTime(exp).sign(privateKey);
    const port = await freePort();
    host = await startTestHost('sqlite', {
      AUTH_API_KEYS: JSON.stringify([user.entry, reader.entry, auditor.entry, other.entry, flood.entry]),
      RATE_LIMIT_PER_MINUTE: String(RATE_LIMIT),
      // One attempt per vault call: a fault injected below reaches the caller as it is.
      KEY_VAULT_MAX_ATTEMPTS: '1',
      LOG_LEVEL: 'debug',
      AUTH_JWT_ISSUER: 'https://idp.example.test',
      AUTH_JWT_AUDIENCE: 'credential-vault',
      AUTH_JWT_JWKS_URL: `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/jwks`,
      GRPC_ENABLED: 'true',
      GRPC_PORT: String(port),
    });
    client = new GrpcKeysClient(`127.0.0.1:${port}`);
  });

  afterAll(async () => {
    await client?.close();
    await host?.close();
    await new Promise((r) => jwks?.close(r));
  });

  it('creates, gets, lists, signs, verifies, encrypts, decrypts and deletes from another process', async () => {
    expect(client.pid).toBeDefined();
    expect(client.pid).not.toBe(process.pid);

    const created = await client.call('CreateKey', { name: 'signer', key_type: 'RSA', key_size: 2048, tags: { env: 'test' } }, as(user));
    expect(created.error).toBeUndefined();
    expect(created.response).toMatchObject({ name: 'signer', key_type: 'RSA', key_size: 2048, enabled: true, tags: { env: 'test' } });
    expect(created.response.key_ops.sort()).toEqual(['decrypt', 'encrypt', 'sign', 'unwrapKey', 'verify', 'wrapKey']);
    const jwk = created.response.public_key;
    expect(jwk).toMatchObject({ kty: 'RSA', e: 'AQAB' });
    expect(Buffer.from(jwk.n, 'base64url')).toHaveLength(256);
    const version = created.response.version as string;

    const got = await client.call('GetKey', { name: 'signer' }, as(reader));
    expect(got.response).toMatchObject({ name: 'signer', version, public_key: { n: jwk.n } });
    expect((await client.call('GetKey', { name: 'signer', version }, as(reader))).response.version).toBe(version);

    const listed = await client.call('ListKeys', { tags: { env: 'test' } }, as(reader));
    expect(listed.response.keys.map((k: { name: string }) => k.name)).toEqual(['signer']);
    expect(listed.response.next_page_token).toBe('');

    // A signature made in the vault verifies with node:crypto from the public JWK, and through the API.
    const signed = await client.call('Sign', { name: 'signer', algorithm: 'PS256', digest: b64(sha256('hello')) }, as(user));
    expect(signed.response).toMatchObject({ version, algorithm: 'PS256' });
    const signature = Buffer.from(signed.response.signature, 'base64');
    const publicKey = createPublicKey({ key: jwk as JsonWebKey, format: 'jwk' });
    expect(nodeVerify('sha256', Buffer.from('hello'), { key: publicKey, padding: 6 /* RSA_PKCS1_PSS_PADDING */, saltLength: 32 }, signature)).toBe(true);
    const verified = await client.call('Verify', { name: 'signer', algorithm: 'PS256', digest: b64(sha256('hello')), signature: b64(signature) }, as(user));
    expect(verified.response).toMatchObject({ valid: true, version });
    const tampered = await client.call('Verify', { name: 'signer', algorithm: 'PS256', digest: b64(sha256('hellO')), signature: b64(signature) }, as(user));
    expect(tampered.response.valid).toBe(false);

    const plaintext = Buffer.from('a 32-byte data key, or a secret');
    const encrypted = await client.call('Encrypt', { name: 'signer', algorithm: 'RSA-OAEP-256', plaintext: b64(plaintext) }, as(user));
    expect(encrypted.response).toMatchObject({ version, algorithm: 'RSA-OAEP-256' });
    const ciphertext = encrypted.response.ciphertext as string;
    expect(Buffer.from(ciphertext, 'base64')).toHaveLength(256);
    const decrypted = await client.call('Decrypt', { name: 'signer', version, algorithm: 'RSA-OAEP-256', ciphertext }, as(user));
    expect(Buffer.from(decrypted.response.plaintext, 'base64').equals(plaintext)).toBe(true);

    const deleted = await client.call('DeleteKey', { name: 'signer' }, as(user));
    expect(deleted.response.name).toBe('signer');
    expect(Number(deleted.response.deleted_at.seconds)).toBeGreaterThan(Date.now() / 1000 - 600);
    const gone = await client.call('GetKey', { name: 'signer' }, as(user));
    expect(gone.error?.code).toBe(GRPC.NOT_FOUND);

    // Every use was audited with the caller's identity, and no row carries the plaintext or the signature.
    let rows: { action: string; actorId: string }[] = [];
    for (let i = 0; i < 50 && !rows.some((r) => r.action === 'key.decrypt'); i++) {
      await new Promise((r) => setTimeout(r, 100));
      rows = ((await (await fetch(`${host.baseUrl}/v1/audit?resource=key:signer&limit=100`, { headers: as(auditor) })).json()) as { items: typeof rows }).items;
    }
    expect(new Set(rows.map((r) => r.action))).toEqual(new Set(['key.create', 'key.get', 'key.sign', 'key.verify', 'key.encrypt', 'key.decrypt', 'key.delete']));
    expect(rows.every((r) => r.actorId === 'api-key:acme-keys' || r.actorId === 'api-key:acme-keys-reader')).toBe(true);
    const trail = JSON.stringify(rows);
    expect(trail).not.toContain(b64(plaintext));
    expect(trail).not.toContain(signed.response.signature);
    const logs = host.logs.join('\n');
    for (const data of [plaintext.toString(), b64(plaintext), ciphertext, signed.response.signature]) expect(logs).not.toContain(data);
  });

  it('refuses calls without credentials or with a wrong key (UNAUTHENTICATED) and without the scope (PERMISSION_DENIED), and audits them', async () => {
    const anonymous = await client.call('ListKeys', {});
    expect(anonymous.error).toMatchObject({ code: GRPC.UNAUTHENTICATED });
    expect(errorInfo(anonymous)).toMatchObject({ reason: 'UNAUTHENTICATED', domain: 'credential-vault', metadata: { code: '90004' } });
    const forged = await client.call('ListKeys', {}, { 'x-api-key': `${user.key.slice(0, -4)}AAAA` });
    expect(forged.error?.code).toBe(GRPC.UNAUTHENTICATED);
    expect((await client.call('ListKeys', {}, { authorization: 'Bearer not-a-jwt' })).error?.code).toBe(GRPC.UNAUTHENTICATED);
    const expired = await bearer({ tenant_id: 'acme', scope: 'keys:read' }, '-1m');
    expect((await client.call('ListKeys', {}, { authorization: `Bearer ${expired}` })).error?.code).toBe(GRPC.UNAUTHENTICATED);
    // A valid token works like an API key: its tenant, its scopes.
    const token = await bearer({ tenant_id: 'acme', scope: 'keys:read' });
    expect((await client.call('ListKeys', {}, { authorization: `Bearer ${token}` })).error).toBeUndefined();
    expect((await client.call('CreateKey', { name: 'by-jwt', key_type: 'EC' }, { authorization: `Bearer ${token}` })).error?.code).toBe(GRPC.PERMISSION_DENIED);

    const denied = await client.call('CreateKey', { name: 'nope', key_type: 'EC' }, as(reader));
    expect(denied.error).toMatchObject({ code: GRPC.PERMISSION_DENIED });
    expect(denied.error?.details).toMatch(/keys:write/);
    expect(errorInfo(denied)).toMatchObject({ reason: 'MISSING_SCOPE', metadata: { code: '90005' } });
    expect((await client.call('GetKey', { name: 'nope' }, as(reader))).error?.code).toBe(GRPC.NOT_FOUND);

    let refusals: { action: string; actorId: string; resource: string }[] = [];
    // Refusals are buffered reads: poll until the reader's is written (the JWT caller's may come first).
    for (let i = 0; i < 50 && !refusals.some((r) => r.actorId === 'api-key:acme-keys-reader'); i++) {
      await new Promise((r) => setTimeout(r, 100));
      refusals = ((await (await fetch(`${host.baseUrl}/v1/audit?action=access_denied`, { headers: as(auditor) })).json()) as { items: typeof refusals }).items;
    }
    expect(refusals).toContainEqual(expect.objectContaining({ actorId: 'api-key:acme-keys-reader', resource: 'gRPC /credential_vault.keys.v1.KeysService/CreateKey' }));
  });

  it('limits each client to RATE_LIMIT_PER_MINUTE calls per method, like HTTP routes (RESOURCE_EXHAUSTED past it)', async () => {
    for (let i = 0; i < RATE_LIMIT; i++) expect((await client.call('ListKeys', {}, as(flood))).error).toBeUndefined();
    const over = await client.call('ListKeys', {}, as(flood));
    expect(over.error?.code).toBe(GRPC.RESOURCE_EXHAUSTED);
    expect(errorInfo(over)).toMatchObject({ reason: 'RATE_LIMIT_EXCEEDED', domain: 'credential-vault', metadata: { code: '90013' } });
    // When to come back, as HTTP's Retry-After: the rest of the minute's window.
    const retry = over.error?.status?.details?.find((d: { type: string }) => d.type === 'type.googleapis.com/google.rpc.RetryInfo') as { retry_delay: { seconds: number } } | undefined;
    expect(retry?.retry_delay.seconds).toBeGreaterThan(0);
    expect(retry?.retry_delay.seconds).toBeLessThanOrEqual(60);
    // Per method and per client: the same client's other method, and another client's same method, still pass.
    expect((await client.call('GetKey', { name: 'missing' }, as(flood))).error?.code).toBe(GRPC.NOT_FOUND);
    expect((await client.call('ListKeys', {}, as(reader))).error).toBeUndefined();
  });

  it('limits failed authentications per IP (the counter HTTP uses too): past it RESOURCE_EXHAUSTED, not another audit row', async () => {
    const guesses: number[] = [];
    for (let i = 0; i < RATE_LIMIT + 2; i++) guesses.push((await client.call('ListKeys', {}, { 'x-api-key': `cvk_grpcguess_${String(i).padStart(43, 'x')}` })).error!.code);
    const first = guesses.indexOf(GRPC.RESOURCE_EXHAUSTED);
    expect(first).toBeGreaterThan(0);
    expect(guesses).toEqual([...Array(first).fill(GRPC.UNAUTHENTICATED), ...Array(RATE_LIMIT + 2 - first).fill(GRPC.RESOURCE_EXHAUSTED)]);
    const audit = host.app.get(AuditService);
    await audit.flush();
    expect((await audit.query({ tenantId: UNAUTHENTICATED_TENANT, actorId: 'claimed-api-key:grpcguess', limit: 100 })).items).toHaveLength(first);
    // An authenticated client from the same address is counted as itself.
    expect((await client.call('GetKey', { name: 'missing' }, as(reader))).error?.code).toBe(GRPC.NOT_FOUND);
  });

  it("maps the vault's throttling to RESOURCE_EXHAUSTED (1001, with a RetryInfo) and its outage to UNAVAILABLE (1006)", async () => {
    await client.call('CreateKey', { name: 'faulty', key_type: 'EC' }, as(user));
    const vault = host.app.get(EmbeddedVault).emulator!;
    const sign = () => client.call('Sign', { name: 'faulty', algorithm: 'ES256', digest: b64(sha256('f')) }, as(user));
    vault.injectFault({ kind: 'status', status: 429, retryAfterSeconds: 3, count: 1, operations: ['sign'] });
    const throttled = await sign();
    expect(throttled.error?.code).toBe(GRPC.RESOURCE_EXHAUSTED);
    expect(throttled.error?.trailers['cv-error-code']).toBe('1001');
    expect(throttled.error?.status?.details).toContainEqual({ type: 'type.googleapis.com/google.rpc.RetryInfo', retry_delay: { seconds: 3, nanos: 0 } });
    vault.injectFault({ kind: 'status', status: 503, count: 1, operations: ['sign'] });
    const down = await sign();
    expect(down.error?.code).toBe(GRPC.UNAVAILABLE);
    expect(errorInfo(down)?.metadata.code).toBe('1006');
    vault.clearFaults();
    expect((await sign()).error).toBeUndefined();
  });

  // Its one attempt (KEY_VAULT_MAX_ATTEMPTS 1) waited for the deleted key (404 for ever) to its timeout: DEADLINE_EXCEEDED after 10 s.
  it('answers a DeleteKey whose key an operator recovers at the vault meanwhile FAILED_PRECONDITION (1021 DELETE_UNDONE) within seconds; the key stays live', async () => {
    const HELD_MS = 2500;
    const created = await client.call('CreateKey', { name: 'recovered-meanwhile', key_type: 'EC' }, as(user));
    const vault = host.app.get(EmbeddedVault).emulator!;
    const vaultName = `cv-key-${sha256('acme').toString('hex').slice(0, 24)}-recovered-meanwhile`;
    const operator = emulatorKeyClient(vault, { maxRetries: 0 });
    vault.injectFault({ kind: 'latency', phase: 'response', latencyMs: HELD_MS, operations: ['deleteKey'], names: [vaultName], count: 1 });
    const started = Date.now();
    const deleting = client.call('DeleteKey', { name: 'recovered-meanwhile' }, as(user));
    while (!(await operator.getDeletedKey(vaultName).then(() => true, () => false))) await new Promise((r) => setTimeout(r, 10));
    await (await operator.beginRecoverDeletedKey(vaultName, { intervalInMs: 20 })).pollUntilDone();
    const answer = await deleting;
    expect(Date.now() - started).toBeLessThan(HELD_MS + 2000);
    expect([answer.error?.code, answer.error?.trailers['cv-error-code'], errorInfo(answer)?.reason]).toEqual([GRPC.FAILED_PRECONDITION, '1021', 'DELETE_UNDONE']);
    expect(answer.error?.details).not.toContain(vaultName);
    expect((await client.call('GetKey', { name: 'recovered-meanwhile' }, as(user))).response).toMatchObject({ version: created.response.version, enabled: true });
  });

  it("answers another tenant's key exactly like a missing one: NOT_FOUND with code 1003 in the status details", async () => {
    const created = await client.call('CreateKey', { name: 'acme-only', key_type: 'EC', curve: 'P-256' }, as(user));
    expect(created.response).toMatchObject({ key_type: 'EC', curve: 'P-256', key_size: 0 });
    const digest = b64(sha256('x'));
    const foreign = await client.call('Sign', { name: 'acme-only', algorithm: 'ES256', digest }, as(other));
    const missing = await client.call('Sign', { name: 'never-created', algorithm: 'ES256', digest }, as(other));
    for (const r of [foreign, missing]) {
      expect(r.error?.code).toBe(GRPC.NOT_FOUND);
      expect(r.error?.trailers['cv-error-code']).toBe('1003');
      expect(errorInfo(r)).toEqual({ type: 'type.googleapis.com/google.rpc.ErrorInfo', reason: 'KEY_NOT_FOUND', domain: 'credential-vault', metadata: { code: '1003' } });
      expect(r.error?.status).toMatchObject({ code: GRPC.NOT_FOUND });
    }
    expect(foreign.error?.details.replaceAll('acme-only', 'NAME')).toBe(missing.error?.details.replaceAll('never-created', 'NAME'));
    expect((await client.call('ListKeys', {}, as(other))).response.keys).toEqual([]);
    // Still acme's, untouched.
    expect((await client.call('Sign', { name: 'acme-only', algorithm: 'ES256', digest }, as(user))).response.signature).toBeDefined();
  });

  it('answers bad arguments with INVALID_ARGUMENT and the stable code in the details, creating nothing', async () => {
    const badType = await client.call('CreateKey', { name: 'bad-type', key_type: 'DSA' }, as(user));
    expect(badType.error?.code).toBe(GRPC.INVALID_ARGUMENT);
    expect(errorInfo(badType)?.metadata.code).toMatch(/^\d{4,5}$/);
    expect(badType.error?.trailers['cv-error-code']).toBe(errorInfo(badType)?.metadata.code);
    expect((await client.call('GetKey', { name: 'bad-type' }, as(user))).error?.code).toBe(GRPC.NOT_FOUND);

    await client.call('CreateKey', { name: 'enc', key_type: 'RSA' }, as(user));
    const secret = Buffer.from('do-not-echo-this-plaintext');
    const legacy = await client.call('Encrypt', { name: 'enc', algorithm: 'RSA1_5', plaintext: b64(secret) }, as(user));
    expect(legacy.error?.code).toBe(GRPC.INVALID_ARGUMENT);
    expect(errorInfo(legacy)).toMatchObject({ reason: 'ALGORITHM_NOT_ALLOWED', metadata: { code: '10001' } });
    const shortDigest = await client.call('Sign', { name: 'enc', algorithm: 'RS256', digest: b64(Buffer.alloc(20)) }, as(user));
    expect(shortDigest.error?.code).toBe(GRPC.INVALID_ARGUMENT);
    expect(errorInfo(shortDigest)).toMatchObject({ reason: 'KEYS_VALIDATION', metadata: { code: '10005' } });
    // Messages name the proto's fields, not the lib's (maxPageSize).
    const bigPage = await client.call('ListKeys', { page_size: 30 }, as(user));
    expect(bigPage.error).toMatchObject({ code: GRPC.INVALID_ARGUMENT, details: 'page_size must be an integer from 1 to 25' });
    const badName = await client.call('GetKey', { name: '../secrets/x' }, as(user));
    expect(badName.error?.code).toBe(GRPC.INVALID_ARGUMENT);
    // As over HTTP: a block longer than RSA-4096's is refused before the vault (it was sent to the vault and audited as a failure).
    const long = await client.call('Encrypt', { name: 'enc', algorithm: 'RSA-OAEP-256', plaintext: b64(Buffer.alloc(513, 1)) }, as(user));
    expect(errorInfo(long)).toMatchObject({ reason: 'KEYS_VALIDATION', metadata: { code: '10005' } });
    // Bytes that are not UTF-8 reach the server as U+FFFD: not stored in their place.
    const replaced = await client.call('CreateKey', { name: 'bad-tag', key_type: 'EC', tags: { t: 'a\uFFFDb' } }, as(user));
    expect(replaced.error?.code).toBe(GRPC.INVALID_ARGUMENT);
    expect((await client.call('GetKey', { name: 'bad-tag' }, as(user))).error?.code).toBe(GRPC.NOT_FOUND);
    for (const r of [badType, legacy, shortDigest, badName, long]) {
      expect(JSON.stringify(r.error)).not.toContain(b64(secret));
      expect(JSON.stringify(r.error)).not.toContain('do-not-echo');
    }
  });
});

describe('keys gRPC API switched off', () => {
  let host: TestHost;
  let port: number;

  beforeAll(async () => {
    port = await freePort();
    // GRPC_PORT alone does not open anything: GRPC_ENABLED is the switch.
    host = await startTestHost('sqlite', { GRPC_PORT: String(port) });
  });

  afterAll(async () => {
    await host?.close();
  });

  it('opens no gRPC port when GRPC_ENABLED is unset', async () => {
    const refused = await new Promise<string>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve('connected');
      });
      socket.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
    });
    expect(refused).toBe('ECONNREFUSED');
    const client = new GrpcKeysClient(`127.0.0.1:${port}`);
    try {
      expect((await client.call('ListKeys', {}, {}, 2000)).error?.code).toBe(GRPC.UNAVAILABLE);
    } finally {
      await client.close();
    }
    // The host itself is up.
    expect((await fetch(`${host.baseUrl}/health/live`)).status).toBe(200);
  });
});

/**
 * A scan of the gRPC port — unknown methods, requests that are not gRPC — counts as HTTP's 404s and 405s do: per IP, with
 * the failed authentications, so past RATE_LIMIT_PER_MINUTE it is refused (RESOURCE_EXHAUSTED; HTTP 429 for a request
 * that is not gRPC) while known clients from that IP are served. A host on SQLite with a limit of 4.
 */
describe('keys gRPC API: scans are rate limited', () => {
  let host: TestHost;
  let client: GrpcKeysClient;
  let address: string;
  const user = generateApiKey('scan-keys', 'scan', ['keys:read']);
  const LIMIT = 4;
  const as = (k: { key: string }) => ({ 'x-api-key': k.key });

  beforeAll(async () => {
    const port = await freePort();
    host = await startTestHost('sqlite', { AUTH_API_KEYS: JSON.stringify([user.entry]), RATE_LIMIT_PER_MINUTE: String(LIMIT), GRPC_ENABLED: 'true', GRPC_PORT: String(port) });
    address = `127.0.0.1:${port}`;
    client = new GrpcKeysClient(address);
  });
  afterAll(async () => {
    await client?.close();
    await host?.close();
  });

  it('counts unknown methods and requests that are not gRPC per IP with failed authentications; past the limit they are refused, known clients are not', async () => {
    const notGrpc = () => rawGrpcCall(address, '/credential_vault.keys.v1.KeysService/ListKeys', { compressed: false, bytes: Buffer.alloc(0) }, { 'content-type': 'application/json' });
    const answers: Array<number | string> = [];
    answers.push((await client.call('/credential_vault.keys.v1.KeysService/DropAll', {}, {})).error!.code);
    answers.push(`http ${(await notGrpc()).httpStatus}`);
    answers.push((await client.call('/admin.v1.Admin/Purge', {}, as(user))).error!.code);
    answers.push((await client.call('ListKeys', {}, { 'x-api-key': 'cvk_scanguess_invalid' })).error!.code);
    // Past the limit: an unknown method, a request that is not gRPC and a key guess alike.
    const over = await client.call('/credential_vault.keys.v1.KeysService/DropAll', {}, {});
    answers.push(over.error!.code);
    answers.push(`http ${(await notGrpc()).httpStatus}`);
    answers.push((await client.call('ListKeys', {}, { 'x-api-key': 'cvk_scanguess_invalid' })).error!.code);
    expect(answers).toEqual([GRPC.UNIMPLEMENTED, 'http 415', GRPC.UNIMPLEMENTED, GRPC.UNAUTHENTICATED, GRPC.RESOURCE_EXHAUSTED, 'http 429', GRPC.RESOURCE_EXHAUSTED]);
    // As the guard's refusal: a RetryInfo says when to come back, the request id is sent back.
    const retry = over.error?.status?.details?.find((d: { type: string }) => d.type === 'type.googleapis.com/google.rpc.RetryInfo') as { retry_delay: { seconds: number } } | undefined;
    expect(retry?.retry_delay.seconds).toBeGreaterThan(0);
    expect(over.error?.trailers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    // A known client from the same address is served.
    expect((await client.call('ListKeys', {}, as(user))).error).toBeUndefined();
  });
});
