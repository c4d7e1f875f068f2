import { Test } from '@nestjs/testing';
import { Registry } from 'prom-client';
import { KeyVaultErrorCode as C } from './errors/key-vault-error-code';
import { KeyVaultError } from './errors/key-vault.error';
import type { KeyVaultModuleOptions } from './interfaces/key-vault-module-options.interface';
import { KEY_VAULT_SECRET_CLIENT } from './key-vault.internal-constants';
import { KeyVaultModule } from './key-vault.module';
import { KeyVaultProvider } from './key-vault.provider';
import { KeyVaultMetrics } from './metrics/key-vault.metrics';
import { KeyVaultResilience, RetryAfterBackoff } from './resilience/key-vault.resilience';
import {
  FAKE_VAULT,
  createFakeSecretClient,
  networkError,
  pagedOf,
  restError,
  sdkProperties,
  sdkSecret,
  type FakeSecretClient,
} from './testing/fake-secret-client';

const PREFIX = 'kvtest_';

async function setup(overrides: Partial<KeyVaultModuleOptions> = {}) {
  const registry = new Registry();
  const client = createFakeSecretClient();
  const moduleRef = await Test.createTestingModule({
    imports: [
      KeyVaultModule.forRoot({
        vaultUrl: FAKE_VAULT,
        credential: { type: 'static' },
        disableChallengeResourceVerification: true,
        metrics: { registry, prefix: PREFIX },
        ...overrides,
        resilience: {
          initialDelayMs: 5,
          maxDelayMs: 3000,
          timeoutMs: 300,
          ...overrides.resilience,
          breaker: { consecutiveFailures: 3, halfOpenAfterMs: 200, ...overrides.resilience?.breaker },
        },
      }),
    ],
  })
    .overrideProvider(KEY_VAULT_SECRET_CLIENT)
    .useValue(client)
    .compile();
  const metric = async (name: string, labels: Record<string, string> = {}) => {
    const m = await registry.getSingleMetric(`${PREFIX}${name}`)!.get();
    return m.values
      .filter((v) => Object.entries(labels).every(([k, val]) => v.labels[k] === val))
      .reduce((sum, v) => sum + v.value, 0);
  };
  return { kv: moduleRef.get(KeyVaultProvider), client, registry, metric, resilience: moduleRef.get(KeyVaultResilience) };
}

async function failure(p: Promise<unknown>): Promise<KeyVaultError> {
  try {
    await p;
  } catch (e) {
    return e as KeyVaultError;
  }
  throw new Error('expected the call to fail');
}

/** Fails `n` times with the given errors, then answers `value`. */
function failThen<T>(client: FakeSecretClient, method: keyof FakeSecretClient, errors: unknown[], value?: T) {
  const fn = client[method] as jest.Mock;
  for (const e of errors) fn.mockRejectedValueOnce(e);
  fn.mockResolvedValue(value);
  return fn;
}

