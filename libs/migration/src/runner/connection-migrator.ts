import { createHash, timingSafeEqual } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { isVaultRefusal, TransactionRunner, type CredentialVaultError, type Clock, type OperationContext } from '@app/common';
import { AuditAction, AuditResult, AuditService, type AuditEventInput } from '@app/audit';
import { CredentialAlreadyExistsError, CredentialType, CredentialsService, type CredentialMetadata, IDENTIFIER_PATTERN, isReservedConnectionId, NEW_IDENTIFIER_PATTERN, RESERVED_CONNECTION_MESSAGE, type StoreCredentialInput, type StoreManyItem } from '@app/credentials';
import { MigrationCheckpointRepository } from '../checkpoint/migration-checkpoint.repository';
import { LegacyFormatError, MigrationConflictError, MigrationVerificationError } from '../errors/migration.errors';
import { decryptLegacyField } from '../legacy/legacy-cipher';
import { MIGRATION_ACTOR, MIGRATION_CLOCK, MIGRATION_RESOLVED_OPTIONS } from '../migration.constants';
import type { ResolvedMigrationOptions } from '../migration.options';
import type { LegacyConnectionRow, LegacyCredentialSource } from '../sources/legacy-source';
import type { ConnectionOutcome, DecryptedField, MigrationErrorEntry } from './migration.types';
import { withVaultBudget, type VaultBudget } from './vault-budget';

/** Tags every imported credential carries (ids and dates only): they make a crashed write recognisable. */
export const MIGRATION_TAGS = { source: 'migration.source', legacyId: 'migration.legacy-id' } as const;

/** A connection whose credentials are stored: each field with its credential id. */
export interface StoredConnection {
  row: LegacyConnectionRow;
  pairs: { field: DecryptedField; id: string; resumed?: boolean }[];
}

/** The run a call belongs to: its id (the correlation id of its audit rows) and its signal (`MigrationRunOptions.signal`). */
export interface MigrationCall {
  runId: string;
  signal?: AbortSignal;
}

/** A connection of a group: its legacy row and its decrypted, validated fields. */
export interface GroupConnection {
  row: LegacyConnectionRow;
  fields: DecryptedField[];
}

export interface GroupResult {
  outcome: ConnectionOutcome;
  /** Set when the connection migrated: what `deleteAfterMigration` verifies and clears. */
  stored?: StoredConnection;
  /**
   * A value write the vault refused for a reason every other write shares (a permission, the identity), which stops the
   * run. (A vault in an outage is waited out by `withVaultBudget`; one that outlasts `maxVaultOutageMs` stops it too.)
   */
  vaultRefusal?: CredentialVaultError;
}

/** One field of a group: its credential id (stored now, or `resumed` from an earlier run), or its problem. */
interface FieldResult {
  field: DecryptedField;
  id?: string;
  resumed?: boolean;
  duplicateOf?: string;
  error?: MigrationErrorEntry;
  /** A dry run's field that would be stored. */
  wouldStore?: boolean;
}

/** A field a dry run would have stored, by (tenant, integration, connection, type): its legacy row and value digest. */
export interface WouldStore {
  legacyId: string;
  digest: Buffer;
}

