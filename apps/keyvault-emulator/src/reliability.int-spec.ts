import { KeyVaultEmulator } from './index';
import { resolveOptions } from './options';
import { emulatorSecretClient, rawRequest, restError } from './testing';

const API = 'api-version=7.6';

describe('Key Vault emulator: throttling', () => {
  let emu: KeyVaultEmulator;
  beforeAll(async () => {
    emu = await KeyVaultEmulator.start({ quiet: true, throttle: { limit: 20, windowMs: 1000 } });
  });
  afterAll(() => emu.stop());

  it('answers 429 Throttled with Retry-After beyond the configured rate, then recovers', async () => {
    const client = emulatorSecretClient(emu, { maxRetries: 0 });
    await new Promise((r) => setTimeout(r, 1100)); // an empty window
    emu.resetStats();
    const started = Date.now();
    const results = await Promise.all(
      Array.from({ length: 60 }, () =>
        client.setSecret('hot', 'v').then(
          () => 200,
          (e: { statusCode?: number }) => e.statusCode,
        ),
      ),
    );
    const elapsedS = (Date.now() - started) / 1000;
    const ok = results.filter((s) => s === 200).length;
    const throttled = results.filter((s) => s === 429).length;
    expect(ok + throttled).toBe(60);
    // at most 20 in any second: exactly 20 when the burst took less than a second (a token bucket
    // would have let through what it refilled meanwhile too)
    expect(ok).toBeGreaterThanOrEqual(20);
    expect(ok).toBeLessThanOrEqual(20 * Math.ceil(elapsedS));
    expect(throttled).toBeGreaterThan(0);
    expect(emu.stats().byOperationAndStatus['setSecret:429']).toBe(throttled);

    const err = await restError(Promise.all(Array.from({ length: 40 }, () => client.getSecret('hot'))));
    expect(err.statusCode).toBe(429);
    expect(err.code).toBe('Throttled');
    expect(err.response!.headers.get('retry-after')).toBe('1');

    await new Promise((r) => setTimeout(r, 1100));
    expect((await client.getSecret('hot')).value).toBe('v');
  });

  it("limits Set Secret on a budget of its own, as Azure (300 per 10 s against 4,000 for everything else)", async () => {
    expect(resolveOptions({}).throttle).toEqual({ limit: 4000, windowMs: 10_000, createSecretLimit: 300, createKeyLimit: 20 });
    const vault = await KeyVaultEmulator.start({ quiet: true, throttle: { limit: 50, windowMs: 60_000, createSecretLimit: 3 } });
    try {
      for (const name of ['a', 'b', 'a']) expect((await rawRequest(vault, 'PUT', `/secrets/${name}?${API}`, { body: { value: 'x' } })).status).toBe(200);
      // A new secret and a new version alike: the fourth write in the window is refused...
      const refused = await rawRequest(vault, 'PUT', `/secrets/c?${API}`, { body: { value: 'x' } });
      expect(refused.status).toBe(429);
      expect(Number(refused.headers['retry-after'])).toBeGreaterThanOrEqual(58);
      expect(vault.stats().byOperationAndStatus['setSecret:429']).toBe(1);
      // ...while reads and other writes go on, on the other budget.
      expect((await rawRequest(vault, 'GET', `/secrets/a?${API}`)).status).toBe(200);
      expect((await rawRequest(vault, 'PATCH', `/secrets/b?${API}`, { body: { tags: { t: '1' } } })).status).toBe(200);
      expect((await rawRequest(vault, 'GET', `/secrets/c?${API}`)).status).toBe(404);
    } finally {
      await vault.stop();
    }
  });

  it('limits Create Key as Azure does by default: 20 software keys per 10 s, or 10 HSM keys (weighted, on one budget)', async () => {
    const vault = await KeyVaultEmulator.start({ quiet: true, operationDelayMs: 0 }); // Azure's limits
    try {
      const create = (name: string, kty = 'EC') => rawRequest(vault, 'POST', `/keys/${name}/create?${API}`, { body: { kty } });
      for (let i = 0; i < 20; i++) expect((await create(`soft-${i}`)).status).toBe(200);
      const refused = await create('soft-20');
      expect([refused.status, refused.json.error.code]).toEqual([429, 'Throttled']);
      expect(Number(refused.headers['retry-after'])).toBeGreaterThanOrEqual(9);
      // Using the keys is on the budget of every other transaction.
      expect((await rawRequest(vault, 'GET', `/keys/soft-0?${API}`)).status).toBe(200);
      expect((await rawRequest(vault, 'GET', `/keys/soft-20?${API}`)).status).toBe(404);
      // Budgets can be replaced while it runs (a test's set-up making many keys), and given back.
      vault.setThrottle(false);
      for (let i = 20; i < 45; i++) expect((await create(`soft-${i}`)).status).toBe(200);
      vault.setThrottle({ limit: 4000, windowMs: 10_000, createKeyLimit: 2 });
      expect((await create('soft-45')).status).toBe(200);
      expect((await create('soft-46')).status).toBe(200);
      expect((await create('soft-47')).status).toBe(429);
      expect(() => vault.setThrottle({ limit: 0, windowMs: 10_000 })).toThrow(TypeError);
    } finally {
      await vault.stop();
    }
    const hsm = await KeyVaultEmulator.start({ quiet: true, operationDelayMs: 0 });
    try {
      const create = (name: string) => rawRequest(hsm, 'POST', `/keys/${name}/create?${API}`, { body: { kty: 'EC-HSM' } });
      for (let i = 0; i < 10; i++) expect((await create(`hsm-${i}`)).status).toBe(200);
      expect((await create('hsm-10')).status).toBe(429);
      expect(hsm.stats().byOperationAndStatus).toMatchObject({ 'createKey:200': 10, 'createKey:429': 1 });
    } finally {
      await hsm.stop();
    }
  });

  it('weighs key operations by key type and size, as Azure does, on the budget shared with secrets', async () => {
    const vault = await KeyVaultEmulator.start({ quiet: true, throttle: false, operationDelayMs: 0 });
    try {
      const create = (name: string, body: Record<string, unknown>) => rawRequest(vault, 'POST', `/keys/${name}/create?${API}`, { body });
      for (const [name, body] of [['rsa4096', { kty: 'RSA', key_size: 4096 }], ['rsa3072hsm', { kty: 'RSA-HSM', key_size: 3072 }], ['ec', { kty: 'EC' }]] as const) {
        expect((await create(name, body)).status).toBe(200);
      }
      const sign = (name: string) => rawRequest(vault, 'POST', `/keys/${name}//sign?${API}`, { body: { alg: name === 'ec' ? 'ES256' : 'RS256', value: Buffer.alloc(32).toString('base64url') } });
      // 40 units in the window: an RSA-4096 software key's operation counts 8 (Azure: 500 of them per 10 s against 4,000).
      vault.setThrottle({ limit: 40, windowMs: 60_000 });
      for (let i = 0; i < 5; i++) expect((await rawRequest(vault, 'GET', `/keys/rsa4096?${API}`)).status).toBe(200);
      expect((await sign('rsa4096')).status).toBe(429);
      expect((await sign('ec')).status).toBe(429); // the sum is enforced: nothing is left
      expect((await rawRequest(vault, 'GET', `/secrets/none?${API}`)).status).toBe(429);

      // An RSA-3072 HSM key's counts 8 too (Azure: 500 per 10 s), an EC software key's 1.
      vault.setThrottle({ limit: 40, windowMs: 60_000 });
      for (let i = 0; i < 4; i++) expect((await sign('rsa3072hsm')).status).toBe(200);
      for (let i = 0; i < 8; i++) expect((await sign('ec')).status).toBe(200);
      expect((await sign('ec')).status).toBe(429);
      // Lists and unknown keys count 1, as secrets do.
      vault.setThrottle({ limit: 3, windowMs: 60_000 });
      expect((await rawRequest(vault, 'GET', `/keys?${API}`)).status).toBe(200);
      expect((await rawRequest(vault, 'GET', `/keys/nope?${API}`)).status).toBe(404);
      expect((await rawRequest(vault, 'GET', `/keys/ec?${API}`)).status).toBe(200);
      expect((await rawRequest(vault, 'GET', `/keys/ec?${API}`)).status).toBe(429);
    } finally {
      await vault.stop();
    }
  });

  it('returns Azure\'s throttling body and a Retry-After that says when the oldest request leaves the window', async () => {
    const slow = await KeyVaultEmulator.start({ quiet: true, throttle: { limit: 2, windowMs: 60_000 } });
    try {
      expect((await rawRequest(slow, 'PUT', `/secrets/a?${API}`, { body: { value: 'x' } })).status).toBe(200);
      expect((await rawRequest(slow, 'GET', `/secrets/a?${API}`)).status).toBe(200);
      expect((await rawRequest(slow, 'GET', `/secrets/a?${API}`)).status).toBe(200);
      const raw = await rawRequest(slow, 'GET', `/secrets/a?${API}`);
      expect(raw.status).toBe(429);
      expect(Number(raw.headers['retry-after'])).toBeGreaterThanOrEqual(58);
      expect(Number(raw.headers['retry-after'])).toBeLessThanOrEqual(60);
      expect(raw.json).toEqual({
        error: {
          code: 'Throttled',
          message: 'Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached',
        },
      });
      // the challenge of a new client is never throttled
      expect((await rawRequest(slow, 'GET', `/secrets/a?${API}`, { token: null })).status).toBe(401);
    } finally {
      await slow.stop();
    }
  });

  it('a client that honours Retry-After (the SDK default retry policy) gets through', async () => {
    const client = emulatorSecretClient(emu, { maxRetries: 5 });
    const values = await Promise.all(Array.from({ length: 40 }, (_, i) => client.setSecret(`retry-${i}`, `v${i}`).then((s) => s.value)));
    expect(values).toEqual(Array.from({ length: 40 }, (_, i) => `v${i}`));
  });

  it('does not throttle or count the admin endpoints', async () => {
    const client = emulatorSecretClient(emu, { maxRetries: 0 });
    await Promise.all(Array.from({ length: 30 }, () => client.getSecret('hot').catch(() => undefined)));
    emu.resetStats();
    for (let i = 0; i < 30; i++) {
      expect((await rawRequest(emu, 'GET', '/_emulator/health', { token: null })).status).toBe(200);
    }
    expect(emu.stats().total).toBe(0);
  });
});

