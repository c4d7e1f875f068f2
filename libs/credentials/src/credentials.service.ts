import { randomUUID } from 'node:crypto';
import { Inject, Injectable, Logger, Optional } from '@nestjs/common';
import { EventEmitter2 } from '@nestjs/event-emitter';
import { AuditAction, AuditEventInput, AuditResult, AuditService } from '@app/audit';
import { Clock, CredentialVaultError, OperationContext } from '@app/common';
import type { EntityManager, SelectQueryBuilder } from 'typeorm';
import { ReadAuditCoalescer } from './audit/read-audit-coalescer';
import { CredentialCache } from './cache/credential-cache';
import {
  CREDENTIAL_TYPES,
  ConnectionStatus,
  CredentialStatus,
  CredentialType,
  ValueStoreKind,
} from './credential-type';
import type {
  BatchDeleteResult,
  ConnectionView,
  CredentialMetadata,
  CredentialPage,
  CredentialStatistics,
  CredentialVersionInfo,
  CredentialVersionWithValue,
  CredentialWithValue,
  ExpiringCredentialRef,
  ExpiringScanQuery,
  ListCredentialsQuery,
  ReadOptions,
  RotateOptions,
  StoreCredentialInput,
  UpdateMetadataInput,
  WriteOptions,
} from './credential.types';
import { CREDENTIALS_CLOCK, CREDENTIALS_RESOLVED_OPTIONS } from './credentials.constants';
import type { ResolvedCredentialsOptions } from './credentials.options';
import { CredentialVersionEntity } from './entities/credential-version.entity';
import { CredentialEntity, StoredCertificateInfo } from './entities/credential.entity';
import {
  CredentialAlreadyExistsError,
  CredentialConflictError,
  CredentialExpiredError,
  CredentialNotFoundError,
  CredentialRevokedError,
  CredentialValidationError,
  CredentialVersionNotFoundError,
} from './errors/credential-errors';
import { CredentialEvent, CredentialEventName, CredentialEvents } from './events/credential-events';
import { maskFromHint, valueHint } from './masking';
import { credentialSecretName } from './naming/vault-secret-name';
import { DbGate } from './persistence/db-gate';
import type { CredentialValueStore, ValueOwner, ValuePointer } from './stores/credential-value-store';
import { EnvelopeValueStore } from './stores/envelope-value-store';
import { VaultValueStore } from './stores/vault-value-store';
import { CertificateInfo, ValidatedValue, validateCredentialValue } from './validation/credential-value.validator';
import { assertDate, assertIdentifier, assertPositiveInt, assertTags } from './validation/identifiers';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const DAY_MS = 86_400_000;
/** Attempts of a write without `expectedVersion` that loses a race with another writer. */
const UNCONDITIONAL_WRITE_ATTEMPTS = 3;
const SETTABLE_STATUSES = new Set<CredentialStatus>([
  CredentialStatus.ACTIVE,
  CredentialStatus.EXPIRED,
  CredentialStatus.NEEDS_REAUTH,
  CredentialStatus.REVOKED,
]);

/** What the cache holds for one credential: the current value, its row, and the audit details of a read. */
interface CachedRead {
  value: string;
  row: CredentialEntity;
  auditDetails: Record<string, unknown>;
}

const STALE_OPTIONS = { isServeStaleError };

/** Thrown inside a transaction to roll it back when the compare-and-set lost. */
class LostRace extends Error {}

/**
 * Store, read, rotate, roll back and delete credentials of many tenants. Every method takes the
 * caller's OperationContext and only ever touches rows of `ctx.tenantId`; another tenant's
 * credential is reported exactly like a missing one (CredentialNotFoundError).
 *
 * Write protocol (crash safety): the new value is written to its value store first (a new Key Vault
 * secret version or a new envelope row) — it is not servable yet; then ONE database transaction
 * moves the metadata row's current-version pointer (compare-and-set on `row_version`), inserts the
 * version row and the audit row. Only then are caches invalidated and the domain event emitted. A
 * crash or failure before the commit leaves the previous value current; the orphan value version is
 * never referenced.
 */
@Injectable()
export class CredentialsService {
  private readonly logger = new Logger(CredentialsService.name);
  private readonly stores: Record<ValueStoreKind, CredentialValueStore>;

  constructor(
    private readonly db: DbGate,
    private readonly audit: AuditService,
    private readonly readAudit: ReadAuditCoalescer,
    private readonly cache: CredentialCache,
    @Inject(CREDENTIALS_CLOCK) private readonly clock: Clock,
    vaultStore: VaultValueStore,
    envelopeStore: EnvelopeValueStore,
    @Inject(CREDENTIALS_RESOLVED_OPTIONS) private readonly options: ResolvedCredentialsOptions,
    @Optional() private readonly events?: EventEmitter2,
  ) {
    this.stores = { [ValueStoreKind.VAULT]: vaultStore, [ValueStoreKind.ENVELOPE]: envelopeStore };
  }

  // ───────────────────────────── writes ─────────────────────────────

