import { randomUUID } from 'node:crypto';
import { Inject, Injectable, Logger } from '@nestjs/common';
import { AuditAction, AuditEventInput, AuditResult, AuditService } from '@app/audit';
import { Clock, CredentialVaultError, OperationContext, TransactionRunner } from '@app/common';
import { CredentialCache } from './cache/credential-cache';
import { CredentialStatus, CredentialType, ValueStoreKind } from './credential-type';
import type { BatchDeleteResult, CredentialMetadata, RotateOptions, StoreCredentialInput, UpdateMetadataInput, WriteOptions } from './credential.types';
import { CREDENTIALS_CLOCK, CREDENTIALS_RESOLVED_OPTIONS } from './credentials.constants';
import type { ResolvedCredentialsOptions } from './credentials.options';
import { CredentialVersionEntity } from './entities/credential-version.entity';
import { CredentialEntity, StoredCertificateInfo } from './entities/credential.entity';
import {
  CredentialAlreadyExistsError,
  CredentialConflictError,
  CredentialNotFoundError,
  CredentialValidationError,
  CredentialVersionNotFoundError,
} from './errors/credential-errors';
import { CredentialChangeEventName, CredentialEventPublisher } from './events/credential-event-publisher';
import { CredentialEvents } from './events/credential-events';
import { cacheKey, detailsOf, ownerOf, pointerOf, storedCertificate, toMetadata } from './internal/credential-view';
import { assertContext, assertType, assertWriteOptions, errorCode, failureResult, loadLive, UUID } from './internal/guards';
import { valueHint } from './masking';
import { credentialSecretName } from './naming/vault-secret-name';
import { CredentialRepository, newestKey } from './persistence/credential.repository';
import { CredentialVersionRepository } from './persistence/credential-version.repository';
import { CredentialsPersistence } from './persistence/credentials-persistence';
import type { ValuePointer, ValueWriteRequest } from './stores/credential-value-store';
import { ValueStores } from './stores/value-stores';
import { ValidatedValue, validateCredentialValue } from './validation/credential-value.validator';
import { assertDate, assertIdentifier, assertPositiveInt, assertTags } from './validation/identifiers';

/** Attempts of a write without `expectedVersion` that loses a race with another writer. */
const UNCONDITIONAL_WRITE_ATTEMPTS = 3;
const SETTABLE_STATUSES = new Set<CredentialStatus>([
  CredentialStatus.ACTIVE,
  CredentialStatus.EXPIRED,
  CredentialStatus.NEEDS_REAUTH,
  CredentialStatus.REVOKED,
]);

/** What one write commits: the metadata row after it, the other rows, its audit row and its event. */
interface Change {
  next: CredentialEntity;
  /** Other writes of the same transaction (the version row, discarded ciphertexts). */
  alsoWrite?: () => Promise<void>;
  audit: { action: AuditAction; details: Record<string, unknown> };
  event: { name: CredentialChangeEventName; sourceVersion?: number };
}

/** Most credentials `storeMany` takes in one call. */
export const MAX_STORE_MANY = 1000;

/** One credential of `storeMany`: the context it is stored in (its tenant, actor) and what `store` takes. */
export interface StoreManyItem {
  ctx: OperationContext;
  input: StoreCredentialInput;
}

/** Per item of `storeMany`, in order: the stored credential, or why it was not stored (`store`'s typed errors). */
export type StoreManyResult = { credential: CredentialMetadata; error?: undefined } | { credential?: undefined; error: unknown };

export interface StoreManyOptions {
  /** Runs each value-store write (e.g. under the caller's rate limiter). @default the write itself */
  valueWrite?: <T>(write: () => Promise<T>) => Promise<T>;
  /**
   * Runs inside the batch's transaction, after its rows, with the results so far: the caller's own
   * rows (e.g. checkpoints) then commit with the credentials, or not at all. Audit events it returns
   * are appended after the batch's STORE rows, in the same `recordMany`.
   */
  inCommit?: (results: StoreManyResult[]) => Promise<AuditEventInput[] | void>;
  /**
   * Items with the same key commit together: when the value write of one fails, the others of its key
   * stay out of the transaction (their values orphan versions, as after a crash) with its error — e.g.
   * the fields of one migrated connection. @default every item on its own
   */
  together?: (index: number) => string;
}

