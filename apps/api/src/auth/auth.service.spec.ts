import { Test } from '@nestjs/testing';
import { exportJWK, generateKeyPair, SignJWT, createLocalJWKSet, errors } from 'jose';
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { APP_CONFIG, loadAppConfig } from '../config/app.config';
import { ApiKeyVerifier, generateApiKey } from './api-keys';
import { AuthenticationFailed, AuthService } from './auth.service';
import { JwtClaimError, JwtClaimErrorCode, JwtVerifier } from './jwt-verifier';

describe('API keys', () => {
  it('accepts the generated key and nothing else, keeping only a hash', () => {
    const { key, entry } = generateApiKey('ci', 'acme', ['credentials:read']);
    const verifier = new ApiKeyVerifier([entry]);
    // The whole secret part: base64url may itself contain "_", so split('_')[2] could be one character.
    const secret = key.slice('cvk_ci_'.length);
    expect(secret.length).toBeGreaterThanOrEqual(43);
    expect(JSON.stringify(entry)).not.toContain(secret);
    expect(verifier.verify(key)?.tenant).toBe('acme');
    expect(verifier.verify(key.slice(0, -1) + (key.endsWith('A') ? 'B' : 'A'))).toBeUndefined();
    expect(verifier.verify(`cvk_other_${secret}`)).toBeUndefined();
    expect(verifier.verify('garbage')).toBeUndefined();
  });

  it('accepts both keys of one id while a rotation overlaps (README: add the new entry, roll, remove the old), each with its own scopes', () => {
    const old = generateApiKey('ops', 'acme', ['credentials:read', 'credentials:write']);
    const rotated = generateApiKey('ops', 'acme', ['credentials:read']);
    const verifier = new ApiKeyVerifier([old.entry, rotated.entry]);
    expect(verifier.verify(old.key)?.scopes).toEqual(['credentials:read', 'credentials:write']);
    expect(verifier.verify(rotated.key)?.scopes).toEqual(['credentials:read']);
    expect(verifier.verify(generateApiKey('ops', 'acme', ['credentials:read']).key)).toBeUndefined();
    // Once the old entry is removed, only the new key passes.
    expect(new ApiKeyVerifier([rotated.entry]).verify(old.key)).toBeUndefined();
  });
});

const cfg = {
  issuer: 'https://issuer.test',
  audience: 'credential-vault',
  jwksUrl: 'https://issuer.test/jwks',
  tenantClaim: 'tenant_id',
  scopeClaim: 'scope',
  algorithms: ['ES256'],
};

/** A verifier trusting one fresh key (kid k1), and a signer with it (or with another key under the same kid). */
async function setup() {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256' };
  const verifier = new JwtVerifier(cfg, createLocalJWKSet({ keys: [jwk] }));
  const forged = (await generateKeyPair('ES256')).privateKey;
  /** `sub: null` signs a token without a subject, `exp: null` one without an expiry. */
  const sign = (claims: Record<string, unknown>, opts: { iss?: string; aud?: string; exp?: string | null; forge?: boolean; sub?: string | null } = {}) => {
    const jwt = new SignJWT(opts.sub === null ? claims : { sub: opts.sub ?? 'user-1', ...claims })
      .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
      .setIssuer(opts.iss ?? cfg.issuer)
      .setAudience(opts.aud ?? cfg.audience)
      .setIssuedAt();
    return (opts.exp === null ? jwt : jwt.setExpirationTime(opts.exp ?? '5m')).sign(opts.forge ? forged : privateKey);
  };
  return { verifier, sign };
}