  /** Stores a new credential (version 1). Fails with ALREADY_EXISTS when a live one has the same (integration, connection, type). */
  async store(ctx: OperationContext, input: StoreCredentialInput): Promise<CredentialMetadata> {
    const started = Date.now();
    const resource = `connection:${String(input?.integrationId)}/${String(input?.connectionId)}`;
    try {
      this.assertContext(ctx);
      assertIdentifier(input.integrationId, 'integrationId');
      assertIdentifier(input.connectionId, 'connectionId');
      this.assertType(input.type);
      const tags = input.tags ?? {};
      assertTags(tags);
      if (input.expiresAt != null) assertDate(input.expiresAt, 'expiresAt');
      if (input.valueStore !== undefined && !Object.values(ValueStoreKind).includes(input.valueStore)) {
        throw new CredentialValidationError(`valueStore must be 'vault' or 'envelope'`, 'valueStore');
      }
      const validated = this.validateValue(input.type, input.value);
      const kind = input.valueStore ?? this.options.valueStores[input.type];

      const existing = await this.db.read((m) =>
        m.findOne(CredentialEntity, {
          where: { tenantId: ctx.tenantId, integrationId: input.integrationId, connectionId: input.connectionId, type: input.type },
          order: { createdAt: 'DESC' },
        }),
      );
      if (existing && existing.status !== CredentialStatus.DELETED) throw new CredentialAlreadyExistsError(existing.id);
      // A deleted predecessor's secret names are soft-deleted: start past its generation.
      const generation = existing ? existing.vaultGeneration + 1 : 0;

      const now = this.clock.now();
      const id = randomUUID();
      const expiresAt = validated.expiresAt ?? input.expiresAt ?? null;
      const owner: ValueOwner = { tenantId: ctx.tenantId, credentialId: id, integrationId: input.integrationId, connectionId: input.connectionId, type: input.type };
      const pointer = await this.stores[kind].write({ ...owner, version: 1, value: input.value, expiresAt, vaultGeneration: generation, versionsInGeneration: 0 });

      const hint = valueHint(input.type, input.value);
      const certificate = storedCertificate(validated.certificate);
      const row: CredentialEntity = {
        id,
        tenantId: ctx.tenantId,
        integrationId: input.integrationId,
        connectionId: input.connectionId,
        type: input.type,
        valueStore: kind,
        currentVersion: 1,
        status: CredentialStatus.ACTIVE,
        expiresAt,
        rotatedAt: null,
        tags: { ...tags },
        valueHint: hint,
        certificate,
        vaultGeneration: pointer.vaultGeneration ?? generation,
        rowVersion: 1,
        createdAt: now,
        updatedAt: now,
        deletedAt: null,
        createdBy: ctx.actor.id,
        updatedBy: ctx.actor.id,
      };
      try {
        await this.db.transaction(async (m) => {
          await m.insert(CredentialEntity, row);
          await m.insert(CredentialVersionEntity, this.versionRow(row, 1, kind, pointer, hint, expiresAt, certificate, null, ctx, now));
          await this.audit.record(this.auditEvent(AuditAction.STORE, ctx, row, AuditResult.SUCCESS, started, { version: 1, valueStore: kind }), m);
        });
      } catch (e) {
        // Lost a race with a concurrent store of the same (integration, connection, type)?
        const winner = await this.findLive(ctx.tenantId, input.integrationId, input.connectionId, input.type);
        if (winner && winner.id !== id) throw new CredentialAlreadyExistsError(winner.id);
        throw e;
      }
      this.afterWrite(CredentialEvents.STORED, ctx, row);
      this.logger.log(`stored credential ${id} (tenant ${ctx.tenantId}, ${input.type}, ${kind})`);
      return this.toMetadata(row);
    } catch (e) {
      await this.auditFailure(AuditAction.STORE, ctx, resource, e, started, { type: input?.type });
      throw e;
    }
  }

  /**
   * Checks a value and its metadata as `store()`/`rotate()` would, without writing anything — for
   * callers that write several credentials for one request and must refuse bad input before the first.
   */
  validate(input: { type: CredentialType; value: string; expiresAt?: Date | null; tags?: Record<string, string> }): void {
    this.assertType(input.type);
    if (input.tags !== undefined) assertTags(input.tags);
    if (input.expiresAt != null) assertDate(input.expiresAt, 'expiresAt');
    this.validateValue(input.type, input.value);
  }

  /** Writes a new value as a new version (never a new identity) and makes it current. */
  async rotate(ctx: OperationContext, id: string, value: string, options: RotateOptions = {}): Promise<CredentialMetadata> {
    const started = Date.now();
    try {
      this.assertContext(ctx);
      this.assertWriteOptions(options);
      if (options.expiresAt != null) assertDate(options.expiresAt, 'expiresAt');
      for (let attempt = 1; ; attempt++) {
        const row = await this.loadLive(ctx.tenantId, id);
        this.checkExpected(row, options.expectedVersion);
        const validated = this.validateValue(row.type, value);
        const version = row.currentVersion + 1;
        const expiresAt = validated.expiresAt ?? options.expiresAt ?? null;
        const versionsInGeneration =
          row.valueStore === ValueStoreKind.VAULT ? await this.countGenerationVersions(row) : 0;
        const pointer = await this.stores[row.valueStore].write({ ...this.owner(row), version, value, expiresAt, vaultGeneration: row.vaultGeneration, versionsInGeneration });
        const now = this.clock.now();
        const hint = valueHint(row.type, value);
        const certificate = storedCertificate(validated.certificate);
        const next: CredentialEntity = {
          ...row,
          currentVersion: version,
          rowVersion: row.rowVersion + 1,
          status: CredentialStatus.ACTIVE,
          expiresAt,
          rotatedAt: now,
          valueHint: hint,
          certificate,
          vaultGeneration: pointer.vaultGeneration ?? row.vaultGeneration,
          updatedAt: now,
          updatedBy: ctx.actor.id,
        };
        try {
          await this.db.transaction(async (m) => {
            await this.compareAndSet(m, row, next);
            await m.insert(CredentialVersionEntity, this.versionRow(row, version, row.valueStore, pointer, hint, expiresAt, certificate, null, ctx, now));
            await this.audit.record(this.auditEvent(AuditAction.ROTATE, ctx, next, AuditResult.SUCCESS, started, { version, previousVersion: row.currentVersion }), m);
          });
        } catch (e) {
          if (e instanceof LostRace) {
            if (options.expectedVersion === undefined && attempt < UNCONDITIONAL_WRITE_ATTEMPTS) continue;
            throw await this.conflict(ctx.tenantId, id, options.expectedVersion ?? row.rowVersion);
          }
          throw e;
        }
        this.afterWrite(CredentialEvents.ROTATED, ctx, next);
        return this.toMetadata(next);
      }
    } catch (e) {
      await this.auditFailure(AuditAction.ROTATE, ctx, String(id), e, started);
      throw e;
    }
  }

