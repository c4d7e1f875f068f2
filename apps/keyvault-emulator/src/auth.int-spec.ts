import { createServer, Server } from 'node:http';
import { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, JWK, SignJWT } from 'jose';
import { KeyVaultEmulator } from './index';
import { emulatorSecretClient, rawRequest, restError } from './testing';

const API = 'api-version=7.6';
type PrivateKey = Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];

const ISSUER = 'https://login.microsoftonline.com/00000000-0000-4000-8000-00000000e001/v2.0';

describe('Key Vault emulator: authentication modes', () => {
  describe("'static' token", () => {
    let emu: KeyVaultEmulator;
    beforeAll(async () => {
      emu = await KeyVaultEmulator.start({ quiet: true, auth: { mode: 'static', token: 'the-right-token' }, tenantId: 'my-tenant-id' });
    });
    afterAll(() => emu.stop());

    it('accepts the configured token and challenges with the configured tenant', async () => {
      const challenge = await rawRequest(emu, 'GET', `/secrets?${API}`, { token: null });
      expect(challenge.headers['www-authenticate']).toContain('authorization="https://login.microsoftonline.com/my-tenant-id"');
      const client = emulatorSecretClient(emu, { token: 'the-right-token', maxRetries: 0 });
      await client.setSecret('static-ok', 'v');
      expect((await client.getSecret('static-ok')).value).toBe('v');
    });

    it('rejects any other token with 401 Unauthorized and a fresh challenge', async () => {
      const err = await restError(emulatorSecretClient(emu, { token: 'wrong', maxRetries: 0 }).getSecret('static-ok'));
      expect(err.statusCode).toBe(401);
      expect(err.code).toBe('Unauthorized');
      const raw = await rawRequest(emu, 'GET', `/secrets/static-ok?${API}`, { token: 'wrong' });
      expect(raw.status).toBe(401);
      expect(raw.headers['www-authenticate']).toMatch(/^Bearer authorization=/);
    });
  });

  describe("'jwt' verified against a JWKS", () => {
    let privateKey: PrivateKey;
    let otherKey: PrivateKey;
    let jwk: JWK;

    const token = (key: PrivateKey, claims: { iss?: string; aud?: string; expSeconds?: number } = {}) =>
      new SignJWT({ oid: 'service-principal-object-id', tid: '00000000-0000-4000-8000-00000000e001' })
        .setProtectedHeader({ alg: 'RS256', kid: 'k1' })
        .setIssuer(claims.iss ?? ISSUER)
        .setAudience(claims.aud ?? 'https://vault.azure.net')
        .setIssuedAt()
        .setExpirationTime(Math.floor(Date.now() / 1000) + (claims.expSeconds ?? 600))
        .sign(key);

    beforeAll(async () => {
      const pair = await generateKeyPair('RS256', { extractable: true });
      privateKey = pair.privateKey;
      jwk = { ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' };
      otherKey = (await generateKeyPair('RS256')).privateKey;
    });

    it('accepts a token signed by the JWKS key for the issuer and Key Vault audience, rejects bad ones', async () => {
      const emu = await KeyVaultEmulator.start({ quiet: true, auth: { mode: 'jwt', issuer: ISSUER, jwks: { keys: [jwk] } } });
      try {
        const good = emulatorSecretClient(emu, { token: await token(privateKey), maxRetries: 0 });
        await good.setSecret('jwt-ok', 'v');
        expect((await good.getSecret('jwt-ok')).value).toBe('v');

        for (const bad of [
          await token(otherKey),
          await token(privateKey, { iss: 'https://evil.example.com/' }),
          await token(privateKey, { aud: 'https://management.azure.com' }),
          await token(privateKey, { expSeconds: -120 }),
          'not-a-jwt',
        ]) {
          const err = await restError(emulatorSecretClient(emu, { token: bad, maxRetries: 0 }).getSecret('jwt-ok'));
          expect(err.statusCode).toBe(401);
          expect(err.code).toBe('Unauthorized');
        }
        expect(emu.stats().byOperationAndStatus['getSecret:401']).toBeGreaterThanOrEqual(5);
      } finally {
        await emu.stop();
      }
    });

    it('fetches the JWKS from jwksUri', async () => {
      const jwksServer: Server = createServer((_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ keys: [jwk] }));
      });
      await new Promise<void>((r) => jwksServer.listen(0, '127.0.0.1', () => r()));
      const jwksUri = `http://127.0.0.1:${(jwksServer.address() as AddressInfo).port}/keys`;
      const emu = await KeyVaultEmulator.start({
        quiet: true,
        auth: { mode: 'jwt', issuer: ISSUER, audience: 'api://my-vault', jwksUri },
      });
      try {
        const ok = emulatorSecretClient(emu, { token: await token(privateKey, { aud: 'api://my-vault' }), maxRetries: 0 });
        await ok.setSecret('remote-jwks', 'v');
        const wrongAud = emulatorSecretClient(emu, { token: await token(privateKey), maxRetries: 0 });
        expect((await restError(wrongAud.getSecret('remote-jwks'))).statusCode).toBe(401);
      } finally {
        await emu.stop();
        await new Promise((r) => jwksServer.close(r));
      }
    });

    it('refuses incomplete jwt options at start with a message that says what to fix', async () => {
      await expect(KeyVaultEmulator.start({ quiet: true, auth: { mode: 'jwt', issuer: ISSUER } })).rejects.toThrow(/jwks/);
      await expect(KeyVaultEmulator.start({ quiet: true, softDeleteRetentionDays: 3 })).rejects.toThrow(/softDeleteRetentionDays must be an integer 7\.\.90/);
    });
  });
});