/**
 * Migrates legacy connections, a group at a time (`MigrationRunner`): all fields are decrypted and
 * validated before the first write, so a connection with any bad field writes nothing. Resume
 * protocol (see the README):
 * 1. the group's fields are stored with one `storeMany` (vault writes first, under the AIMD limit,
 *    then one transaction); `CredentialAlreadyExistsError` means a duplicate legacy row, a credential
 *    that existed before, or a connection an earlier run stored only partly: its value is compared
 *    (`verifyValue`) — equal and tagged with this legacy row = ours (counted as migrated); equal from
 *    another row = DUPLICATE; different = CONFLICT (reported, nothing changed);
 * 2. in that same transaction: a MIGRATE audit row per credential and the checkpoints — so the
 *    credentials and their checkpoint commit together, or not at all;
 * 3. deleteAfterMigration (after the commit, `clearVerified`): every value is compared again, the
 *    legacy fields cleared, and the checkpoint marked `cleared`.
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
      // Integration and connection ids are new ids to the store, which refuses one made only of dots: a dry run reports it too.
      const pattern = key === 'tenantId' ? IDENTIFIER_PATTERN : NEW_IDENTIFIER_PATTERN;
      if (!pattern.test(row[key])) fail(null, { codeName: 'INVALID_IDENTIFIER', message: `${key} is missing or not an identifier (${pattern.source})` });
    }
    // The store would refuse each field alike: the connection fails as a whole, once, its fields not decrypted.
    if (isReservedConnectionId(row.connectionId)) {
      fail(null, { codeName: 'RESERVED_CONNECTION_ID', message: RESERVED_CONNECTION_MESSAGE });
      return { fields: [], errors };
    }
    const badDates = (['createdAt', 'expiresAt'] as const).filter((key) => row[key] && Number.isNaN(row[key].getTime()));
    for (const key of badDates) fail(null, new LegacyFormatError(`${key} is not a date (ISO 8601 text or epoch milliseconds)`));
    // The connection fails as a whole: its fields are not even decrypted (nothing to report twice).
    if (badDates.length) return { fields: [], errors };
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
   * Migrates a group of connections (never two of one connection) with ONE `storeMany`: every field's
   * vault write runs concurrently under the AIMD limit, then one transaction holds the credentials'
   * rows and — through `inCommit` — the MIGRATE audit rows (one `recordMany`) and checkpoints of the
   * connections that migrated. Per-field problems come back in the outcomes; a failure of the
   * transaction is thrown (nothing of the group committed).
   */
  async migrateGroup(conns: GroupConnection[], source: LegacyCredentialSource, budget: VaultBudget, call: MigrationCall): Promise<GroupResult[]> {
    const fields = conns.flatMap((c, ci) => c.fields.map((field) => ({ ci, field, ctx: migrationContext(c.row.tenantId, call) })));
    const items: StoreManyItem[] = fields.map(({ ci, field, ctx }) => ({ ctx, input: this.storeInput(conns[ci].row, source, field) }));
    let out: GroupResult[] | undefined;
    // Fields the store refused (a re-run, a duplicate legacy row: ALREADY_EXISTS), settled before any value is written.
    const refused = new Map<number, FieldResult>();
    // Connections with a field that failed there (a CONFLICT): none of their fields is written or committed.
    const withheld = new Set<number>();
    await this.credentials.storeMany(items, {
      valueWrite: (write, signal) => withVaultBudget(budget, this.options, write, { signal, operation: 'setSecret' }),
      // A connection whose value write failed commits none of its fields (no credential without its MIGRATE row).
      together: (k) => String(fields[k].ci),
      // A connection with a field in conflict stores none either: a new field committed beside it would have no
      // MIGRATE row nor checkpoint (the connection failed); a re-run once the operator resolved it stores them all.
      withhold: async (failures) => {
        await Promise.all(
          failures.map(async ({ index: k, error }) => {
            const { ci, field, ctx } = fields[k];
            try {
              refused.set(k, { field, ...(await this.settleExisting(ctx, conns[ci].row, source, field, error, budget)) });
            } catch (e) {
              refused.set(k, { field, error: entry(conns[ci].row, field.column, e) });
            }
          }),
        );
        const reasons = new Map<string, unknown>();
        for (const [k, r] of refused) {
          if (!r.error || r.error.code === 'DUPLICATE') continue;
          withheld.add(fields[k].ci);
          reasons.set(String(fields[k].ci), r.error);
        }
        return reasons;
      },
      inCommit: async (results) => {
        const settled = results.map((r, k): FieldResult => {
          const { ci, field } = fields[k];
          const early = refused.get(k);
          if (early) return early;
          if (r.credential) return { field, id: r.credential.id, resumed: false };
          // Withheld for another field's failure: neither stored nor at fault.
          if (withheld.has(ci)) return { field };
          return { field, error: entry(conns[ci].row, field.column, r.error) };
        });
        out = conns.map((c, ci) => ({
          ...this.outcomeOf(c.row, settled.filter((_, k) => fields[k].ci === ci)),
          vaultRefusal: results.map((r) => r.error).find((e, k): e is CredentialVaultError => fields[k].ci === ci && isVaultRefusal(e)),
        }));
        const migrated = out.filter((o) => o.stored);
        const now = this.clock.now();
        await this.checkpoints.saveMany(
          migrated.map(({ stored }) => ({
            source: source.name, legacyId: stored!.row.legacyId, tenantId: stored!.row.tenantId, integrationId: stored!.row.integrationId,
            connectionId: stored!.row.connectionId, status: 'migrated' as const, credentials: stored!.pairs.length, migratedAt: now,
          })),
        );
        // The MIGRATE rows: appended with the batch's STORE rows, in this transaction.
        return migrated.flatMap(({ stored }) =>
          stored!.pairs.map((p): AuditEventInput => ({
            action: AuditAction.MIGRATE,
            context: migrationContext(stored!.row.tenantId, call),
            resource: p.id,
            result: AuditResult.SUCCESS,
            details: { type: p.field.type, legacySource: source.name, legacyId: stored!.row.legacyId, keyIndex: p.field.keyIndex, resumed: p.resumed },
          })),
        );
      },
    });
    return out!;
  }

  /** One connection's outcome from its fields' results (in field order). */
  private outcomeOf(row: LegacyConnectionRow, results: FieldResult[]): GroupResult {
    const errors = results.flatMap((r) => (r.error ? [r.error] : []));
    const done = results.filter((r) => !r.error && (r.id !== undefined || r.wouldStore) && r.duplicateOf === undefined);
    const keyIndex = results.length ? Math.max(...results.map((r) => r.field.keyIndex)) : null;
    const failed = errors.some((e) => e.code !== 'DUPLICATE');
    if (failed) return { outcome: { status: 'failed', credentials: done.length, keyIndex, errors } };
    if (!done.length) return { outcome: { status: 'skipped', credentials: 0, keyIndex, errors } };
    return {
      outcome: { status: 'migrated', credentials: done.length, keyIndex, errors },
      // A dry run's fields have no id: nothing was stored, so nothing is verified or cleared after it.
      stored: done.every((d) => d.id !== undefined) ? { row, pairs: done.map((d) => ({ field: d.field, id: d.id!, resumed: d.resumed ?? false })) } : undefined,
    };
  }

  /** deleteAfterMigration, once the connection's checkpoint has committed: verify every value, then clear. */
  async clearVerified(stored: StoredConnection, source: LegacyCredentialSource, budget: VaultBudget, call: MigrationCall): Promise<MigrationErrorEntry[]> {
    try {
      await this.verifyAndClear(migrationContext(stored.row.tenantId, call), stored.row, source, stored.pairs, budget);
      return [];
    } catch (e) {
      return [entry(stored.row, null, e)];
    }
  }

  /** A connection checkpointed `migrated` by an earlier run without deleteAfterMigration: verify and clear now. */
  async clearMigrated(row: LegacyConnectionRow, source: LegacyCredentialSource, budget: VaultBudget, fields: DecryptedField[], call: MigrationCall): Promise<MigrationErrorEntry[]> {
    const ctx = migrationContext(row.tenantId, call);
    try {
      const live = await this.liveCredentials(ctx, row);
      const pairs = fields.map((f) => {
        const c = live.find((i) => i.type === f.type && i.tags[MIGRATION_TAGS.legacyId] === row.legacyId);
        if (!c) throw new MigrationVerificationError('(none)');
        return { field: f, id: c.id };
      });
      await this.verifyAndClear(ctx, row, source, pairs, budget);
      return [];
    } catch (e) {
      return [entry(row, null, e)];
    }
  }

  /**
   * Every live credential of the row's connection, page by page at the host's `defaultPageSize` (always within its
   * `maxPageSize`, which may be below the number of fields a connection holds).
   */
  private async liveCredentials(ctx: OperationContext, row: LegacyConnectionRow): Promise<CredentialMetadata[]> {
    const items: CredentialMetadata[] = [];
    let cursor: string | undefined;
    do {
      const page = await this.credentials.list(ctx, { integrationId: row.integrationId, connectionId: row.connectionId, cursor });
      items.push(...page.items);
      cursor = page.nextCursor;
    } while (cursor !== undefined);
    return items;
  }

  private async verifyAndClear(ctx: OperationContext, row: LegacyConnectionRow, source: LegacyCredentialSource, pairs: { field: DecryptedField; id: string }[], budget: VaultBudget): Promise<void> {
    for (const p of pairs) {
      const check = await withVaultBudget(budget, this.options, () => this.credentials.verifyValue(ctx, p.id, p.field.value), { signal: ctx.signal, operation: 'getSecret' });
      if (!check.matches) throw new MigrationVerificationError(p.id);
    }
    await source.clearFields(row, pairs.map((p) => p.field.type));
    await this.runner.run(async () => {
      const existing = (await this.checkpoints.find(source.name, [row.legacyId])).get(row.legacyId);
      if (existing) await this.checkpoints.save({ ...existing, status: 'cleared' });
    });
  }

  private storeInput(row: LegacyConnectionRow, source: LegacyCredentialSource, field: DecryptedField): StoreCredentialInput {
    return {
      integrationId: row.integrationId, connectionId: row.connectionId, type: field.type, value: field.value,
      expiresAt: this.expiryOf(row, field.type), createdAt: row.createdAt ?? undefined, valueStore: this.options.valueStore,
      tags: { [MIGRATION_TAGS.source]: source.name.slice(0, 512), [MIGRATION_TAGS.legacyId]: row.legacyId.slice(0, 512) },
    };
  }

  /**
   * A field whose store failed with ALREADY_EXISTS: its value is compared (not read out, not audited:
   * the MIGRATE row covers it) — equal and tagged with this legacy row = ours, resumed; equal from
   * another row = a duplicate; different = CONFLICT. Any other error is the field's failure.
   */
  private async settleExisting(ctx: OperationContext, row: LegacyConnectionRow, source: LegacyCredentialSource, field: DecryptedField, error: unknown, budget: VaultBudget): Promise<Omit<FieldResult, 'field'>> {
    if (!(error instanceof CredentialAlreadyExistsError)) throw error;
    const existingId = error.existingId;
    // Before the group's transaction (storeMany's `withhold`), so under the AIMD limit: no transaction waits on it.
    return this.compareLive(ctx, row, source, field, existingId, budget, false);
  }

  /**
   * The field compared with the live credential `existingId` (`settled`), a vault read under the AIMD limit.
   * `readOnly` (a dry run): the read writes nothing either (no lazy re-wrap or re-encryption of an envelope value).
   */
  private async compareLive(ctx: OperationContext, row: LegacyConnectionRow, source: LegacyCredentialSource, field: DecryptedField, existingId: string, budget: VaultBudget, readOnly: boolean): Promise<Omit<FieldResult, 'field'>> {
    const check = await withVaultBudget(budget, this.options, () => this.credentials.verifyValue(ctx, existingId, field.value, { readOnly }), { signal: ctx.signal, operation: 'getSecret' });
    return settled(row, source, field, existingId, check);
  }

  /**
   * A dry run's look at a group: what `migrateGroup` would report, reading only. Per field, the live credential of
   * its (connection, type) is compared as `settleExisting` does (a vault read under the limit: no transaction is
   * open), read-only (an envelope value's data key is not re-wrapped, nor the value re-encrypted); without one, `wouldStore` — the fields this run would have stored so far, by slot, as digests — stands
   * for what an earlier legacy row of the same connection would have stored: an equal value is a DUPLICATE of that
   * row, another a CONFLICT. Otherwise the field would be stored, and is noted there.
   */
  async checkGroup(conns: GroupConnection[], source: LegacyCredentialSource, budget: VaultBudget, call: MigrationCall, wouldStore: Map<string, WouldStore>): Promise<GroupResult[]> {
    return Promise.all(
      conns.map(async ({ row, fields }) => {
        const ctx = migrationContext(row.tenantId, call);
        let live: CredentialMetadata[];
        try {
          live = await this.liveCredentials(ctx, row);
        } catch (e) {
          return { outcome: { status: 'failed' as const, credentials: 0, keyIndex: null, errors: [entry(row, null, e)] } };
        }
        const results: FieldResult[] = [];
        // Noted only if the connection would migrate: the run stores no field of a connection that fails.
        const noted: [string, WouldStore][] = [];
        for (const field of fields) {
          try {
            const existing = live.find((c) => c.type === field.type);
            if (existing) {
              results.push({ field, ...(await this.compareLive(ctx, row, source, field, existing.id, budget, true)) });
              continue;
            }
            const slot = JSON.stringify([row.tenantId, row.integrationId, row.connectionId, field.type]);
            const digest = createHash('sha256').update(field.value, 'utf8').digest();
            const earlier = wouldStore.get(slot);
            if (!earlier) {
              noted.push([slot, { legacyId: row.legacyId, digest }]);
              results.push({ field, wouldStore: true });
            } else if (!timingSafeEqual(earlier.digest, digest)) {
              throw new MigrationConflictError(null);
            } else {
              results.push({ field, error: duplicateEntry(row, field, earlier.legacyId), duplicateOf: earlier.legacyId });
            }
          } catch (e) {
            results.push({ field, error: entry(row, field.column, e) });
          }
        }
        const result = this.outcomeOf(row, results);
        if (result.outcome.status !== 'failed') for (const [slot, would] of noted) wouldStore.set(slot, would);
        return result;
      }),
    );
  }

  /** The legacy expiry belongs to the access token when the row has one, else to every field. */
  private expiryOf(row: LegacyConnectionRow, type: CredentialType): Date | null {
    if (!row.expiresAt) return null;
    const hasAccess = !!row.fields[CredentialType.OAUTH_ACCESS_TOKEN]?.trim();
    return !hasAccess || type === CredentialType.OAUTH_ACCESS_TOKEN ? row.expiresAt : null;
  }
}