/** A new credential of `store`/`storeMany`, decided before its value is written. */
interface StorePlan {
  ctx: OperationContext;
  input: StoreCredentialInput;
  kind: ValueStoreKind;
  tags: Record<string, string>;
  generation: number;
  now: Date;
  createdAt: Date;
  expiresAt: Date | null;
  hint: string | null;
  certificate: StoredCertificateInfo | null;
  valueWrite: ValueWriteRequest;
}

/** A version row's own facts. */
interface VersionFacts {
  version: number;
  kind: ValueStoreKind;
  pointer: ValuePointer;
  hint: string | null;
  expiresAt: Date | null;
  certificate: StoredCertificateInfo | null;
  sourceVersion: number | null;
}

/**
 * Every write. The crash-safe sequence: (1) the value goes to its store first — a new Key Vault secret
 * version or envelope row, not servable yet; (2) ONE `runner.run` transaction: the metadata rows (the
 * compare-and-set on `row_version` moves the current-version pointer), the audit row and the outbox
 * row of the domain event; (3) after commit, the local cache entry is invalidated. A failure before
 * the commit leaves the previous value current; the orphan value version is never referenced.
 */
@Injectable()
export class CredentialWriter {
  private readonly logger = new Logger(CredentialWriter.name);
  private readonly runner: TransactionRunner;

  constructor(
    persistence: CredentialsPersistence,
    private readonly rows: CredentialRepository,
    private readonly versions: CredentialVersionRepository,
    private readonly stores: ValueStores,
    private readonly audit: AuditService,
    private readonly events: CredentialEventPublisher,
    private readonly cache: CredentialCache,
    @Inject(CREDENTIALS_CLOCK) private readonly clock: Clock,
    @Inject(CREDENTIALS_RESOLVED_OPTIONS) private readonly options: ResolvedCredentialsOptions,
  ) {
    this.runner = persistence.runner;
  }

  /** See `CredentialsService.store`. */
  async store(ctx: OperationContext, input: StoreCredentialInput): Promise<CredentialMetadata> {
    const started = Date.now();
    try {
      assertContext(ctx);
      const checked = this.checkStore(input);
      const existing = await this.rows.findNewest(ctx.tenantId, input.integrationId, input.connectionId, input.type);
      const plan = this.planStore(ctx, input, checked, existing);
      const pointer = await this.stores.of(plan.kind).write(plan.valueWrite);
      const row = this.newRow(plan, pointer);
      try {
        await this.commit(ctx, started, {
          next: row,
          alsoWrite: () => this.versions.insert(firstVersionRow(row, plan, pointer)),
          audit: { action: AuditAction.STORE, details: { version: 1, valueStore: plan.kind } },
          event: { name: CredentialEvents.STORED },
        }, async () => {
          await this.rows.insert(row);
          return true;
        });
      } catch (e) {
        // Lost a race with a concurrent store of the same (integration, connection, type)?
        const winner = await this.rows.findLive(ctx.tenantId, input.integrationId, input.connectionId, input.type);
        if (winner && winner.id !== row.id) throw new CredentialAlreadyExistsError(winner.id);
        throw e;
      }
      this.logger.log(`stored credential ${row.id} (tenant ${ctx.tenantId}, ${input.type}, ${plan.kind})`);
      return toMetadata(row, this.clock.nowMs());
    } catch (e) {
      await this.auditFailure(AuditAction.STORE, ctx, storeResource(input), e, started, { type: input?.type });
      throw e;
    }
  }