  /**
   * Makes an older version's value current again by adding a NEW version that points at it (history
   * is never rewritten). No value is written, so nothing can be left half-done.
   */
  async rollback(ctx: OperationContext, id: string, toVersion: number, options: WriteOptions = {}): Promise<CredentialMetadata> {
    const started = Date.now();
    try {
      this.assertContext(ctx);
      this.assertWriteOptions(options);
      assertPositiveInt(toVersion, 'toVersion');
      for (let attempt = 1; ; attempt++) {
        const row = await this.loadLive(ctx.tenantId, id);
        this.checkExpected(row, options.expectedVersion);
        const target = await this.db.read((m) => m.findOneBy(CredentialVersionEntity, { credentialId: id, tenantId: ctx.tenantId, version: toVersion }));
        if (!target) throw new CredentialVersionNotFoundError(id, toVersion);
        if (toVersion === row.currentVersion) {
          throw new CredentialValidationError(`version ${toVersion} is already the current version`, 'toVersion');
        }
        const version = row.currentVersion + 1;
        const now = this.clock.now();
        const sourceVersion = target.sourceVersion ?? target.version;
        const next: CredentialEntity = {
          ...row,
          currentVersion: version,
          rowVersion: row.rowVersion + 1,
          status: CredentialStatus.ACTIVE,
          expiresAt: target.expiresAt,
          rotatedAt: now,
          valueHint: target.valueHint,
          certificate: target.certificate,
          updatedAt: now,
          updatedBy: ctx.actor.id,
        };
        try {
          await this.db.transaction(async (m) => {
            await this.compareAndSet(m, row, next);
            await m.insert(CredentialVersionEntity, this.versionRow(row, version, target.valueStore, pointerOf(target), target.valueHint, target.expiresAt, target.certificate, sourceVersion, ctx, now));
            await this.audit.record(
              this.auditEvent(AuditAction.ROLLBACK, ctx, next, AuditResult.SUCCESS, started, { version, toVersion, sourceVersion, previousVersion: row.currentVersion }),
              m,
            );
          });
        } catch (e) {
          if (e instanceof LostRace) {
            if (options.expectedVersion === undefined && attempt < UNCONDITIONAL_WRITE_ATTEMPTS) continue;
            throw await this.conflict(ctx.tenantId, id, options.expectedVersion ?? row.rowVersion);
          }
          throw e;
        }
        this.afterWrite(CredentialEvents.ROLLED_BACK, ctx, next, sourceVersion);
        return this.toMetadata(next);
      }
    } catch (e) {
      await this.auditFailure(AuditAction.ROLLBACK, ctx, String(id), e, started);
      throw e;
    }
  }

  /** Changes tags, expiry or lifecycle status (never the value). */
  async updateMetadata(ctx: OperationContext, id: string, input: UpdateMetadataInput): Promise<CredentialMetadata> {
    const started = Date.now();
    try {
      this.assertContext(ctx);
      this.assertWriteOptions(input);
      if (input.tags !== undefined) assertTags(input.tags);
      if (input.expiresAt != null) assertDate(input.expiresAt, 'expiresAt');
      if (input.status !== undefined && !SETTABLE_STATUSES.has(input.status)) {
        throw new CredentialValidationError(`status must be one of ${[...SETTABLE_STATUSES].join(', ')} (use delete() to delete)`, 'status');
      }
      const changed = (['tags', 'expiresAt', 'status'] as const).filter((k) => input[k] !== undefined);
      if (changed.length === 0) throw new CredentialValidationError('nothing to update: give tags, expiresAt or status', 'input');
      for (let attempt = 1; ; attempt++) {
        const row = await this.loadLive(ctx.tenantId, id);
        this.checkExpected(row, input.expectedVersion);
        if (input.expiresAt !== undefined && row.type === CredentialType.CLIENT_CERTIFICATE) {
          throw new CredentialValidationError('the expiry of a client certificate is read from the certificate; rotate it instead', 'expiresAt');
        }
        const now = this.clock.now();
        const next: CredentialEntity = {
          ...row,
          tags: input.tags !== undefined ? { ...input.tags } : row.tags,
          expiresAt: input.expiresAt !== undefined ? input.expiresAt : row.expiresAt,
          status: input.status ?? row.status,
          rowVersion: row.rowVersion + 1,
          updatedAt: now,
          updatedBy: ctx.actor.id,
        };
        try {
          await this.db.transaction(async (m) => {
            await this.compareAndSet(m, row, next);
            await this.audit.record(this.auditEvent(AuditAction.UPDATE_METADATA, ctx, next, AuditResult.SUCCESS, started, { changed, status: next.status }), m);
          });
        } catch (e) {
          if (e instanceof LostRace) {
            if (input.expectedVersion === undefined && attempt < UNCONDITIONAL_WRITE_ATTEMPTS) continue;
            throw await this.conflict(ctx.tenantId, id, input.expectedVersion ?? row.rowVersion);
          }
          throw e;
        }
        this.afterWrite(CredentialEvents.METADATA_UPDATED, ctx, next);
        return this.toMetadata(next);
      }
    } catch (e) {
      await this.auditFailure(AuditAction.UPDATE_METADATA, ctx, String(id), e, started);
      throw e;
    }
  }

  /**
   * Deletes a credential: the metadata row becomes `deleted` (kept for history, never served) and
   * the value is discarded — envelope ciphertexts in the same transaction, Key Vault secrets
   * soft-deleted right after the commit.
   */
  async delete(ctx: OperationContext, id: string, options: WriteOptions = {}): Promise<void> {
    const started = Date.now();
    try {
      this.assertContext(ctx);
      this.assertWriteOptions(options);
      for (let attempt = 1; ; attempt++) {
        const row = await this.loadLive(ctx.tenantId, id);
        this.checkExpected(row, options.expectedVersion);
        const now = this.clock.now();
        const next: CredentialEntity = {
          ...row,
          status: CredentialStatus.DELETED,
          deletedAt: now,
          rowVersion: row.rowVersion + 1,
          updatedAt: now,
          updatedBy: ctx.actor.id,
        };
        const store = this.stores[row.valueStore];
        try {
          await this.db.transaction(async (m) => {
            await this.compareAndSet(m, row, next);
            await store.discardInTransaction(m, this.owner(row));
            await this.audit.record(this.auditEvent(AuditAction.DELETE, ctx, next, AuditResult.SUCCESS, started, { version: row.currentVersion }), m);
          });
        } catch (e) {
          if (e instanceof LostRace) {
            if (options.expectedVersion === undefined && attempt < UNCONDITIONAL_WRITE_ATTEMPTS) continue;
            throw await this.conflict(ctx.tenantId, id, options.expectedVersion ?? row.rowVersion);
          }
          throw e;
        }
        this.afterWrite(CredentialEvents.DELETED, ctx, next);
        const versions = await this.db.read((m) => m.findBy(CredentialVersionEntity, { credentialId: id, tenantId: ctx.tenantId }));
        await store.discardAfterCommit(this.owner(row), versions.map(pointerOf));
        return;
      }
    } catch (e) {
      await this.auditFailure(AuditAction.DELETE, ctx, String(id), e, started);
      throw e;
    }
  }

