import { Inject, Injectable, Logger } from '@nestjs/common';
import { AuditAction } from '@app/audit';
import { Clock, CommitNotDurableError, OperationContext } from '@app/common';
import { CredentialChangeCommitter } from './credential-change.committer';
import { CredentialStatus, CredentialType, type CredentialTypeInput, ValueStoreKind } from './credential-type';
import type { CredentialMetadata, RotateOptions, StoreCredentialInput, StoreOptions, UpdateMetadataInput, WriteOptions } from './credential.types';
import { CREDENTIALS_CLOCK, CREDENTIALS_RESOLVED_OPTIONS, VAULT_VALUE_REVOKE_EVENT } from './credentials.constants';
import type { ResolvedCredentialsOptions } from './credentials.options';
import { CredentialEntity } from './entities/credential.entity';
import {
  CredentialAlreadyExistsError,
  CredentialRevokedError,
  CredentialValidationError,
  CredentialVersionNotFoundError,
} from './errors/credential-errors';
import { CredentialEvents } from './events/credential-events';
import { isReservedConnectionId, RESERVED_CONNECTION_MESSAGE } from './internal-credentials';
import { ownerOf, pointerOf, storedCertificate, toMetadata } from './internal/credential-view';
import { assertChangeable, assertContext, assertWriteOptions, checkedType, memberOf } from './internal/guards';
import { changedMetadataFields, type MetadataField } from './internal/metadata-changes';
import { valueHint } from './masking';
import { valueWriteStart } from './internal/value-commit-deadline';
import { credentialSecretName } from './naming/vault-secret-name';
import { checkHistory, writeHistory } from './internal/store-history';
import { firstVersionRow, newRow, planStore, storeFailureDetails, storeResource, versionRow, type CheckedStore, type StorePlan, type VersionFacts } from './internal/store-rows';
import { CredentialRepository, type CredentialSlot } from './persistence/credential.repository';
import { CredentialsPersistence } from './persistence/credentials-persistence';
import { CredentialVersionRepository, lastRevoked, revokeMark } from './persistence/credential-version.repository';
import { ValueStores } from './stores/value-stores';
import { VaultValueDeletion } from './stores/vault-value-deletion';
import { ValidatedValue, validateValueOfType } from './validation/credential-value.validator';
import { assertDate, assertIdentifier, assertNewIdentifier, assertPositiveInt, assertTags, MAX_VERSION_NUMBER } from './validation/identifiers';

const REVOKED_WRITE_MESSAGE = 'The credential is revoked: un-revoke it first (unrevoke, scope credentials:revoke), or rotate it to a new value';

const SETTABLE_STATUSES: readonly CredentialStatus[] = [CredentialStatus.ACTIVE, CredentialStatus.EXPIRED, CredentialStatus.NEEDS_REAUTH, CredentialStatus.REVOKED];
const VALUE_STORE_KINDS: readonly ValueStoreKind[] = Object.values(ValueStoreKind);

/**
 * Every write. The crash-safe sequence: (1) the value goes to its store first — a new Key Vault secret
 * version (this write's own, even after a lost answer: the key-vault lib reads it back rather than write
 * it twice) or envelope row, not servable yet; (2) ONE `runner.run` transaction: the metadata rows (the
 * compare-and-set on `row_version` moves the current-version pointer), the audit row and the outbox
 * row of the domain event; (3) after commit, the local cache entry is invalidated. A failure before
 * the commit leaves the previous value current; the orphan value version is never referenced, and a
 * write that fails or loses its compare-and-set discards it (envelope row deleted, vault version
 * disabled; best effort — only a crash leaves one), so a concurrent delete keeps no ciphertext.
 * Each method here checks its input and builds its change (step 1 included); steps (2) and (3), the
 * compare-and-set loop and the audit rows are `CredentialChangeCommitter`'s.
 */
@Injectable()
export class CredentialWriter {
  private readonly logger = new Logger(CredentialWriter.name);

  constructor(
    private readonly committer: CredentialChangeCommitter,
    private readonly rows: CredentialRepository,
    private readonly versions: CredentialVersionRepository,
    private readonly stores: ValueStores,
    private readonly vaultDeletion: VaultValueDeletion,
    private readonly persistence: CredentialsPersistence,
    @Inject(CREDENTIALS_CLOCK) private readonly clock: Clock,
    @Inject(CREDENTIALS_RESOLVED_OPTIONS) private readonly options: ResolvedCredentialsOptions,
  ) {}

