import type { CredentialType, ValueStoreKind } from '../credential-type';

/** Where one version's value lives, as recorded in cv_credential_versions. Never a value. */
export interface ValuePointer {
  vaultSecretName?: string;
  vaultSecretVersion?: string;
  /** Vault store: generation of `vaultSecretName`. */
  vaultGeneration?: number;
  envelopeValueId?: string;
}

/** Identity of the credential a value belongs to (for names, tags and AAD). */
export interface ValueOwner {
  tenantId: string;
  credentialId: string;
  integrationId: string;
  connectionId: string;
  type: CredentialType;
}

export interface ValueWriteRequest extends ValueOwner {
  /** The version number this value will be committed as. */
  version: number;
  value: string;
  expiresAt?: Date | null;
  /** Vault store: the credential's current name generation and how many versions it holds. */
  vaultGeneration: number;
  versionsInGeneration: number;
  /** The caller's (`OperationContext.signal`): a vault write not sent yet is dropped when it aborts; once sent, it finishes. */
  signal?: AbortSignal;
}

export interface ValueReadOptions {
  /** The caller's (`OperationContext.signal`), or a cache load's shared by readers (aborted once all left): a vault read not sent yet is dropped, one in flight aborted (CANCELLED). */
  signal?: AbortSignal;
  /**
   * Write nothing on the way: no lazy upkeep (an envelope value's data key re-wrapped after the vault key rotated, the
   * value re-encrypted under the tenant's current data key), for a caller that promised to write nothing (a dry run).
   */
  readOnly?: boolean;
}

/**
 * A place for credential values. `write` runs BEFORE the metadata transaction and must not make the
 * value current by itself: only the committed version row makes a value servable.
 */
export interface CredentialValueStore {
  readonly kind: ValueStoreKind;
  write(request: ValueWriteRequest): Promise<ValuePointer>;
  read(owner: ValueOwner, pointer: ValuePointer, options?: ValueReadOptions): Promise<string>;
  /**
   * Inside the delete transaction (the ambient `TransactionRunner` one): discard values held in the database. The
   * values a delete leaves in Key Vault are `VaultValueDeletion`'s (an outbox event of the same transaction).
   */
  discardInTransaction(owner: ValueOwner): Promise<void>;
  /**
   * A value `write` stored whose version row never committed (the write lost its compare-and-set, e.g.
   * to a delete): removed, or at least made unreadable, so a deleted credential keeps no value.
   */
  discardUnreferenced(owner: ValueOwner, pointer: ValuePointer): Promise<void>;
}