  /** Deletes every live credential of one connection (e.g. the user disconnected it). */
  async deleteByConnection(ctx: OperationContext, integrationId: string, connectionId: string): Promise<BatchDeleteResult> {
    this.assertContext(ctx);
    assertIdentifier(integrationId, 'integrationId');
    assertIdentifier(connectionId, 'connectionId');
    const rows = await this.db.read((m) =>
      m
        .createQueryBuilder(CredentialEntity, 'c')
        .select(['c.id'])
        .where('c.tenantId = :t AND c.integrationId = :i AND c.connectionId = :c AND c.status <> :deleted', {
          t: ctx.tenantId,
          i: integrationId,
          c: connectionId,
          deleted: CredentialStatus.DELETED,
        })
        .getMany(),
    );
    return this.deleteMany(ctx, rows.map((r) => r.id));
  }

  /** Deletes each id; unknown ids (or another tenant's) are reported in `notFound`, not thrown. */
  async deleteMany(ctx: OperationContext, ids: string[]): Promise<BatchDeleteResult> {
    this.assertContext(ctx);
    if (!Array.isArray(ids) || ids.length > 1000) throw new CredentialValidationError('ids must be an array of at most 1000 ids', 'ids');
    // The whole batch is checked before the first delete: a malformed id fails it and deletes nothing.
    const bad = ids.findIndex((id) => typeof id !== 'string' || !UUID.test(id));
    if (bad >= 0) throw new CredentialValidationError(`ids[${bad}] is not a credential id (a UUID); nothing was deleted`, 'ids');
    const result: BatchDeleteResult = { deleted: [], notFound: [] };
    for (const id of new Set(ids)) {
      try {
        await this.delete(ctx, id);
        result.deleted.push(id);
      } catch (e) {
        if (e instanceof CredentialNotFoundError) result.notFound.push(id);
        else throw e;
      }
    }
    return result;
  }

  // ───────────────────────────── reads ─────────────────────────────

  /**
   * The current value and its metadata. Cached in process (single-flight on misses); every read is
   * audited. A revoked credential is refused (CredentialRevokedError), an expired one too
   * (CredentialExpiredError) unless `allowExpired` — checked on every read, cache hits included.
   */
  async get(ctx: OperationContext, id: string, options: ReadOptions = {}): Promise<CredentialWithValue> {
    const started = Date.now();
    this.assertContext(ctx);
    let read: CachedRead;
    try {
      read = this.options.cache.enabled
        ? await this.cache.getOrLoad(cacheKey(ctx.tenantId, id), () => this.loadCurrent(ctx.tenantId, id), STALE_OPTIONS)
        : await this.loadCurrent(ctx.tenantId, id);
      this.assertServable(read.row, read.row.expiresAt, options);
    } catch (e) {
      await this.auditRead(ctx, String(id), failureResult(e), started, errorCode(e));
      throw e;
    }
    await this.auditRead(ctx, read.row.id, AuditResult.SUCCESS, started, undefined, read.auditDetails);
    this.emit(CredentialEvents.READ, ctx, read.row);
    return { value: read.value, metadata: this.toMetadata(read.row) };
  }

  /**
   * One version's value (current or older, e.g. to compare before a rollback). Not cached; audited.
   * Refused for a revoked credential, and for a version past its own expiry unless `allowExpired`.
   */
  async getVersion(ctx: OperationContext, id: string, version: number, options: ReadOptions = {}): Promise<CredentialVersionWithValue> {
    const started = Date.now();
    this.assertContext(ctx);
    try {
      assertPositiveInt(version, 'version');
      const row = await this.loadLive(ctx.tenantId, id);
      const v = await this.db.read((m) => m.findOneBy(CredentialVersionEntity, { credentialId: id, tenantId: ctx.tenantId, version }));
      if (!v) throw new CredentialVersionNotFoundError(id, version);
      // A stored `expired` status speaks of the current version; an older one is judged by its own expiry.
      const status = v.version === row.currentVersion || row.status !== CredentialStatus.EXPIRED ? row.status : CredentialStatus.ACTIVE;
      this.assertServable({ id: row.id, status }, v.expiresAt, options);
      const value = await this.stores[v.valueStore].read(this.owner(row), pointerOf(v));
      await this.auditRead(ctx, row.id, AuditResult.SUCCESS, started, undefined, { ...detailsOf(row), version });
      this.emit(CredentialEvents.READ, ctx, row, undefined, version);
      return { value, version: this.toVersionInfo(v, row), metadata: this.toMetadata(row) };
    } catch (e) {
      await this.auditRead(ctx, String(id), failureResult(e), started, errorCode(e), { version });
      throw e;
    }
  }

  /** Metadata only: never touches the value store. */
  async getMetadata(ctx: OperationContext, id: string): Promise<CredentialMetadata> {
    this.assertContext(ctx);
    return this.toMetadata(await this.loadLive(ctx.tenantId, id));
  }

  /** Every version (newest first), without values. */
  async listVersions(ctx: OperationContext, id: string): Promise<CredentialVersionInfo[]> {
    this.assertContext(ctx);
    const row = await this.loadLive(ctx.tenantId, id);
    const versions = await this.db.read((m) => m.find(CredentialVersionEntity, { where: { credentialId: id, tenantId: ctx.tenantId }, order: { version: 'DESC' } }));
    return versions.map((v) => this.toVersionInfo(v, row));
  }

