import { createHash, randomBytes } from 'node:crypto';
import { CredentialCache } from '@app/credentials';
import { KeyVaultKeysProvider } from '@app/key-vault';
import { generateApiKey } from '../apps/api/src/auth/api-keys';
import type { TestHost } from './support/host';
import { jsonCaller, Replica, ReplicaPair, startReplicaPair, stopReplicaPair } from './support/replica';

const b64u = (b: Buffer | string) => Buffer.from(b).toString('base64url');
const digest = b64u(createHash('sha256').update('payload').digest());

/**
 * A key changed through one replica is no longer used from another replica's key cache: two replicas of the host
 * (two Nest apps in this process) on one PostgreSQL and one local vault, their key caches told through the
 * credentials cache's fan-out — Redis pub/sub with Redis, PostgreSQL NOTIFY without. `KEYS_CACHE_TTL_MS` stays at its
 * 60 s default: whatever B sees within the bound below, it saw from the fan-out, not from its cache expiring.
 */
describe.each(['redis', 'postgres'] as const)('key changes across replicas (fan-out over %s)', (transport) => {
  const prefix = `cvk-${randomBytes(4).toString('hex')}:`;
  const user = generateApiKey('acme-keys', 'acme', ['keys:read', 'keys:write', 'keys:use']);
  let pair: ReplicaPair;
  let a: TestHost;
  let b: Replica;

  beforeAll(async () => {
    pair = await startReplicaPair({ AUTH_API_KEYS: JSON.stringify([user.entry]), OAUTH_PROACTIVE_ENABLED: 'false' }, transport === 'redis' ? prefix : undefined);
    ({ a, b } = pair);
  });

  afterAll(() => stopReplicaPair(pair ?? {}, prefix));

  const call = jsonCaller(user.key);
  const sign = (base: string, name: string) => call(base, 'POST', `/v1/keys/${name}/sign`, { algorithm: 'RS256', digest });
  const verify = (base: string, name: string, signature: string) => call(base, 'POST', `/v1/keys/${name}/verify`, { algorithm: 'RS256', digest, signature });
  /** The first answer `done` accepts within `ms` (the fan-out's bound here), else the last one. */
  const within = async <T>(ms: number, read: () => Promise<T>, done: (v: T) => boolean): Promise<T> => {
    const deadline = Date.now() + ms;
    for (;;) {
      const v = await read();
      if (done(v) || Date.now() > deadline) return v;
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  /** A key on A, signed there and used on B (so that B caches it). */
  const keyUsedOnBoth = async (name: string) => {
    expect((await call(a.baseUrl, 'POST', '/v1/keys', { name, type: 'RSA' })).status).toBe(201);
    const signed = await sign(a.baseUrl, name);
    expect(signed.status).toBe(200);
    const warm = await verify(b.baseUrl, name, signed.body.signature);
    expect(warm.body).toMatchObject({ valid: true, verifiedIn: 'local' });
    expect((await sign(b.baseUrl, name)).status).toBe(200);
    return signed.body as { signature: string; version: string };
  };

  it('a key disabled on A: B refuses a local verify and a sign at once (not after its 60 s cache)', async () => {
    const { signature } = await keyUsedOnBoth('disabled-on-a');
    expect((await call(a.baseUrl, 'PATCH', '/v1/keys/disabled-on-a', { enabled: false })).body).toMatchObject({ enabled: false });
    const refused = await within(2000, () => verify(b.baseUrl, 'disabled-on-a', signature), (r) => r.status !== 200);
    expect([refused.status, refused.body.codeName]).toEqual([409, 'KEY_NOT_USABLE']);
    const signOnB = await sign(b.baseUrl, 'disabled-on-a');
    expect([signOnB.status, signOnB.body.codeName]).toEqual([409, 'KEY_NOT_USABLE']);
  });

  it("a key's operations narrowed on A: B refuses the sign it no longer allows", async () => {
    await keyUsedOnBoth('narrowed-on-a');
    expect((await call(a.baseUrl, 'PATCH', '/v1/keys/narrowed-on-a', { keyOps: ['verify'] })).status).toBe(200);
    const refused = await within(2000, () => sign(b.baseUrl, 'narrowed-on-a'), (r) => r.status !== 200);
    expect([refused.status, refused.body.codeName]).toEqual([400, 'KEY_OPERATION_NOT_PERMITTED']);
  });

  it('a key rotated on A: B signs with the new version', async () => {
    const { version } = await keyUsedOnBoth('rotated-on-a');
    const rotated = await call(a.baseUrl, 'POST', '/v1/keys/rotated-on-a/rotate');
    expect(rotated.status).toBe(200);
    expect(rotated.body.version).not.toBe(version);
    const signed = await within(2000, () => sign(b.baseUrl, 'rotated-on-a'), (r) => r.body.version !== version);
    expect(signed.body.version).toBe(rotated.body.version);
  });

  it('a key deleted on A: B answers KEY_NOT_FOUND', async () => {
    const { signature } = await keyUsedOnBoth('deleted-on-a');
    expect((await call(a.baseUrl, 'DELETE', '/v1/keys/deleted-on-a')).status).toBe(200);
    const gone = await within(2000, () => verify(b.baseUrl, 'deleted-on-a', signature), (r) => r.status !== 200);
    expect([gone.status, gone.body.codeName]).toEqual([404, 'KEY_NOT_FOUND']);
  });

  it("while B cannot hear every replica, it trusts no cached key: a change it was never told of is seen at once", async () => {
    const { signature } = await keyUsedOnBoth('unheard-on-b');
    const cache = b.app.get(CredentialCache);
    cache.setUnheardReplicas('a test: some replicas are not heard');
    try {
      // Disabled behind every replica's back (the vault itself): no announcement exists to be heard.
      const kid = (await call(a.baseUrl, 'GET', '/v1/keys/unheard-on-b')).body.publicKey.kid as string;
      const vaultName = new URL(kid).pathname.split('/')[2];
      await a.app.get(KeyVaultKeysProvider).updateKeyProperties(vaultName, undefined, { enabled: false });
      const refused = await verify(b.baseUrl, 'unheard-on-b', signature);
      expect([refused.status, refused.body.codeName]).toEqual([409, 'KEY_NOT_USABLE']);
    } finally {
      cache.setUnheardReplicas(undefined);
    }
  });
});
