/**
 * AzureKeyVaultProvider over a fake SecretClient: results mapped to the contract, writes, input checks, paging, delete,
 * backup and metrics; the backoff and metrics units. Retries and the breaker: azure-key-vault.provider.resilience.spec.ts;
 * restores: azure-key-vault.provider.restore.spec.ts.
 */
import { Registry } from 'prom-client';
import { KeyVaultErrorCode as C } from './errors/key-vault-error-code';
import { KeyVaultError } from './errors/key-vault.error';
import { KeyVaultMetrics } from './metrics/key-vault.metrics';
import { RetryAfterBackoff } from './resilience/key-vault.resilience';
import { PREFIX, failure, setup } from './azure-key-vault.provider.testing';
import { FAKE_VAULT, pagedOf, restError, sdkProperties, sdkSecret } from './testing/fake-secret-client';

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

  it("refuses a set, get or update answer that names no version (INVALID_RESPONSE), never answering version ''", async () => {
    const { kv, client } = await setup();
    const unversioned = (name: string) => ({ ...sdkProperties(name), version: undefined, id: `${FAKE_VAULT}/secrets/${name}` });
    client.setSecret.mockResolvedValue({ ...sdkSecret('s1', 'v'), properties: unversioned('s1') });
    client.getSecret.mockResolvedValue({ ...sdkSecret('s1', 'v'), properties: unversioned('s1') });
    client.updateSecretProperties.mockResolvedValue(unversioned('s1'));
    for (const [operation, call] of [
      ['setSecret', () => kv.setSecret('s1', 'v')],
      ['getSecret', () => kv.getSecret('s1')],
      ['updateSecretProperties', () => kv.updateSecretProperties('s1', 'a'.repeat(32), { enabled: false })],
    ] as const) {
      const e = await failure(call());
      expect(e).toMatchObject({ code: C.INVALID_RESPONSE, operation, secretName: 's1' });
      expect(e.message).toContain('names no version');
    }
  });

  it('answers setSecret with the value it sent when the answer omits it', async () => {
    const { kv, client } = await setup();
    const { value: _dropped, ...noValue } = sdkSecret('s1', 'sent');
    client.setSecret.mockResolvedValue(noValue);
    await expect(kv.setSecret('s1', 'sent')).resolves.toMatchObject({ value: 'sent' });
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

  it("delete: between the poller's reads of the deleted record, the secret's versions are listed; a listing that fails is no answer, one that lists a version ends the wait (DELETE_UNDONE, not retried)", async () => {
    const { kv, client } = await setup({ resilience: { pollIntervalMs: 5 } });
    const deleted = { name: 'd1', properties: sdkProperties('d1'), recoveryId: `${FAKE_VAULT}/deletedsecrets/d1` };
    /** A delete taken by the vault whose deleted record shows at the `shownAt`-th read (the first is beginDeleteSecret's). */
    const pollerShowingAt = (shownAt: number) => {
      let reads = 1;
      return { isDone: () => reads >= shownAt, poll: jest.fn(async () => void reads++), getResult: () => deleted };
    };
    const poller = pollerShowingAt(3);
    client.beginDeleteSecret.mockResolvedValue(poller);
    const failing: AsyncIterableIterator<never> = {
      next: () => Promise.reject(restError(503, 'ServiceUnavailable', 'x')),
      return: async () => ({ done: true, value: undefined }),
      [Symbol.asyncIterator]: () => failing,
    };
    client.listPropertiesOfSecretVersions.mockImplementationOnce(() => ({ byPage: () => failing })).mockImplementation(() => pagedOf([[]]));
    await expect(kv.deleteSecret('d1')).resolves.toMatchObject({ recoveryId: deleted.recoveryId });
    expect([poller.poll.mock.calls.length, client.listPropertiesOfSecretVersions.mock.calls.length]).toEqual([2, 2]);

    client.beginDeleteSecret.mockReset().mockResolvedValue(pollerShowingAt(Number.POSITIVE_INFINITY));
    client.listPropertiesOfSecretVersions.mockReset().mockImplementationOnce(() => pagedOf([[]])).mockImplementation(() => pagedOf([[sdkProperties('d1')]]));
    expect(await failure(kv.deleteSecret('d1'))).toMatchObject({ code: C.DELETE_UNDONE, secretName: 'd1' });
    expect(client.beginDeleteSecret).toHaveBeenCalledTimes(1);
  });

  it("delete: the listing between reads takes nothing from the wait's pace — the deleted record is read every pollIntervalMs however slow the listing; a secret listed live ends the pause at once", async () => {
    const INTERVAL = 200;
    const deleted = { name: 'd1', properties: sdkProperties('d1'), recoveryId: `${FAKE_VAULT}/deletedsecrets/d1` };
    /** A delete whose record shows at the `shownAt`-th read (the first is beginDeleteSecret's), listing `versions` after `listMs` each time. */
    const vault = async (pollIntervalMs: number, shownAt: number, listMs: number, versions: unknown[]) => {
      const { kv, client } = await setup({ resilience: { pollIntervalMs, timeoutMs: 10_000 } });
      let reads = 1;
      client.beginDeleteSecret.mockResolvedValue({ isDone: () => reads >= shownAt, poll: async () => void reads++, getResult: () => deleted });
      client.listPropertiesOfSecretVersions.mockImplementation(() => ({
        byPage: () => {
          const pages = pagedOf([versions]).byPage();
          const slow: AsyncIterableIterator<unknown> = {
            next: async () => (await new Promise((r) => setTimeout(r, listMs)), pages.next()),
            return: async () => ({ done: true, value: undefined }),
            [Symbol.asyncIterator]: () => slow,
          };
          return slow;
        },
      }));
      return kv;
    };
    // Each listing reads its page, then its end: 180 ms in all, most of a pause.
    const slowToList = await vault(INTERVAL, 6, 90, []);
    let started = performance.now();
    await expect(slowToList.deleteSecret('d1')).resolves.toMatchObject({ recoveryId: deleted.recoveryId });
    // 5 pauses of INTERVAL: 1000 ms, as the SDK's poller waits. Listing before each pause added them: ≥ 1900 ms
    // (half a second of slack for a loaded machine's late timers).
    expect(performance.now() - started).toBeLessThan(5 * INTERVAL + 500);

    // A secret live again ends the wait when the listing answers, not at the end of a long pause.
    const recovered = await vault(5_000, Number.POSITIVE_INFINITY, 10, [sdkProperties('d1')]);
    started = performance.now();
    expect(await failure(recovered.deleteSecret('d1'))).toMatchObject({ code: C.DELETE_UNDONE });
    expect(performance.now() - started).toBeLessThan(2_000);
  });

  it('backup failures map to BACKUP_FAILED; an empty blob is refused', async () => {
    const { kv, client } = await setup();
    client.backupSecret.mockRejectedValueOnce(restError(400, 'BadParameter', 'too many versions'));
    expect((await failure(kv.backupSecret('b1'))).code).toBe(C.BACKUP_FAILED);
    client.backupSecret.mockResolvedValueOnce(undefined);
    expect((await failure(kv.backupSecret('b1'))).code).toBe(C.BACKUP_FAILED);
    expect((await failure(kv.restoreSecretBackup(new Uint8Array()))).code).toBe(C.INVALID_REQUEST);
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
