import { Inject, Injectable } from '@nestjs/common';
import { TransactionRunner, type Clock, type OperationContext } from '@app/common';
import { AuditAction, AuditResult, AuditService } from '@app/audit';
import { CredentialAlreadyExistsError, CredentialType, CredentialsService, IDENTIFIER_PATTERN, type CredentialMetadata } from '@app/credentials';
import { isKeyVaultError, KeyVaultErrorCode } from '@app/key-vault';
import { MigrationCheckpointRepository } from '../checkpoint/migration-checkpoint.repository';
import { MigrationConflictError, MigrationVerificationError } from '../errors/migration.errors';
import { decryptLegacyField } from '../legacy/legacy-cipher';
import { MIGRATION_ACTOR, MIGRATION_CLOCK, MIGRATION_RESOLVED_OPTIONS } from '../migration.constants';
import type { ResolvedMigrationOptions } from '../migration.options';
import type { LegacyConnectionRow, LegacyCredentialSource } from '../sources/legacy-source';
import { AimdLimiter } from './aimd-limiter';
import type { ConnectionOutcome, DecryptedField, MigrationErrorEntry } from './migration.types';

/** Tags every imported credential carries (ids and dates only): they make a crashed write recognisable. */
export const MIGRATION_TAGS = { source: 'migration.source', legacyId: 'migration.legacy-id' } as const;

/** A vault call slower than this was throttled and retried by the vault client (Retry-After is >= 1 s). */
const THROTTLED_CALL_MS = 1000;

/** A connection whose credentials are stored: each field with its credential id. */
export interface StoredConnection {
  row: LegacyConnectionRow;
  pairs: { field: DecryptedField; id: string }[];
}

/**
 * Migrates one legacy connection, inside the ambient transaction of its group (`MigrationRunner`):
 * all fields are decrypted and validated before the first write, so a connection with any bad field
 * writes nothing. Resume protocol (see the README):
 * 1. each field is stored (value-store write first, then the credentials lib's rows, which join the
 *    group's transaction); `CredentialAlreadyExistsError` means a duplicate legacy row, a credential
 *    that existed before, or a connection an earlier run stored only partly: its value is read back
 *    and compared — equal and tagged with this legacy row = ours (counted as migrated); equal from
 *    another row = DUPLICATE; different = CONFLICT (reported, nothing changed);
 * 2. in the same transaction: a MIGRATE audit row per credential and the checkpoint — so the
 *    credentials and their checkpoint commit together, or not at all;
 * 3. deleteAfterMigration (after the commit, `clearVerified`): every value is read back and
 *    compared, the legacy fields cleared, and the checkpoint marked `cleared`.
 */
@Injectable()
export class ConnectionMigrator {
  constructor(
    private readonly credentials: CredentialsService,
    readonly audit: AuditService,
    readonly checkpoints: MigrationCheckpointRepository,
    private readonly runner: TransactionRunner,
    @Inject(MIGRATION_RESOLVED_OPTIONS) private readonly options: ResolvedMigrationOptions,
    @Inject(MIGRATION_CLOCK) private readonly clock: Clock,
  ) {}

  /** Decrypts and validates every non-empty field; problems come back as report entries. */
  decrypt(row: LegacyConnectionRow, columns: Partial<Record<CredentialType, string>>): { fields: DecryptedField[]; errors: MigrationErrorEntry[] } {
    const errors: MigrationErrorEntry[] = [];
    const fail = (field: string | null, e: unknown) => errors.push(entry(row, field, e));
    for (const key of ['tenantId', 'integrationId', 'connectionId'] as const) {
      if (!IDENTIFIER_PATTERN.test(row[key])) fail(null, { codeName: 'INVALID_IDENTIFIER', message: `${key} is missing or not an identifier (${IDENTIFIER_PATTERN.source})` });
    }
    const fields: DecryptedField[] = [];
    for (const [type, encrypted] of Object.entries(row.fields) as [CredentialType, string | null][]) {
      const column = columns[type] ?? type;
      if (encrypted == null || encrypted.trim() === '') continue;
      try {
        const d = decryptLegacyField(encrypted, this.options.keys);
        this.credentials.validate({ type, value: d.value, expiresAt: this.expiryOf(row, type) });
        fields.push({ type, column, value: d.value, keyIndex: d.keyIndex });
      } catch (e) {
        fail(column, e);
      }
    }
    if (!fields.length && !errors.length) fail(null, { codeName: 'NO_FIELDS', message: 'every mapped credential field is missing or empty' });
    return { fields, errors };
  }