describe('JwtVerifier', () => {
  it('returns subject, tenant and scopes of a valid token', async () => {
    const { verifier, sign } = await setup();
    const t = await verifier.verify(await sign({ tenant_id: 'acme', scope: 'credentials:read audit:read' }));
    expect(t).toEqual({ subject: 'user-1', tenantId: 'acme', scopes: ['credentials:read', 'audit:read'] });
  });

  it('rejects a wrong issuer, a wrong audience, an expired token and a token without tenant', async () => {
    const { verifier, sign } = await setup();
    await expect(verifier.verify(await sign({ tenant_id: 'a' }, { iss: 'https://evil' }))).rejects.toThrow();
    await expect(verifier.verify(await sign({ tenant_id: 'a' }, { aud: 'other' }))).rejects.toThrow();
    await expect(verifier.verify(await sign({ tenant_id: 'a' }, { exp: '-2m' }))).rejects.toThrow();
    await expect(verifier.verify(await sign({}))).rejects.toThrow(/tenant_id/);
  });

  it('refuses a token lacking a claim it needs with a typed error naming the claim, never its value', async () => {
    const { verifier, sign } = await setup();
    const refusal = (token: string) => verifier.verify(token).then(() => undefined, (e: unknown) => e);
    const marker = 'MARKER-claim-7c1d';
    const cases: Array<[string, JwtClaimErrorCode, string]> = [
      [await sign({}), JwtClaimErrorCode.MISSING, 'tenant_id'],
      [await sign({ tenant_id: '' }), JwtClaimErrorCode.INVALID, 'tenant_id'],
      [await sign({ tenant_id: [marker] }), JwtClaimErrorCode.INVALID, 'tenant_id'],
      [await sign({ tenant_id: 'acme' }, { sub: null }), JwtClaimErrorCode.MISSING, 'sub'],
      [await sign({ tenant_id: 'acme', sub: '' }), JwtClaimErrorCode.INVALID, 'sub'],
      [await sign({ tenant_id: 'acme', sub: 123 }), JwtClaimErrorCode.INVALID, 'sub'],
      [await sign({ tenant_id: 'acme', sub: [marker] }), JwtClaimErrorCode.INVALID, 'sub'],
    ];
    for (const [token, code, claim] of cases) {
      const e = await refusal(token);
      expect(e).toBeInstanceOf(JwtClaimError);
      expect(e).toMatchObject({ name: 'JwtClaimError', code, claim });
      expect(JSON.stringify({ ...(e as object), message: (e as Error).message })).not.toContain(marker);
    }
  });
});

