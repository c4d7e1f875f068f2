import {
  AzureCliCredential,
  ClientCertificateCredential,
  ClientSecretCredential,
  DefaultAzureCredential,
  ManagedIdentityCredential,
  WorkloadIdentityCredential,
  type AccessToken,
  type TokenCredential,
} from '@azure/identity';
import { KeyVaultErrorCode } from '../errors/key-vault-error-code';
import { KeyVaultError } from '../errors/key-vault.error';
import type { KeyVaultCredentialOptions } from '../interfaces/key-vault-module-options.interface';
import { DEFAULT_STATIC_TOKEN } from '../key-vault.options';

/** A fixed bearer token, valid "for an hour" on every call. For local vaults (the emulator) only. */
export class StaticTokenCredential implements TokenCredential {
  constructor(private readonly token: string = DEFAULT_STATIC_TOKEN) {}

  async getToken(): Promise<AccessToken> {
    return { token: this.token, expiresOnTimestamp: Date.now() + 60 * 60 * 1000, tokenType: 'Bearer' };
  }
}

/**
 * Builds the `TokenCredential` for the configured identity. Options are assumed validated (see
 * `resolveKeyVaultOptions`); an SDK constructor that still refuses them (e.g. workload identity
 * without a token file) becomes a CONFIGURATION `KeyVaultError`.
 */
export function createTokenCredential(options: KeyVaultCredentialOptions): TokenCredential {
  try {
    switch (options.type) {
      case 'managed-identity':
        return options.clientId ? new ManagedIdentityCredential({ clientId: options.clientId }) : new ManagedIdentityCredential();
      case 'client-secret':
        return new ClientSecretCredential(options.tenantId, options.clientId, options.clientSecret);
      case 'client-certificate': {
        const certOptions = { sendCertificateChain: options.sendCertificateChain ?? false };
        return options.certificatePath
          ? new ClientCertificateCredential(options.tenantId, options.clientId, { certificatePath: options.certificatePath }, certOptions)
          : new ClientCertificateCredential(options.tenantId, options.clientId, { certificate: options.certificate ?? '' }, certOptions);
      }
      case 'workload-identity':
        return new WorkloadIdentityCredential({
          tenantId: options.tenantId,
          clientId: options.clientId,
          tokenFilePath: options.tokenFilePath,
        });
      case 'azure-cli':
        return new AzureCliCredential();
      case 'default':
        return options.managedIdentityClientId
          ? new DefaultAzureCredential({ managedIdentityClientId: options.managedIdentityClientId })
          : new DefaultAzureCredential();
      case 'static':
        return new StaticTokenCredential(options.token);
      case 'token-credential':
        return options.credential;
      default: {
        const unknownType: never = options;
        throw new Error(`unknown credential type ${String((unknownType as { type?: unknown }).type)}`);
      }
    }
  } catch (e) {
    const reason = e instanceof Error ? `${e.name}: ${e.message.split('\n')[0]}` : String(e);
    throw new KeyVaultError(
      KeyVaultErrorCode.CONFIGURATION,
      `Invalid KeyVaultModule options: credential type '${options.type}' cannot be created (${reason})`,
      { operation: 'configuration', cause: e },
    );
  }
}
