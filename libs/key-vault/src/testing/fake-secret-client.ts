/**
 * Test double of the SDK's SecretClient for the key-vault lib's unit specs (bound to the internal
 * KEY_VAULT_SECRET_CLIENT token). Not exported from the lib's index.
 */
import { RestError, createHttpHeaders, createPipelineRequest } from '@azure/core-rest-pipeline';
import type { KeyVaultSecret, SecretProperties } from '@azure/keyvault-secrets';
import type { KeyVaultSecretClient } from '../client/secret-client.factory';
import type { KeyVaultModuleOptions } from '../interfaces/key-vault-module-options.interface';

export const FAKE_VAULT = 'https://localhost:8443';

/** Module options of a vault the fake client stands in for; a spec adds its metrics, resilience, health. */
export const FAKE_VAULT_OPTIONS = { vaultUrl: FAKE_VAULT, credential: { type: 'static' }, disableChallengeResourceVerification: true } satisfies Partial<KeyVaultModuleOptions>;

/** A RestError shaped exactly like the SDK's (status, service code, response headers). */
export function restError(status: number, code: string, message: string, headers: Record<string, string> = {}): RestError {
  const request = createPipelineRequest({ url: `${FAKE_VAULT}/secrets/x` });
  return new RestError(message, {
    statusCode: status,
    code,
    request,
    response: { status, headers: createHttpHeaders(headers), request },
  });
}

/** A connection-level RestError (no response), e.g. ECONNRESET. */
export function networkError(code: string, message: string): RestError {
  return new RestError(message, { code, request: createPipelineRequest({ url: `${FAKE_VAULT}/secrets/x` }) });
}

export function sdkProperties(name: string, version = 'a'.repeat(32)): SecretProperties {
  return {
    name,
    version,
    id: `${FAKE_VAULT}/secrets/${name}/${version}`,
    vaultUrl: FAKE_VAULT,
    enabled: true,
    tags: {},
  };
}

export function sdkSecret(name: string, value: string): KeyVaultSecret {
  return { name, value, properties: sdkProperties(name) };
}

type Pageable<T> = {
  byPage(settings?: { maxPageSize?: number; continuationToken?: string }): AsyncIterableIterator<T[] & { continuationToken?: string }>;
};

/** A paged result whose first page carries `continuationToken` like the core-paging contract says. */
export function pagedOf<T>(pages: T[][], seen?: Array<{ maxPageSize?: number; continuationToken?: string }>): Pageable<T> {
  return {
    byPage(settings) {
      seen?.push({ ...settings });
      const start = settings?.continuationToken ? Number(new URL(settings.continuationToken).searchParams.get('page')) : 0;
      let i = start;
      const iterator: AsyncIterableIterator<T[] & { continuationToken?: string }> = {
        async next() {
          if (i >= pages.length) return { done: true, value: undefined };
          const page = [...pages[i]] as T[] & { continuationToken?: string };
          i += 1;
          if (i < pages.length) page.continuationToken = `${FAKE_VAULT}/secrets?page=${i}`;
          return { done: false, value: page };
        },
        async return() {
          return { done: true, value: undefined };
        },
        [Symbol.asyncIterator]() {
          return iterator;
        },
      };
      return iterator;
    },
  };
}

/** Every method is a jest.fn; tests give them behaviour with mockImplementation. */
export function createFakeSecretClient() {
  const fake = {
    vaultUrl: FAKE_VAULT,
    setSecret: jest.fn(),
    getSecret: jest.fn(),
    updateSecretProperties: jest.fn(),
    listPropertiesOfSecrets: jest.fn(),
    listPropertiesOfSecretVersions: jest.fn(),
    listDeletedSecrets: jest.fn(),
    beginDeleteSecret: jest.fn(),
    getDeletedSecret: jest.fn(),
    beginRecoverDeletedSecret: jest.fn(),
    purgeDeletedSecret: jest.fn(),
    backupSecret: jest.fn(),
    restoreSecretBackup: jest.fn(),
  };
  return fake as typeof fake & KeyVaultSecretClient;
}

export type FakeSecretClient = ReturnType<typeof createFakeSecretClient>;