describe('Key Vault emulator: fault injection', () => {
  let emu: KeyVaultEmulator;
  beforeAll(async () => {
    emu = await KeyVaultEmulator.start({ quiet: true, throttle: false });
    await emulatorSecretClient(emu).setSecret('target', 'value');
  });
  afterEach(() => {
    emu.clearFaults();
    emu.resetStats();
  });
  afterAll(() => emu.stop());

  it('status 503 for the next N requests: retries recover, no retries surface ServiceUnavailable with Retry-After', async () => {
    emu.injectFault({ kind: 'status', status: 503, count: 2, operations: ['getSecret'], retryAfterSeconds: 0 });
    const retrying = emulatorSecretClient(emu, { maxRetries: 3 });
    expect((await retrying.getSecret('target')).value).toBe('value');
    expect(emu.stats().byOperationAndStatus).toMatchObject({ 'getSecret:503': 2, 'getSecret:200': 1 });

    emu.injectFault({ kind: 'status', status: 503, retryAfterSeconds: 4 });
    const err = await restError(emulatorSecretClient(emu, { maxRetries: 0 }).getSecret('target'));
    expect(err.statusCode).toBe(503);
    expect(err.code).toBe('ServiceUnavailable');
    expect(err.response!.headers.get('retry-after')).toBe('4');
  });

  it('status 429 and 500 with Azure-shaped bodies', async () => {
    const client = emulatorSecretClient(emu, { maxRetries: 0 });
    emu.injectFault({ kind: 'status', status: 429, retryAfterSeconds: 7, count: 1 });
    const throttled = await restError(client.getSecret('target'));
    expect([throttled.statusCode, throttled.code]).toEqual([429, 'Throttled']);
    expect(throttled.response!.headers.get('retry-after')).toBe('7');
    // retryAfterSeconds: null answers a 429 without Retry-After, as a service 429 has been seen to (see README)
    emu.injectFault({ kind: 'status', status: 429, retryAfterSeconds: null, count: 1 });
    const bare = await rawRequest(emu, 'GET', `/secrets/target?${API}`);
    expect([bare.status, bare.json.error.code, bare.headers['retry-after']]).toEqual([429, 'Throttled', undefined]);

    emu.injectFault({ kind: 'status', status: 500, count: 1 });
    const raw = await rawRequest(emu, 'GET', `/secrets/target?${API}`);
    expect(raw.status).toBe(500);
    expect(raw.json).toEqual({ error: { code: 'InternalServerError', message: expect.any(String) } });
    expect((await client.getSecret('target')).value).toBe('value'); // count exhausted
  });

  it('applies a fault with the configured rate', async () => {
    const client = emulatorSecretClient(emu, { maxRetries: 0 });
    emu.injectFault({ kind: 'status', status: 500, rate: 0.5 });
    const results = await Promise.all(
      Array.from({ length: 200 }, () =>
        client.getSecret('target').then(
          () => 200,
          (e: { statusCode?: number }) => e.statusCode,
        ),
      ),
    );
    const failed = results.filter((s) => s === 500).length;
    expect(failed).toBeGreaterThan(60);
    expect(failed).toBeLessThan(140);
    expect(results.filter((s) => s === 200).length).toBe(200 - failed);
  });

  it('only affects the listed operations and expires after durationMs', async () => {
    const client = emulatorSecretClient(emu, { maxRetries: 0 });
    // Warm first (TLS, the auth challenge): on a loaded machine they alone outlasted a short fault window.
    await client.getSecret('target');
    emu.injectFault({ kind: 'status', status: 500, operations: ['setSecret'], durationMs: 1000 });
    expect((await client.getSecret('target')).value).toBe('value');
    expect((await restError(client.setSecret('target', 'changed'))).statusCode).toBe(500);
    await new Promise((r) => setTimeout(r, 1100));
    expect((await client.setSecret('target', 'value')).value).toBe('value');
  });

  it('emptyPage: a list page with no items and a nextLink to the same place, as Azure sometimes answers; following it lists everything', async () => {
    const client = emulatorSecretClient(emu, { maxRetries: 0 });
    emu.injectFault({ kind: 'emptyPage', count: 2 }); // list operations only: the get below is not affected
    expect((await client.getSecret('target')).value).toBe('value');
    const first = await rawRequest(emu, 'GET', `/secrets?${API}&maxresults=5`);
    expect([first.status, first.json]).toEqual([200, { value: [], nextLink: `${emu.vaultUrl}/secrets?${API}&maxresults=5` }]);
    const pages: string[][] = [];
    for await (const page of client.listPropertiesOfSecrets().byPage()) pages.push(page.map((p) => p.name));
    expect(pages).toEqual([[], ['target']]);
    expect(emu.stats().byOperationAndStatus).toMatchObject({ 'listSecrets:200': 3, 'getSecret:200': 1 });
    expect(() => emu.injectFault({ kind: 'emptyPage', operations: ['getSecret'] })).toThrow(/list operations/);
  });

  it('adds latency', async () => {
    const client = emulatorSecretClient(emu, { maxRetries: 0 });
    await client.getSecret('target');
    emu.injectFault({ kind: 'latency', latencyMs: 300, count: 1 });
    const t0 = Date.now();
    await client.getSecret('target');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(290);
    const t1 = Date.now();
    await client.getSecret('target');
    expect(Date.now() - t1).toBeLessThan(250);
  });

  it('stop() ends a request it is delaying at once: the stopped vault does not wake to handle it later', async () => {
    // Its delay went on after stop() (a timer of up to latencyMs): a spec that stopped its vault mid-delay left that timer in
    // its jest worker, which then could not exit ("A worker process has failed to exit gracefully").
    const vault = await KeyVaultEmulator.start({ quiet: true, throttle: false });
    vault.injectFault({ kind: 'latency', latencyMs: 1000, count: 1, operations: ['getSecret'] });
    const answer = rawRequest(vault, 'GET', `/secrets/target?${API}`).then(
      () => 'answered',
      () => 'connection closed',
    );
    await new Promise((r) => setTimeout(r, 300)); // the request is in its delay
    await vault.stop();
    expect(await answer).toBe('connection closed');
    await new Promise((r) => setTimeout(r, 1200)); // past the delay
    expect(vault.stats().total).toBe(0); // never handled (stats count each request once handled)
  });

  it('resets the connection without a response', async () => {
    emu.injectFault({ kind: 'reset', count: 1 });
    await expect(rawRequest(emu, 'GET', `/secrets/target?${API}`)).rejects.toMatchObject({ code: expect.stringMatching(/ECONNRESET|EPIPE/) });
    emu.injectFault({ kind: 'reset', count: 1 });
    const err = await emulatorSecretClient(emu, { maxRetries: 0 })
      .getSecret('target')
      .then(
        () => undefined,
        (e: { code?: string; statusCode?: number }) => e,
      );
    expect(err).toBeDefined();
    expect(err!.statusCode).toBeUndefined();
    expect(emu.stats().byOperationAndStatus['getSecret:reset']).toBe(2);
    // the SDK's retry policy gets through a single reset
    emu.injectFault({ kind: 'reset', count: 1 });
    expect((await emulatorSecretClient(emu, { maxRetries: 2 }).getSecret('target')).value).toBe('value');
  });

  it('is controllable over the /_emulator admin endpoints without a bearer token', async () => {
    const client = emulatorSecretClient(emu, { maxRetries: 0 });
    const added = await rawRequest(emu, 'POST', '/_emulator/faults', {
      token: null,
      body: { kind: 'status', status: 503, operations: ['getSecret'] },
    });
    expect(added.status).toBe(201);
    expect((await restError(client.getSecret('target'))).statusCode).toBe(503);
    const bad = await rawRequest(emu, 'POST', '/_emulator/faults', { token: null, body: { kind: 'status', status: 404 } });
    expect(bad.status).toBe(400);
    expect(bad.json.error.message).toMatch(/status must be 429, 500 or 503/);

    const stats = await rawRequest(emu, 'GET', '/_emulator/stats', { token: null });
    expect(stats.json.byOperationAndStatus['getSecret:503']).toBe(1);
    expect(stats.json.total).toBe(emu.stats().total);

    expect((await rawRequest(emu, 'DELETE', '/_emulator/faults', { token: null })).status).toBe(204);
    expect((await client.getSecret('target')).value).toBe('value');

    emu.injectFault({ kind: 'status', status: 500 });
    expect((await rawRequest(emu, 'POST', '/_emulator/reset', { token: null })).status).toBe(204);
    expect(emu.stats().total).toBe(0);
    expect((await client.getSecret('target')).value).toBe('value');
    const health = await rawRequest(emu, 'GET', '/_emulator/health', { token: null });
    expect(health.json).toMatchObject({ status: 'ok', vaultUrl: emu.vaultUrl });
  });

  it('validates fault specs passed in code', () => {
    expect(() => emu.injectFault({ kind: 'latency' })).toThrow(/latencyMs/);
    expect(() => emu.injectFault({ kind: 'status', status: 500, rate: 2 })).toThrow(/rate/);
  });
});
