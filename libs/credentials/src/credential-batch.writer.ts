import { Inject, Injectable, Logger } from '@nestjs/common';
import { AuditAction, auditErrorCode, AuditEventInput, AuditService } from '@app/audit';
import { Clock, CommitNotDurableError, describeError, forEachLimited, OperationContext, TransactionRunner } from '@app/common';
import { callerLeftError } from '@app/key-vault';
import { ValueStoreKind } from './credential-type';
import type { CredentialMetadata, StoreCredentialInput } from './credential.types';
import { CredentialChangeCommitter } from './credential-change.committer';
import { CredentialWriter } from './credential.writer';
import { CREDENTIALS_CLOCK } from './credentials.constants';
import type { CredentialEntity } from './entities/credential.entity';
import { CredentialValidationError } from './errors/credential-errors';
import { CredentialEventPublisher } from './events/credential-event-publisher';
import { CredentialEvents } from './events/credential-events';
import { toMetadata } from './internal/credential-view';
import { assertContext, failureResult } from './internal/guards';
import { firstVersionRow, newRow, storeFailureDetails, storeResource, type StorePlan } from './internal/store-rows';
import { CredentialRepository, emptySlot, slotKey } from './persistence/credential.repository';
import { CredentialVersionRepository } from './persistence/credential-version.repository';
import { CredentialsPersistence } from './persistence/credentials-persistence';
import type { ValuePointer } from './stores/credential-value-store';
import { ValueStores } from './stores/value-stores';
import { assertValueCommitInTime, valueWriteStart } from './internal/value-commit-deadline';

/** Most credentials `storeMany` takes in one call. */
export const MAX_STORE_MANY = 1000;

/**
 * Envelope values a batch writes at once. Each is a database transaction of its own: all of a batch's at once queued
 * at SQLite's transaction gate (or the pool), and under load the last ones waited past its limit and were refused
 * (LockTimeoutError). The rest wait in this batch's own queue, which has no limit. Vault values are the caller's to
 * bound (`valueWrite`), as before.
 */
const ENVELOPE_WRITES_AT_ONCE = 8;

/** One credential of `storeMany`: the context it is stored in (its tenant, actor) and what `store` takes. */
export interface StoreManyItem {
  ctx: OperationContext;
  input: StoreCredentialInput;
}

/** Per item of `storeMany`, in order: the stored credential, or why it was not stored (`store`'s typed errors). */
export type StoreManyResult = { credential: CredentialMetadata; error?: undefined } | { credential?: undefined; error: unknown };

export interface StoreManyOptions {
  /**
   * Runs each value-store write (e.g. under the caller's rate limiter). `signal`: the item's (`ctx.signal`) for a value
   * write — a wrapper that stops waiting when it aborts rejects as a write dropped unsent does (CANCELLED); none for the
   * discard of a value written, which must run. `write` rejects at once, sending nothing, when a `together` mate's
   * write failed while this one waited: that says nothing about the vault (not a throttle, not a failure to count);
   * the item's result is the mate's error whatever the wrapper rethrows. @default the write itself
   */
  valueWrite?: <T>(write: () => Promise<T>, signal?: AbortSignal) => Promise<T>;
  /**
   * Runs inside the batch's transaction, after its rows, with the results so far: the caller's own
   * rows (e.g. checkpoints) then commit with the credentials, or not at all. Audit events it returns
   * are appended after the batch's STORE rows, in the same `recordMany`.
   */
  inCommit?: (results: StoreManyResult[]) => Promise<AuditEventInput[] | void>;
  /**
   * Items with the same key commit together: when the value write of one fails, the others of its key
   * stay out of the transaction with its error: those not sent yet are never written, the written ones
   * are discarded (through `valueWrite`; best effort, else orphans as after a crash) — e.g. the fields
   * of one migrated connection.
   * @default every item on its own
   */
  together?: (index: number) => string;
  /**
   * Runs once the batch is checked and planned, before any value is written and outside any transaction, with the
   * items that cannot be stored (`store`'s typed errors, e.g. `CredentialAlreadyExistsError`) — only when there are
   * any. It returns the `together` keys to withhold, each with its reason: the other items of such a key are neither
   * written nor committed and come back with that reason as their error. They are not audited as failed stores (the
   * caller chose not to store them and reports why). Needs `together`; a rejection fails the batch, nothing written
   * (the refused items are still audited as failed stores). E.g. a migrated connection with one field in conflict stores none of its fields.
   */
  withhold?: (refused: { index: number; error: unknown }[]) => Promise<Map<string, unknown>>;
}

/**
 * `storeMany`: many new credentials with one database transaction. Each item is checked and planned
 * as `CredentialWriter.store` does (its `checkStore`/`planStore`), the values are written first, then
 * every row of the batch commits together.
 */
@Injectable()
export class CredentialBatchWriter {
  private readonly logger = new Logger(CredentialBatchWriter.name);
  private readonly runner: TransactionRunner;