  /**
   * See `CredentialsService.storeMany`. Per item what `store` does, but: one read of the existing
   * rows for the whole batch, the value writes concurrently (through `options.valueWrite`), then ONE
   * transaction for every item whose value was written — the metadata and version rows in multi-row
   * inserts, the STORE audit rows in one `recordMany` (one chain-head read per tenant), their outbox
   * events, and `options.inCommit`. If that transaction fails, nothing of the batch is committed (its
   * values are orphan versions, never referenced, as after a crash) and the error is thrown.
   */
  async storeMany(items: StoreManyItem[], options: StoreManyOptions = {}): Promise<StoreManyResult[]> {
    const started = Date.now();
    if (!Array.isArray(items) || items.length > MAX_STORE_MANY) {
      throw new CredentialValidationError(`items must be an array of at most ${MAX_STORE_MANY} items`, 'items');
    }
    const results: StoreManyResult[] = items.map(() => ({ error: undefined as unknown }));
    const failures: { i: number; error: unknown }[] = [];
    const checked = items.map(({ ctx, input }, i) => {
      try {
        assertContext(ctx);
        return this.checkStore(input);
      } catch (error) {
        failures.push({ i, error });
        return undefined;
      }
    });
    const keyOf = (i: number) => newestKey({ tenantId: items[i].ctx.tenantId, ...items[i].input });
    const wanted = checked.flatMap((c, i) => (c ? [i] : []));
    const existing = await this.rows.findNewestMany(wanted.map((i) => ({ tenantId: items[i].ctx.tenantId, ...items[i].input })));
    const seen = new Set<string>();
    const plans = new Map<number, StorePlan>();
    for (const i of wanted) {
      try {
        const key = keyOf(i);
        if (seen.has(key)) throw new CredentialValidationError('the batch holds this (integration, connection, type) twice', 'items');
        seen.add(key);
        plans.set(i, this.planStore(items[i].ctx, items[i].input, checked[i]!, existing.get(key) ?? null));
      } catch (error) {
        failures.push({ i, error });
      }
    }
    const valueWrite = options.valueWrite ?? ((write) => write());
    let written: { i: number; plan: StorePlan; pointer: ValuePointer; row: CredentialEntity }[] = [];
    const writeFailed = new Map<string, unknown>();
    const writeValue = async ([i, plan]: [number, StorePlan]) => {
      try {
        const pointer = await valueWrite(() => this.stores.of(plan.kind).write(plan.valueWrite));
        written.push({ i, plan, pointer, row: this.newRow(plan, pointer) });
      } catch (error) {
        failures.push({ i, error });
        if (options.together) writeFailed.set(options.together(i), error);
      }
    };
    // Values first, concurrently, outside any transaction — envelope values too: writing one may create
    // the tenant's data key (a row of its own), which must never roll back with the batch once cached.
    await Promise.all([...plans].map(writeValue));
    if (writeFailed.size) {
      const key = (i: number) => options.together!(i);
      for (const w of written) if (writeFailed.has(key(w.i))) failures.push({ i: w.i, error: writeFailed.get(key(w.i)) });
      written = written.filter((w) => !writeFailed.has(key(w.i)));
    }
    written.sort((a, b) => a.i - b.i);
    try {
      if (written.length || options.inCommit) {
        await this.runner.run(async () => {
          for (const f of failures) results[f.i] = { error: f.error };
          await this.rows.insertMany(written.map((w) => w.row));
          await this.versions.insertMany(written.map((w) => firstVersionRow(w.row, w.plan, w.pointer)));
          for (const w of written) await this.events.changed(CredentialEvents.STORED, items[w.i].ctx, w.row);
          const nowMs = this.clock.nowMs();
          for (const w of written) results[w.i] = { credential: toMetadata(w.row, nowMs) };
          const callers = (await options.inCommit?.(results)) ?? [];
          // The STORE rows and the caller's: one chain append (one head read and lock) per tenant.
          await this.audit.recordMany([
            ...written.map((w) => this.auditEvent(AuditAction.STORE, items[w.i].ctx, w.row, started, { version: 1, valueStore: w.plan.kind })),
            ...callers,
          ]);
        });
      }
    } catch (e) {
      failures.push(...written.map((w) => ({ i: w.i, error: e })));
      throw e;
    } finally {
      await this.auditFailures(failures.map((f) => ({ ctx: items[f.i]?.ctx, input: items[f.i]?.input, error: f.error })), started);
    }
    for (const f of failures) results[f.i] = { error: f.error };
    if (written.length) this.logger.log(`stored ${written.length} credential(s) in one transaction`);
    return results;
  }

