/**
 * The one gateway to Azure Key Vault secrets. An abstract class so it doubles as the DI token:
 * inject `KeyVaultProvider`, bind a fake to it in unit tests.
 *
 * Every method throws a `KeyVaultError` (see errors/) with a stable code; no method ever puts a
 * secret value into an error message or a log line.
 */
export interface SecretSummary {
  /** Secret name as stored by the vault (case preserved as first created). */
  name: string;
  /**
   * Version id (32 hex chars in Azure) — absent where the vault's answer names none: the items of `listSecrets` /
   * `listAllSecrets` / `listDeletedSecrets` (Key Vault lists secrets by an id without a version; `listSecretVersions`
   * or `getSecret` give it). A deleted secret read by name (`deleteSecret`, `getDeletedSecret`) has its latest's.
   */
  version?: string;
  /** Full secret id: `https://<vault>/secrets/<name>/<version>`. */
  id: string;
  enabled: boolean;
  contentType?: string;
  tags: Record<string, string>;
  createdOn?: Date;
  updatedOn?: Date;
  /** Informational only: Key Vault still serves an expired secret. */
  expiresOn?: Date;
  notBefore?: Date;
  recoveryLevel?: string;
  recoverableDays?: number;
}

/** One version's properties: what every answer about a version carries (one naming none is INVALID_RESPONSE). */
export interface SecretProperties extends SecretSummary {
  /** Version id (32 hex chars in Azure). */
  version: string;
}

export interface Secret {
  value: string;
  properties: SecretProperties;
}

export interface DeletedSecret {
  properties: SecretSummary;
  recoveryId?: string;
  deletedOn?: Date;
  scheduledPurgeDate?: Date;
}

export interface SetSecretOptions {
  contentType?: string;
  tags?: Record<string, string>;
  enabled?: boolean;
  /** Informational (the vault serves an expired secret); stored in whole seconds, rounded down; 1901-12-13..2038-01-19. */
  expiresOn?: Date;
  /** Informational, as `expiresOn`; rounded up, never earlier than asked; before `expiresOn` in whole seconds. */
  notBefore?: Date;
}

export interface UpdateSecretPropertiesOptions {
  contentType?: string;
  tags?: Record<string, string>;
  enabled?: boolean;
  /** As SetSecretOptions' dates. */
  expiresOn?: Date;
  notBefore?: Date;
}

export interface ListPageOptions {
  /** Page size sent to the vault as `maxresults` (1..25). */
  maxPageSize?: number;
  /** Opaque continuation token from a previous page (`nextLink`). */
  continuationToken?: string;
}

/** One version of a secret, by name. */
export interface SecretVersionRef {
  name: string;
  version: string;
}

/**
 * The options of a `KeyVaultProvider` / `KeyVaultKeysProvider` call (an optional last argument).
 */
export interface KeyVaultCallOptions {
  /**
   * Aborts when the caller has left (e.g. `OperationContext.signal`): a call not sent yet is dropped; a read
   * in flight is aborted; a write already sent finishes. The call then fails with CANCELLED.
   */
  signal?: AbortSignal;
}

/** The options of a read whose object may not exist (an optional last argument). */
export interface KeyVaultReadOptions extends KeyVaultCallOptions {
  /**
   * The caller asks whether the object exists: a not-found is an answer it expects (it then creates the object, or takes
   * its absence as the answer; a delete finds it deleted already), not a failure. The call still rejects with KEY_NOT_FOUND, counted as outcome `not_found`
   * (`operations_total`), never in `errors_total`, and its span is no error. Leave it unset where an absence is a fault
   * (a value a stored pointer names): that counts as an error.
   * @default false
   */
  notFoundExpected?: boolean;
}