  /** Live credentials of the tenant, oldest first, filtered, in pages (keyset cursor). */
  async list(ctx: OperationContext, query: ListCredentialsQuery = {}): Promise<CredentialPage> {
    this.assertContext(ctx);
    const limit = query.limit ?? this.options.defaultPageSize;
    if (!Number.isInteger(limit) || limit < 1 || limit > this.options.maxPageSize) {
      throw new CredentialValidationError(`limit must be an integer in 1..${this.options.maxPageSize}`, 'limit');
    }
    if (query.integrationId !== undefined) assertIdentifier(query.integrationId, 'integrationId');
    if (query.connectionId !== undefined) assertIdentifier(query.connectionId, 'connectionId');
    if (query.type !== undefined) this.assertType(query.type);
    if (query.expiringBefore !== undefined) assertDate(query.expiringBefore, 'expiringBefore');
    if (query.status !== undefined && !Object.values(CredentialStatus).includes(query.status)) {
      throw new CredentialValidationError(`status must be one of ${Object.values(CredentialStatus).join(', ')}`, 'status');
    }
    const cursor = query.cursor !== undefined ? decodeCursor(query.cursor) : undefined;
    const now = this.clock.now().getTime();
    const rows = await this.db.read((m) => {
      const qb = this.liveQuery(m, ctx.tenantId);
      if (query.integrationId) qb.andWhere('c.integrationId = :integrationId', { integrationId: query.integrationId });
      if (query.connectionId) qb.andWhere('c.connectionId = :connectionId', { connectionId: query.connectionId });
      if (query.type) qb.andWhere('c.type = :type', { type: query.type });
      if (query.expiringBefore) qb.andWhere('c.expiresAt <= :before', { before: query.expiringBefore.getTime() });
      if (query.status) this.whereEffectiveStatus(qb, query.status, now);
      if (cursor) {
        qb.andWhere('(c.createdAt > :cAt OR (c.createdAt = :cAt AND c.id > :cId))', { cAt: cursor.createdAt, cId: cursor.id });
      }
      return qb.orderBy('c.createdAt', 'ASC').addOrderBy('c.id', 'ASC').limit(limit + 1).getMany();
    });
    const page = rows.slice(0, limit);
    const last = page[page.length - 1];
    return {
      items: page.map((r) => this.toMetadata(r)),
      nextCursor: rows.length > limit && last ? encodeCursor(last.createdAt.getTime(), last.id) : undefined,
    };
  }