  /** `store`'s checks of its input, before anything is read or written. */
  private checkStore(input: StoreCredentialInput): { validated: ValidatedValue; kind: ValueStoreKind; tags: Record<string, string> } {
    assertIdentifier(input.integrationId, 'integrationId');
    assertIdentifier(input.connectionId, 'connectionId');
    assertType(input.type);
    const tags = input.tags ?? {};
    assertTags(tags);
    if (input.expiresAt != null) assertDate(input.expiresAt, 'expiresAt');
    if (input.createdAt !== undefined) assertDate(input.createdAt, 'createdAt');
    if (input.valueStore !== undefined && !Object.values(ValueStoreKind).includes(input.valueStore)) {
      throw new CredentialValidationError(`valueStore must be 'vault' or 'envelope'`, 'valueStore');
    }
    const validated = this.validateValue(input.type, input.value);
    return { validated, kind: input.valueStore ?? this.options.valueStores[input.type], tags };
  }

  /** Everything of a new credential but its value pointer; refuses a live one in the slot. */
  private planStore(ctx: OperationContext, input: StoreCredentialInput, checked: ReturnType<CredentialWriter['checkStore']>, existing: CredentialEntity | null): StorePlan {
    if (existing && existing.status !== CredentialStatus.DELETED) throw new CredentialAlreadyExistsError(existing.id);
    // A deleted predecessor's secret names are soft-deleted: start past its generation.
    const generation = existing ? existing.vaultGeneration + 1 : 0;
    const now = this.clock.now();
    if (input.createdAt && input.createdAt.getTime() > now.getTime()) throw new CredentialValidationError('createdAt must not be in the future', 'createdAt');
    const id = randomUUID();
    const expiresAt = checked.validated.expiresAt ?? input.expiresAt ?? null;
    const owner = { tenantId: ctx.tenantId, credentialId: id, integrationId: input.integrationId, connectionId: input.connectionId, type: input.type };
    return {
      ctx, input, kind: checked.kind, tags: checked.tags, generation, now, createdAt: input.createdAt ?? now, expiresAt,
      hint: valueHint(input.type, input.value),
      certificate: storedCertificate(checked.validated.certificate),
      valueWrite: { ...owner, version: 1, value: input.value, expiresAt, vaultGeneration: generation, versionsInGeneration: 0 },
    };
  }

  private newRow(p: StorePlan, pointer: ValuePointer): CredentialEntity {
    return {
      id: p.valueWrite.credentialId,
      tenantId: p.ctx.tenantId,
      integrationId: p.input.integrationId,
      connectionId: p.input.connectionId,
      type: p.input.type,
      valueStore: p.kind,
      currentVersion: 1,
      status: CredentialStatus.ACTIVE,
      expiresAt: p.expiresAt,
      rotatedAt: null,
      tags: { ...p.tags },
      valueHint: p.hint,
      certificate: p.certificate,
      vaultGeneration: pointer.vaultGeneration ?? p.generation,
      rowVersion: 1,
      createdAt: p.createdAt,
      updatedAt: p.now,
      deletedAt: null,
      createdBy: p.ctx.actor.id,
      updatedBy: p.ctx.actor.id,
    };
  }

  /** See `CredentialsService.validate`. */
  validate(input: { type: CredentialType; value: string; expiresAt?: Date | null; tags?: Record<string, string> }): void {
    assertType(input.type);
    if (input.tags !== undefined) assertTags(input.tags);
    if (input.expiresAt != null) assertDate(input.expiresAt, 'expiresAt');
    this.validateValue(input.type, input.value);
  }