/** The options of a delete that may meet another delete of the same name (`deleteSecret`'s optional last argument). */
export interface KeyVaultDeleteOptions extends Pick<KeyVaultReadOptions, 'notFoundExpected'> {
  /**
   * Another delete of the name may still be completing (a racing delete: another replica's delivery of the same
   * event), and the caller takes that as done: its 409 OBJECT_BEING_DELETED still rejects, at once (not retried: the
   * caller waits for no backoff), counted as outcome `being_deleted` (`operations_total`), never in `errors_total`, and
   * its span is no error. Leave it unset where the caller fails on it: that counts as an error (transient, retried).
   * @default false
   */
  beingDeletedExpected?: boolean;
}

export interface Page<T> {
  items: T[];
  /** Present when more pages follow. */
  continuationToken?: string;
}

export abstract class KeyVaultProvider {
  /** The vault's base URL, e.g. `https://myvault.vault.azure.net`. */
  abstract readonly vaultUrl: string;

  /**
   * Creates a secret, or a new version of an existing one. `call.signal`: dropped while not sent yet; once sent, it
   * finishes. After a lost answer the latest version is read back before sending again: one this call wrote (its
   * `cv-write-id` tag, a reserved name) is the result, so a lost answer adds no second version.
   */
  abstract setSecret(name: string, value: string, options?: SetSecretOptions, call?: KeyVaultCallOptions): Promise<Secret>;
  /** Latest version when `version` is omitted. `call.signal`: dropped while not sent, aborted in flight (CANCELLED). */
  abstract getSecret(name: string, version?: string, call?: KeyVaultReadOptions): Promise<Secret>;
  abstract updateSecretProperties(
    name: string,
    version: string,
    options: UpdateSecretPropertiesOptions,
  ): Promise<SecretProperties>;

  /** One page of secrets (latest versions, no values). */
  abstract listSecrets(options?: ListPageOptions): Promise<Page<SecretSummary>>;
  /** All secrets across pages. Avoid on hot paths: this is O(secrets) vault calls / 25. */
  abstract listAllSecrets(): AsyncIterable<SecretSummary>;
  abstract listSecretVersions(name: string, options?: ListPageOptions): Promise<Page<SecretProperties>>;
  abstract listAllSecretVersions(name: string): AsyncIterable<SecretProperties>;

  /**
   * Soft-deletes and waits until the deletion is visible (long-running operation, polled every `pollIntervalMs`). A
   * secret seen live again meanwhile (another client recovered it, or purged and wrote it anew) ends the wait with
   * DELETE_UNDONE, at once and not retried: the deletion took effect and was undone. `call.notFoundExpected`: a delete
   * that may find the secret gone already (a repeat of a delete done before) — its KEY_NOT_FOUND is outcome `not_found`;
   * `call.beingDeletedExpected`: one that may meet another delete still completing — its OBJECT_BEING_DELETED is outcome `being_deleted`.
   */
  abstract deleteSecret(name: string, call?: KeyVaultDeleteOptions): Promise<DeletedSecret>;
  abstract getDeletedSecret(name: string, call?: KeyVaultReadOptions): Promise<DeletedSecret>;
  abstract listDeletedSecrets(options?: ListPageOptions): Promise<Page<DeletedSecret>>;
  /** Recovers a soft-deleted secret and waits until it is readable again. */
  abstract recoverDeletedSecret(name: string): Promise<SecretProperties>;
  /** Permanently deletes a soft-deleted secret. Refused when the vault has purge protection. */
  abstract purgeDeletedSecret(name: string): Promise<void>;

  /** Opaque, vault-encrypted blob of every version of the secret. Fails beyond 500 versions. */
  abstract backupSecret(name: string): Promise<Uint8Array>;
  /**
   * Restores every version of a `backupSecret` blob under its name (which must not exist, not even soft-deleted); the
   * latest version's properties are the answer. `expected`: the backup's secret name and one version it holds (e.g.
   * recorded when it was made). After a lost answer a retry is refused with 409 (the secret exists): that secret
   * holding `expected.version` is the result; without `expected`, without that version, or when a version to read is
   * disabled, OUTCOME_UNKNOWN — not CONFLICT.
   */
  abstract restoreSecretBackup(backup: Uint8Array, expected?: SecretVersionRef): Promise<SecretProperties>;
}