  /** See `CredentialsService.store`. */
  async store(ctx: OperationContext, input: StoreCredentialInput, options: StoreOptions = {}): Promise<CredentialMetadata> {
    const started = Date.now();
    try {
      assertContext(ctx);
      assertWriteOptions(options);
      if (options.internal !== undefined && typeof options.internal !== 'boolean') throw new CredentialValidationError('internal must be true or false', 'internal');
      const checked = this.checkStore(input, options.internal === true);
      const { type, integrationId, connectionId } = checked.input;
      const history = checkHistory(checked.input, (value) => this.validateValue(type, value));
      const plan = this.planStore(ctx, checked, await this.rows.findSlot({ tenantId: ctx.tenantId, integrationId, connectionId, type }));
      const since = valueWriteStart();
      // Every value first (the history's, oldest first, then the current one), then the one commit.
      const { earlier, generation, inGeneration } = await writeHistory(this.stores, plan, history);
      const current = earlier.length + 1;
      const pointer = await this.stores.of(plan.kind).write({ ...plan.valueWrite, version: current, vaultGeneration: generation, versionsInGeneration: inGeneration, signal: ctx.signal });
      const row: CredentialEntity = { ...newRow(plan, pointer), currentVersion: current, rotatedAt: earlier.length > 0 ? plan.now : null };
      try {
        await this.committer.commit(ctx, started, {
          next: row,
          alsoWrite: async () => {
            for (const v of earlier) await this.versions.insert(versionRow(row, v, ctx, plan.createdAt));
            await this.versions.insert({ ...firstVersionRow(row, plan, pointer), version: current });
          },
          audit: { action: AuditAction.STORE, details: { version: current, valueStore: plan.kind, ...(earlier.length > 0 ? { history: earlier.length } : {}) } },
          event: { name: CredentialEvents.STORED },
          inCommit: options.inCommit,
        }, async () => {
          await this.rows.insert(row);
          return true;
        }, since);
      } catch (e) {
        // Not committed: the values this store wrote are no one's (a concurrent store's winner writes to the same vault secret).
        if (!(e instanceof CommitNotDurableError)) {
          for (const facts of [...earlier, { kind: plan.kind, pointer }]) await this.committer.discardWritten({ written: { kind: facts.kind, owner: plan.valueWrite, pointer: facts.pointer } });
        }
        // Lost a race with a concurrent store of the same (integration, connection, type)?
        const winner = await this.rows.findLive(ctx.tenantId, integrationId, connectionId, type);
        if (winner && winner.id !== row.id) throw new CredentialAlreadyExistsError(winner.id);
        throw e;
      }
      this.logger.log(`stored credential ${row.id} (tenant ${ctx.tenantId}, ${type}, ${plan.kind})`);
      return toMetadata(row, this.clock.nowMs());
    } catch (e) {
      await this.committer.auditFailure(AuditAction.STORE, ctx, storeResource(input), e, started, storeFailureDetails(input));
      throw e;
    }
  }

  /** `store`'s checks of its input, before anything is read or written (also `CredentialBatchWriter`'s, never `internal`). */
  checkStore(input: StoreCredentialInput, internal = false): CheckedStore {
    // An internal credential is stored under an existing credential's integration: one stored before ids made only of dots were refused must still rotate.
    const assertId: typeof assertIdentifier = internal ? assertIdentifier : assertNewIdentifier;
    assertId(input.integrationId, 'integrationId');
    assertId(input.connectionId, 'connectionId');
    if (!internal && isReservedConnectionId(input.connectionId)) throw new CredentialValidationError(RESERVED_CONNECTION_MESSAGE, 'connectionId');
    const type = checkedType(input.type);
    const tags = input.tags ?? {};
    assertTags(tags);
    if (input.expiresAt != null) assertDate(input.expiresAt, 'expiresAt');
    if (input.createdAt !== undefined) assertDate(input.createdAt, 'createdAt');
    const valueStore = input.valueStore === undefined ? undefined : memberOf(VALUE_STORE_KINDS, input.valueStore, 'valueStore', `valueStore must be 'vault' or 'envelope'`);
    const validated = this.validateValue(type, input.value);
    return { input: { ...input, type, valueStore }, validated, kind: valueStore ?? this.options.valueStores[type], tags };
  }

