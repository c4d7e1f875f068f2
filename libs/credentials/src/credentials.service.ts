import { Injectable } from '@nestjs/common';
import { type BoundedList, foldUuid, type OperationContext } from '@app/common';
import { CredentialQueries } from './credential.queries';
import { CredentialReader } from './credential.reader';
import { CredentialRevoker } from './credential.revoker';
import type { CredentialTypeInput } from './credential-type';
import type {
  BatchDeleteResult,
  ConnectionView,
  CommitOptions,
  CredentialMetadata,
  CredentialPage,
  CredentialStatistics,
  CredentialVersionInfo,
  CredentialVersionWithValue,
  CredentialWithValue,
  InternalCredentialsOption,
  ListByLastChangeQuery,
  ListCredentialsQuery,
  MetadataReadOptions,
  ReadOptions,
  RevokeValueResult,
  RotateOptions,
  StoreCredentialInput,
  StoreOptions,
  UpdateMetadataInput,
  WriteOptions,
} from './credential.types';
import { CredentialBatchDeleter } from './credential-batch.deleter';
import { CredentialBatchWriter, type StoreManyItem, type StoreManyOptions, type StoreManyResult } from './credential-batch.writer';
import { CredentialWriter } from './credential.writer';

/**
 * Store, read, rotate, roll back and delete credentials of many tenants. Every method takes the
 * caller's OperationContext and only ever touches rows of `ctx.tenantId`; another tenant's
 * credential is reported exactly like a missing one (CredentialNotFoundError). A credential id is a UUID, taken in
 * any case (RFC 9562): folded to lower case, as stored, here, before anything looks it up, locks or records it.
 *
 * A facade, so callers depend on one service: writes are `CredentialWriter`'s (crash-safe sequence:
 * value store → one transaction {metadata rows, audit row, outbox row} → cache invalidation), batches
 * `CredentialBatchWriter`'s and `CredentialBatchDeleter`'s, value reads `CredentialReader`'s, metadata
 * reads `CredentialQueries`'. The cross-tenant expiry scan of system jobs is `CredentialExpiryScanner`,
 * deliberately not here.
 */
@Injectable()
export class CredentialsService {
  constructor(
    private readonly writer: CredentialWriter,
    private readonly reader: CredentialReader,
    private readonly queries: CredentialQueries,
    private readonly revoker: CredentialRevoker,
    private readonly batchWriter: CredentialBatchWriter,
    private readonly batchDeleter: CredentialBatchDeleter,
  ) {}

  // ───────────────────────────── writes ─────────────────────────────

  /**
   * Stores a new credential (version 1). Fails with ALREADY_EXISTS when a live one has the same (integration, connection,
   * type), with VALIDATION when `connectionId` is reserved (`isReservedConnectionId`) and the write is not `internal`.
   */
  store(ctx: OperationContext, input: StoreCredentialInput, options: StoreOptions = {}): Promise<CredentialMetadata> {
    return this.writer.store(ctx, input, options);
  }

  /**
   * Stores many new credentials (each like `store()`, possibly of several tenants) with one database
   * transaction: the values are written first (concurrently, each through `options.valueWrite`), then
   * every metadata, version, audit and outbox row of the batch — and `options.inCommit`'s rows —
   * commit together. Per item, in order: `{ credential }` or `{ error }` (store's typed errors, e.g.
   * ALREADY_EXISTS; VALIDATION for a reserved `connectionId`: no batch writes internal credentials; `options.withhold`'s
   * reason for the items it withheld before the value writes). Throws, having
   * committed nothing of the batch, when that transaction fails. An item's `ctx.signal` is its value write's, as
   * `store`'s: once aborted, a write not sent yet is dropped (CANCELLED, audited `cancelled`; with `together`, its
   * group-mates' values are discarded); one already sent finishes and commits with the batch.
   */
  storeMany(items: StoreManyItem[], options: StoreManyOptions = {}): Promise<StoreManyResult[]> {
    return this.batchWriter.storeMany(items, options);
  }

