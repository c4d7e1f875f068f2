/** Internal DI tokens (not exported from the lib's index). */

/** Options after validation and defaults (`ResolvedKeyVaultOptions`). */
export const KEY_VAULT_RESOLVED_OPTIONS = 'CredentialVault.KeyVault.ResolvedOptions';

/** The `KeyVaultSecretClient` (a real `SecretClient`; unit tests override it with a fake). */
export const KEY_VAULT_SECRET_CLIENT = 'CredentialVault.KeyVault.SecretClient';

/** The one `TokenCredential` of the vault, shared by the SecretClient, the KeyClient and every CryptographyClient. */
export const KEY_VAULT_TOKEN_CREDENTIAL = 'CredentialVault.KeyVault.TokenCredential';

/** The `KeyVaultKeyClient` (a real `KeyClient`; unit tests override it with a fake). */
export const KEY_VAULT_KEY_CLIENT = 'CredentialVault.KeyVault.KeyClient';

/** The `CryptographyClientFactory` (real CryptographyClients with the same identity and options). */
export const KEY_VAULT_CRYPTOGRAPHY_CLIENTS = 'CredentialVault.KeyVault.CryptographyClients';