  /** Everything of a new credential but its value pointer, now; refuses a live one in the slot (also `CredentialBatchWriter`'s). */
  planStore(ctx: OperationContext, checked: CheckedStore, slot: CredentialSlot): StorePlan {
    return planStore(ctx, checked, slot, this.clock.now());
  }

  /** See `CredentialsService.validate`. */
  validate(input: { type: CredentialTypeInput; value: string; expiresAt?: Date | null; tags?: Record<string, string> }): void {
    const type = checkedType(input.type);
    if (input.tags !== undefined) assertTags(input.tags);
    if (input.expiresAt != null) assertDate(input.expiresAt, 'expiresAt');
    this.validateValue(type, input.value);
  }

  /** See `CredentialsService.rotate`. */
  async rotate(ctx: OperationContext, id: string, value: string, options: RotateOptions = {}): Promise<CredentialMetadata> {
    return this.committer.audited(AuditAction.ROTATE, ctx, id, async (started) => {
      assertWriteOptions(options);
      if (options.expiresAt != null) assertDate(options.expiresAt, 'expiresAt');
      const { next } = await this.committer.mutate(ctx, id, options, started, async (row) => {
        assertChangeable(row);
        const validated = this.validateValue(row.type, value);
        const version = row.currentVersion + 1;
        const expiresAt = validated.expiresAt ?? options.expiresAt ?? null;
        const versionsInGeneration = row.valueStore === ValueStoreKind.VAULT ? await this.versionsInGeneration(row) : 0;
        const owner = ownerOf(row);
        // A value already sent to the vault is committed even if the caller has left (the signal only drops it unsent).
        const pointer = await this.stores.of(row.valueStore).write({ ...owner, version, value, expiresAt, vaultGeneration: row.vaultGeneration, versionsInGeneration, signal: ctx.signal });
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
          written: { kind: row.valueStore, owner, pointer },
          audit: { action: AuditAction.ROTATE, details: { version, previousVersion: row.currentVersion } },
          event: { name: CredentialEvents.ROTATED },
        };
      });
      return toMetadata(next, this.clock.nowMs());
    });
  }

  /** See `CredentialsService.rollback`. */
  async rollback(ctx: OperationContext, id: string, toVersion: number, options: WriteOptions = {}): Promise<CredentialMetadata> {
    return this.committer.audited(AuditAction.ROLLBACK, ctx, id, async (started) => {
      assertWriteOptions(options);
      assertPositiveInt(toVersion, 'toVersion');
      if (toVersion > MAX_VERSION_NUMBER) throw new CredentialVersionNotFoundError(id, toVersion);
      const { next } = await this.committer.mutate(ctx, id, options, started, async (row) => {
        assertChangeable(row);
        // A revoked credential's value was withdrawn on purpose (a leak): only un-revoke lifts that.
        if (row.status === CredentialStatus.REVOKED) throw new CredentialRevokedError(id, REVOKED_WRITE_MESSAGE);
        const target = await this.versions.find(ctx.tenantId, id, toVersion);
        if (!target) throw new CredentialVersionNotFoundError(id, toVersion);
        if (target.revokedAt) throw new CredentialRevokedError(id, `Version ${toVersion} of the credential was revoked; its value is not served again`);
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
  async updateMetadata(ctx: OperationContext, id: string, input: UpdateMetadataInput, lift: { revoke?: boolean; conflictRetried?: boolean } = {}): Promise<CredentialMetadata> {
    return this.committer.audited(AuditAction.UPDATE_METADATA, ctx, id, async (started) => {
      assertWriteOptions(input);
      if (input.tags !== undefined) assertTags(input.tags);
      if (input.expiresAt != null) assertDate(input.expiresAt, 'expiresAt');
      const status = input.status === undefined ? undefined : memberOf(SETTABLE_STATUSES, input.status, 'status', `status must be one of ${SETTABLE_STATUSES.join(', ')} (use delete() to delete)`);
      const given = (['tags', 'expiresAt', 'status'] as const satisfies readonly MetadataField[]).filter((k) => input[k] !== undefined);
      if (given.length === 0) throw new CredentialValidationError('nothing to update: give tags, expiresAt or status', 'input');
      const revokeOnly = given.length === 1 && status === CredentialStatus.REVOKED;
      const { next } = await this.committer.mutate(ctx, id, input, started, async (row) => {
        if (!revokeOnly) assertChangeable(row);
        // Lifting a revoke is `unrevoke` (CredentialRevoker: it re-enables the vault versions a revoke disabled).
        if (row.status === CredentialStatus.REVOKED && status !== undefined && status !== CredentialStatus.REVOKED && !lift.revoke) {
          throw new CredentialRevokedError(id, REVOKED_WRITE_MESSAGE);
        }
        if (input.expiresAt !== undefined && row.type === CredentialType.CLIENT_CERTIFICATE) {
          throw new CredentialValidationError('the expiry of a client certificate is read from the certificate; rotate it instead', 'expiresAt');
        }
        const changed = changedMetadataFields(given, input, status, row);
        // Nothing to change: nothing written, rowVersion kept, no audit row or event (as un-revoking a credential that is not revoked).
        if (changed.length === 0) return null;
        const next: CredentialEntity = {
          ...row,
          tags: input.tags !== undefined ? { ...input.tags } : row.tags,
          expiresAt: input.expiresAt !== undefined ? input.expiresAt : row.expiresAt,
          status: status ?? row.status,
          rowVersion: row.rowVersion + 1,
          updatedAt: this.clock.now(),
          updatedBy: ctx.actor.id,
        };
        // The versions a revoke withdraws are marked in its transaction, and un-marked in the un-revoke's.
        const revoking = row.status !== CredentialStatus.REVOKED && next.status === CredentialStatus.REVOKED;
        const lifting = row.status === CredentialStatus.REVOKED && next.status !== CredentialStatus.REVOKED;
        const versions = revoking || lifting ? await this.versions.list(ctx.tenantId, id) : [];
        const alsoWrite = revoking
          ? async () => {
              await this.versions.markRevoked(ctx.tenantId, id, revokeMark(versions, next.updatedAt));
              // The vault side follows the commit (CredentialRevoker): durable, should this process die first.
              if (row.valueStore === ValueStoreKind.VAULT || versions.some((v) => v.vaultSecretName)) {
                await this.persistence.outbox.add({ name: VAULT_VALUE_REVOKE_EVENT, tenantId: row.tenantId, payload: { credentialId: row.id } });
              }
            }
          : lifting
            ? () => this.versions.liftRevoked(ctx.tenantId, id, lastRevoked(versions))
            : undefined;
        return { next, alsoWrite, audit: { action: AuditAction.UPDATE_METADATA, details: { changed, status: next.status } }, event: { name: CredentialEvents.METADATA_UPDATED } };
      });
      return toMetadata(next, this.clock.nowMs());
    }, lift.conflictRetried);
  }

  /** See `CredentialsService.delete`. */
  async delete(ctx: OperationContext, id: string, options: WriteOptions = {}): Promise<void> {
    return this.committer.audited(AuditAction.DELETE, ctx, id, async (started) => {
      assertWriteOptions(options);
      let eventId: string | undefined;
      const { before } = await this.committer.mutate(ctx, id, options, started, async (row) => {
        const now = this.clock.now();
        return {
          next: { ...row, status: CredentialStatus.DELETED, deletedAt: now, rowVersion: row.rowVersion + 1, updatedAt: now, updatedBy: ctx.actor.id },
          // Envelope ciphertexts go in the same transaction; Key Vault values after it, durably (an outbox event of it).
          alsoWrite: async () => {
            await this.stores.of(row.valueStore).discardInTransaction(ownerOf(row));
            eventId = await this.vaultDeletion.schedule(row);
          },
          audit: { action: AuditAction.DELETE, details: { version: row.currentVersion } },
          event: { name: CredentialEvents.DELETED },
        };
      });
      // Versions disabled, then the secrets soft-deleted; a failure is the outbox's to retry (the delete is committed).
      await this.vaultDeletion.runNow(before, eventId);
    });
  }

  private versionsInGeneration(row: CredentialEntity): Promise<number> {
    return this.versions.countWrittenTo(row.id, credentialSecretName(ownerOf(row), row.vaultGeneration, this.options.vault.namePrefix));
  }

  private validateValue(type: CredentialType, value: unknown): ValidatedValue {
    return validateValueOfType(type, value, this.clock.now(), this.options.minWebhookSecretBytes);
  }
}
