import { Inject, Injectable, Logger, Optional } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { Clock, DistributedLock, LOCK_KEYS, LockLostError, createDistributedLock, describeError } from '@app/common';
import { DataSource } from 'typeorm';
import { AuditChainVerifier } from '../audit-chain.verifier';
import { AUDIT_CLOCK } from '../audit.module-definition';
import { AuditRepository, ChainHead } from '../audit.repository';
import { AuditAnchorUnavailableError, AuditConfigurationError } from '../errors/audit.errors';
import type { AnchorRunResult, AuditStats } from '../interfaces/audit-event.interface';
import { ChainWriter } from '../internal/chain-writer';
import { AuditAnchorStore } from './audit-anchor.store';

const MAX_REMEMBERED_ANCHORS = 100_000;
/** How long retention waits for a running anchor pass before it leaves the rows for its next run. */
const RETENTION_ANCHOR_WAIT_MS = 300_000;

/**
 * Anchoring: copies each chain head that moved to the `AuditAnchorStore`. `runOnce()` does it under
 * the distributed lock `LOCK_KEYS.auditAnchor`, so one replica anchors at a time, whoever calls it.
 */
@Injectable()
export class AuditAnchorService {
  private readonly logger = new Logger(AuditAnchorService.name);
  private readonly lock: DistributedLock;
  /** Chain heads this process last wrote to (or found in) the anchor store. */
  private readonly lastAnchors = new Map<string, Pick<ChainHead, 'sequence' | 'hash'>>();
  private readonly counters = { anchorsWritten: 0, anchorFailures: 0 };

  constructor(
    private readonly rows: AuditRepository,
    private readonly verifier: AuditChainVerifier,
    private readonly chains: ChainWriter,
    @InjectDataSource() dataSource: DataSource,
    @Inject(AUDIT_CLOCK) private readonly clock: Clock,
    @Optional() lock?: DistributedLock,
    @Optional() private readonly anchors?: AuditAnchorStore,
  ) {
    this.lock = lock ?? createDistributedLock(dataSource);
  }

  /** Whether an `AuditAnchorStore` was provided (retention then anchors its checkpoints). */
  get enabled(): boolean {
    return this.anchors !== undefined;
  }

  /**
   * Runs retention's `work` under the anchoring lock, taken BEFORE retention's maintenance section (an
   * anchor pass takes the lock, then reads consistently: the same order, so neither waits on the other
   * in a cycle), so no anchor pass overwrites a checkpoint's `prunedThrough` with an older value. `work` gets that
   * lock's `held` signal, to stop before its next chain once the lock is lost.
   */
  exclusive<T>(work: (held: AbortSignal) => Promise<T>): Promise<T> {
    return this.lock.run(LOCK_KEYS.auditAnchor, work, { timeoutMs: RETENTION_ANCHOR_WAIT_MS });
  }

  /**
   * Retention's step (under `exclusive`, inside `withMaintenance`) between writing a checkpoint and
   * deleting the rows it covers: anchors the checkpoint row with `prunedThrough`, so verify accepts those
   * rows' absence and no other's. Throws when the chain no longer matches its anchor: nothing is deleted.
   * With `anchorHeld` (`exclusive`'s signal), it writes nothing once that lock is known lost, and rejects with
   * `LockLostError` when it was lost while the write was under way (logged: see `writeAnchor`).
   */
  async anchorCheckpoint(tenantId: string, checkpoint: Pick<ChainHead, 'sequence' | 'hash'>, prunedThrough: number, anchorHeld?: AbortSignal): Promise<void> {
    const store = this.anchors;
    if (!store) throw new AuditConfigurationError('No AuditAnchorStore is provided: anchoring needs one');
    const previous = await store.read(tenantId);
    const bad = previous ? await this.chains.readDuringMaintenance((m) => this.verifier.checkAnchor(m, previous)) : undefined;
    if (bad) {
      this.verifier.reportBroken(bad, 'anchor');
      throw new AuditAnchorUnavailableError(`The audit chain of tenant ${tenantId} does not match its anchor (${bad.reason} at ${bad.sequence}); nothing is pruned`);
    }
    await this.writeAnchor(store, tenantId, checkpoint, prunedThrough, anchorHeld);
  }

  /** Anchors written and store failures, for `AuditService.stats`. */
  get stats(): Pick<AuditStats, 'anchorsWritten' | 'anchorFailures'> {
    return { ...this.counters };
  }

  async runOnce(): Promise<AnchorRunResult & { acquired: boolean }> {
    const r = await this.lock.tryRun(LOCK_KEYS.auditAnchor, (held) => this.anchorHeads(held));
    if (!r.acquired) {
      this.logger.log('Audit anchoring is running elsewhere; skipped');
      return { acquired: false, anchored: 0, unchanged: 0, refused: [], failed: [] };
    }
    return { acquired: true, ...r.value };
  }