  /**
   * Checks a value and its metadata as `store()`/`rotate()` would, without writing anything — for
   * callers that write several credentials for one request and must refuse bad input before the first.
   */
  validate(input: { type: CredentialTypeInput; value: string; expiresAt?: Date | null; tags?: Record<string, string> }): void {
    this.writer.validate(input);
  }

  /** Writes a new value as a new version (never a new identity) and makes it current. */
  rotate(ctx: OperationContext, id: string, value: string, options: RotateOptions = {}): Promise<CredentialMetadata> {
    return this.writer.rotate(ctx, foldUuid(id), value, options);
  }

  /**
   * Makes an older version's value current again by adding a NEW version that points at it (history
   * is never rewritten). No value is written, so nothing can be left half-done.
   */
  rollback(ctx: OperationContext, id: string, toVersion: number, options: WriteOptions = {}): Promise<CredentialMetadata> {
    return this.writer.rollback(ctx, foldUuid(id), toVersion, options);
  }

  /** Changes tags, expiry or lifecycle status (never the value). */
  updateMetadata(ctx: OperationContext, id: string, input: UpdateMetadataInput): Promise<CredentialMetadata> {
    return this.writer.updateMetadata(ctx, foldUuid(id), input);
  }

  /**
   * Deletes a credential: the metadata row becomes `deleted` (kept for history, never served) and
   * the value is discarded — envelope ciphertexts in the same transaction, Key Vault secrets
   * soft-deleted right after the commit.
   */
  delete(ctx: OperationContext, id: string, options: WriteOptions = {}): Promise<void> {
    return this.writer.delete(ctx, foldUuid(id), options);
  }

  /** Deletes every live credential of one connection (e.g. the user disconnected it). */
  deleteByConnection(ctx: OperationContext, integrationId: string, connectionId: string): Promise<BatchDeleteResult> {
    return this.batchDeleter.deleteByConnection(ctx, integrationId, connectionId);
  }

  /** Deletes each id; unknown ids (or another tenant's) are reported in `notFound`, not thrown. */
  deleteMany(ctx: OperationContext, ids: string[]): Promise<BatchDeleteResult> {
    return this.batchDeleter.deleteMany(ctx, Array.isArray(ids) ? ids.map(foldUuid) : ids);
  }

  /**
   * Emergency revoke of the value: status `revoked` (every read refused from the moment this returns,
   * cache hits included), then every Key Vault secret version of the credential disabled. Audited and
   * announced as a metadata update; callers with a reason (the rotation lib) audit the revoke itself, in
   * `options.inCommit`: it runs in each status change to `revoked` this call makes — also a second one, when a
   * rotation made the credential active again during the revoke.
   */
  revoke(ctx: OperationContext, id: string, options: CommitOptions = {}): Promise<RevokeValueResult> {
    return this.revoker.revoke(ctx, foldUuid(id), options);
  }

  /** Undoes `revoke`: the Key Vault versions are enabled again, then the credential is active. */
  unrevoke(ctx: OperationContext, id: string, options: CommitOptions<RevokeValueResult> = {}): Promise<RevokeValueResult> {
    return this.revoker.unrevoke(ctx, foldUuid(id), options);
  }

  // ───────────────────────────── reads ─────────────────────────────

  /**
   * The current value and its metadata. Cached in process (single-flight on misses); every read is
   * audited. A revoked credential is refused (CredentialRevokedError), an expired one too
   * (CredentialExpiredError) unless `allowExpired` — checked on every read, cache hits included.
   */
  get(ctx: OperationContext, id: string, options: ReadOptions = {}): Promise<CredentialWithValue> {
    return this.reader.get(ctx, foldUuid(id), options);
  }

  /**
   * One version's value (current or older, e.g. to compare before a rollback). Not cached; audited.
   * Refused for a revoked credential, and for a version past its own expiry unless `allowExpired`.
   */
  getVersion(ctx: OperationContext, id: string, version: number, options: ReadOptions = {}): Promise<CredentialVersionWithValue> {
    return this.reader.getVersion(ctx, foldUuid(id), version, options);
  }

