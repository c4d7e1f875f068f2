import type { ConnectionStatus, CredentialStatus, CredentialStatusInput, CredentialType, CredentialTypeInput, ValueStoreKind, ValueStoreKindInput } from './credential-type';
import type { CertificateInfo } from './validation/credential-value.validator';

/** Everything about a credential except its value. Safe to log, return over HTTP, cache anywhere. */
export interface CredentialMetadata {
  id: string;
  tenantId: string;
  integrationId: string;
  connectionId: string;
  type: CredentialType;
  valueStore: ValueStoreKind;
  /** Current version number (1, 2, ...): what get() serves. */
  version: number;
  /** Compare-and-set counter: pass it as `expectedVersion` to a write. */
  rowVersion: number;
  /** Stored status, except that an active credential past `expiresAt` reads as `expired`. */
  status: CredentialStatus;
  expiresAt: Date | null;
  rotatedAt: Date | null;
  tags: Record<string, string>;
  /** `***` + at most the last 3 characters of a value of ≥ 12 characters; `***` otherwise. */
  maskedValue: string;
  /** Client certificates only: facts read from the certificate. */
  certificate: CertificateInfo | null;
  createdAt: Date;
  updatedAt: Date;
  createdBy: string;
  updatedBy: string;
}

/** A read: the value and the metadata it belongs to. Do not log this object. */
export interface CredentialWithValue {
  value: string;
  metadata: CredentialMetadata;
}

export interface CredentialVersionInfo {
  credentialId: string;
  version: number;
  valueStore: ValueStoreKind;
  /** Set on versions created by rollback: the version whose value this one re-serves. */
  sourceVersion: number | null;
  expiresAt: Date | null;
  maskedValue: string;
  createdAt: Date;
  createdBy: string;
  current: boolean;
  /** When a revoke withdrew this version's value (never served again), or null. */
  revokedAt: Date | null;
}

export interface CredentialVersionWithValue {
  value: string;
  version: CredentialVersionInfo;
  metadata: CredentialMetadata;
}

export interface StoreCredentialInput {
  integrationId: string;
  connectionId: string;
  /** `CredentialType.API_KEY` or `'api_key'`. */
  type: CredentialTypeInput;
  value: string;
  /** When the value stops working. Client certificates: read from the certificate (this is ignored). */
  expiresAt?: Date | null;
  /** Metadata tags (≤ 15). Never put a value in a tag. */
  tags?: Record<string, string>;
  /** Override the module's per-type value-store policy for this credential. */
  valueStore?: ValueStoreKindInput;
  /**
   * When the credential was first created, for imports that keep their original date (the migration
   * lib). Not in the future. @default now
   */
  createdAt?: Date;
  /**
   * Earlier values, oldest first, for imports that keep a credential's history (a tenant restore):
   * stored as versions 1..n, and `value` as version n + 1, in the one commit of the store — a crash
   * leaves nothing or all of it, never an earlier value current. At most 500. `store` only (not `storeMany`).
   */
  history?: ReadonlyArray<{ value: string; expiresAt?: Date | null }>;
}

/** The caller's own rows, committed in a write's transaction (see `WriteOptions.inCommit`). */
export type InCommit<T = CredentialMetadata> = (written: T) => Promise<void>;

export interface CommitOptions<T = CredentialMetadata> {
  /**
   * The caller's own rows (audit, outbox, history), written in this write's transaction after its own
   * rows, with what it wrote: they commit together or not at all. Use it instead of wrapping the call in
   * `TransactionRunner.run`, which would hold a transaction open across the value store's vault call
   * (on SQLite every other write of the process waits for it). It must not call the vault or anything
   * slow itself, and may run more than once when a write without `expectedVersion` is retried. It does not run when
   * nothing is written: an `updateMetadata` whose given fields all equal the stored ones, a revoke of a credential
   * revoked already, an un-revoke of one that is not revoked.
   */
  inCommit?: InCommit<T>;
}

export interface StoreOptions extends CommitOptions {
  /**
   * The write is one of the internal credentials of a lib built on this one (the Rotation lib's pending rotation
   * values and staged webhook secrets): only then may `connectionId` start with a reserved prefix
   * (`INTERNAL_CONNECTION_PREFIXES`). Never set it from a tenant's input.
   */
  internal?: boolean;
}

export interface WriteOptions extends CommitOptions {
  /**
   * Compare-and-set: the `rowVersion` the caller last read. A different current row version fails
   * with CredentialConflictError and writes nothing. Without it, a concurrent change is retried.
   */
  expectedVersion?: number;
}

export interface ReadOptions {
  /**
   * Serve a value past its expiry (status `expired`, or `expiresAt` passed) instead of failing with
   * CredentialExpiredError — for callers that must see an expired value, e.g. to compare it. Revoked
   * values are never served.
   */
  allowExpired?: boolean;
}

export interface MetadataReadOptions {
  /**
   * Serve the row from the in-process cache (when `cache.enabled`), loading it on a miss. The row is
   * evicted by every change of the credential, on every replica, as cached values are, so it is as
   * fresh as the value reads' metadata. Ignored inside a transaction (its own writes are not evicted
   * before it commits). Off by default: a library caller about to act on the row reads it from the
   * database.
   */
  cached?: boolean;
}

export interface RotateOptions extends WriteOptions {
  /** Expiry of the new value (`null`/omitted: none). Client certificates: read from the certificate. */
  expiresAt?: Date | null;
}