/**
 * The context of the run's credentials calls. Its signal (the run's) drops their vault calls not sent yet and aborts
 * reads in flight (CANCELLED); a value write already sent finishes and commits with its group (`storeMany`), so the
 * checkpoints stay exact.
 */
function migrationContext(tenantId: string, { runId, signal }: MigrationCall): OperationContext {
  return { tenantId, actor: { id: MIGRATION_ACTOR }, correlationId: runId, signal };
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

/**
 * An existing live credential of the field's slot, compared: equal and tagged with this source and legacy row = ours
 * (resumed); equal from another row = DUPLICATE; different = CONFLICT.
 */
function settled(row: LegacyConnectionRow, source: LegacyCredentialSource, field: DecryptedField, existingId: string, check: { matches: boolean; metadata: CredentialMetadata }): Omit<FieldResult, 'field'> {
  if (!check.matches) throw new MigrationConflictError(existingId);
  const owner = check.metadata.tags[MIGRATION_TAGS.legacyId];
  const sameSource = check.metadata.tags[MIGRATION_TAGS.source] === source.name.slice(0, 512);
  if (sameSource && owner === row.legacyId.slice(0, 512)) return { id: existingId, resumed: true };
  const duplicateOf = owner ?? '(not a migration)';
  return { error: duplicateEntry(row, field, duplicateOf), duplicateOf };
}

function duplicateEntry(row: LegacyConnectionRow, field: DecryptedField, duplicateOf: string): MigrationErrorEntry {
  return entry(row, field.column, { codeName: 'DUPLICATE', message: `the connection was already migrated from legacy row ${duplicateOf} with the same value` });
}