  /** See `CredentialsService.rotate`. */
  async rotate(ctx: OperationContext, id: string, value: string, options: RotateOptions = {}): Promise<CredentialMetadata> {
    return this.audited(AuditAction.ROTATE, ctx, id, async (started) => {
      assertWriteOptions(options);
      if (options.expiresAt != null) assertDate(options.expiresAt, 'expiresAt');
      const { next } = await this.mutate(ctx, id, options, started, async (row) => {
        const validated = this.validateValue(row.type, value);
        const version = row.currentVersion + 1;
        const expiresAt = validated.expiresAt ?? options.expiresAt ?? null;
        const versionsInGeneration = row.valueStore === ValueStoreKind.VAULT ? await this.versionsInGeneration(row) : 0;
        const owner = ownerOf(row);
        const pointer = await this.stores.of(row.valueStore).write({ ...owner, version, value, expiresAt, vaultGeneration: row.vaultGeneration, versionsInGeneration });
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
        const facts: VersionFacts = { version, kind: row.valueStore, pointer, hint, expiresAt, certificate, sourceVersion: null };
        return {
          next,
          alsoWrite: () => this.versions.insert(versionRow(row, facts, ctx, now)),
          audit: { action: AuditAction.ROTATE, details: { version, previousVersion: row.currentVersion } },
          event: { name: CredentialEvents.ROTATED },
        };
      });
      return toMetadata(next, this.clock.nowMs());
    });
  }

  /** See `CredentialsService.rollback`. */
  async rollback(ctx: OperationContext, id: string, toVersion: number, options: WriteOptions = {}): Promise<CredentialMetadata> {
    return this.audited(AuditAction.ROLLBACK, ctx, id, async (started) => {
      assertWriteOptions(options);
      assertPositiveInt(toVersion, 'toVersion');
      const { next } = await this.mutate(ctx, id, options, started, async (row) => {
        const target = await this.versions.find(ctx.tenantId, id, toVersion);
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
        const facts: VersionFacts = {
          version,
          kind: target.valueStore,
          pointer: pointerOf(target),
          hint: target.valueHint,
          expiresAt: target.expiresAt,
          certificate: target.certificate,
          sourceVersion,
        };
        return {
          next,
          alsoWrite: () => this.versions.insert(versionRow(row, facts, ctx, now)),
          audit: { action: AuditAction.ROLLBACK, details: { version, toVersion, sourceVersion, previousVersion: row.currentVersion } },
          event: { name: CredentialEvents.ROLLED_BACK, sourceVersion },
        };
      });
      return toMetadata(next, this.clock.nowMs());
    });
  }

  /** See `CredentialsService.updateMetadata`. */
  async updateMetadata(ctx: OperationContext, id: string, input: UpdateMetadataInput): Promise<CredentialMetadata> {
    return this.audited(AuditAction.UPDATE_METADATA, ctx, id, async (started) => {
      assertWriteOptions(input);
      if (input.tags !== undefined) assertTags(input.tags);
      if (input.expiresAt != null) assertDate(input.expiresAt, 'expiresAt');
      if (input.status !== undefined && !SETTABLE_STATUSES.has(input.status)) {
        throw new CredentialValidationError(`status must be one of ${[...SETTABLE_STATUSES].join(', ')} (use delete() to delete)`, 'status');
      }
      const changed = (['tags', 'expiresAt', 'status'] as const).filter((k) => input[k] !== undefined);
      if (changed.length === 0) throw new CredentialValidationError('nothing to update: give tags, expiresAt or status', 'input');
      const { next } = await this.mutate(ctx, id, input, started, async (row) => {
        if (input.expiresAt !== undefined && row.type === CredentialType.CLIENT_CERTIFICATE) {
          throw new CredentialValidationError('the expiry of a client certificate is read from the certificate; rotate it instead', 'expiresAt');
        }
        const next: CredentialEntity = {
          ...row,
          tags: input.tags !== undefined ? { ...input.tags } : row.tags,
          expiresAt: input.expiresAt !== undefined ? input.expiresAt : row.expiresAt,
          status: input.status ?? row.status,
          rowVersion: row.rowVersion + 1,
          updatedAt: this.clock.now(),
          updatedBy: ctx.actor.id,
        };
        return { next, audit: { action: AuditAction.UPDATE_METADATA, details: { changed, status: next.status } }, event: { name: CredentialEvents.METADATA_UPDATED } };
      });
      return toMetadata(next, this.clock.nowMs());
    });
  }