  constructor(
    persistence: CredentialsPersistence,
    private readonly writer: CredentialWriter,
    private readonly committer: CredentialChangeCommitter,
    private readonly rows: CredentialRepository,
    private readonly versions: CredentialVersionRepository,
    private readonly stores: ValueStores,
    private readonly audit: AuditService,
    private readonly events: CredentialEventPublisher,
    @Inject(CREDENTIALS_CLOCK) private readonly clock: Clock,
  ) {
    this.runner = persistence.runner;
  }

  /**
   * See `CredentialsService.storeMany`. Per item what `store` does, but: one read of the existing
   * rows for the whole batch, the value writes concurrently (through `options.valueWrite`), then ONE
   * transaction for every item whose value was written — the metadata and version rows in multi-row
   * inserts, the STORE audit rows in one `recordMany` (one chain-head read per tenant), their outbox
   * events, and `options.inCommit`. If that transaction fails, nothing of the batch is committed, its
   * values are discarded as `store` discards a lost write's (best effort: else orphans, as after a crash), and the error is thrown.
   */
  async storeMany(items: StoreManyItem[], options: StoreManyOptions = {}): Promise<StoreManyResult[]> {
    const started = Date.now();
    if (!Array.isArray(items) || items.length > MAX_STORE_MANY) {
      throw new CredentialValidationError(`items must be an array of at most ${MAX_STORE_MANY} items`, 'items');
    }
    if (options.withhold && !options.together) throw new CredentialValidationError('withhold needs together (the keys it withholds)', 'withhold');
    const results: StoreManyResult[] = items.map(() => ({ error: undefined as unknown }));
    const failures: { i: number; error: unknown }[] = [];
    const checked = items.map(({ ctx, input }, i) => {
      try {
        assertContext(ctx);
        if (input?.history !== undefined) throw new CredentialValidationError('history is taken by store(), not storeMany()', 'history');
        return this.writer.checkStore(input);
      } catch (error) {
        failures.push({ i, error });
        return undefined;
      }
    });
    const keyOf = (i: number) => slotKey({ tenantId: items[i].ctx.tenantId, ...checked[i]!.input });
    const wanted = checked.flatMap((c, i) => (c ? [i] : []));
    const slots = await this.rows.findSlots(wanted.map((i) => ({ tenantId: items[i].ctx.tenantId, ...checked[i]!.input })));
    const seen = new Set<string>();
    const plans = new Map<number, StorePlan>();
    for (const i of wanted) {
      try {
        const key = keyOf(i);
        if (seen.has(key)) throw new CredentialValidationError('the batch holds this (integration, connection, type) twice', 'items');
        seen.add(key);
        plans.set(i, this.writer.planStore(items[i].ctx, checked[i]!, slots.get(key) ?? emptySlot()));
      } catch (error) {
        failures.push({ i, error });
      }
    }
    if (options.withhold && failures.length) {
      try {
        await this.withhold(plans, failures, results, options);
      } catch (e) {
        // The batch fails with nothing written, but the items refused so far were failed stores as ever: audited.
        await this.auditFailures(failures.map((f) => ({ ctx: items[f.i]?.ctx, input: items[f.i]?.input, error: f.error })), started);
        throw e;
      }
    }
    const valueWrite = options.valueWrite ?? ((write) => write());
    let written: { i: number; plan: StorePlan; pointer: ValuePointer; row: CredentialEntity; since: number }[] = [];
    // Best effort (else an orphan, as after a crash): a rejecting `valueWrite` (the caller's limiter) must not fail the batch.
    const discard = (ws: typeof written) =>
      Promise.all(ws.map((w) => valueWrite(() => this.committer.discardWritten({ written: { kind: w.plan.kind, owner: w.plan.valueWrite, pointer: w.pointer } }))
        .catch((e) => this.logger.warn(`could not discard a value storeMany wrote: ${describeError(e)}`))));
    const writeFailed = new Map<string, unknown>();
    /** The failure of a `together` mate's write, when there is one: this item would only be discarded. */
    const mateFailed = (i: number) => {
      const key = options.together?.(i);
      return key !== undefined && writeFailed.has(key) ? new MateFailed(writeFailed.get(key)) : undefined;
    };
    const writeValue = async ([i, plan]: [number, StorePlan]) => {
      // Set when this item's turn came after a mate's failure: the caller's valueWrite may wrap or replace that refusal.
      let skipped: MateFailed | undefined;
      try {
        // An envelope value waits in the batch's queue (ENVELOPE_WRITES_AT_ONCE): one whose caller left meanwhile is
        // dropped unsent, as the caller's limiter drops one (the envelope store does not look at the signal once the tenant's data key is cached).
        if (plan.ctx.signal?.aborted) throw callerLeftError('setSecret', 'not_sent', { cause: plan.ctx.signal.reason });
        // One still waiting (in that queue or the caller's limiter) when a mate's write failed is not written at all.
        const before = mateFailed(i);
        if (before) throw before;
        let since = 0;
        const pointer = await valueWrite(() => {
          skipped = mateFailed(i);
          if (skipped) return Promise.reject(skipped);
          since = valueWriteStart(); // after the caller's limiter let it through: the vault call starts now
          // The item's signal, as `store` passes it: dropped while unsent; once sent it finishes and commits below.
          return this.stores.of(plan.kind).write({ ...plan.valueWrite, signal: plan.ctx.signal });
        }, plan.ctx.signal);
        written.push({ i, plan, pointer, row: newRow(plan, pointer), since });
      } catch (error) {
        const mate = error instanceof MateFailed ? error : skipped;
        if (mate) return void failures.push({ i, error: mate.mateError });
        failures.push({ i, error });
        if (options.together) writeFailed.set(options.together(i), error);
      }
    };
    // Values first, concurrently, outside any transaction — envelope values too: writing one may create
    // the tenant's data key (a row of its own), which must never roll back with the batch once cached.
    const all = [...plans];
    await Promise.all([
      ...all.filter(([, plan]) => plan.kind !== ValueStoreKind.ENVELOPE).map(writeValue),
      forEachLimited(all.filter(([, plan]) => plan.kind === ValueStoreKind.ENVELOPE), ENVELOPE_WRITES_AT_ONCE, writeValue),
    ]);
    if (writeFailed.size) {
      const key = (i: number) => options.together!(i);
      const dropped = written.filter((w) => writeFailed.has(key(w.i)));
      for (const w of dropped) failures.push({ i: w.i, error: writeFailed.get(key(w.i)) });
      written = written.filter((w) => !writeFailed.has(key(w.i)));
      // Never committed, whatever the transaction does: discarded as a failed batch's values are.
      await discard(dropped);
    }
    written.sort((a, b) => a.i - b.i);
    try {
      if (written.length || options.inCommit) {
        await this.runner.run(async () => {
          for (const f of failures) results[f.i] = { error: f.error };
          await this.rows.insertMany(written.map((w) => w.row));
          await this.versions.insertMany(written.map((w) => firstVersionRow(w.row, w.plan, w.pointer)));
          await this.events.changedMany(CredentialEvents.STORED, written.map((w) => ({ ctx: items[w.i].ctx, row: w.row })));
          const nowMs = this.clock.nowMs();
          for (const w of written) results[w.i] = { credential: toMetadata(w.row, nowMs) };
          const callers = (await options.inCommit?.(results)) ?? [];
          // The STORE rows and the caller's: one chain append (one head read and lock) per tenant.
          await this.audit.recordMany([
            ...written.map((w) => this.committer.auditEvent(AuditAction.STORE, items[w.i].ctx, w.row, started, { version: 1, valueStore: w.plan.kind })),
            ...callers,
          ]);
          // The batch's oldest value must still be within the write deadline (see VALUE_COMMIT_DEADLINE_MS).
          const oldest = written.reduce<(typeof written)[number] | undefined>((a, w) => (a === undefined || w.since < a.since ? w : a), undefined);
          if (oldest) assertValueCommitInTime(oldest.since, oldest.row.id);
        });
      }
    } catch (e) {
      failures.push(...written.map((w) => ({ i: w.i, error: e })));
      // Not committed (say an item lost its slot to a concurrent store, whose winner writes to the same vault secret):
      // the batch's values are no one's, so none is left enabled or as ciphertext.
      if (!(e instanceof CommitNotDurableError)) {
        await discard(written);
      }
      throw e;
    } finally {
      await this.auditFailures(failures.map((f) => ({ ctx: items[f.i]?.ctx, input: items[f.i]?.input, error: f.error })), started);
    }
    for (const f of failures) results[f.i] = { error: f.error };
    if (written.length) this.logger.log(`stored ${written.length} credential(s) in one transaction`);
    return results;
  }

