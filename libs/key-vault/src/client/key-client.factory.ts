import type { TokenCredential } from '@azure/identity';
import { CryptographyClient, KeyClient, type KeyClientOptions } from '@azure/keyvault-keys';
import type { ResolvedKeyVaultOptions } from '../interfaces/key-vault-module-options.interface';
import { vaultClientOptions } from './secret-client.factory';

/** The part of `KeyClient` the keys provider uses (a fake implements this in unit tests). */
export type KeyVaultKeyClient = Pick<
  KeyClient,
  | 'vaultUrl'
  | 'createKey'
  | 'createRsaKey'
  | 'createEcKey'
  | 'getKey'
  | 'listPropertiesOfKeys'
  | 'listPropertiesOfKeyVersions'
  | 'updateKeyProperties'
  | 'rotateKey'
  | 'beginDeleteKey'
  | 'getDeletedKey'
  | 'beginRecoverDeletedKey'
  | 'purgeDeletedKey'
  | 'backupKey'
  | 'restoreKeyBackup'
>;

/** The part of `CryptographyClient` the keys provider uses. */
export type KeyVaultCryptographyClient = Pick<CryptographyClient, 'sign' | 'verify' | 'encrypt' | 'decrypt' | 'wrapKey' | 'unwrapKey'>;

/** Builds the CryptographyClient of one key version (`https://<vault>/keys/<name>/<version>`). */
export type CryptographyClientFactory = (keyId: string) => KeyVaultCryptographyClient;

/** The same options as the SecretClient's (see `vaultClientOptions`). */
function keyClientOptions(options: ResolvedKeyVaultOptions): KeyClientOptions {
  return vaultClientOptions(options) as KeyClientOptions;
}

/** The real `KeyClient`, with the same identity as the SecretClient. */
export function createKeyClient(options: ResolvedKeyVaultOptions, credential: TokenCredential): KeyClient {
  return new KeyClient(options.vaultUrl, credential, keyClientOptions(options));
}

/**
 * CryptographyClients of one vault, same identity and options. The SDK reads the key once per
 * client (public part, for its own checks and the operations it runs locally), so the provider keeps
 * one client per key version.
 */
export function createCryptographyClientFactory(options: ResolvedKeyVaultOptions, credential: TokenCredential): CryptographyClientFactory {
  // Options per client: each has its own challenge state, so its own first-request gate.
  return (keyId) => new CryptographyClient(keyId, credential, keyClientOptions(options));
}
