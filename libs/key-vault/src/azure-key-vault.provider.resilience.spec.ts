/**
 * AzureKeyVaultProvider's resilience over a fake SecretClient: retries (429 with Retry-After, 5xx, resets), what is
 * never retried, timeouts, the breaker, the bulkhead, and callers who left (call.signal).
 */
import { KeyVaultErrorCode as C } from './errors/key-vault-error-code';
import { failure, setup } from './azure-key-vault.provider.testing';
import { networkError, restError, sdkSecret, type FakeSecretClient } from './testing/fake-secret-client';

/** Fails `n` times with the given errors, then answers `value`. */
function failThen<T>(client: FakeSecretClient, method: keyof FakeSecretClient, errors: unknown[], value?: T) {
  const fn = client[method] as jest.Mock;
  for (const e of errors) fn.mockRejectedValueOnce(e);
  fn.mockResolvedValue(value);
  return fn;
}

describe('AzureKeyVaultProvider (fake SecretClient)', () => {
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

  it('a not-found the caller expects (notFoundExpected: does it exist?) is outcome not_found, no error; any other failure of such a read is one', async () => {
    const { kv, client, metric } = await setup();
    failThen(client, 'getSecret', [restError(404, 'SecretNotFound', 'gone'), restError(403, 'Forbidden', 'no permission')], sdkSecret('s1', 'v'));
    expect(await failure(kv.getSecret('s1', undefined, { notFoundExpected: true }))).toMatchObject({ code: C.KEY_NOT_FOUND });
    expect(await metric('errors_total')).toBe(0);
    expect(await metric('operations_total', { operation: 'getSecret', outcome: 'not_found' })).toBe(1);
    expect(await metric('operations_total', { outcome: 'client' })).toBe(0);
    expect(await failure(kv.getSecret('s1', undefined, { notFoundExpected: true }))).toMatchObject({ code: C.FORBIDDEN });
    expect(await metric('errors_total', { code: 'FORBIDDEN' })).toBe(1);
    // Without it (a value a stored pointer names), a not-found is an error, as before (the it.each above).
    (client.getDeletedSecret as jest.Mock).mockRejectedValueOnce(restError(404, 'DeletedSecretNotFound', 'none')).mockRejectedValueOnce(restError(404, 'DeletedSecretNotFound', 'none'));
    expect(await failure(kv.getDeletedSecret('s1', { notFoundExpected: true }))).toMatchObject({ code: C.KEY_NOT_FOUND });
    expect(await metric('errors_total', { code: 'KEY_NOT_FOUND' })).toBe(0);
    expect(await failure(kv.getDeletedSecret('s1'))).toMatchObject({ code: C.KEY_NOT_FOUND });
    expect(await metric('errors_total', { code: 'KEY_NOT_FOUND' })).toBe(1);
  });

  it("operations_total's HELP names every outcome it counts, cancelled and not_found among them", async () => {
    const { registry } = await setup();
    const help = /^# HELP \S+operations_total (.*)$/m.exec(await registry.metrics())?.[1];
    for (const outcome of ['success', 'transient', 'client', 'configuration', 'fatal', 'cancelled', 'not_found']) expect(help).toContain(outcome);
  });

  it("a delete meeting another delete of the name completing (409 being deleted), which the caller takes as done, is outcome being_deleted, no error; without beingDeletedExpected it is one", async () => {
    const { kv, client, metric } = await setup({ resilience: { maxAttempts: 2 } });
    // Azure's answer to a delete while the name's deletion completes: 409 Conflict, that meaning in its message.
    (client.beginDeleteSecret as jest.Mock).mockRejectedValue(restError(409, 'Conflict', 'Secret is currently being deleted.'));
    expect(await failure(kv.deleteSecret('s1', { notFoundExpected: true, beingDeletedExpected: true }))).toMatchObject({ code: C.OBJECT_BEING_DELETED });
    expect(await metric('errors_total')).toBe(0);
    expect(await metric('operations_total', { operation: 'deleteSecret', outcome: 'being_deleted' })).toBe(1);
    expect(await metric('operations_total', { outcome: 'transient' })).toBe(0);
    // Its caller's answer, at once: not retried as a name in transition is (no backoff waited for an answer already had).
    expect(await metric('retries_total', { operation: 'deleteSecret' })).toBe(0);
    expect(client.beginDeleteSecret).toHaveBeenCalledTimes(1);
    // notFoundExpected alone does not cover it, nor does beingDeletedExpected cover another failure.
    expect(await failure(kv.deleteSecret('s1', { notFoundExpected: true }))).toMatchObject({ code: C.OBJECT_BEING_DELETED });
    expect(await metric('errors_total', { code: 'OBJECT_BEING_DELETED' })).toBe(1);
    expect(await metric('operations_total', { operation: 'deleteSecret', outcome: 'transient' })).toBe(1);
    expect(await metric('retries_total', { operation: 'deleteSecret' })).toBe(1); // a name in transition, retried
    (client.beginDeleteSecret as jest.Mock).mockRejectedValue(restError(403, 'Forbidden', 'no permission'));
    expect(await failure(kv.deleteSecret('s1', { beingDeletedExpected: true }))).toMatchObject({ code: C.FORBIDDEN });
    expect(await metric('errors_total', { code: 'FORBIDDEN' })).toBe(1);
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

  it('says when the open breaker lets a trial call through: CIRCUIT_OPEN carries retryAfterMs, what is left of halfOpenAfterMs', async () => {
    const { kv, client } = await setup({ resilience: { maxAttempts: 1, breaker: { halfOpenAfterMs: 1000 } } });
    client.getSecret.mockRejectedValue(restError(503, 'ServiceUnavailable', 'down'));
    for (let i = 0; i < 3; i++) await failure(kv.getSecret('s1'));
    const opened = Date.now();
    const first = await failure(kv.getSecret('s1'));
    expect(first.code).toBe(C.CIRCUIT_OPEN);
    expect(first.retryAfterMs).toBeGreaterThan(900);
    expect(first.retryAfterMs).toBeLessThanOrEqual(1000);
    expect(first.message).toMatch(/CIRCUIT_OPEN .*; retry after 1 s$/);
    await new Promise((r) => setTimeout(r, 400));
    const later = await failure(kv.getSecret('s1'));
    expect(later.retryAfterMs).toBeLessThanOrEqual(1000 - (Date.now() - opened) + 5);
    expect(later.retryAfterMs).toBeGreaterThan(400);
    expect(later.toJSON()).toMatchObject({ retryAfterMs: later.retryAfterMs });
    // Once that time has passed, the next call is the trial: it reaches the vault.
    await new Promise((r) => setTimeout(r, later.retryAfterMs!));
    client.getSecret.mockResolvedValue(sdkSecret('s1', 'v'));
    await expect(kv.getSecret('s1')).resolves.toMatchObject({ value: 'v' });
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
});
