import { KeyVaultEmulator } from './index';
import { emulatorKeyClient, emulatorSecretClient, rawRequest, restError } from './testing';

/** A caller without a permission: Azure's 403, through the real SDK. */
describe('Key Vault emulator: denied operations (RBAC / access policy 403)', () => {
  let emu: KeyVaultEmulator;
  beforeAll(async () => {
    emu = await KeyVaultEmulator.start({ quiet: true, throttle: false, operationDelayMs: 0 });
  });
  afterEach(() => emu.clearDenials());
  afterAll(() => emu.stop());

  it('answers 403 Forbidden / ForbiddenByRbac naming the data action and the resource, and changes nothing', async () => {
    const secrets = emulatorSecretClient(emu, { maxRetries: 0 });
    await secrets.setSecret('rbac-a', 'first');
    emu.deny({ operations: ['setSecret', 'getSecret'] });
    emu.resetStats();

    const read = await restError(secrets.getSecret('rbac-a'));
    expect(read.statusCode).toBe(403);
    expect(read.code).toBe('Forbidden');
    expect(read.details.error.innerError).toEqual({ code: 'ForbiddenByRbac' });
    expect(read.details.error.message).toContain("Action: 'Microsoft.KeyVault/vaults/secrets/getSecret/action'");
    expect(read.details.error.message).toMatch(/Resource: '.*\/vaults\/emulator\/secrets\/rbac-a'/);
    expect(read.details.error.message).not.toContain('first');

    const write = await restError(secrets.setSecret('rbac-a', 'second'));
    expect(write.statusCode).toBe(403);
    expect(write.details.error.message).toContain('secrets/setSecret/action');
    // Other operations still work; the refused write did not happen.
    const versions: string[] = [];
    for await (const p of secrets.listPropertiesOfSecretVersions('rbac-a')) versions.push(p.version!);
    expect(versions).toHaveLength(1);
    expect(emu.stats().byOperationAndStatus).toMatchObject({ 'getSecret:403': 1, 'setSecret:403': 1, 'listSecretVersions:200': 1 });

    emu.clearDenials();
    expect((await secrets.getSecret('rbac-a')).value).toBe('first');
  });

  it('answers ForbiddenByPolicy for a vault on access policies, for keys and their crypto too', async () => {
    const keys = emulatorKeyClient(emu, { maxRetries: 0 });
    const key = await keys.createRsaKey('policy-k');
    emu.deny({ operations: ['sign', 'getKey'], model: 'accessPolicy' });
    const get = await restError(keys.getKey('policy-k'));
    expect(get.statusCode).toBe(403);
    expect(get.details.error).toMatchObject({ code: 'Forbidden', innerError: { code: 'ForbiddenByPolicy' } });
    expect(get.details.error.message).toMatch(/does not have keys get permission on key vault 'emulator;location=local'/);
    const sign = await rawRequest(emu, 'POST', `/keys/policy-k/${key.properties.version}/sign?api-version=7.6`, {
      body: { alg: 'RS256', value: Buffer.alloc(32).toString('base64url') },
    });
    expect(sign.status).toBe(403);
    expect(sign.json.error.message).toContain('keys sign permission');
  });

  it('denies only the named objects when `names` is given (a role assigned on single secrets)', async () => {
    const secrets = emulatorSecretClient(emu, { maxRetries: 0 });
    await secrets.setSecret('scoped-open', 'a');
    await secrets.setSecret('Scoped-Closed', 'b');
    emu.deny({ operations: ['getSecret'], names: ['scoped-closed'] });
    expect((await secrets.getSecret('scoped-open')).value).toBe('a');
    expect((await restError(secrets.getSecret('SCOPED-CLOSED'))).statusCode).toBe(403);
  });

  it('is controllable over /_emulator/denials; reset clears denials; bad specs are 400', async () => {
    const added = await rawRequest(emu, 'POST', '/_emulator/denials', { token: null, body: { operations: ['listSecrets'] } });
    expect(added.status).toBe(201);
    expect(added.json).toEqual({ activeDenials: 1 });
    expect((await rawRequest(emu, 'GET', '/secrets?api-version=7.6')).status).toBe(403);
    expect((await rawRequest(emu, 'GET', '/_emulator/health', { token: null })).json.activeDenials).toBe(1);
    for (const body of [{ operations: [] }, { operations: ['getSecrets'] }, { operations: ['getSecret'], model: 'acl' }, 'nope']) {
      const bad = await rawRequest(emu, 'POST', '/_emulator/denials', { token: null, body });
      expect(bad.status).toBe(400);
      expect(bad.json.error.code).toBe('BadParameter');
    }
    expect((await rawRequest(emu, 'POST', '/_emulator/reset', { token: null })).status).toBe(204);
    expect((await rawRequest(emu, 'GET', '/secrets?api-version=7.6')).status).toBe(200);
    emu.deny({ operations: ['listSecrets'] });
    expect((await rawRequest(emu, 'DELETE', '/_emulator/denials', { token: null })).status).toBe(204);
    expect((await rawRequest(emu, 'GET', '/secrets?api-version=7.6')).status).toBe(200);
  });

  it('still answers the 401 challenge first, before any denial', async () => {
    emu.deny({ operations: ['getSecret'] });
    const r = await rawRequest(emu, 'GET', '/secrets/x?api-version=7.6', { token: null });
    expect(r.status).toBe(401);
    expect(r.headers['www-authenticate']).toMatch(/^Bearer /);
  });
});
