/** Internal DI tokens (not exported from the lib's index). */

/** Options after validation and defaults (`ResolvedKeyVaultOptions`). */
export const KEY_VAULT_RESOLVED_OPTIONS = 'CredentialVault.KeyVault.ResolvedOptions';

/** The `KeyVaultSecretClient` (a real `SecretClient`; unit tests override it with a fake). */
export const KEY_VAULT_SECRET_CLIENT = 'CredentialVault.KeyVault.SecretClient';