  /**
   * Stores the connection's fields, then (unless it failed or was all duplicates) its MIGRATE audit
   * rows and checkpoint — all in the caller's transaction. Per-field problems come back in the
   * outcome; a failure of the audit row or checkpoint is thrown (the group must not commit).
   */
  async migrate(row: LegacyConnectionRow, source: LegacyCredentialSource, limiter: AimdLimiter, fields: DecryptedField[], runId: string): Promise<{ outcome: ConnectionOutcome; stored?: StoredConnection }> {
    const ctx = migrationContext(row.tenantId, runId);
    const errors: MigrationErrorEntry[] = [];
    const done: { field: DecryptedField; credential: CredentialMetadata; resumed: boolean }[] = [];
    let duplicates = 0;
    for (const field of fields) {
      try {
        const r = await this.storeOne(ctx, row, source, field, limiter);
        if (r.duplicateOf !== undefined) {
          duplicates++;
          errors.push(entry(row, field.column, { codeName: 'DUPLICATE', message: `the connection was already migrated from legacy row ${r.duplicateOf} with the same value` }));
        } else done.push({ field, credential: r.credential, resumed: r.resumed });
      } catch (e) {
        errors.push(entry(row, field.column, e));
      }
    }
    const keyIndex = fields.length ? Math.max(...fields.map((f) => f.keyIndex)) : null;
    const failed = errors.some((e) => e.code !== 'DUPLICATE');
    if (failed) return { outcome: { status: 'failed', credentials: done.length, keyIndex, errors } };
    if (duplicates === fields.length) return { outcome: { status: 'skipped', credentials: 0, keyIndex, errors } };

    await this.runner.run(async () => {
      for (const d of done) {
        await this.audit.record({
          action: AuditAction.MIGRATE,
          context: ctx,
          resource: d.credential.id,
          result: AuditResult.SUCCESS,
          details: { type: d.field.type, legacySource: source.name, legacyId: row.legacyId, keyIndex: d.field.keyIndex, resumed: d.resumed },
        });
      }
      await this.checkpoints.save({
        source: source.name, legacyId: row.legacyId, tenantId: row.tenantId, integrationId: row.integrationId,
        connectionId: row.connectionId, status: 'migrated', credentials: done.length, migratedAt: this.clock.now(),
      });
    });
    return {
      outcome: { status: 'migrated', credentials: done.length, keyIndex, errors },
      stored: { row, pairs: done.map((d) => ({ field: d.field, id: d.credential.id })) },
    };
  }

  /** deleteAfterMigration, once the connection's checkpoint has committed: verify every value, then clear. */
  async clearVerified(stored: StoredConnection, source: LegacyCredentialSource, limiter: AimdLimiter, runId: string): Promise<MigrationErrorEntry[]> {
    try {
      await this.verifyAndClear(migrationContext(stored.row.tenantId, runId), stored.row, source, stored.pairs, limiter);
      return [];
    } catch (e) {
      return [entry(stored.row, null, e)];
    }
  }

  /** A connection checkpointed `migrated` by an earlier run without deleteAfterMigration: verify and clear now. */
  async clearMigrated(row: LegacyConnectionRow, source: LegacyCredentialSource, limiter: AimdLimiter, fields: DecryptedField[], runId: string): Promise<MigrationErrorEntry[]> {
    const ctx = migrationContext(row.tenantId, runId);
    try {
      const page = await this.credentials.list(ctx, { integrationId: row.integrationId, connectionId: row.connectionId, limit: 50 });
      const pairs = fields.map((f) => {
        const c = page.items.find((i) => i.type === f.type && i.tags[MIGRATION_TAGS.legacyId] === row.legacyId);
        if (!c) throw new MigrationVerificationError('(none)');
        return { field: f, id: c.id };
      });
      await this.verifyAndClear(ctx, row, source, pairs, limiter);
      return [];
    } catch (e) {
      return [entry(row, null, e)];
    }
  }