describe('AzureKeyVaultProvider (fake SecretClient)', () => {
  it('maps SDK results to the contract types and passes options through', async () => {
    const { kv, client } = await setup();
    client.setSecret.mockResolvedValue({ ...sdkSecret('a-b', 'v'), properties: { ...sdkProperties('a-b'), tags: { t: '1' }, contentType: 'text/plain' } });
    const s = await kv.setSecret('a-b', 'v', { contentType: 'text/plain', tags: { t: '1' } });
    expect(s).toEqual({
      value: 'v',
      properties: expect.objectContaining({ name: 'a-b', version: 'a'.repeat(32), enabled: true, tags: { t: '1' }, contentType: 'text/plain' }),
    });
    expect(client.setSecret).toHaveBeenCalledWith(
      'a-b',
      'v',
      expect.objectContaining({ contentType: 'text/plain', tags: { t: '1', 'cv-write-id': expect.any(String) }, abortSignal: expect.any(AbortSignal) }),
    );
  });

  it("setSecret marks each call's version with its own write id, which callers never see nor set", async () => {
    const { kv, client } = await setup();
    client.setSecret.mockImplementation(async (name: string, value: string, o: { tags?: Record<string, string> }) => ({ ...sdkSecret(name, value), properties: { ...sdkProperties(name), tags: o.tags } }));
    const a = await kv.setSecret('s1', 'v', { tags: { t: '1' } });
    await kv.setSecret('s1', 'v');
    const sent = client.setSecret.mock.calls.map((c) => (c[2] as { tags: Record<string, string> }).tags['cv-write-id']);
    expect(new Set(sent).size).toBe(2);
    expect(a.properties.tags).toEqual({ t: '1' });
    const reserved = await failure(kv.setSecret('s1', 'v', { tags: { 'cv-write-id': 'mine' } }));
    expect(reserved.code).toBe(C.INVALID_REQUEST);
    // No room left for it (Key Vault allows 15 tags): the caller's tags are sent as they are.
    const full = Object.fromEntries(Array.from({ length: 15 }, (_, i) => [`t${i}`, 'x']));
    await kv.setSecret('s1', 'v', { tags: full });
    expect((client.setSecret.mock.calls[2][2] as { tags: Record<string, string> }).tags).toEqual(full);
  });

  it("after a 5xx, reads back before re-sending: its own version is the result; one it cannot read (403) is sent again", async () => {
    const { kv, client } = await setup({ resilience: { maxAttempts: 3 } });
    let stored: Record<string, string> = {};
    client.setSecret.mockImplementationOnce(async (_n: string, _v: string, o: { tags: Record<string, string> }) => {
      stored = o.tags;
      throw restError(503, 'ServiceUnavailable', 'x');
    });
    client.getSecret.mockImplementationOnce(async (name: string) => ({ ...sdkSecret(name, 'v'), properties: { ...sdkProperties(name), tags: stored } }));
    await expect(kv.setSecret('s1', 'v', { tags: { t: '1' } })).resolves.toMatchObject({ value: 'v', properties: { tags: { t: '1' } } });
    expect(client.setSecret).toHaveBeenCalledTimes(1);

    client.setSecret.mockRejectedValueOnce(restError(503, 'ServiceUnavailable', 'x')).mockResolvedValueOnce(sdkSecret('s1', 'v'));
    client.getSecret.mockRejectedValueOnce(restError(403, 'Forbidden', 'no get permission'));
    await expect(kv.setSecret('s1', 'v')).resolves.toMatchObject({ value: 'v' });
    expect(client.setSecret).toHaveBeenCalledTimes(3);
  });

  it('refuses a getSecret answer without a value (INVALID_RESPONSE, not retried) instead of serving an empty secret', async () => {
    const { kv, client, metric } = await setup();
    const { value: _dropped, ...noValue } = sdkSecret('s1', 'v');
    client.getSecret.mockResolvedValue(noValue);
    for (const version of [undefined, 'b'.repeat(32)]) {
      const e = await failure(kv.getSecret('s1', version));
      expect(e).toBeInstanceOf(KeyVaultError);
      expect(e).toMatchObject({ code: C.INVALID_RESPONSE, codeName: 'INVALID_RESPONSE', operation: 'getSecret', secretName: 's1', retryable: false });
    }
    expect(client.getSecret).toHaveBeenCalledTimes(2);
    expect(await metric('retries_total')).toBe(0);
    expect(await metric('errors_total', { code: 'INVALID_RESPONSE' })).toBe(2);
    // An empty value the vault does return is the secret's value, not a missing one.
    client.getSecret.mockResolvedValue(sdkSecret('s1', ''));
    await expect(kv.getSecret('s1')).resolves.toMatchObject({ value: '' });
  });

  it('answers setSecret with the value it sent when the answer omits it', async () => {
    const { kv, client } = await setup();
    const { value: _dropped, ...noValue } = sdkSecret('s1', 'sent');
    client.setSecret.mockResolvedValue(noValue);
    await expect(kv.setSecret('s1', 'sent')).resolves.toMatchObject({ value: 'sent' });
  });

  it('retries a 429 and waits at least the Retry-After each time', async () => {
    const { kv, client, metric } = await setup();
    const get = failThen(client, 'getSecret', [restError(429, 'Throttled', 'slow down', { 'retry-after': '1' }), restError(429, 'Throttled', 'slow down', { 'retry-after': '1' })], sdkSecret('s1', 'v'));
    const started = Date.now();
    await expect(kv.getSecret('s1')).resolves.toMatchObject({ value: 'v' });
    expect(get).toHaveBeenCalledTimes(3);
    expect(Date.now() - started).toBeGreaterThanOrEqual(2000);
    expect(await metric('retries_total', { operation: 'getSecret' })).toBe(2);
    expect(await metric('operations_total', { operation: 'getSecret', outcome: 'success' })).toBe(1);
  });

  it('gives up after maxAttempts with RATE_LIMITED and the last Retry-After', async () => {
    const { kv, client, metric } = await setup({ resilience: { maxAttempts: 2 } });
    const get = failThen(client, 'getSecret', [429, 429, 429].map(() => restError(429, 'Throttled', 'x', { 'retry-after-ms': '20' })));
    const e = await failure(kv.getSecret('s1'));
    expect(e).toMatchObject({ code: C.RATE_LIMITED, retryAfterMs: 20, operation: 'getSecret', secretName: 's1' });
    expect(get).toHaveBeenCalledTimes(2);
    expect(await metric('errors_total', { code: 'RATE_LIMITED' })).toBe(1);
    expect(await metric('operations_total', { operation: 'getSecret', outcome: 'transient' })).toBe(1);
  });

  it('does not wait out a Retry-After longer than maxDelayMs: fails at once with retryAfterMs', async () => {
    const { kv, client } = await setup();
    const get = failThen(client, 'getSecret', [restError(429, 'Throttled', 'x', { 'retry-after': '60' })], sdkSecret('s1', 'v'));
    const started = Date.now();
    const e = await failure(kv.getSecret('s1'));
    expect(e).toMatchObject({ code: C.RATE_LIMITED, retryAfterMs: 60_000 });
    expect(get).toHaveBeenCalledTimes(1);
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it.each([
    ['404', restError(404, 'SecretNotFound', 'gone'), C.KEY_NOT_FOUND],
    ['400', restError(400, 'BadParameter', 'bad'), C.INVALID_REQUEST],
    ['409', restError(409, 'Conflict', 'deleted but recoverable state'), C.DELETED_BUT_RECOVERABLE],
    ['401', restError(401, 'Unauthorized', 'no'), C.UNAUTHORIZED],
    ['403', restError(403, 'Forbidden', 'no permission'), C.FORBIDDEN],
  ])('never retries a %s', async (_s, error, code) => {
    const { kv, client, metric } = await setup();
    const get = failThen(client, 'getSecret', [error], sdkSecret('s1', 'v'));
    expect(await failure(kv.getSecret('s1'))).toMatchObject({ code });
    expect(get).toHaveBeenCalledTimes(1);
    expect(await metric('retries_total')).toBe(0);
    expect(await metric('errors_total', { code: C[code] })).toBe(1);
  });

  it('retries 5xx and connection resets, then succeeds', async () => {
    const { kv, client } = await setup();
    const get = failThen(client, 'getSecret', [restError(503, 'ServiceUnavailable', 'x'), networkError('ECONNRESET', 'socket hang up')], sdkSecret('s1', 'v'));
    await expect(kv.getSecret('s1')).resolves.toMatchObject({ value: 'v' });
    expect(get).toHaveBeenCalledTimes(3);
  });

  it('times out a hung attempt (aborting its signal), retries it, and reports TIMEOUT', async () => {
    const { kv, client } = await setup({ resilience: { maxAttempts: 2, timeoutMs: 100 } });
    const signals: AbortSignal[] = [];
    client.getSecret.mockImplementation((_n: string, o: { abortSignal: AbortSignal }) => {
      signals.push(o.abortSignal);
      return new Promise(() => undefined);
    });
    const started = Date.now();
    const e = await failure(kv.getSecret('s1'));
    expect(e.code).toBe(C.TIMEOUT);
    expect(e.message).toContain('100 ms');
    expect(client.getSecret).toHaveBeenCalledTimes(2);
    expect(signals.every((s) => s.aborted)).toBe(true);
    expect(Date.now() - started).toBeGreaterThanOrEqual(200);
  });

  it('opens the breaker after N consecutive failures, fails fast, half-opens and closes on success', async () => {
    const { kv, client, resilience, metric } = await setup({ resilience: { maxAttempts: 1 } });
    client.getSecret.mockRejectedValue(restError(503, 'ServiceUnavailable', 'down'));
    for (let i = 0; i < 3; i++) expect((await failure(kv.getSecret('s1'))).code).toBe(C.SERVICE_UNAVAILABLE);
    expect(resilience.breakerState).toBe('open');
    expect(await metric('circuit_breaker_state')).toBe(2);

    const fast = await failure(kv.getSecret('s1'));
    expect(fast.code).toBe(C.CIRCUIT_OPEN);
    expect(client.getSecret).toHaveBeenCalledTimes(3);

    await new Promise((r) => setTimeout(r, 250));
    expect(resilience.breakerState).toBe('half-open');
    client.getSecret.mockResolvedValue(sdkSecret('s1', 'v'));
    await expect(kv.getSecret('s1')).resolves.toMatchObject({ value: 'v' });
    expect(resilience.breakerState).toBe('closed');
    expect(await metric('circuit_breaker_state')).toBe(0);
  });

  it('does not count 4xx or 429 towards the breaker', async () => {
    const { kv, client, resilience } = await setup({ resilience: { maxAttempts: 1 } });
    client.getSecret.mockRejectedValue(restError(404, 'SecretNotFound', 'gone'));
    for (let i = 0; i < 5; i++) await failure(kv.getSecret('s1'));
    client.getSecret.mockRejectedValue(restError(429, 'Throttled', 'x', { 'retry-after': '0' }));
    for (let i = 0; i < 5; i++) await failure(kv.getSecret('s1'));
    expect(resilience.breakerState).toBe('closed');
  });

  it('stops retrying when the breaker opens mid-call (CIRCUIT_OPEN, no further attempts)', async () => {
    const { kv, client } = await setup({ resilience: { maxAttempts: 6 } });
    client.getSecret.mockRejectedValue(restError(500, 'InternalServerError', 'x'));
    const e = await failure(kv.getSecret('s1'));
    expect(e.code).toBe(C.CIRCUIT_OPEN);
    expect(client.getSecret).toHaveBeenCalledTimes(3);
  });

  it('rejects with BULKHEAD_FULL beyond maxConcurrent + maxQueued', async () => {
    const { kv, client } = await setup({ resilience: { timeoutMs: 5000, bulkhead: { maxConcurrent: 1, maxQueued: 1 } } });
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    client.getSecret.mockImplementation(async () => {
      await gate;
      return sdkSecret('s1', 'v');
    });
    const a = kv.getSecret('s1');
    const b = kv.getSecret('s1');
    const c = await failure(kv.getSecret('s1'));
    expect(c.code).toBe(C.BULKHEAD_FULL);
    release();
    await expect(Promise.all([a, b])).resolves.toHaveLength(2);
  });

  describe('callers who left (call.signal)', () => {
    /** The fake vault answers every request once the gate opens; an aborted request rejects as the SDK does. */
    const gatedVault = (client: FakeSecretClient, method: 'getSecret' | 'setSecret') => {
      let open!: () => void;
      const gate = new Promise<void>((r) => (open = r));
      const seen: AbortSignal[] = [];
      (client[method] as jest.Mock).mockImplementation((name: string, ...rest: unknown[]) => {
        const { abortSignal } = rest[rest.length - 1] as { abortSignal: AbortSignal };
        seen.push(abortSignal);
        return new Promise((resolve, reject) => {
          abortSignal.addEventListener('abort', () => reject(Object.assign(new Error('The operation was aborted.'), { name: 'AbortError' })));
          void gate.then(() => resolve(sdkSecret(name, 'v')));
        });
      });
      return { open: () => open(), seen };
    };

    it('a queued read whose caller left leaves the queue at once, is never sent, and frees its queue slot for a live caller', async () => {
      const { kv, client, metric } = await setup({ resilience: { timeoutMs: 5000, bulkhead: { maxConcurrent: 1, maxQueued: 1 } } });
      const vault = gatedVault(client, 'getSecret');
      const running = kv.getSecret('s1');
      const gone = new AbortController();
      const queued = failure(kv.getSecret('s2', undefined, { signal: gone.signal }));
      gone.abort();
      const e = await queued;
      expect([e.code, e.sent]).toEqual([C.CANCELLED, false]);
      // Its queue slot is free again: a live caller queues instead of being refused with BULKHEAD_FULL.
      const live = kv.getSecret('s3');
      vault.open();
      await expect(Promise.all([running, live])).resolves.toHaveLength(2);
      expect(client.getSecret.mock.calls.map((c) => c[0])).toEqual(['s1', 's3']);
      expect(await metric('cancelled_total', { operation: 'getSecret', stage: 'not_sent' })).toBe(1);
      expect(await metric('operations_total', { outcome: 'cancelled' })).toBe(1);
      expect(await metric('errors_total')).toBe(0);
    });

    it('after many callers left the queue, the running slot goes on serving the live ones (none stalls)', async () => {
      const { kv, client } = await setup({ resilience: { timeoutMs: 5000, bulkhead: { maxConcurrent: 1, maxQueued: 10 } } });
      const vault = gatedVault(client, 'getSecret');
      const running = kv.getSecret('first');
      const gone = new AbortController();
      const dropped = Array.from({ length: 5 }, (_, i) => failure(kv.getSecret(`gone${i}`, undefined, { signal: gone.signal })));
      const live = kv.getSecret('live');
      gone.abort();
      expect((await Promise.all(dropped)).map((e) => e.code)).toEqual(Array(5).fill(C.CANCELLED));
      vault.open();
      await expect(Promise.all([running, live])).resolves.toHaveLength(2);
      expect(client.getSecret.mock.calls.map((c) => c[0])).toEqual(['first', 'live']);
    });

    it('a read in flight is aborted when its caller leaves: CANCELLED (sent), not retried, never a breaker failure', async () => {
      const { kv, client, resilience, metric } = await setup({ resilience: { timeoutMs: 5000, maxAttempts: 3 } });
      const vault = gatedVault(client, 'getSecret');
      for (let i = 0; i < 4; i++) {
        const gone = new AbortController();
        const call = failure(kv.getSecret('s1', undefined, { signal: gone.signal }));
        await new Promise((r) => setImmediate(r));
        gone.abort();
        const e = await call;
        expect([e.code, e.sent]).toEqual([C.CANCELLED, true]);
      }
      expect(vault.seen.every((s) => s.aborted)).toBe(true);
      expect(client.getSecret).toHaveBeenCalledTimes(4);
      expect(resilience.breakerState).toBe('closed');
      expect(await metric('cancelled_total', { stage: 'in_flight' })).toBe(4);
      expect(await metric('retries_total')).toBe(0);
    });

    it('a read waiting to retry is dropped when its caller leaves: its slot is free at once and no further attempt is sent', async () => {
      const { kv, client } = await setup({ resilience: { initialDelayMs: 400, maxAttempts: 3, bulkhead: { maxConcurrent: 1, maxQueued: 0 } } });
      client.getSecret.mockRejectedValueOnce(restError(503, 'ServiceUnavailable', 'down')).mockResolvedValue(sdkSecret('s1', 'v'));
      const gone = new AbortController();
      const call = failure(kv.getSecret('s1', undefined, { signal: gone.signal }));
      await new Promise((r) => setTimeout(r, 20));
      gone.abort();
      expect((await call).code).toBe(C.CANCELLED);
      // The slot is free (maxQueued 0 would refuse a second call otherwise).
      await expect(kv.getSecret('s2')).resolves.toMatchObject({ value: 'v' });
      await new Promise((r) => setTimeout(r, 450));
      expect(client.getSecret.mock.calls.map((c) => c[0])).toEqual(['s1', 's2']);
    });

    it("a half-open trial is not aborted by its caller leaving: the caller gets CANCELLED, the vault's answer still closes the breaker", async () => {
      const { kv, client, resilience } = await setup({ resilience: { maxAttempts: 1, timeoutMs: 5000 } });
      client.getSecret.mockRejectedValue(restError(503, 'ServiceUnavailable', 'down'));
      for (let i = 0; i < 3; i++) await failure(kv.getSecret('s1'));
      expect(resilience.breakerState).toBe('open');
      await new Promise((r) => setTimeout(r, 250));
      const vault = gatedVault(client, 'getSecret');
      const gone = new AbortController();
      const trial = failure(kv.getSecret('s1', undefined, { signal: gone.signal }));
      await new Promise((r) => setImmediate(r));
      gone.abort();
      expect((await trial).code).toBe(C.CANCELLED);
      expect(vault.seen.map((s) => s.aborted)).toEqual([false]);
      vault.open();
      for (let i = 0; i < 20 && resilience.breakerState !== 'closed'; i++) await new Promise((r) => setTimeout(r, 10));
      expect(resilience.breakerState).toBe('closed');
    });

    it('a write already sent is never aborted by its caller leaving; a write still queued is dropped and never sent', async () => {
      const { kv, client } = await setup({ resilience: { timeoutMs: 5000, bulkhead: { maxConcurrent: 1, maxQueued: 1 } } });
      const vault = gatedVault(client, 'setSecret');
      const gone = new AbortController();
      const sent = kv.setSecret('s1', 'value-1', {}, { signal: gone.signal });
      const queued = failure(kv.setSecret('s2', 'value-2', {}, { signal: gone.signal }));
      await new Promise((r) => setImmediate(r));
      gone.abort();
      expect(await queued).toMatchObject({ code: C.CANCELLED, sent: false });
      vault.open();
      await expect(sent).resolves.toMatchObject({ properties: { name: 's1' } });
      expect(vault.seen.map((s) => s.aborted)).toEqual([false]);
      expect(client.setSecret.mock.calls.map((c) => c[0])).toEqual(['s1']);
    });
  });

  it('refuses invalid names, versions, page sizes and foreign continuation tokens without calling the vault', async () => {
    const { kv, client } = await setup();
    expect((await failure(kv.getSecret('bad_name'))).code).toBe(C.INVALID_REQUEST);
    expect((await failure(kv.getSecret('../../keys/x'))).code).toBe(C.INVALID_REQUEST);
    expect((await failure(kv.getSecret('x'.repeat(128)))).code).toBe(C.INVALID_REQUEST);
    expect((await failure(kv.getSecret('ok', 'v/../1'))).code).toBe(C.INVALID_REQUEST);
    expect((await failure(kv.listSecrets({ maxPageSize: 26 }))).code).toBe(C.INVALID_REQUEST);
    const foreign = await failure(kv.listSecrets({ continuationToken: 'https://evil.example/secrets?page=1' }));
    expect(foreign.code).toBe(C.INVALID_REQUEST);
    expect(foreign.message).toContain('not a token of this list');
    // Same vault, another list: a token forged to page another secret's versions, or the deleted secrets.
    for (const token of [`${FAKE_VAULT}/secrets/other/versions?api-version=7.6`, `${FAKE_VAULT}/deletedsecrets?api-version=7.6`, `${FAKE_VAULT}/keys?api-version=7.6`]) {
      expect((await failure(kv.listSecretVersions('mine', { continuationToken: token }))).code).toBe(C.INVALID_REQUEST);
    }
    expect((await failure(kv.listSecrets({ continuationToken: `${FAKE_VAULT}/deletedsecrets?api-version=7.6` }))).code).toBe(C.INVALID_REQUEST);
    expect(client.getSecret).not.toHaveBeenCalled();
    expect(client.listPropertiesOfSecrets).not.toHaveBeenCalled();
  });

  it('pages with maxPageSize and continuation tokens, and iterates all pages', async () => {
    const { kv, client } = await setup();
    const seen: Array<{ maxPageSize?: number; continuationToken?: string }> = [];
    const pages = [[sdkProperties('a'), sdkProperties('b')], [sdkProperties('c'), sdkProperties('d')], [sdkProperties('e')]];
    client.listPropertiesOfSecrets.mockImplementation(() => pagedOf(pages, seen));
    const first = await kv.listSecrets({ maxPageSize: 2 });
    expect(first.items.map((i) => i.name)).toEqual(['a', 'b']);
    expect(first.continuationToken).toBe(`${FAKE_VAULT}/secrets?page=1`);
    const second = await kv.listSecrets({ maxPageSize: 2, continuationToken: first.continuationToken });
    expect(second.items.map((i) => i.name)).toEqual(['c', 'd']);
    expect(seen[1]).toEqual({ maxPageSize: 2, continuationToken: `${FAKE_VAULT}/secrets?page=1` });
    const all: string[] = [];
    for await (const p of kv.listAllSecrets()) all.push(p.name);
    expect(all).toEqual(['a', 'b', 'c', 'd', 'e']);
  });

  it('delete: waits for the poller; a retry after a lost answer confirms via the deleted-secret record', async () => {
    const { kv, client } = await setup();
    const deleted = { name: 'd1', properties: sdkProperties('d1'), recoveryId: `${FAKE_VAULT}/deletedsecrets/d1` };
    client.beginDeleteSecret
      .mockRejectedValueOnce(restError(503, 'ServiceUnavailable', 'x'))
      .mockRejectedValueOnce(restError(404, 'SecretNotFound', 'already deleted'));
    client.getDeletedSecret.mockResolvedValue(deleted);
    await expect(kv.deleteSecret('d1')).resolves.toMatchObject({ recoveryId: deleted.recoveryId, properties: { name: 'd1' } });
    expect(client.beginDeleteSecret).toHaveBeenCalledWith('d1', expect.objectContaining({ intervalInMs: 500 }));

    // But a first-attempt 404 is a plain KEY_NOT_FOUND.
    client.beginDeleteSecret.mockReset().mockRejectedValue(restError(404, 'SecretNotFound', 'no such secret'));
    expect((await failure(kv.deleteSecret('d2'))).code).toBe(C.KEY_NOT_FOUND);
    expect(client.beginDeleteSecret).toHaveBeenCalledTimes(1);
  });

  it('backup failures map to BACKUP_FAILED; an empty blob is refused', async () => {
    const { kv, client } = await setup();
    client.backupSecret.mockRejectedValueOnce(restError(400, 'BadParameter', 'too many versions'));
    expect((await failure(kv.backupSecret('b1'))).code).toBe(C.BACKUP_FAILED);
    client.backupSecret.mockResolvedValueOnce(undefined);
    expect((await failure(kv.backupSecret('b1'))).code).toBe(C.BACKUP_FAILED);
    expect((await failure(kv.restoreSecretBackup(new Uint8Array()))).code).toBe(C.INVALID_REQUEST);
  });

  describe('restoreSecretBackup: a 409 (a taken name, a purge still completing, an earlier attempt that landed)', () => {
    const blob = new Uint8Array([1, 2, 3]);
    const BACKED_UP = 'b'.repeat(32);
    const LATEST = 'c'.repeat(32);
    const ref = { name: 'tenant-secret', version: BACKED_UP };
    // The service's answer to a restore over a live name and while the name's purge completes alike (recorded).
    const exists = () =>
      restError(409, 'Conflict', `There was a conflict restoring the secret 'https://myvault.vault.azure.net/secrets/tenant-secret/${BACKED_UP}'. This can happen if either: …`);
    const notFound = () => restError(404, 'SecretNotFound', 'x');
    const versionOf = (name: string, version: string) => ({ name, value: 'never-returned', properties: sdkProperties(name, version) });
    const reads = (client: { getSecret: jest.Mock }) => client.getSecret.mock.calls.map((c) => [c[0], (c[1] as { version?: string } | undefined)?.version]);

    it('a 409 on the first attempt, or after a 429 (which proves the first did nothing), the secret live, is a conflict: one read of it', async () => {
      const { kv, client } = await setup();
      client.getSecret.mockImplementation(async (name: string) => versionOf(name, LATEST));
      client.restoreSecretBackup.mockRejectedValueOnce(exists());
      const conflict = await failure(kv.restoreSecretBackup(blob));
      expect([conflict.code, conflict.secretName]).toEqual([C.CONFLICT, 'tenant-secret']); // the name the answer quotes
      expect(conflict.message).not.toContain('tenant-secret');
      client.restoreSecretBackup.mockRejectedValueOnce(restError(429, 'Throttled', 'x', { 'retry-after': '0' })).mockRejectedValueOnce(exists());
      expect((await failure(kv.restoreSecretBackup(blob, ref))).code).toBe(C.CONFLICT);
      expect(reads(client)).toEqual([
        ['tenant-secret', undefined],
        ['tenant-secret', undefined],
      ]);
      expect(client.getDeletedSecret).not.toHaveBeenCalled();
    });

    it('a 409 of a disabled secret (its value refused: 403) is a conflict', async () => {
      const { kv, client } = await setup();
      client.restoreSecretBackup.mockRejectedValueOnce(exists());
      client.getSecret.mockRejectedValueOnce(restError(403, 'Forbidden', 'Operation get is not allowed on a disabled secret.'));
      expect((await failure(kv.restoreSecretBackup(blob))).code).toBe(C.CONFLICT);
      expect(client.restoreSecretBackup).toHaveBeenCalledTimes(1);
    });

    it('a 409 while no secret of the name is live or deleted (a purge completing) is retried until it restores; spent, OBJECT_BEING_DELETED', async () => {
      const { kv, client } = await setup();
      client.getSecret.mockRejectedValue(notFound());
      client.getDeletedSecret.mockRejectedValue(notFound());
      client.restoreSecretBackup.mockRejectedValueOnce(exists()).mockResolvedValueOnce(sdkProperties('tenant-secret', BACKED_UP));
      expect((await kv.restoreSecretBackup(blob, ref)).version).toBe(BACKED_UP);
      expect(client.restoreSecretBackup).toHaveBeenCalledTimes(2);

      client.restoreSecretBackup.mockReset().mockRejectedValue(exists());
      const spent = await failure(kv.restoreSecretBackup(blob));
      expect([spent.code, spent.statusCode, spent.secretName]).toEqual([C.OBJECT_BEING_DELETED, 409, 'tenant-secret']);
      expect(client.restoreSecretBackup).toHaveBeenCalledTimes(4); // maxAttempts
    });

    it('a free name on the last attempt, after an attempt cut off by the timeout (still in flight), is OUTCOME_UNKNOWN, not OBJECT_BEING_DELETED', async () => {
      const { kv, client } = await setup({ resilience: { maxAttempts: 2, timeoutMs: 100 } });
      client.getSecret.mockRejectedValue(notFound());
      client.getDeletedSecret.mockRejectedValue(notFound());
      // The first restore's answer comes after its attempt timed out: the vault may still apply it.
      const late = new Promise((resolve) => setTimeout(() => resolve(sdkProperties('tenant-secret', BACKED_UP)), 400));
      client.restoreSecretBackup.mockReturnValueOnce(late).mockRejectedValueOnce(exists());
      const e = await failure(kv.restoreSecretBackup(blob, ref));
      expect([e.code, e.secretName, (e.cause as KeyVaultError | undefined)?.code]).toEqual([C.OUTCOME_UNKNOWN, 'tenant-secret', C.OBJECT_BEING_DELETED]);
      expect(client.restoreSecretBackup).toHaveBeenCalledTimes(2);
      await late;
    });

    it('after an attempt that may have landed, the breaker opening before the next one ends it OUTCOME_UNKNOWN (cause CIRCUIT_OPEN); a call the open breaker stops before any attempt stays CIRCUIT_OPEN', async () => {
      const { kv, client } = await setup({ resilience: { maxAttempts: 3, timeoutMs: 100, breaker: { consecutiveFailures: 1, halfOpenAfterMs: 60_000 } } });
      // The first restore is cut off by the timeout (a breaker failure: it opens) while the vault may still apply it.
      const late = new Promise((resolve) => setTimeout(() => resolve(sdkProperties('tenant-secret', BACKED_UP)), 400));
      client.restoreSecretBackup.mockReturnValueOnce(late);
      const e = await failure(kv.restoreSecretBackup(blob, ref));
      expect([e.code, e.secretName, (e.cause as KeyVaultError | undefined)?.code]).toEqual([C.OUTCOME_UNKNOWN, 'tenant-secret', C.CIRCUIT_OPEN]);
      expect(e.message).not.toContain('tenant-secret');
      expect(client.restoreSecretBackup).toHaveBeenCalledTimes(1);
      expect((await failure(kv.restoreSecretBackup(blob, ref))).code).toBe(C.CIRCUIT_OPEN);
      expect(client.restoreSecretBackup).toHaveBeenCalledTimes(1);
      await late;
    });

    it('a 5xx, then the breaker open, or then only 429s until the attempts are spent: OUTCOME_UNKNOWN; 429s alone stay RATE_LIMITED', async () => {
      const opening = await setup({ resilience: { maxAttempts: 3, breaker: { consecutiveFailures: 1, halfOpenAfterMs: 60_000 } } });
      opening.client.restoreSecretBackup.mockRejectedValueOnce(restError(503, 'ServiceUnavailable', 'x'));
      const open = await failure(opening.kv.restoreSecretBackup(blob, ref));
      expect([open.code, (open.cause as KeyVaultError | undefined)?.code]).toEqual([C.OUTCOME_UNKNOWN, C.CIRCUIT_OPEN]);
      expect(opening.client.restoreSecretBackup).toHaveBeenCalledTimes(1);

      const { kv, client } = await setup({ resilience: { maxAttempts: 3 } });
      const throttled = () => restError(429, 'Throttled', 'x', { 'retry-after': '0' });
      client.restoreSecretBackup.mockRejectedValueOnce(restError(500, 'InternalServerError', 'x')).mockRejectedValueOnce(throttled()).mockRejectedValueOnce(throttled());
      const spent = await failure(kv.restoreSecretBackup(blob, ref));
      expect([spent.code, (spent.cause as KeyVaultError | undefined)?.code]).toEqual([C.OUTCOME_UNKNOWN, C.RATE_LIMITED]);
      client.restoreSecretBackup.mockRejectedValueOnce(throttled()).mockRejectedValueOnce(throttled()).mockRejectedValueOnce(throttled());
      expect((await failure(kv.restoreSecretBackup(blob, ref))).code).toBe(C.RATE_LIMITED);
      expect(client.restoreSecretBackup).toHaveBeenCalledTimes(6);
    });

    it('a free name after such an attempt, with attempts left, is retried: the next read-back finds the late restore', async () => {
      const { kv, client } = await setup({ resilience: { maxAttempts: 3, timeoutMs: 100 } });
      client.getSecret.mockRejectedValueOnce(notFound()).mockImplementation(async (name: string, o?: { version?: string }) => versionOf(name, o?.version ?? BACKED_UP));
      client.getDeletedSecret.mockRejectedValue(notFound());
      const late = new Promise((resolve) => setTimeout(() => resolve(sdkProperties('tenant-secret', BACKED_UP)), 400));
      client.restoreSecretBackup.mockReturnValueOnce(late).mockRejectedValue(exists());
      expect((await kv.restoreSecretBackup(blob, ref)).version).toBe(BACKED_UP);
      expect(client.restoreSecretBackup).toHaveBeenCalledTimes(3);
      await late;
    });

    it('a 409 the reads cannot explain (soft-deleted, forbidden, failing, or no name quoted nor given) stays a conflict, never retried', async () => {
      const { kv, client } = await setup();
      client.restoreSecretBackup.mockRejectedValue(exists());
      client.getSecret.mockRejectedValue(notFound());
      client.getDeletedSecret
        .mockResolvedValueOnce({ name: 'tenant-secret', properties: sdkProperties('tenant-secret', LATEST) })
        .mockRejectedValueOnce(restError(403, 'Forbidden', 'Caller is not authorized to perform action on resource.'))
        .mockRejectedValueOnce(restError(503, 'ServiceUnavailable', 'x'));
      for (let i = 0; i < 3; i++) expect((await failure(kv.restoreSecretBackup(blob))).code).toBe(C.CONFLICT);
      client.restoreSecretBackup.mockRejectedValue(restError(409, 'Conflict', 'There was a conflict.'));
      expect((await failure(kv.restoreSecretBackup(blob))).code).toBe(C.CONFLICT);
      expect(client.restoreSecretBackup).toHaveBeenCalledTimes(4);
      expect(client.getSecret).toHaveBeenCalledTimes(3);
    });

    it("after a 5xx: the secret holding the backup's version is the restore, its latest version's properties the answer (no value)", async () => {
      const { kv, client } = await setup();
      client.restoreSecretBackup.mockRejectedValueOnce(restError(503, 'ServiceUnavailable', 'x')).mockRejectedValueOnce(exists());
      client.getSecret.mockImplementation(async (name: string, o?: { version?: string }) => versionOf(name, o?.version ?? LATEST));
      const restored = await kv.restoreSecretBackup(blob, ref);
      expect([restored.name, restored.version]).toEqual([ref.name, LATEST]);
      expect(JSON.stringify(restored)).not.toContain('never-returned');
      expect(reads(client)).toEqual([
        [ref.name, undefined],
        [ref.name, BACKED_UP],
      ]);
    });

    it('after a 5xx, cannot be told — OUTCOME_UNKNOWN, never CONFLICT — without a version to compare, or when the secret does not hold it, or its latest is disabled', async () => {
      const { kv, client } = await setup({ resilience: { breaker: { consecutiveFailures: 100 } } }); // three lost answers in a row
      const lostThenExists = () => client.restoreSecretBackup.mockRejectedValueOnce(restError(503, 'ServiceUnavailable', 'x')).mockRejectedValueOnce(exists());
      lostThenExists();
      client.getSecret.mockResolvedValueOnce(versionOf(ref.name, LATEST));
      expect((await failure(kv.restoreSecretBackup(blob))).code).toBe(C.OUTCOME_UNKNOWN);

      lostThenExists();
      client.getSecret.mockResolvedValueOnce(versionOf(ref.name, LATEST)).mockRejectedValueOnce(notFound());
      expect((await failure(kv.restoreSecretBackup(blob, ref))).code).toBe(C.OUTCOME_UNKNOWN);

      lostThenExists();
      const disabled = () => restError(403, 'Forbidden', 'Operation get is not allowed on a disabled secret.');
      client.getSecret.mockRejectedValueOnce(disabled()).mockResolvedValueOnce(versionOf(ref.name, BACKED_UP)).mockRejectedValueOnce(disabled());
      expect((await failure(kv.restoreSecretBackup(blob, ref))).code).toBe(C.OUTCOME_UNKNOWN);
    });

    it('refuses an expected version that is not a secret reference', async () => {
      const { kv, client } = await setup();
      expect((await failure(kv.restoreSecretBackup(blob, { name: 'tenant-secret', version: '../x' }))).code).toBe(C.INVALID_REQUEST);
      expect(client.restoreSecretBackup).not.toHaveBeenCalled();
    });
  });

  it('records a duration per operation and no secret names in any label', async () => {
    const { kv, client, registry } = await setup();
    client.getSecret.mockResolvedValue(sdkSecret('tenant-acme-stripe', 'v'));
    await kv.getSecret('tenant-acme-stripe');
    const text = await registry.metrics();
    expect(text).toContain(`${PREFIX}operation_duration_seconds_count{operation="getSecret"} 1`);
    expect(text).not.toContain('tenant-acme-stripe');
  });
});

describe('RetryAfterBackoff', () => {
  const err = () => ({ error: new Error('x') });
  it('grows exponentially with jitter, bounded by maxDelayMs', () => {
    const lo = new RetryAfterBackoff({ initialDelayMs: 100, maxDelayMs: 1000 }, () => 0);
    const hi = new RetryAfterBackoff({ initialDelayMs: 100, maxDelayMs: 1000 }, () => 1);
    expect([1, 2, 3, 4, 5].map((attempt) => lo.delayFor({ attempt, result: err() }))).toEqual([50, 100, 200, 400, 500]);
    expect([1, 2, 3, 4, 5].map((attempt) => hi.delayFor({ attempt, result: err() }))).toEqual([100, 200, 400, 800, 1000]);
  });

  it('is never shorter than Retry-After', () => {
    const rateLimited = new KeyVaultError(C.RATE_LIMITED, 'x', { operation: 'getSecret', retryAfterMs: 1500 });
    for (const r of [0, 0.5, 1]) {
      const b = new RetryAfterBackoff({ initialDelayMs: 100, maxDelayMs: 16000 }, () => r);
      expect(b.delayFor({ attempt: 1, result: { error: rateLimited } })).toBeGreaterThanOrEqual(1500);
      expect(b.delayFor({ attempt: 1, result: { error: rateLimited } })).toBeLessThanOrEqual(1600);
    }
  });
});

describe('KeyVaultMetrics', () => {
  it('registers once per registry: a second module on the same registry reuses the series', () => {
    const registry = new Registry();
    const a = new KeyVaultMetrics({ enabled: true, prefix: PREFIX, registry });
    const b = new KeyVaultMetrics({ enabled: true, prefix: PREFIX, registry });
    expect(b.operations).toBe(a.operations);
    expect(registry.getMetricsAsArray()).toHaveLength(6);
  });

  it('registers nothing in the given registry when disabled', () => {
    const registry = new Registry();
    new KeyVaultMetrics({ enabled: false, prefix: PREFIX, registry });
    expect(registry.getMetricsAsArray()).toHaveLength(0);
  });
});
