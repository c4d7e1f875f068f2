/** Internal token of the merged, validated options (ResolvedCredentialsOptions). */
export const CREDENTIALS_RESOLVED_OPTIONS = Symbol('credentials:resolved-options');
/** Internal token of the lib's Clock (from options; not the host's, so a lib never shadows it). */
export const CREDENTIALS_CLOCK = Symbol('credentials:clock');
/** Internal token of the lib's DistributedLock (the host's, else one on its DataSource): the orphan-versions job's. */
export const CREDENTIALS_LOCK = Symbol('credentials:lock');
/**
 * The outbox event of a revoke's vault side (ids only: `{ credentialId }`, the tenant as the event's), added in the
 * transaction that sets the status `revoked`: a process that dies (or a vault that fails) before every Key Vault version
 * is disabled leaves it undelivered, and any replica finishes the revoke (CredentialRevoker). This lib's own work, like
 * `credentials.vault-values.delete`: written whatever `emitEvents` says.
 */
export const VAULT_VALUE_REVOKE_EVENT = 'credentials.vault-values.revoke';