describe('AuthService', () => {
  it('creates a development admin key in a 0600 file when no auth is configured, and reuses it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cv-auth-'));
    const config = loadAppConfig({ AUTH_DEV_API_KEY_FILE: join(dir, 'dev-key') });
    const build = async () => {
      const mod = await Test.createTestingModule({ providers: [AuthService, { provide: APP_CONFIG, useValue: config }] }).compile();
      await mod.init();
      return mod.get(AuthService);
    };
    const auth = await build();
    const key = readFileSync(join(dir, 'dev-key'), 'utf8').trim();
    expect(statSync(join(dir, 'dev-key')).mode & 0o777).toBe(0o600);
    const p = await auth.authenticate({ 'x-api-key': key });
    expect(p).toMatchObject({ id: 'api-key:dev', tenantId: 'dev', method: 'api-key' });
    expect(p.scopes.has('admin')).toBe(true);
    // A restart accepts the same key.
    expect((await (await build()).authenticate({ 'x-api-key': key })).tenantId).toBe('dev');
  });

  it('refuses missing and wrong credentials with a reason, and bearer tokens when no issuer is configured', async () => {
    const { entry } = generateApiKey('k', 'acme', ['credentials:read']);
    const config = loadAppConfig({ AUTH_API_KEYS: JSON.stringify([entry]) });
    expect(config.auth.devApiKeyFile).toBeUndefined();
    const auth = new AuthService(config);
    await expect(auth.authenticate({})).rejects.toThrow(AuthenticationFailed);
    await expect(auth.authenticate({ 'x-api-key': 'cvk_k_wrongwrongwrongwrongwrong' })).rejects.toThrow(/invalid API key/);
    await expect(auth.authenticate({ authorization: 'Bearer abc' })).rejects.toThrow(/no JWT issuer/);
  });

  describe('a refused bearer token', () => {
    /** An AuthService whose JWT verifier trusts `setup()`'s key (the configured JWKS URL is never fetched). */
    async function bearerAuth(verifier?: Pick<JwtVerifier, 'verify'>) {
      const t = await setup();
      const config = loadAppConfig({ AUTH_JWT_ISSUER: cfg.issuer, AUTH_JWT_AUDIENCE: cfg.audience, AUTH_JWT_JWKS_URL: cfg.jwksUrl, AUTH_JWT_ALGORITHMS: 'ES256' });
      const auth = new AuthService(config);
      Object.assign(auth, { jwt: verifier ?? t.verifier });
      const refusal = async (token: string) => {
        const e = await auth.authenticate({ authorization: `Bearer ${token}` }).then(() => undefined, (err: unknown) => err);
        expect(e).toBeInstanceOf(AuthenticationFailed);
        return (e as Error).message;
      };
      return { ...t, auth, refusal };
    }

    it('says why in fixed words per jose error code: expired, bad signature, which claim, malformed', async () => {
      const { sign, refusal } = await bearerAuth();
      expect(await refusal(await sign({ tenant_id: 'a' }, { exp: '-2m' }))).toBe('invalid bearer token: the token has expired');
      expect(await refusal(await sign({ tenant_id: 'a' }, { forge: true }))).toBe('invalid bearer token: signature verification failed');
      expect(await refusal(await sign({ tenant_id: 'a' }, { aud: 'other' }))).toBe('invalid bearer token: the "aud" claim is not accepted');
      expect(await refusal(await sign({ tenant_id: 'a' }, { iss: 'https://evil' }))).toBe('invalid bearer token: the "iss" claim is not accepted');
      expect(await refusal('not-a-jwt')).toBe('invalid bearer token: the token is malformed');
      expect(await refusal(await sign({}))).toBe('invalid bearer token: token has no "tenant_id" claim');
    });

    // The principal `jwt:<sub>` is the actor id of every audit row, at most 256 characters in every lib: a longer one
    // authenticated, then failed as a 400 from inside the libs — after POST /v1/keys had created the key, unaudited.
    it('refuses, as 401, a subject longer than 252 characters; 252 is the actor jwt:<sub> of 256', async () => {
      const { sign, refusal, auth } = await bearerAuth();
      expect(await refusal(await sign({ tenant_id: 'acme' }, { sub: 'x'.repeat(253) }))).toBe('invalid bearer token: the "sub" claim is longer than 252 characters');
      const longest = await auth.authenticate({ authorization: `Bearer ${await sign({ tenant_id: 'acme' }, { sub: 'x'.repeat(252) })}` });
      expect(longest.id).toHaveLength(256);
    });

    // The subject is the audit actor operators read in logs and audit exports: a newline forges a second line, ESC a
    // terminal sequence, U+202E reverses what follows. Such tokens authenticated and were audited as sent.
    it.each([
      ['a newline', 'alice\nactor=jwt:admin'],
      ['an ESC sequence', 'alice\u001b[2K'],
      ['NUL', 'alice\u0000'],
      ['DEL', 'alice\u007f'],
      ['a C1 control', 'alice\u0085'],
      ['a right-to-left override', 'alice\u202egnp.exe'],
      ['a bidi isolate', '\u2066alice'],
      ['a zero-width space', 'ali\u200bce'],
      ['a line separator', 'alice\u2028bob'],
    ])('refuses, as 401, a subject with %s', async (_what, sub) => {
      const { sign, refusal } = await bearerAuth();
      expect(await refusal(await sign({ tenant_id: 'acme' }, { sub }))).toBe('invalid bearer token: the "sub" claim contains control or format characters');
    });

    it('accepts a subject of any visible text (non-Latin letters, spaces, punctuation), and refuses a tenant claim with controls', async () => {
      const { sign, refusal, auth } = await bearerAuth();
      for (const sub of ['José Ñúñez', '用户-42', 'user@example.com', 'auth0|5f7c8ec7c33c6c004bbafe82', 'عبد الله']) {
        expect((await auth.authenticate({ authorization: `Bearer ${await sign({ tenant_id: 'acme' }, { sub })}` })).id).toBe(`jwt:${sub}`);
      }
      expect(await refusal(await sign({ tenant_id: 'acme\nother' }))).toMatch(/^invalid bearer token: the "tenant_id" claim is not a tenant id/);
    });

    it('refuses a token without an expiry: leaked, it would act for its tenant forever (it was accepted)', async () => {
      const { sign, refusal } = await bearerAuth();
      expect(await refusal(await sign({ tenant_id: 'acme', scope: 'admin' }, { exp: null }))).toBe('invalid bearer token: the "exp" claim is missing');
    });

    // The 401 bodies clients have always had; decided by the error's type and fields, not its text.
    it.each([
      ['the tenant claim is missing', {}, undefined, 'tenant_id'],
      ['the tenant claim is empty', { tenant_id: '' }, undefined, 'tenant_id'],
      ['the tenant claim is not a string', { tenant_id: 42 }, undefined, 'tenant_id'],
      ['the subject is missing', { tenant_id: 'acme' }, null, 'sub'],
      ['the subject is empty', { tenant_id: 'acme', sub: '' }, undefined, 'sub'],
      ['the subject is not a string', { tenant_id: 'acme', sub: 123 }, undefined, 'sub'],
    ])('names the claim when %s', async (_case, claims: Record<string, unknown>, sub: null | undefined, claim) => {
      const { sign, refusal } = await bearerAuth();
      expect(await refusal(await sign(claims, { sub }))).toBe(`invalid bearer token: token has no "${claim}" claim`);
    });

    // The chain of refused authentications holds every tenant's failures (addresses, user agents, claimed key ids):
    // a token naming it as its tenant read that chain and wrote into it. A tenant the libs refuse failed later, as 400.
    it.each([
      ['names the chain of refused requests', '_unauthenticated'],
      ['is not an identifier', '../acme'],
      ['is longer than 128 characters', 'a'.repeat(129)],
    ])('refuses, as 401, a tenant claim that %s', async (_case, tenant) => {
      const { sign, refusal } = await bearerAuth();
      expect(await refusal(await sign({ tenant_id: tenant, scope: 'admin' }))).toBe(
        'invalid bearer token: the "tenant_id" claim is not a tenant id (1–128 letters, digits and . _ : @ -; not _unauthenticated)',
      );
    });

    it("keeps each missing claim's words whatever the verifier's message says, and trusts no untyped error's text", async () => {
      const failing = (e: Error) => ({ verify: () => Promise.reject(e) });
      const reworded = (code: JwtClaimErrorCode, claim: string) => Object.assign(new JwtClaimError(code, claim), { message: 'MARKER reworded' });
      const cases: Array<[Error, string]> = [
        [reworded(JwtClaimErrorCode.MISSING, 'tenant_id'), 'token has no "tenant_id" claim'],
        [reworded(JwtClaimErrorCode.INVALID, 'tenant_id'), 'token has no "tenant_id" claim'],
        [reworded(JwtClaimErrorCode.MISSING, 'sub'), 'token has no "sub" claim'],
        [reworded(JwtClaimErrorCode.INVALID, 'sub'), 'token has no "sub" claim'],
        // A claim name not shaped like one is not repeated, even from our own error.
        [new JwtClaimError(JwtClaimErrorCode.MISSING, 'MARKER "quoted"'), 'the token could not be verified'],
        // The old text from any other error is just text.
        [new Error('token has no "tenant_id" claim'), 'the token could not be verified'],
      ];
      for (const [error, reason] of cases) {
        const { refusal } = await bearerAuth(failing(error));
        const message = await refusal('any');
        expect(message).toBe(`invalid bearer token: ${reason}`);
        expect(message).not.toContain('MARKER');
      }
    });

    it("never repeats a library's message: only the code's fixed text, and a claim's name", async () => {
      const marker = 'MARKER-jose-3e9b';
      const failing = (e: Error) => ({ verify: () => Promise.reject(e) });
      const cases: Array<[Error, string]> = [
        [new errors.JWTClaimValidationFailed(`unexpected "aud" claim value ${marker}`, { aud: marker }, 'aud', 'check_failed'), 'the "aud" claim is not accepted'],
        [new errors.JWTClaimValidationFailed(`missing required "nbf" claim ${marker}`, {}, 'nbf', 'missing'), 'the "nbf" claim is missing'],
        [new errors.JWTClaimValidationFailed(marker, {}, `${marker} "quoted"`, 'check_failed'), 'a claim failed validation'],
        [new errors.JWKSTimeout(marker), "the issuer's key set could not be fetched in time"],
        [new errors.JOSEError(marker), 'the token could not be verified'],
        [new TypeError(`fetch failed ${marker}`), 'the token could not be verified'],
        [new Error(`token has no "${marker}" claim, value ${marker}`), 'the token could not be verified'],
      ];
      for (const [error, reason] of cases) {
        const { refusal } = await bearerAuth(failing(error));
        const message = await refusal('any');
        expect(message).toBe(`invalid bearer token: ${reason}`);
        expect(message).not.toContain(marker);
      }
    });
  });

  it('refuses an API key of the tenant _unauthenticated (the chain of refused requests), in the configuration and the CLI', () => {
    const { entry } = generateApiKey('k', 'acme', ['audit:read']);
    expect(() => loadAppConfig({ AUTH_API_KEYS: JSON.stringify([{ ...entry, tenant: '_unauthenticated' }]) })).toThrow(/AUTH_API_KEYS.*_unauthenticated is reserved/s);
    expect(() => generateApiKey('k', '_unauthenticated', ['audit:read'])).toThrow(/_unauthenticated is reserved/);
  });

  it('rejects malformed AUTH_API_KEYS with a message that says what to fix', () => {
    expect(() => loadAppConfig({ AUTH_API_KEYS: 'not json' })).toThrow(/AUTH_API_KEYS: must be a JSON array/);
    expect(() => loadAppConfig({ AUTH_API_KEYS: JSON.stringify([{ id: 'x', tenant: 't', scopes: ['nope'], sha256: 'ab' }]) })).toThrow(
      /AUTH_API_KEYS/,
    );
  });
});
