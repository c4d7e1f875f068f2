import { AsyncResource } from 'node:async_hooks';
import { SecretClient, type SecretClientOptions } from '@azure/keyvault-secrets';
import { currentCallContext, vaultClientOptions } from '../client/secret-client.factory';
import { KeyVaultErrorCode } from '../errors/key-vault-error-code';
import { isKeyVaultError } from '../errors/key-vault.error';
import { resolveKeyVaultOptions } from '../key-vault.options';
import { KeyVaultMetrics } from '../metrics/key-vault.metrics';
import { KeyVaultResilience } from './key-vault.resilience';

type HttpClient = NonNullable<SecretClientOptions['httpClient']>;
type Request = Parameters<HttpClient['sendRequest']>[0];

const VAULT = 'https://unit.vault.azure.net';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const nextLinkAfter = (page: number) => `${VAULT}/secrets?api-version=7.6&$skiptoken=page${page}`;

/** A vault whose list pages answer after a timer, each with a nextLink; records every request's signal. */
function pagingVault() {
  const seen: Array<{ page: number; signal: unknown }> = [];
  const httpClient: HttpClient = {
    async sendRequest(request: Request) {
      const page = Number(/page(\d+)/.exec(request.url)?.[1] ?? 0) + 1;
      seen.push({ page, signal: request.abortSignal });
      await sleep(5);
      const body = { value: [{ id: `${VAULT}/secrets/s${page}`, attributes: { enabled: true, created: 1, updated: 1 } }], nextLink: nextLinkAfter(page) };
      return { status: 200, request, headers: { get: () => 'application/json', has: () => true, set() {}, delete() {}, toJSON: () => ({}), [Symbol.iterator]: () => [][Symbol.iterator]() }, bodyAsText: JSON.stringify(body) } as never;
    },
  };
  return { httpClient, seen };
}

const credential = { getToken: async () => ({ token: 'unit-token', expiresOnTimestamp: Date.now() + 3_600_000 }) };

describe('the Key Vault call context (per-attempt state seen by the pipeline policy)', () => {
  const options = resolveKeyVaultOptions({ vaultUrl: VAULT, credential: { type: 'managed-identity' } });
  const metrics = new KeyVaultMetrics({ ...options.metrics, enabled: false });
  const resilience = (timeoutMs = 5_000) => new KeyVaultResilience({ ...options.resilience, maxAttempts: 1, timeoutMs }, metrics, VAULT);
  let vault: ReturnType<typeof pagingVault>;
  let client: SecretClient;

  beforeEach(() => {
    vault = pagingVault();
    client = new SecretClient(VAULT, credential, { ...vaultClientOptions({ ...options, disableChallengeResourceVerification: true }), httpClient: vault.httpClient });
  });

  /** One continuation page read the way the provider reads it: the SDK sends it with no signal of its own. */
  const continuationPage = async (page: number) => {
    const pages = client.listPropertiesOfSecrets().byPage({ continuationToken: nextLinkAfter(page) });
    try {
      return await pages.next();
    } finally {
      await pages.return?.(undefined);
    }
  };

  it("a continuation page carries its attempt's signal and reports its nextLink; concurrent calls each get their own", async () => {
    const runs = await Promise.all(
      [1, 2, 3].map((page) =>
        resilience().execute('listSecrets', undefined, async ({ signal, call }) => {
          await sleep(page);
          await continuationPage(page);
          return { signal, nextLink: call.nextLink };
        }),
      ),
    );
    expect(runs.map((r) => r.nextLink)).toEqual([nextLinkAfter(2), nextLinkAfter(3), nextLinkAfter(4)]);
    for (const [i, run] of runs.entries()) expect(vault.seen.find((s) => s.page === i + 2)?.signal).toBe(run.signal);
  });

  it('outside any call the policy adds no signal', async () => {
    await continuationPage(1);
    expect(vault.seen).toEqual([{ page: 2, signal: undefined }]);
  });

  it('the context storage is off once no call is running, on while one is, and on again for the next call', async () => {
    // A callback bound inside a finished call still carries that call: getStore() returns it only while the storage is enabled.
    const peek = await resilience().execute('getSecret', 's', async () => AsyncResource.bind(() => currentCallContext()));
    expect(peek()).toBeUndefined();
    const hold = resilience().execute('getSecret', 's', async ({ call }) => {
      expect(peek()).toBeDefined();
      await sleep(10);
      expect(currentCallContext()).toBe(call);
    });
    expect(peek()).toBeDefined();
    await hold;
    expect(peek()).toBeUndefined();
    expect(currentCallContext()).toBeUndefined();
    // A call that fails leaves it off too.
    await expect(resilience().execute('getSecret', 's', async () => Promise.reject(new Error('boom')))).rejects.toThrow();
    expect(peek()).toBeUndefined();
  });

  it('an attempt that timed out keeps its context until its work settles: a request it sends late still gets its (aborted) signal', async () => {
    let attemptSignal: AbortSignal | undefined;
    let late: Promise<unknown> | undefined;
    const err = await resilience(20)
      .execute('listSecrets', undefined, ({ signal }) => {
        attemptSignal = signal;
        late = (async () => {
          await sleep(60);
          return continuationPage(1);
        })();
        return late;
      })
      .catch((e: unknown) => e);
    expect(isKeyVaultError(err, KeyVaultErrorCode.TIMEOUT)).toBe(true);
    // The timed-out attempt's work goes on; its request must still be cancellable by that attempt's signal.
    await late!.catch(() => undefined);
    expect(attemptSignal?.aborted).toBe(true);
    expect(vault.seen).toEqual([{ page: 2, signal: attemptSignal }]);
  });
});