  /** See `CredentialsService.delete`. */
  async delete(ctx: OperationContext, id: string, options: WriteOptions = {}): Promise<void> {
    return this.audited(AuditAction.DELETE, ctx, id, async (started) => {
      assertWriteOptions(options);
      const { before } = await this.mutate(ctx, id, options, started, async (row) => {
        const now = this.clock.now();
        return {
          next: { ...row, status: CredentialStatus.DELETED, deletedAt: now, rowVersion: row.rowVersion + 1, updatedAt: now, updatedBy: ctx.actor.id },
          // Envelope ciphertexts go in the same transaction; Key Vault secrets are soft-deleted after it.
          alsoWrite: () => this.stores.of(row.valueStore).discardInTransaction(ownerOf(row)),
          audit: { action: AuditAction.DELETE, details: { version: row.currentVersion } },
          event: { name: CredentialEvents.DELETED },
        };
      });
      const versions = await this.versions.list(ctx.tenantId, id);
      await this.stores.of(before.valueStore).discardAfterCommit(ownerOf(before), versions.map(pointerOf));
    });
  }

  /** See `CredentialsService.deleteByConnection`. */
  async deleteByConnection(ctx: OperationContext, integrationId: string, connectionId: string): Promise<BatchDeleteResult> {
    assertContext(ctx);
    assertIdentifier(integrationId, 'integrationId');
    assertIdentifier(connectionId, 'connectionId');
    return this.deleteMany(ctx, await this.rows.liveIdsOfConnection(ctx.tenantId, integrationId, connectionId));
  }

