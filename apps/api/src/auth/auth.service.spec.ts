import { Test } from '@nestjs/testing';
import { exportJWK, generateKeyPair, SignJWT, createLocalJWKSet } from 'jose';
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { APP_CONFIG, loadAppConfig } from '../config/app.config';
import { ApiKeyVerifier, generateApiKey } from './api-keys';
import { AuthenticationFailed, AuthService } from './auth.service';
import { JwtVerifier } from './jwt-verifier';

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
});

describe('JwtVerifier', () => {
  const cfg = {
    issuer: 'https://issuer.test',
    audience: 'credential-vault',
    jwksUrl: 'https://issuer.test/jwks',
    tenantClaim: 'tenant_id',
    scopeClaim: 'scope',
    algorithms: ['ES256'],
  };

  async function setup() {
    const { privateKey, publicKey } = await generateKeyPair('ES256');
    const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256' };
    const verifier = new JwtVerifier(cfg, createLocalJWKSet({ keys: [jwk] }));
    const sign = (claims: Record<string, unknown>, opts: { iss?: string; aud?: string; exp?: string } = {}) =>
      new SignJWT(claims)
        .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
        .setSubject('user-1')
        .setIssuer(opts.iss ?? cfg.issuer)
        .setAudience(opts.aud ?? cfg.audience)
        .setIssuedAt()
        .setExpirationTime(opts.exp ?? '5m')
        .sign(privateKey);
    return { verifier, sign };
  }

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

  it('rejects malformed AUTH_API_KEYS with a message that says what to fix', () => {
    expect(() => loadAppConfig({ AUTH_API_KEYS: 'not json' })).toThrow(/AUTH_API_KEYS: must be a JSON array/);
    expect(() => loadAppConfig({ AUTH_API_KEYS: JSON.stringify([{ id: 'x', tenant: 't', scopes: ['nope'], sha256: 'ab' }]) })).toThrow(
      /AUTH_API_KEYS/,
    );
  });
});
