import { AsyncLocalStorage } from 'node:async_hooks';
import type { TokenCredential } from '@azure/identity';
import { SecretClient, type SecretClientOptions } from '@azure/keyvault-secrets';
import type { ResolvedKeyVaultOptions } from '../interfaces/key-vault-module-options.interface';

/** The part of `SecretClient` the provider and the health indicator use (a fake implements this in unit tests). */
export type KeyVaultSecretClient = Pick<
  SecretClient,
  | 'vaultUrl'
  | 'setSecret'
  | 'getSecret'
  | 'updateSecretProperties'
  | 'listPropertiesOfSecrets'
  | 'listPropertiesOfSecretVersions'
  | 'listDeletedSecrets'
  | 'beginDeleteSecret'
  | 'getDeletedSecret'
  | 'beginRecoverDeletedSecret'
  | 'purgeDeletedSecret'
  | 'backupSecret'
  | 'restoreSecretBackup'
>;

/** Per-call state shared with the pipeline policy below through AsyncLocalStorage. */
export interface KeyVaultCallContext {
  /** Abort signal of the current attempt (per-attempt timeout). */
  signal?: AbortSignal;
  /** `nextLink` of the last list response seen in this call (null: last page). */
  nextLink?: string | null;
}

/**
 * An AsyncLocalStorage, not the request's `abortSignal` as a key: the SDK sends continuation pages
 * with no signal and no options, so only the async context links them to their call.
 */
const callContexts = new AsyncLocalStorage<KeyVaultCallContext>();
/** Calls running in `callContexts` whose work has not settled yet. */
let openCalls = 0;

/**
 * Runs `fn` with `call` as the call context the pipeline policy sees, through its awaits, timers and
 * callbacks. On Node 20 an enabled AsyncLocalStorage keeps the promise hooks on for every promise in
 * the process, so the storage is disabled as soon as no call is running (the next call re-enables
 * it): paths that make no vault call, such as a cached read, do not pay for it. Never disabled while
 * a call's work is pending — even when its attempt already timed out — since that work still sends.
 */
export async function runInCallContext<T>(call: KeyVaultCallContext, fn: () => Promise<T>): Promise<T> {
  openCalls++;
  try {
    return await callContexts.run(call, fn);
  } finally {
    if (--openCalls === 0) callContexts.disable();
  }
}

/** The context of the vault call running in this async context, if any. */
export function currentCallContext(): KeyVaultCallContext | undefined {
  return callContexts.getStore();
}

type PipelinePolicy = NonNullable<SecretClientOptions['additionalPolicies']>[number]['policy'];

/**
 * Two gaps of @azure/keyvault-secrets 4.11 closed without touching its internals:
 * - `byPage()` maps each page with `Array.map`, which drops the page's `continuationToken`: we read
 *   `nextLink` from the list response body ourselves;
 * - requests for a continuation page do not carry the caller's `abortSignal`: we attach the
 *   current attempt's signal to any request that has none, so per-attempt timeouts cancel them.
 */
export const keyVaultCallContextPolicy: PipelinePolicy = {
  name: 'credentialVaultCallContext',
  async sendRequest(request, next) {
    const ctx = currentCallContext();
    if (ctx?.signal && !request.abortSignal) request.abortSignal = ctx.signal;
    const response = await next(request);
    if (ctx && request.method === 'GET' && response.status === 200 && response.bodyAsText) {
      try {
        const body = JSON.parse(response.bodyAsText) as { value?: unknown; nextLink?: unknown };
        if (Array.isArray(body.value)) ctx.nextLink = typeof body.nextLink === 'string' && body.nextLink ? body.nextLink : null;
      } catch {
        // not JSON: not a list page
      }
    }
    return response;
  },
};

/**
 * Builds the real `SecretClient`.
 *
 * - `retryOptions.maxRetries: 0`: the SDK's own retry policy is off; our cockatiel policy is the only
 *   retry layer, so attempts never multiply.
 * - `tlsOptions.ca`: trust the local vault's CA for this client only (validated: local vaults only).
 *   The SDK's node HTTP client creates one keep-alive https.Agent per tlsOptions object.
 */
/**
 * A client's first request goes alone; the others wait until it has an answer (or failed). The SDK's
 * challenge policy (`keyVaultAuthenticationPolicy`) sends a new client's first request without its
 * body, and puts the body back only if that request's own 401 completes the challenge. When a
 * concurrent request's 401 completes it first, the first request is retried with no body: a
 * `setSecret` without a value, a `sign` without a digest — a 400 for a valid call. Placed `perCall`,
 * the gate wraps the challenge policy; it holds one state per client, so each client gets its own.
 */
export function firstRequestAlonePolicy(): PipelinePolicy {
  let first: Promise<unknown> | undefined;
  return {
    name: 'credentialVaultFirstRequestAlone',
    async sendRequest(request, next) {
      if (first) {
        await first.catch(() => undefined);
        return next(request);
      }
      const answer = next(request);
      first = answer;
      return answer;
    },
  };
}

export function createSecretClient(options: ResolvedKeyVaultOptions, credential: TokenCredential): SecretClient {
  return new SecretClient(options.vaultUrl, credential, vaultClientOptions(options));
}

/**
 * Options every client of the vault gets (SecretClient, KeyClient, CryptographyClient): the SDK's
 * retry off, the local vault's CA for these clients only, the challenge-resource switch, the
 * call-context policy. No http://: the options refuse it (no Key Vault speaks plain HTTP).
 */
export function vaultClientOptions(options: ResolvedKeyVaultOptions): SecretClientOptions & { disableChallengeResourceVerification?: boolean } {
  const clientOptions: SecretClientOptions = {
    retryOptions: { maxRetries: 0 },
    disableChallengeResourceVerification: options.disableChallengeResourceVerification,
    // A new gate per call: every client built from these options has its own challenge state.
    additionalPolicies: [
      { policy: firstRequestAlonePolicy(), position: 'perCall' },
      { policy: keyVaultCallContextPolicy, position: 'perCall' },
    ],
  };
  if (options.caCertPem) clientOptions.tlsOptions = { ca: options.caCertPem };
  return clientOptions;
}