  /** See `CredentialsService.deleteMany`. */
  async deleteMany(ctx: OperationContext, ids: string[]): Promise<BatchDeleteResult> {
    assertContext(ctx);
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

  /**
   * THE compare-and-set loop of every change to an existing credential: load the live row, check
   * `expectedVersion`, `build` the change (value-store writes happen here, before the transaction),
   * commit it if `row_version` did not move meanwhile. A lost race is retried without
   * `expectedVersion` (up to 3 attempts), else it is a CredentialConflictError.
   */
  private async mutate(
    ctx: OperationContext,
    id: string,
    options: WriteOptions,
    started: number,
    build: (row: CredentialEntity) => Promise<Change>,
  ): Promise<{ before: CredentialEntity; next: CredentialEntity }> {
    for (let attempt = 1; ; attempt++) {
      const row = await loadLive(this.rows, ctx.tenantId, id);
      if (options.expectedVersion !== undefined && options.expectedVersion !== row.rowVersion) {
        throw new CredentialConflictError(row.id, options.expectedVersion, row.rowVersion);
      }
      const change = await build(row);
      if (await this.commit(ctx, started, change, () => this.rows.compareAndSet(row, change.next))) return { before: row, next: change.next };
      if (options.expectedVersion === undefined && attempt < UNCONDITIONAL_WRITE_ATTEMPTS) continue;
      throw await this.conflict(ctx.tenantId, id, options.expectedVersion ?? row.rowVersion);
    }
  }

  /**
   * The one transaction of a write: the metadata row (`writeRow`; false = lost the compare-and-set,
   * nothing written), the other rows, the audit row and the outbox row; after commit the cache entry
   * is invalidated (a load started before that can never repopulate it).
   */
  private commit(ctx: OperationContext, started: number, change: Change, writeRow: () => Promise<boolean>): Promise<boolean> {
    const { next } = change;
    return this.runner.run(async () => {
      if (!(await writeRow())) return false;
      await change.alsoWrite?.();
      await this.audit.record(this.auditEvent(change.audit.action, ctx, next, started, change.audit.details));
      await this.events.changed(change.event.name, ctx, next, change.event.sourceVersion);
      // A stored credential has a fresh id: nothing can be cached under it, and an eviction would only
      // refuse the fills of the first reads. Every other change is evicted on every replica before the
      // write returns (awaited after commit); if that fails, the outbox event's handler evicts it later.
      if (change.event.name !== CredentialEvents.STORED) {
        this.runner.afterCommit(() => this.cache.evictEverywhere(cacheKey(next.tenantId, next.id)).catch(() => undefined));
      }
      return true;
    });
  }

  /** Runs a write on an existing credential; a failure is audited (best effort) and rethrown. */
  private async audited<T>(action: AuditAction, ctx: OperationContext, id: string, work: (started: number) => Promise<T>): Promise<T> {
    const started = Date.now();
    try {
      assertContext(ctx);
      return await work(started);
    } catch (e) {
      await this.auditFailure(action, ctx, String(id), e, started);
      throw e;
    }
  }

  private async conflict(tenantId: string, id: string, expected: number): Promise<CredentialVaultError> {
    const current = await this.rows.findById(tenantId, id);
    if (!current || current.status === CredentialStatus.DELETED) return new CredentialNotFoundError(id);
    return new CredentialConflictError(id, expected, current.rowVersion);
  }

  private versionsInGeneration(row: CredentialEntity): Promise<number> {
    return this.versions.countWrittenTo(row.id, credentialSecretName(ownerOf(row), row.vaultGeneration, this.options.vault.namePrefix));
  }

  private validateValue(type: CredentialType, value: unknown): ValidatedValue {
    return validateCredentialValue(type, value, this.clock.now(), this.options.minWebhookSecretBytes);
  }

  private auditEvent(action: AuditAction, ctx: OperationContext, row: CredentialEntity, started: number, details?: Record<string, unknown>): AuditEventInput {
    return { action, context: ctx, resource: row.id, result: AuditResult.SUCCESS, durationMs: Date.now() - started, details: { ...detailsOf(row), ...details } };
  }

  /** `auditFailure` of each item `storeMany` could not store (best effort, one batch of rows). */
  private async auditFailures(failed: { ctx?: OperationContext; input?: StoreCredentialInput; error: unknown }[], started: number): Promise<void> {
    const events = failed.flatMap(({ ctx, input, error }): AuditEventInput[] =>
      ctx && typeof ctx.tenantId === 'string' && ctx.actor
        ? [{ action: AuditAction.STORE, context: ctx, resource: storeResource(input), result: failureResult(error), errorCode: errorCode(error), durationMs: Date.now() - started, details: { type: input?.type } }]
        : [],
    );
    try {
      await this.audit.recordMany(events);
    } catch (e) {
      this.logger.warn(`could not audit ${events.length} failed store(s): ${(e as Error).message}`);
    }
  }

  private async auditFailure(action: AuditAction, ctx: OperationContext, resource: string, error: unknown, started: number, details?: Record<string, unknown>): Promise<void> {
    if (!ctx || typeof ctx.tenantId !== 'string' || !ctx.actor) return;
    try {
      await this.audit.record({ action, context: ctx, resource, result: failureResult(error), errorCode: errorCode(error), durationMs: Date.now() - started, details });
    } catch (e) {
      this.logger.warn(`could not audit a failed ${action}: ${(e as Error).message}`);
    }
  }
}

/** What `store` needs of its caller's name for the failure's audit row. */
function storeResource(input: StoreCredentialInput | undefined): string {
  return `connection:${String(input?.integrationId)}/${String(input?.connectionId)}`;
}

function firstVersionRow(row: CredentialEntity, p: StorePlan, pointer: ValuePointer): CredentialVersionEntity {
  return versionRow(row, { version: 1, kind: p.kind, pointer, hint: p.hint, expiresAt: p.expiresAt, certificate: p.certificate, sourceVersion: null }, p.ctx, p.createdAt);
}

function versionRow(row: CredentialEntity, v: VersionFacts, ctx: OperationContext, now: Date): CredentialVersionEntity {
  return {
    id: randomUUID(),
    credentialId: row.id,
    tenantId: row.tenantId,
    version: v.version,
    valueStore: v.kind,
    vaultSecretName: v.pointer.vaultSecretName ?? null,
    vaultSecretVersion: v.pointer.vaultSecretVersion ?? null,
    envelopeValueId: v.pointer.envelopeValueId ?? null,
    sourceVersion: v.sourceVersion,
    valueHint: v.hint,
    expiresAt: v.expiresAt,
    certificate: v.certificate,
    createdAt: now,
    createdBy: ctx.actor.id,
  };
}
