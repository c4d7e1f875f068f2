/**
 * AzureKeyVaultProvider.restoreSecretBackup over a fake SecretClient: what a 409 means (a taken name, a purge still
 * completing, an earlier attempt that landed) and when the outcome cannot be told (OUTCOME_UNKNOWN).
 */
import { KeyVaultErrorCode as C } from './errors/key-vault-error-code';
import type { KeyVaultError } from './errors/key-vault.error';
import { failure, setup } from './azure-key-vault.provider.testing';
import { restError, sdkProperties } from './testing/fake-secret-client';

describe('AzureKeyVaultProvider (fake SecretClient)', () => {
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

    it('a 409 the reads cannot explain (forbidden, failing, or no name quoted nor given) stays a conflict, never retried', async () => {
      const { kv, client } = await setup();
      client.restoreSecretBackup.mockRejectedValue(exists());
      client.getSecret.mockRejectedValue(notFound());
      client.getDeletedSecret
        .mockRejectedValueOnce(restError(403, 'Forbidden', 'Caller is not authorized to perform action on resource.'))
        .mockRejectedValueOnce(restError(503, 'ServiceUnavailable', 'x'));
      for (let i = 0; i < 2; i++) expect((await failure(kv.restoreSecretBackup(blob))).code).toBe(C.CONFLICT);
      client.restoreSecretBackup.mockRejectedValue(restError(409, 'Conflict', 'There was a conflict.'));
      expect((await failure(kv.restoreSecretBackup(blob))).code).toBe(C.CONFLICT);
      expect(client.restoreSecretBackup).toHaveBeenCalledTimes(3);
      expect(client.getSecret).toHaveBeenCalledTimes(2);
    });

    it('a plain 409 whose name reads soft-deleted (its delete completed after the 409) is DELETED_BUT_RECOVERABLE, naming it: recover or purge', async () => {
      const { kv, client } = await setup();
      client.restoreSecretBackup.mockRejectedValue(exists());
      client.getSecret.mockRejectedValue(notFound());
      client.getDeletedSecret.mockResolvedValue({ name: 'tenant-secret', properties: sdkProperties('tenant-secret', LATEST) });
      const e = await failure(kv.restoreSecretBackup(blob));
      expect([e.code, e.statusCode, e.secretName]).toEqual([C.DELETED_BUT_RECOVERABLE, 409, 'tenant-secret']);
      expect(e.message).not.toContain('tenant-secret');
      expect(client.restoreSecretBackup).toHaveBeenCalledTimes(1);
    });

    it('a 409 over a name soft-deleted while this provider recovers it (read so, or answered so) is OBJECT_BEING_RECOVERED, retried, not DELETED_BUT_RECOVERABLE', async () => {
      const { kv, client } = await setup({ resilience: { maxAttempts: 2, initialDelayMs: 1, maxDelayMs: 1 } });
      let finish!: (p: unknown) => void;
      client.beginRecoverDeletedSecret.mockResolvedValue({ pollUntilDone: () => new Promise((r) => (finish = r)), getOperationState: () => ({ isStarted: true }) });
      const recovering = kv.recoverDeletedSecret('tenant-secret').catch(() => undefined);
      await new Promise((r) => setImmediate(r));
      client.restoreSecretBackup.mockRejectedValue(exists());
      client.getSecret.mockRejectedValue(notFound());
      client.getDeletedSecret.mockResolvedValue({ name: 'tenant-secret', properties: sdkProperties('tenant-secret', LATEST) });
      const e = await failure(kv.restoreSecretBackup(blob));
      expect([e.code, e.statusCode, e.secretName]).toEqual([C.OBJECT_BEING_RECOVERED, 409, 'tenant-secret']);
      expect(e.message).toMatch(/the name is soft-deleted, while this provider recovers it/);
      // The vault's own answer for the soft-deleted name (the recover not applied yet): the same, retried.
      const softDeletedAnswer = 'Secret tenant-secret is currently in a deleted but recoverable state, and its name cannot be reused.';
      client.restoreSecretBackup.mockReset().mockRejectedValue(restError(409, 'Conflict', softDeletedAnswer));
      const own = await failure(kv.restoreSecretBackup(blob));
      expect([own.code, own.statusCode, own.secretName]).toEqual([C.OBJECT_BEING_RECOVERED, 409, 'tenant-secret']);
      expect(client.restoreSecretBackup).toHaveBeenCalledTimes(2);
      finish(sdkProperties('tenant-secret', LATEST));
      await recovering;
    });

    it('a recover that failed or timed out no longer counts: a later 409 over the soft-deleted name is DELETED_BUT_RECOVERABLE again', async () => {
      const { kv, client } = await setup({ resilience: { maxAttempts: 2, initialDelayMs: 1, maxDelayMs: 1, timeoutMs: 50 } });
      client.getSecret.mockRejectedValue(notFound());
      client.getDeletedSecret.mockResolvedValue({ name: 'tenant-secret', properties: sdkProperties('tenant-secret', LATEST) });
      client.restoreSecretBackup.mockRejectedValue(exists());
      // Refused at once, then each attempt cut off by its timeout (the poller honours the attempt's abort).
      client.beginRecoverDeletedSecret.mockRejectedValueOnce(restError(403, 'Forbidden', 'x'));
      await kv.recoverDeletedSecret('tenant-secret').catch(() => undefined);
      client.beginRecoverDeletedSecret.mockImplementation(async (_name: string, { abortSignal }: { abortSignal: AbortSignal }) => ({
        pollUntilDone: () => new Promise((_resolve, reject) => abortSignal.addEventListener('abort', () => reject(abortSignal.reason), { once: true })),
        getOperationState: () => ({ isStarted: true }),
      }));
      await kv.recoverDeletedSecret('TENANT-SECRET').catch(() => undefined);
      expect(client.beginRecoverDeletedSecret).toHaveBeenCalledTimes(3);
      const e = await failure(kv.restoreSecretBackup(blob));
      expect([e.code, e.secretName]).toEqual([C.DELETED_BUT_RECOVERABLE, 'tenant-secret']);
      expect(client.restoreSecretBackup).toHaveBeenCalledTimes(1);
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
});