  private async verifyAndClear(ctx: OperationContext, row: LegacyConnectionRow, source: LegacyCredentialSource, pairs: { field: DecryptedField; id: string }[], limiter: AimdLimiter): Promise<void> {
    for (const p of pairs) {
      const read = await this.withBudget(limiter, () => this.credentials.get(ctx, p.id, { allowExpired: true }));
      if (read.value !== p.field.value) throw new MigrationVerificationError(p.id);
    }
    await source.clearFields(row, pairs.map((p) => p.field.type));
    await this.runner.run(async () => {
      const existing = (await this.checkpoints.find(source.name, [row.legacyId])).get(row.legacyId);
      if (existing) await this.checkpoints.save({ ...existing, status: 'cleared' });
    });
  }

  private async storeOne(ctx: OperationContext, row: LegacyConnectionRow, source: LegacyCredentialSource, field: DecryptedField, limiter: AimdLimiter): Promise<{ credential: CredentialMetadata; resumed: boolean; duplicateOf?: string }> {
    const tags: Record<string, string> = { [MIGRATION_TAGS.source]: source.name.slice(0, 512), [MIGRATION_TAGS.legacyId]: row.legacyId.slice(0, 512) };
    try {
      const credential = await this.withBudget(limiter, () =>
        this.credentials.store(ctx, {
          integrationId: row.integrationId, connectionId: row.connectionId, type: field.type, value: field.value,
          expiresAt: this.expiryOf(row, field.type), createdAt: row.createdAt ?? undefined, tags, valueStore: this.options.valueStore,
        }),
      );
      return { credential, resumed: false };
    } catch (e) {
      if (!(e instanceof CredentialAlreadyExistsError)) throw e;
      const existingId = e.existingId;
      const read = await this.withBudget(limiter, () => this.credentials.get(ctx, existingId, { allowExpired: true }));
      if (read.value !== field.value) throw new MigrationConflictError(existingId);
      const owner = read.metadata.tags[MIGRATION_TAGS.legacyId];
      const sameSource = read.metadata.tags[MIGRATION_TAGS.source] === tags[MIGRATION_TAGS.source];
      if (sameSource && owner === row.legacyId) return { credential: read.metadata, resumed: true };
      return { credential: read.metadata, resumed: false, duplicateOf: owner ?? '(not a migration)' };
    }
  }

  /**
   * Runs one vault-touching call under the AIMD limit. The vault client retries a 429 itself after
   * its Retry-After (so the credentials lib never sees, nor audits, a throttled attempt); a call that
   * took that long counts as throttled for the limiter. A 429 that still comes through (the client's
   * attempts ran out) waits its Retry-After here and is retried, never reported.
   */
  async withBudget<T>(limiter: AimdLimiter, call: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const permit = await limiter.acquire();
      const started = Date.now();
      try {
        const r = await call();
        if (Date.now() - started >= THROTTLED_CALL_MS) limiter.throttled(permit, 0);
        else limiter.success(permit);
        return r;
      } catch (e) {
        if (isKeyVaultError(e, KeyVaultErrorCode.RATE_LIMITED) && attempt < this.options.maxThrottleRetries) {
          limiter.throttled(permit, e.retryAfterMs);
          continue;
        }
        limiter.release();
        throw e;
      }
    }
  }

  /** The legacy expiry belongs to the access token when the row has one, else to every field. */
  private expiryOf(row: LegacyConnectionRow, type: CredentialType): Date | null {
    if (!row.expiresAt) return null;
    const hasAccess = !!row.fields[CredentialType.OAUTH_ACCESS_TOKEN]?.trim();
    return !hasAccess || type === CredentialType.OAUTH_ACCESS_TOKEN ? row.expiresAt : null;
  }
}

function migrationContext(tenantId: string, runId: string): OperationContext {
  return { tenantId, actor: { id: MIGRATION_ACTOR }, correlationId: runId };
}

/** A report entry: the error's code name and message (typed errors never quote a value). */
export function entry(row: LegacyConnectionRow, field: string | null, e: unknown): MigrationErrorEntry {
  const err = (e ?? {}) as { codeName?: string; code?: unknown; name?: string; message?: string };
  const typed = typeof err.codeName === 'string';
  return {
    legacyId: row.legacyId,
    tenantId: row.tenantId,
    integrationId: row.integrationId,
    connectionId: row.connectionId,
    field,
    code: typed ? err.codeName! : (err.name ?? 'Error'),
    // Untyped errors (drivers, the SDK) may quote data: their name only.
    reason: typed ? String(err.message ?? '') : `unexpected ${err.name ?? 'error'}`,
  };
}