  /**
   * Live credentials (active, expired or needing re-auth) whose expiry is within `days` from now —
   * including already expired ones — soonest first.
   */
  async listExpiring(ctx: OperationContext, days: number, limit = 500): Promise<CredentialMetadata[]> {
    this.assertContext(ctx);
    if (typeof days !== 'number' || !Number.isFinite(days) || days < 0) throw new CredentialValidationError('days must be a number ≥ 0', 'days');
    if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) throw new CredentialValidationError('limit must be an integer in 1..10000', 'limit');
    const horizon = this.clock.now().getTime() + days * DAY_MS;
    const rows = await this.db.read((m) =>
      this.liveQuery(m, ctx.tenantId)
        .andWhere('c.expiresAt IS NOT NULL AND c.expiresAt <= :horizon', { horizon })
        .andWhere('c.status IN (:...statuses)', { statuses: [CredentialStatus.ACTIVE, CredentialStatus.EXPIRED, CredentialStatus.NEEDS_REAUTH] })
        .orderBy('c.expiresAt', 'ASC')
        .addOrderBy('c.id', 'ASC')
        .limit(limit)
        .getMany(),
    );
    return rows.map((r) => this.toMetadata(r));
  }

  /**
   * For system jobs only (proactive OAuth refresh, expiry monitors): credentials of EVERY tenant whose
   * expiry is before `before`, soonest first, keyset-paged by (expiresAt, id). Metadata references
   * only, never values; it takes no OperationContext because no tenant owns the scan — never expose
   * it to a tenant-facing API.
   */
  async scanExpiringAcrossTenants(query: ExpiringScanQuery): Promise<ExpiringCredentialRef[]> {
    const limit = query.limit ?? 100;
    if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) throw new CredentialValidationError('limit must be an integer in 1..10000', 'limit');
    if (!(query.before instanceof Date) || Number.isNaN(query.before.getTime())) throw new CredentialValidationError('before must be a valid Date', 'before');
    const statuses = query.statuses ?? [CredentialStatus.ACTIVE];
    const rows = await this.db.read((m) => {
      const qb = m
        .createQueryBuilder(CredentialEntity, 'c')
        .select(['c.id', 'c.tenantId', 'c.integrationId', 'c.connectionId', 'c.type', 'c.expiresAt'])
        .where('c.status IN (:...statuses)', { statuses })
        .andWhere('c.expiresAt IS NOT NULL AND c.expiresAt < :before', { before: query.before.getTime() });
      if (query.type) qb.andWhere('c.type = :type', { type: query.type });
      if (query.after) {
        qb.andWhere('(c.expiresAt > :aAt OR (c.expiresAt = :aAt AND c.id > :aId))', { aAt: query.after.expiresAt.getTime(), aId: query.after.id });
      }
      return qb.orderBy('c.expiresAt', 'ASC').addOrderBy('c.id', 'ASC').limit(limit).getMany();
    });
    return rows.map((r) => ({
      id: r.id,
      tenantId: r.tenantId,
      integrationId: r.integrationId,
      connectionId: r.connectionId,
      type: r.type,
      expiresAt: r.expiresAt!,
    }));
  }

  /** Counts from indexed SQL (GROUP BY on cv_credentials) — never by listing the vault. */
  async statistics(ctx: OperationContext): Promise<CredentialStatistics> {
    this.assertContext(ctx);
    const now = this.clock.now().getTime();
    const base = (m: EntityManager) => this.liveQuery(m, ctx.tenantId);
    const [byType, byIntegration, byStatus, expiry] = await this.db.read((m) =>
      Promise.all([
        base(m).select('c.type', 'key').addSelect('COUNT(*)', 'n').groupBy('c.type').getRawMany<{ key: string; n: string | number }>(),
        base(m).select('c.integrationId', 'key').addSelect('COUNT(*)', 'n').groupBy('c.integrationId').getRawMany<{ key: string; n: string | number }>(),
        base(m)
          .select(`CASE WHEN c.status = :active AND c.expiresAt IS NOT NULL AND c.expiresAt <= :now THEN :expired ELSE c.status END`, 'key')
          .addSelect('COUNT(*)', 'n')
          .setParameters({ active: CredentialStatus.ACTIVE, expired: CredentialStatus.EXPIRED, now })
          .groupBy('key')
          .getRawMany<{ key: string; n: string | number }>(),
        base(m)
          .select('SUM(CASE WHEN c.expiresAt > :now AND c.expiresAt <= :d7 THEN 1 ELSE 0 END)', 'd7')
          .addSelect('SUM(CASE WHEN c.expiresAt > :now AND c.expiresAt <= :d30 THEN 1 ELSE 0 END)', 'd30')
          .addSelect('SUM(CASE WHEN c.expiresAt <= :now THEN 1 ELSE 0 END)', 'expired')
          .addSelect('COUNT(*)', 'total')
          .setParameters({ now, d7: now + 7 * DAY_MS, d30: now + 30 * DAY_MS })
          .getRawOne<{ d7: unknown; d30: unknown; expired: unknown; total: unknown }>(),
      ]),
    );
    const toRecord = (rows: { key: string; n: string | number }[]) => Object.fromEntries(rows.map((r) => [r.key, Number(r.n)]));
    return {
      total: Number(expiry?.total ?? 0),
      byType: toRecord(byType),
      byIntegration: toRecord(byIntegration),
      byStatus: toRecord(byStatus),
      expiringWithin7Days: Number(expiry?.d7 ?? 0),
      expiringWithin30Days: Number(expiry?.d30 ?? 0),
      expired: Number(expiry?.expired ?? 0),
    };
  }

  /**
   * The tenant's "integrations" screen: every connection with its status and masked values, plus
   * each known integration (module option `integrations` or the argument) without a connection as
   * `not_configured`. Reads metadata only — masks come from the stored ≤ 3-character hint.
   *
   * Status of a connection: revoked if any credential is revoked; else needs_reauth if any needs it;
   * else expired if every credential is expired; else connected.
   */
  async listConnections(ctx: OperationContext, options: { integrations?: string[] } = {}): Promise<ConnectionView[]> {
    this.assertContext(ctx);
    const known = options.integrations ?? this.options.integrations;
    known.forEach((i) => assertIdentifier(i, 'integrations'));
    const rows = await this.db.read((m) =>
      this.liveQuery(m, ctx.tenantId).orderBy('c.integrationId', 'ASC').addOrderBy('c.connectionId', 'ASC').addOrderBy('c.type', 'ASC').getMany(),
    );
    const groups = new Map<string, CredentialEntity[]>();
    for (const r of rows) {
      const k = JSON.stringify([r.integrationId, r.connectionId]);
      groups.set(k, [...(groups.get(k) ?? []), r]);
    }
    const views: ConnectionView[] = [];
    for (const members of groups.values()) {
      const creds = members.map((r) => ({ id: r.id, type: r.type, status: this.effectiveStatus(r), maskedValue: maskFromHint(r.valueHint), expiresAt: r.expiresAt }));
      const statuses = creds.map((c) => c.status);
      const status = statuses.includes(CredentialStatus.REVOKED)
        ? ConnectionStatus.REVOKED
        : statuses.includes(CredentialStatus.NEEDS_REAUTH)
          ? ConnectionStatus.NEEDS_REAUTH
          : statuses.every((s) => s === CredentialStatus.EXPIRED)
            ? ConnectionStatus.EXPIRED
            : ConnectionStatus.CONNECTED;
      const expiries = members.map((r) => r.expiresAt?.getTime()).filter((t): t is number => t !== undefined);
      views.push({
        integrationId: members[0].integrationId,
        connectionId: members[0].connectionId,
        status,
        expiresAt: expiries.length ? new Date(Math.min(...expiries)) : null,
        updatedAt: new Date(Math.max(...members.map((r) => r.updatedAt.getTime()))),
        credentials: creds,
      });
    }
    const connected = new Set(views.map((v) => v.integrationId));
    for (const integrationId of known) {
      if (!connected.has(integrationId)) {
        views.push({ integrationId, connectionId: null, status: ConnectionStatus.NOT_CONFIGURED, expiresAt: null, updatedAt: null, credentials: [] });
      }
    }
    return views.sort((a, b) => a.integrationId.localeCompare(b.integrationId) || (a.connectionId ?? '').localeCompare(b.connectionId ?? ''));
  }

  // ───────────────────────────── internals ─────────────────────────────

  private async loadCurrent(tenantId: string, id: string): Promise<CachedRead> {
    const row = await this.loadLive(tenantId, id);
    const v = await this.db.read((m) => m.findOneBy(CredentialVersionEntity, { credentialId: id, tenantId, version: row.currentVersion }));
    if (!v) throw new CredentialVersionNotFoundError(id, row.currentVersion);
    const value = await this.stores[v.valueStore].read(this.owner(row), pointerOf(v));
    return { value, row, auditDetails: { ...detailsOf(row), version: row.currentVersion } };
  }

  private async loadLive(tenantId: string, id: string): Promise<CredentialEntity> {
    if (typeof id !== 'string' || !UUID.test(id)) throw new CredentialNotFoundError(String(id).slice(0, 64));
    const row = await this.db.read((m) => m.findOneBy(CredentialEntity, { id, tenantId }));
    if (!row || row.status === CredentialStatus.DELETED) throw new CredentialNotFoundError(id);
    return row;
  }

  /**
   * Revoked: never served. Expired (a stored `expired` status, or `expiresAt` reached): served only
   * with `allowExpired`. `row.status` is the credential's; `expiresAt` that of the version being read.
   */
  private assertServable(row: Pick<CredentialEntity, 'id' | 'status'>, expiresAt: Date | null, options: ReadOptions): void {
    if (row.status === CredentialStatus.REVOKED) throw new CredentialRevokedError(row.id);
    if (options.allowExpired === true) return;
    const passed = expiresAt !== null && expiresAt.getTime() <= this.clock.nowMs();
    if (row.status === CredentialStatus.EXPIRED || passed) throw new CredentialExpiredError(row.id, passed ? expiresAt : null);
  }

  private findLive(tenantId: string, integrationId: string, connectionId: string, type: CredentialType) {
    return this.db.read((m) =>
      this.liveQuery(m, tenantId)
        .andWhere('c.integrationId = :integrationId AND c.connectionId = :connectionId AND c.type = :type', { integrationId, connectionId, type })
        .getOne(),
    );
  }

  private liveQuery(m: EntityManager, tenantId: string): SelectQueryBuilder<CredentialEntity> {
    return m
      .createQueryBuilder(CredentialEntity, 'c')
      .where('c.tenantId = :tenantId', { tenantId })
      .andWhere('c.status <> :deletedStatus', { deletedStatus: CredentialStatus.DELETED });
  }

  private whereEffectiveStatus(qb: SelectQueryBuilder<CredentialEntity>, status: CredentialStatus, now: number): void {
    if (status === CredentialStatus.EXPIRED) {
      qb.andWhere('(c.status = :sExpired OR (c.status = :sActive AND c.expiresAt IS NOT NULL AND c.expiresAt <= :sNow))', {
        sExpired: CredentialStatus.EXPIRED,
        sActive: CredentialStatus.ACTIVE,
        sNow: now,
      });
    } else if (status === CredentialStatus.ACTIVE) {
      qb.andWhere('c.status = :sActive AND (c.expiresAt IS NULL OR c.expiresAt > :sNow)', { sActive: CredentialStatus.ACTIVE, sNow: now });
    } else {
      qb.andWhere('c.status = :sStatus', { sStatus: status });
    }
  }

  /** UPDATE ... WHERE id AND tenant AND row_version = expected AND not deleted; 0 rows → LostRace. */
  private async compareAndSet(m: EntityManager, before: CredentialEntity, after: CredentialEntity): Promise<void> {
    const { id: _id, tenantId: _t, createdAt: _c, createdBy: _b, ...changes } = after;
    const result = await m
      .createQueryBuilder()
      .update(CredentialEntity)
      .set(changes)
      .where('id = :id AND tenant_id = :tenantId AND row_version = :rowVersion AND status <> :deleted', {
        id: before.id,
        tenantId: before.tenantId,
        rowVersion: before.rowVersion,
        deleted: CredentialStatus.DELETED,
      })
      .execute();
    if ((result.affected ?? 0) !== 1) throw new LostRace();
  }

  private async conflict(tenantId: string, id: string, expected: number): Promise<CredentialVaultError> {
    const current = await this.db.read((m) => m.findOneBy(CredentialEntity, { id, tenantId }));
    if (!current || current.status === CredentialStatus.DELETED) return new CredentialNotFoundError(id);
    return new CredentialConflictError(id, expected, current.rowVersion);
  }

  private checkExpected(row: CredentialEntity, expected: number | undefined): void {
    if (expected !== undefined && expected !== row.rowVersion) throw new CredentialConflictError(row.id, expected, row.rowVersion);
  }

  private countGenerationVersions(row: CredentialEntity): Promise<number> {
    const name = credentialSecretName(this.owner(row), row.vaultGeneration, this.options.vault.namePrefix);
    return this.db.read((m) =>
      m
        .createQueryBuilder(CredentialVersionEntity, 'v')
        .where('v.credentialId = :id AND v.vaultSecretName = :name AND v.sourceVersion IS NULL', { id: row.id, name })
        .getCount(),
    );
  }

  private versionRow(
    row: CredentialEntity,
    version: number,
    kind: ValueStoreKind,
    pointer: ValuePointer,
    hint: string | null,
    expiresAt: Date | null,
    certificate: StoredCertificateInfo | null,
    sourceVersion: number | null,
    ctx: OperationContext,
    now: Date,
  ): CredentialVersionEntity {
    return {
      id: randomUUID(),
      credentialId: row.id,
      tenantId: row.tenantId,
      version,
      valueStore: kind,
      vaultSecretName: pointer.vaultSecretName ?? null,
      vaultSecretVersion: pointer.vaultSecretVersion ?? null,
      envelopeValueId: pointer.envelopeValueId ?? null,
      sourceVersion,
      valueHint: hint,
      expiresAt,
      certificate,
      createdAt: now,
      createdBy: ctx.actor.id,
    };
  }

  private afterWrite(name: CredentialEventName, ctx: OperationContext, row: CredentialEntity, sourceVersion?: number): void {
    this.cache.invalidate(cacheKey(row.tenantId, row.id));
    this.emit(name, ctx, row, sourceVersion);
  }

  private emit(name: CredentialEventName, ctx: OperationContext, row: CredentialEntity, sourceVersion?: number, version?: number): void {
    if (!this.options.emitEvents || !this.events) return;
    const event: CredentialEvent = {
      name,
      credentialId: row.id,
      tenantId: row.tenantId,
      integrationId: row.integrationId,
      connectionId: row.connectionId,
      type: row.type,
      version: version ?? row.currentVersion,
      rowVersion: row.rowVersion,
      ...(sourceVersion !== undefined ? { sourceVersion } : {}),
      actorId: ctx.actor.id,
      correlationId: ctx.correlationId,
      occurredAt: this.clock.now(),
    };
    try {
      this.events.emit(name, event);
    } catch (e) {
      this.logger.warn(`a listener of ${name} failed for credential ${row.id}: ${(e as Error).message}`);
    }
  }

  private auditEvent(
    action: AuditAction,
    ctx: OperationContext,
    row: CredentialEntity,
    result: AuditResult,
    started: number,
    details?: Record<string, unknown>,
  ): AuditEventInput {
    return { action, context: ctx, resource: row.id, result, durationMs: Date.now() - started, details: { ...detailsOf(row), ...details } };
  }

  private async auditFailure(action: AuditAction, ctx: OperationContext, resource: string, error: unknown, started: number, details?: Record<string, unknown>): Promise<void> {
    if (!ctx || typeof ctx.tenantId !== 'string' || !ctx.actor) return;
    try {
      await this.audit.record({ action, context: ctx, resource, result: failureResult(error), errorCode: errorCode(error), durationMs: Date.now() - started, details });
    } catch (e) {
      this.logger.warn(`could not audit a failed ${action}: ${(e as Error).message}`);
    }
  }

  /** Success: awaited by the caller, so a failing audit (fail-closed) fails the read. Failure: best effort. */
  private auditRead(ctx: OperationContext, resource: string, result: AuditResult, started: number, code?: string, details?: Record<string, unknown>): Promise<void> {
    const event: AuditEventInput = { action: AuditAction.READ, context: ctx, resource, result, errorCode: code, durationMs: Date.now() - started, details };
    if (result === AuditResult.SUCCESS) return this.readAudit.record(event);
    return this.auditReadFailure(event);
  }

  private async auditReadFailure(event: AuditEventInput): Promise<void> {
    const resource = event.resource;
    try {
      await this.readAudit.record(event);
    } catch (e) {
      this.logger.warn(`could not audit a failed read of ${resource}: ${(e as Error).message}`);
    }
  }

  private owner(row: CredentialEntity): ValueOwner {
    return { tenantId: row.tenantId, credentialId: row.id, integrationId: row.integrationId, connectionId: row.connectionId, type: row.type };
  }

  private effectiveStatus(row: CredentialEntity): CredentialStatus {
    if (row.status === CredentialStatus.ACTIVE && row.expiresAt && row.expiresAt.getTime() <= this.clock.now().getTime()) return CredentialStatus.EXPIRED;
    return row.status;
  }

  private toMetadata(row: CredentialEntity): CredentialMetadata {
    return {
      id: row.id,
      tenantId: row.tenantId,
      integrationId: row.integrationId,
      connectionId: row.connectionId,
      type: row.type,
      valueStore: row.valueStore,
      version: row.currentVersion,
      rowVersion: row.rowVersion,
      status: this.effectiveStatus(row),
      expiresAt: row.expiresAt ? new Date(row.expiresAt) : null,
      rotatedAt: row.rotatedAt ? new Date(row.rotatedAt) : null,
      tags: { ...(row.tags ?? {}) },
      maskedValue: maskFromHint(row.valueHint),
      certificate: certificateOf(row.certificate),
      createdAt: new Date(row.createdAt),
      updatedAt: new Date(row.updatedAt),
      createdBy: row.createdBy,
      updatedBy: row.updatedBy,
    };
  }

  private toVersionInfo(v: CredentialVersionEntity, row: CredentialEntity): CredentialVersionInfo {
    return {
      credentialId: v.credentialId,
      version: v.version,
      valueStore: v.valueStore,
      sourceVersion: v.sourceVersion,
      expiresAt: v.expiresAt,
      maskedValue: maskFromHint(v.valueHint),
      createdAt: v.createdAt,
      createdBy: v.createdBy,
      current: v.version === row.currentVersion,
    };
  }

  private validateValue(type: CredentialType, value: unknown): ValidatedValue {
    return validateCredentialValue(type, value, this.clock.now(), this.options.minWebhookSecretBytes);
  }

  private assertType(type: unknown): asserts type is CredentialType {
    if (!CREDENTIAL_TYPES.includes(type as CredentialType)) {
      throw new CredentialValidationError(`type must be one of ${CREDENTIAL_TYPES.join(', ')}`, 'type');
    }
  }

  private assertContext(ctx: OperationContext): void {
    if (!ctx || typeof ctx !== 'object') throw new CredentialValidationError('an OperationContext is required', 'ctx');
    assertIdentifier(ctx.tenantId, 'tenantId');
    if (!ctx.actor || typeof ctx.actor.id !== 'string' || ctx.actor.id.length === 0 || ctx.actor.id.length > 256) {
      throw new CredentialValidationError('ctx.actor.id must be a non-empty string of at most 256 characters', 'actor');
    }
  }

  private assertWriteOptions(options: WriteOptions): void {
    if (options?.expectedVersion !== undefined) assertPositiveInt(options.expectedVersion, 'expectedVersion');
  }
}