export interface UpdateMetadataInput extends WriteOptions {
  /** Replaces all tags. */
  tags?: Record<string, string>;
  /** `null` clears. Not allowed for client certificates (their expiry is the certificate's). */
  expiresAt?: Date | null;
  /** Lifecycle status set by flows outside this lib (refresh failures, provider revocation). */
  status?: SettableStatus | `${SettableStatus}`;
}

/** The statuses `updateMetadata` sets (deleting is `delete()`). */
type SettableStatus = CredentialStatus.ACTIVE | CredentialStatus.EXPIRED | CredentialStatus.NEEDS_REAUTH | CredentialStatus.REVOKED;

/** Whether a tenant-facing list shows the libs' internal credentials too (`isInternalCredential`). */
export interface InternalCredentialsOption {
  /**
   * Include the internal credentials the libs built on this one keep among the tenant's (`custom_secret`s of
   * connections `rotation-pending.…`, `whsec-pending.…`): for operators and those libs. They are read by id either way.
   * @default false
   */
  includeInternal?: boolean;
}

export interface ListCredentialsQuery extends InternalCredentialsOption {
  integrationId?: string;
  /** Exactly this connection. A reserved one (`isReservedConnectionId`) implies `includeInternal` unless it is `false`. */
  connectionId?: string;
  type?: CredentialTypeInput;
  /** Effective status (an active credential past its expiry counts as `expired`). Deleted never listed. */
  status?: CredentialStatusInput;
  /** Only credentials with `expiresAt` ≤ this. */
  expiringBefore?: Date;
  /** Page size. @default module `defaultPageSize` (50) */
  limit?: number;
  /** `nextCursor` of the previous page. */
  cursor?: string;
}

/**
 * A page of the tenant's active credentials (effective status: not past their expiry) by their last change — `rotatedAt`,
 * else `createdAt` —, the least recently changed first: what a rotation schedule asks ("last changed before its
 * threshold"). Internal credentials are never listed. Lists of ids take at most 10,000 each.
 */
export interface ListByLastChangeQuery {
  /** Only these types (1..all of them). */
  types: CredentialTypeInput[];
  /** Only this integration. */
  integrationId?: string;
  /** None of these integrations. */
  excludeIntegrationIds?: string[];
  /** Only these credential ids. */
  ids?: string[];
  /** None of these credential ids. */
  excludeIds?: string[];
  /** Only a last change at or before this instant. */
  changedAtOrBefore?: Date;
  /** Page size, 1..10000. */
  limit: number;
  /** `nextCursor` of the previous page. */
  cursor?: string;
}

export interface CredentialPage {
  items: CredentialMetadata[];
  /** Present when another page follows. */
  nextCursor?: string;
}

export interface BatchDeleteResult {
  deleted: string[];
  notFound: string[];
}

export interface CredentialStatistics {
  /** Live (not deleted) credentials. */
  total: number;
  byType: Partial<Record<CredentialType, number>>;
  byIntegration: Record<string, number>;
  /** By effective status. */
  byStatus: Partial<Record<CredentialStatus, number>>;
  /** Not yet expired, expiring within 7 / 30 days. */
  expiringWithin7Days: number;
  expiringWithin30Days: number;
  /** Past their expiry. */
  expired: number;
}

export interface ConnectionCredentialView {
  id: string;
  type: CredentialType;
  status: CredentialStatus;
  maskedValue: string;
  expiresAt: Date | null;
}

/** One row of a tenant's "integrations" screen. */
export interface ConnectionView {
  integrationId: string;
  /** null for a configured integration without any connection (`not_configured`). */
  connectionId: string | null;
  status: ConnectionStatus;
  /** Earliest expiry among the connection's credentials. */
  expiresAt: Date | null;
  updatedAt: Date | null;
  credentials: ConnectionCredentialView[];
}

/** A cross-tenant expiry scan (system jobs only). */
export interface ExpiringScanQuery {
  /** Only credentials expiring strictly before this instant. */
  before: Date;
  type?: CredentialTypeInput;
  /** Stored statuses to include. @default ['active'] */
  statuses?: CredentialStatusInput[];
  /** Page size, 1..10000. @default 100 */
  limit?: number;
  /** Keyset cursor: the last item of the previous page. */
  after?: { expiresAt: Date; id: string };
}

/** What a cross-tenant scan returns: enough to act on a credential, never its value. */
export interface ExpiringCredentialRef {
  id: string;
  tenantId: string;
  integrationId: string;
  connectionId: string;
  type: CredentialType;
  expiresAt: Date;
}

/** What an emergency revoke (or un-revoke) of a value did. */
export interface RevokeValueResult {
  metadata: CredentialMetadata;
  /** Key Vault secret versions disabled (revoke) or re-enabled (un-revoke); 0 for envelope values. */
  vaultVersions: number;
}

/** A cross-tenant scan of live credentials by id (system jobs only, e.g. rotation checks). */
export interface LiveScanQuery {
  /** Stored statuses to include. @default ['active'] */
  statuses?: CredentialStatusInput[];
  /** Only credentials last rotated (or, never rotated, created) before this instant. */
  changedBefore?: Date;
  /** Page size, 1..10000. @default 100 */
  limit?: number;
  /** Keyset cursor: the id of the last item of the previous page. */
  afterId?: string;
}

/** What a live scan returns: enough to decide on a rotation, never a value. */
export interface LiveCredentialRef {
  id: string;
  tenantId: string;
  integrationId: string;
  connectionId: string;
  type: CredentialType;
  version: number;
  /** The compare-and-set counter at the scan: pass it as `expectedVersion` to act only on the credential as scanned. */
  rowVersion: number;
  status: CredentialStatus;
  expiresAt: Date | null;
  /** Last rotation, else creation. */
  changedAt: Date;
}