  /**
   * Whether the current value equals `expected`, compared inside the lib; the value is never
   * returned. NOT audited, not cached: only for a caller that audits the check itself (the migration
   * verifies what it wrote under its MIGRATE audit rows). Refused for a revoked credential.
   * `readOnly`: the read writes nothing either — an envelope value's data key is not re-wrapped after the vault key
   * rotated, nor the value re-encrypted under the tenant's current data key (a migration's dry run). `ctx.signal`
   * aborts the value read as it does a `get`'s (CANCELLED).
   */
  verifyValue(ctx: OperationContext, id: string, expected: string, options: { readOnly?: boolean } = {}): Promise<{ matches: boolean; metadata: CredentialMetadata }> {
    return this.reader.verifyValue(ctx, foldUuid(id), expected, options);
  }

  /** Metadata only: never touches the value store. `cached`: see MetadataReadOptions. */
  getMetadata(ctx: OperationContext, id: string, options?: MetadataReadOptions): Promise<CredentialMetadata> {
    return this.queries.getMetadata(ctx, foldUuid(id), options);
  }

  /** Every version (newest first), without values. */
  listVersions(ctx: OperationContext, id: string): Promise<CredentialVersionInfo[]> {
    return this.queries.listVersions(ctx, foldUuid(id));
  }

  /**
   * Live credentials of the tenant, oldest first, filtered, in pages (keyset cursor). The libs' internal credentials
   * (`isInternalCredential`) only with `includeInternal`.
   */
  list(ctx: OperationContext, query: ListCredentialsQuery = {}): Promise<CredentialPage> {
    return this.queries.list(ctx, query);
  }

  /**
   * The tenant's active credentials by their last change (`rotatedAt`, else `createdAt`), the least recently changed
   * first, in pages (keyset cursor), from an index of (tenant, type, last change): what is due under a rotation schedule
   * is the credentials changed before its threshold, without reading the others. Internal credentials never.
   */
  listByLastChange(ctx: OperationContext, query: ListByLastChangeQuery): Promise<CredentialPage> {
    return this.queries.listByLastChange(ctx, query);
  }

  /**
   * Live credentials (active, expired or needing re-auth) whose expiry is within `days` from now —
   * including already expired ones — soonest first, at most `limit` of them (1..10000): `listExpiringBounded`'s items,
   * without telling whether more matched. Internal credentials only with `includeInternal`.
   */
  async listExpiring(ctx: OperationContext, days: number, limit = 500, options: InternalCredentialsOption = {}): Promise<CredentialMetadata[]> {
    return (await this.queries.listExpiring(ctx, days, limit, options)).items;
  }

  /**
   * `listExpiring` with `truncated`: true when more credentials matched than the `limit` soonest it answers (read as
   * one row more than the limit, not counted). All of them: `list` with `expiringBefore`, paged.
   */
  listExpiringBounded(ctx: OperationContext, days: number, limit = 500, options: InternalCredentialsOption = {}): Promise<BoundedList<CredentialMetadata>> {
    return this.queries.listExpiring(ctx, days, limit, options);
  }

  /** Counts from indexed SQL (GROUP BY on cv_credentials) — never by listing the vault. Internal credentials only with `includeInternal`. */
  statistics(ctx: OperationContext, options: InternalCredentialsOption = {}): Promise<CredentialStatistics> {
    return this.queries.statistics(ctx, options);
  }

  /**
   * The tenant's "integrations" screen: every connection with its status and masked values, plus
   * each known integration (module option `integrations` or the argument) without a connection as
   * `not_configured`. Reads metadata only — masks come from the stored ≤ 3-character hint.
   *
   * Status of a connection: revoked if any credential is revoked; else needs_reauth if any needs it;
   * else expired if every credential is expired; else connected. Internal credentials (and so their connections)
   * only with `includeInternal`.
   */
  listConnections(ctx: OperationContext, options: { integrations?: string[] } & InternalCredentialsOption = {}): Promise<ConnectionView[]> {
    return this.queries.listConnections(ctx, options);
  }
}