function cacheKey(tenantId: string, id: string): string {
  // Tenant ids cannot contain "/", so keys of two tenants never share a prefix.
  return `${tenantId}/${id}`;
}

function pointerOf(v: CredentialVersionEntity): ValuePointer {
  return {
    vaultSecretName: v.vaultSecretName ?? undefined,
    vaultSecretVersion: v.vaultSecretVersion ?? undefined,
    envelopeValueId: v.envelopeValueId ?? undefined,
  };
}

/** Non-secret facts attached to every audit row of a credential. */
function detailsOf(row: CredentialEntity): Record<string, unknown> {
  return { integrationId: row.integrationId, connectionId: row.connectionId, type: row.type, valueStore: row.valueStore };
}

function storedCertificate(info: CertificateInfo | undefined): StoredCertificateInfo | null {
  return info ? { ...info, validFrom: info.validFrom.toISOString(), validTo: info.validTo.toISOString() } : null;
}

function certificateOf(stored: StoredCertificateInfo | null): CertificateInfo | null {
  return stored ? { ...stored, validFrom: new Date(stored.validFrom), validTo: new Date(stored.validTo) } : null;
}

function isServeStaleError(e: unknown): boolean {
  return e instanceof CredentialVaultError && e.retryable;
}

function failureResult(e: unknown): AuditResult {
  const denied = e instanceof CredentialNotFoundError || e instanceof CredentialRevokedError || e instanceof CredentialExpiredError;
  return denied ? AuditResult.DENIED : AuditResult.FAILURE;
}

function errorCode(e: unknown): string | undefined {
  return e instanceof CredentialVaultError ? `${e.code}:${e.codeName}` : 'UNEXPECTED';
}

function encodeCursor(createdAt: number, id: string): string {
  return Buffer.from(JSON.stringify([createdAt, id]), 'utf8').toString('base64url');
}

function decodeCursor(cursor: string): { createdAt: number; id: string } {
  try {
    const [createdAt, id] = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as [unknown, unknown];
    if (typeof createdAt === 'number' && typeof id === 'string' && UUID.test(id)) return { createdAt, id };
  } catch {
    // fall through
  }
  throw new CredentialValidationError('cursor is not a cursor returned by list()', 'cursor');
}