  /**
   * Copies each chain's committed head to the `AuditAnchorStore` when it moved since the last
   * anchor. A chain whose previous anchor no longer matches it is not anchored again (that would
   * bless a rewritten chain): it is reported in `refused` and logged; `verify` names the bad row.
   *
   * With `held` (`runOnce`'s lock), it stops before the next chain once the lock is lost (rejects with `LockLostError`):
   * the chains anchored so far stay anchored, and the next pass (here or on the replica holding the lock) does the rest.
   * It also looks right before each anchor write, so a pass that knows it lost the lock writes nothing more; a write
   * under way when the lock is lost cannot be called back (see `writeAnchor`).
   */
  async anchorHeads(held?: AbortSignal): Promise<AnchorRunResult> {
    if (!this.anchors) throw new AuditConfigurationError('No AuditAnchorStore is provided: anchoring needs one');
    const result: AnchorRunResult = { anchored: 0, unchanged: 0, refused: [], failed: [] };
    // Tenants with rows only: listing the store's tenants can mean listing a whole vault, every run.
    // A chain deleted outright is verify()'s to find (it does list them).
    for (const tenantId of await this.rows.tenants()) {
      held?.throwIfAborted(); // unlocked, this pass could race another's writes to the same anchor
      try {
        const outcome = await this.anchorHead(this.anchors, tenantId, held);
        if (outcome === 'refused') result.refused.push(tenantId);
        else result[outcome]++;
      } catch (e) {
        if (e instanceof LockLostError) throw e;
        // One tenant's store trouble must not leave every other chain unanchored.
        result.failed.push(tenantId);
        this.counters.anchorFailures++;
        this.logger.error(`Could not anchor the audit chain of tenant ${tenantId}: ${describeError(e)}`);
      }
    }
    return result;
  }

  private async anchorHead(store: AuditAnchorStore, tenantId: string, held?: AbortSignal): Promise<'anchored' | 'unchanged' | 'refused'> {
    // A head that has not moved since this process last saw it anchored costs no store call
    // (the store is often Key Vault, whose request budget the credential reads share).
    const known = this.lastAnchors.get(tenantId);
    if (known) {
      const head = await this.rows.head(tenantId);
      if (head && head.sequence === known.sequence && head.hash === known.hash) return 'unchanged';
    }
    const previous = await store.read(tenantId);
    const check = await this.chains.consistentRead(async (m) => ({
      head: await this.rows.head(tenantId, m),
      first: await this.rows.firstSequence(tenantId, m),
      bad: previous ? await this.verifier.checkAnchor(m, previous) : undefined,
    }));
    if (check.bad) {
      this.verifier.reportBroken(check.bad, 'anchor');
      return 'refused';
    }
    const { head } = check;
    if (!head) return 'unchanged';
    if (!previous || previous.sequence !== head.sequence || previous.hash !== head.hash) {
      // How far rows may be gone: as the previous anchor said (only retention moves it), or as found on first use.
      const prunedThrough = previous?.prunedThrough ?? (check.first ?? head.sequence) - 1;
      await this.writeAnchor(store, tenantId, head, prunedThrough, held);
      return 'anchored';
    }
    this.rememberAnchor(tenantId, head);
    return 'unchanged';
  }

  /**
   * Writes `row` as the tenant's anchor (an anchor pass's head, or retention's checkpoint), counted and remembered.
   * `held` is the anchoring lock's signal, which alone keeps two writers of one anchor apart. The store has no
   * compare-and-set (Key Vault's setSecret), so a write under way when the lock is lost may still land after the
   * writes of the replica that took it: that is the window left, and it is logged.
   */
  private async writeAnchor(
    store: AuditAnchorStore,
    tenantId: string,
    row: Pick<ChainHead, 'sequence' | 'hash'>,
    prunedThrough: number,
    held?: AbortSignal,
  ): Promise<void> {
    held?.throwIfAborted();
    // Never lower prunedThrough. The stored one is raised only by retention, anchoring its own checkpoint under the
    // anchoring lock before it deletes; verify already trusts it as the latest anchor, and a pass carries it forward
    // anyway. Taking it over grants no deletion the store did not vouch for (nothing comes from the database, where a
    // checkpoint can be forged); writing a lower one would make verify call retention's deletion 'truncated'. A higher
    // one here means another writer came in between: this replica lost the lock, or runs unlocked (`anchorHeads()`).
    const stored = await store.read(tenantId);
    held?.throwIfAborted();
    if (stored?.prunedThrough !== undefined && stored.prunedThrough > prunedThrough) {
      this.logger.warn(`Another writer anchored the audit chain of tenant ${tenantId} meanwhile (this one lost its lock, or holds none); its prunedThrough ${stored.prunedThrough} is kept`);
      prunedThrough = stored.prunedThrough;
    }
    await store.write({ tenantId, sequence: row.sequence, hash: row.hash, anchoredAt: this.clock.now(), prunedThrough });
    this.counters.anchorsWritten++;
    if (held?.aborted) {
      this.logger.error(
        `The audit anchor of tenant ${tenantId} (sequence ${row.sequence}, prunedThrough ${prunedThrough}) was being written ` +
          `when the anchoring lock was lost: it may have overwritten a later anchor of the replica that took the lock. Once ` +
          `that replica's anchoring and retention runs are done, verify tenant ${tenantId} against its anchor: valid, ` +
          `nothing to do; 'truncated' at sequence ${prunedThrough + 1} with no row id means a retention checkpoint's anchor ` +
          `(a higher prunedThrough) was overwritten — compare the store's earlier anchors of the tenant with the chain's ` +
          `latest retention_checkpoint before treating it as tampering.`,
      );
      held.throwIfAborted();
    }
    this.rememberAnchor(tenantId, row);
  }

  private rememberAnchor(tenantId: string, head: Pick<ChainHead, 'sequence' | 'hash'>): void {
    if (this.lastAnchors.size >= MAX_REMEMBERED_ANCHORS) this.lastAnchors.clear();
    this.lastAnchors.set(tenantId, { sequence: head.sequence, hash: head.hash });
  }
}
