import { Inject, Injectable, Logger } from '@nestjs/common';
import { AuditAction, type AuditActionName, auditErrorCode, AuditEventInput, AuditResult, AuditService } from '@app/audit';
import { Clock, CommitNotDurableError, CredentialVaultError, describeError, OperationContext, TransactionRunner } from '@app/common';
import { CredentialCache } from './cache/credential-cache';
import { CredentialStatus, ValueStoreKind } from './credential-type';
import type { InCommit, WriteOptions } from './credential.types';
import { CREDENTIALS_CLOCK } from './credentials.constants';
import { CredentialEntity } from './entities/credential.entity';
import { CredentialConflictError, CredentialNotFoundError } from './errors/credential-errors';
import { CredentialChangeEventName, CredentialEventPublisher } from './events/credential-event-publisher';
import { CredentialEvents } from './events/credential-events';
import { cacheKey, detailsOf, toMetadata } from './internal/credential-view';
import { assertContext, failureResult, loadLive, recordableId } from './internal/guards';
import { assertValueCommitInTime, valueWriteStart } from './internal/value-commit-deadline';
import { CredentialRepository } from './persistence/credential.repository';
import { CredentialsPersistence } from './persistence/credentials-persistence';
import { ValueStores } from './stores/value-stores';
import type { ValueOwner, ValuePointer } from './stores/credential-value-store';

/** The errors `audited` wrote a failure row for, so that an enclosing `audited` does not write a second. */
const auditedFailures = new WeakSet<object>();

/** Attempts of a write without `expectedVersion` that loses a race with another writer. */
const UNCONDITIONAL_WRITE_ATTEMPTS = 3;

/** What one write commits: the metadata row after it, the other rows, its audit row and its event. */
export interface Change {
  next: CredentialEntity;
  /** Other writes of the same transaction (the version row, discarded ciphertexts). */
  alsoWrite?: () => Promise<void>;
  /** The value `build` wrote to its store: discarded if the change does not commit. */
  written?: { kind: ValueStoreKind; owner: ValueOwner; pointer: ValuePointer };
  audit: { action: AuditAction; details: Record<string, unknown> };
  event: { name: CredentialChangeEventName; sourceVersion?: number };
  /** The caller's rows (`WriteOptions.inCommit`), after the write's own. */
  inCommit?: InCommit;
}

/**
 * How a write commits, steps (2) and (3) of the crash-safe sequence (see `CredentialWriter`): the compare-and-set
 * loop of a change to an existing credential, the one transaction (metadata rows, audit row, outbox row, cache
 * eviction after commit), the discard of a value no commit references, and the audit rows of a write's success
 * or failure. Shared by `CredentialWriter`, `CredentialBatchWriter` and `CredentialRevoker`.
 */
@Injectable()
export class CredentialChangeCommitter {
  // The context these warnings had before this class was split from the writer (log filters name it).
  private readonly logger = new Logger('CredentialWriter');
  private readonly runner: TransactionRunner;

  constructor(
    persistence: CredentialsPersistence,
    private readonly rows: CredentialRepository,
    private readonly stores: ValueStores,
    private readonly audit: AuditService,
    private readonly events: CredentialEventPublisher,
    private readonly cache: CredentialCache,
    @Inject(CREDENTIALS_CLOCK) private readonly clock: Clock,
  ) {
    this.runner = persistence.runner;
  }

  /**
   * THE compare-and-set loop of every change to an existing credential: load the live row, check
   * `expectedVersion`, `build` the change (value-store writes happen here, before the transaction),
   * commit it if `row_version` did not move meanwhile. A lost race is retried without
   * `expectedVersion` (up to 3 attempts), else it is a CredentialConflictError. A `build` that answers `null` has
   * nothing to change: nothing is written (no audit row, no event, no `inCommit`), and `next` is the row as loaded.
   */
  async mutate(
    ctx: OperationContext,
    id: string,
    options: WriteOptions,
    started: number,
    build: (row: CredentialEntity) => Promise<Change | null>,
  ): Promise<{ before: CredentialEntity; next: CredentialEntity }> {
    for (let attempt = 1; ; attempt++) {
      const row = await loadLive(this.rows, ctx.tenantId, id);
      if (options.expectedVersion !== undefined && options.expectedVersion !== row.rowVersion) {
        throw new CredentialConflictError(row.id, options.expectedVersion, row.rowVersion);
      }
      const since = valueWriteStart();
      const built = await build(row);
      if (built === null) return { before: row, next: row };
      const change: Change = { ...built, inCommit: options.inCommit };
      let committed: boolean;
      try {
        committed = await this.commit(ctx, started, change, () => this.rows.compareAndSet(row, change.next), change.written ? since : undefined);
      } catch (e) {
        // Committed, only not known durable: the value is current now, never discarded.
        if (!(e instanceof CommitNotDurableError)) await this.discardWritten(change);
        throw e;
      }
      if (committed) return { before: row, next: change.next };
      // Lost to another write (a delete, say): the value written for this attempt is no one's.
      await this.discardWritten(change);
      if (options.expectedVersion === undefined && attempt < UNCONDITIONAL_WRITE_ATTEMPTS) continue;
      // Without expectedVersion there is no precondition to name: the error says the write lost to others.
      throw await this.conflict(ctx.tenantId, id, options.expectedVersion);
    }
  }

