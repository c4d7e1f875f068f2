import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AzureCliCredential,
  ClientCertificateCredential,
  ClientSecretCredential,
  DefaultAzureCredential,
  ManagedIdentityCredential,
  WorkloadIdentityCredential,
  type TokenCredential,
} from '@azure/identity';
import { KeyVaultErrorCode } from '../errors/key-vault-error-code';
import type { KeyVaultCredentialOptions } from '../interfaces/key-vault-module-options.interface';
import { createTokenCredential, StaticTokenCredential } from './credential.factory';

const tenantId = '72f988bf-86f1-41af-91ab-2d7cd011db47';
const clientId = '00000000-0000-0000-0000-000000000001';

describe('createTokenCredential', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kv-cred-'));
  const tokenFile = join(dir, 'token');
  writeFileSync(tokenFile, 'eyJ.federated.token');

  it.each<[string, KeyVaultCredentialOptions, abstract new (...a: any[]) => TokenCredential]>([
    ['managed-identity (system)', { type: 'managed-identity' }, ManagedIdentityCredential],
    ['managed-identity (user-assigned)', { type: 'managed-identity', clientId }, ManagedIdentityCredential],
    ['client-secret', { type: 'client-secret', tenantId, clientId, clientSecret: 's3cr3t' }, ClientSecretCredential],
    ['client-certificate (path)', { type: 'client-certificate', tenantId, clientId, certificatePath: join(dir, 'c.pem') }, ClientCertificateCredential],
    [
      'client-certificate (PEM)',
      { type: 'client-certificate', tenantId, clientId, certificate: '-----BEGIN CERTIFICATE-----', sendCertificateChain: true },
      ClientCertificateCredential,
    ],
    ['workload-identity', { type: 'workload-identity', tenantId, clientId, tokenFilePath: tokenFile }, WorkloadIdentityCredential],
    ['azure-cli', { type: 'azure-cli' }, AzureCliCredential],
    ['default', { type: 'default' }, DefaultAzureCredential],
    ['default (user-assigned MI)', { type: 'default', managedIdentityClientId: clientId }, DefaultAzureCredential],
    ['static', { type: 'static' }, StaticTokenCredential],
  ])('%s → the matching @azure/identity class', (_label, options, cls) => {
    expect(createTokenCredential(options)).toBeInstanceOf(cls);
  });

  it('passes a host-provided TokenCredential through untouched', () => {
    const credential: TokenCredential = { getToken: async () => ({ token: 'x', expiresOnTimestamp: Date.now() + 1000 }) };
    expect(createTokenCredential({ type: 'token-credential', credential })).toBe(credential);
  });

  it('the static credential returns its token, valid for about an hour', async () => {
    const t = await createTokenCredential({ type: 'static', token: 'dev-token' }).getToken('https://vault.azure.net/.default');
    expect(t?.token).toBe('dev-token');
    expect(t!.expiresOnTimestamp - Date.now()).toBeGreaterThan(59 * 60 * 1000);
    const d = await createTokenCredential({ type: 'static' }).getToken('https://vault.azure.net/.default');
    expect(d?.token).toBe('credential-vault-dev-token');
  });

  it('turns an SDK constructor refusal into a CONFIGURATION error that names the credential type', () => {
    // The SDK validates the tenant id format itself.
    expect(() =>
      createTokenCredential({ type: 'client-secret', tenantId: 'not a tenant!', clientId, clientSecret: 'x' }),
    ).toThrow(expect.objectContaining({ code: KeyVaultErrorCode.CONFIGURATION, message: expect.stringContaining("credential type 'client-secret'") }));
  });
});