  /** `options.withhold`: the planned items of the keys it names leave the batch, with its reason as their result. */
  private async withhold(plans: Map<number, StorePlan>, failures: { i: number; error: unknown }[], results: StoreManyResult[], options: StoreManyOptions): Promise<void> {
    const withheld = await options.withhold!(failures.map((f) => ({ index: f.i, error: f.error })));
    for (const i of [...plans.keys()]) {
      const key = options.together!(i);
      if (!withheld.has(key)) continue;
      plans.delete(i);
      results[i] = { error: withheld.get(key) };
    }
  }

  /** `auditFailure` of each item `storeMany` could not store (best effort, one batch of rows). */
  private async auditFailures(failed: { ctx?: OperationContext; input?: StoreCredentialInput; error: unknown }[], started: number): Promise<void> {
    const events = failed.flatMap(({ ctx, input, error }): AuditEventInput[] =>
      ctx && typeof ctx.tenantId === 'string' && ctx.actor
        ? [{ action: AuditAction.STORE, context: ctx, resource: storeResource(input), result: failureResult(error), errorCode: auditErrorCode(error), durationMs: Date.now() - started, details: storeFailureDetails(input) }]
        : [],
    );
    try {
      await this.audit.recordMany(events);
    } catch (e) {
      this.logger.warn(`could not audit ${events.length} failed store(s): ${describeError(e)}`);
    }
  }
}

/** An item not written because a `together` mate's write failed: its result is the mate's error. */
class MateFailed extends Error {
  constructor(readonly mateError: unknown) {
    super('not written: a write of its group failed');
  }
}