  /**
   * The one transaction of a write: the metadata row (`writeRow`; false = lost the compare-and-set,
   * nothing written), the other rows, the audit row and the outbox row; after commit the cache entry
   * is invalidated (a load started before that can never repopulate it). `valueSince`: when the write's value write
   * started; the transaction refuses to commit past `VALUE_COMMIT_DEADLINE_MS` after it (checked last, before COMMIT).
   */
  commit(ctx: OperationContext, started: number, change: Change, writeRow: () => Promise<boolean>, valueSince?: number): Promise<boolean> {
    const { next } = change;
    return this.runner.run(async () => {
      if (!(await writeRow())) return false;
      await change.alsoWrite?.();
      await this.audit.record(this.auditEvent(change.audit.action, ctx, next, started, change.audit.details));
      await this.events.changed(change.event.name, ctx, next, change.event.sourceVersion);
      await change.inCommit?.(toMetadata(next, this.clock.nowMs()));
      // A stored credential has a fresh id: nothing can be cached under it, and an eviction would only
      // refuse the fills of the first reads. Every other change is evicted on every replica before the
      // write returns (awaited after commit); if that fails, the outbox event's handler evicts it later.
      if (change.event.name !== CredentialEvents.STORED) {
        this.runner.afterCommit(() => this.cache.evictEverywhere(cacheKey(next.tenantId, next.id)).catch(() => undefined));
      }
      assertValueCommitInTime(valueSince, next.id);
      return true;
    });
  }

  /** Best effort: an undiscarded value is an orphan, as after a crash (never served). Also `CredentialBatchWriter`'s. */
  async discardWritten(change: Pick<Change, 'written'>): Promise<void> {
    if (!change.written) return;
    const { kind, owner, pointer } = change.written;
    try {
      await this.stores.of(kind).discardUnreferenced(owner, pointer);
    } catch (e) {
      this.logger.warn(`credential ${owner.credentialId}: could not discard a value written by a write that did not commit: ${describeError(e)}`);
    }
  }

  /**
   * Runs a change of an existing credential (also `CredentialRevoker`'s revoke and un-revoke); a failure is audited
   * (best effort) and rethrown, a conflict `conflictRetried` is not. A failure a nested change already audited (the
   * revoke's status change) is not audited again: one row per refusal, naming the change that refused it.
   */
  async audited<T>(action: AuditActionName, ctx: OperationContext, id: string, work: (started: number) => Promise<T>, conflictRetried = false): Promise<T> {
    const started = Date.now();
    try {
      assertContext(ctx);
      return await work(started);
    } catch (e) {
      if (!(conflictRetried && e instanceof CredentialConflictError) && !auditedFailures.has(e as object)) {
        await this.auditFailure(action, ctx, recordableId(id), e, started);
        if (typeof e === 'object' && e !== null) auditedFailures.add(e);
      }
      throw e;
    }
  }

  /** The success audit row of a write (also `CredentialBatchWriter`'s). */
  auditEvent(action: AuditAction, ctx: OperationContext, row: CredentialEntity, started: number, details?: Record<string, unknown>): AuditEventInput {
    return { action, context: ctx, resource: row.id, result: AuditResult.SUCCESS, durationMs: Date.now() - started, details: { ...detailsOf(row), ...details } };
  }

  /** The failure audit row of a write (best effort; none without a usable context). Also `store`'s, which is not `audited`. */
  async auditFailure(action: AuditActionName, ctx: OperationContext, resource: string, error: unknown, started: number, details?: Record<string, unknown>): Promise<void> {
    if (!ctx || typeof ctx.tenantId !== 'string' || !ctx.actor) return;
    try {
      await this.audit.record({ action, context: ctx, resource, result: failureResult(error), errorCode: auditErrorCode(error), durationMs: Date.now() - started, details });
    } catch (e) {
      this.logger.warn(`could not audit a failed ${action}: ${describeError(e)}`);
    }
  }

  private async conflict(tenantId: string, id: string, expected: number | undefined): Promise<CredentialVaultError> {
    const current = await this.rows.findById(tenantId, id);
    if (!current || current.status === CredentialStatus.DELETED) return new CredentialNotFoundError(id);
    return new CredentialConflictError(id, expected, current.rowVersion);
  }
}
