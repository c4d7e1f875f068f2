import { Injectable, Logger, Optional } from '@nestjs/common';
import { EventEmitter2 } from '@nestjs/event-emitter';
import { describeError } from '@app/common';
import type { EntityManager } from 'typeorm';
import { AuditAnchor, AuditAnchorStore } from './anchor/audit-anchor.store';
import { AUDIT_CHAIN_BROKEN_EVENT } from './audit.constants';
import { AuditRepository } from './audit.repository';
import { AuditAnchorDamagedError, AuditAnchorUnavailableError } from './errors/audit.errors';
import { AuditChainBrokenEvent, AuditVerifyFailureReason, AuditVerifyResult } from './interfaces/audit-event.interface';
import type { ChainRow } from './internal/audit-row';
import { GENESIS_HASH, canonicalJson, computeEntryHash } from './internal/canonical';
import { ChainWriter, exclusiveOfSharedConnection } from './internal/chain-writer';

export type BadRow = NonNullable<AuditVerifyResult['firstBad']>;

const VERIFY_PAGE = 1000;

/**
 * Checks the chains: each link (from genesis or the retention checkpoint) and, when an
 * `AuditAnchorStore` is provided, the chain against its latest anchor. Every broken chain it, or the
 * anchoring job, finds is reported here (`reportBroken`).
 *
 * It reads anchors from the store itself rather than through AuditAnchorService, which depends on
 * it for the anchor check: the other way round would be a dependency cycle.
 */
@Injectable()
export class AuditChainVerifier {
  private readonly logger = new Logger(AuditChainVerifier.name);
  private broken = 0;

  constructor(
    private readonly rows: AuditRepository,
    private readonly chains: ChainWriter,
    @Optional() private readonly anchors?: AuditAnchorStore,
    @Optional() private readonly events?: EventEmitter2,
  ) {}

  /** Broken chains found so far (each finding counts). */
  get brokenChains(): number {
    return this.broken;
  }

  /** See `AuditService.verify`. */
  async verify(options: { tenantId?: string } = {}): Promise<AuditVerifyResult> {
    const tenants = options.tenantId !== undefined ? [options.tenantId] : await this.tenants();
    let checked = 0;
    let chains = 0;
    let anchorsChecked = 0;
    for (const tenantId of tenants) {
      // The anchor is read BEFORE the snapshot: it can only name rows committed before it was written.
      const anchor = await this.readAnchor(tenantId);
      const r = await this.chains.consistentRead(async (m) => {
        const chain = await this.verifyChain(m, tenantId);
        return chain.firstBad || !anchor ? chain : { ...chain, firstBad: await this.checkAnchor(m, anchor) };
      });
      checked += r.checked;
      chains++;
      if (anchor) anchorsChecked++;
      if (r.firstBad) {
        this.reportBroken(r.firstBad, 'verify');
        return { valid: false, checked, chains, anchorsChecked, firstBad: r.firstBad };
      }
    }
    return { valid: true, checked, chains, anchorsChecked };
  }

  /** Compares an intact chain with its latest anchor; undefined when they agree (or the anchored row was pruned). */
  async checkAnchor(m: EntityManager, anchor: AuditAnchor): Promise<BadRow | undefined> {
    const { tenantId } = anchor;
    if (anchor.prunedThrough !== undefined) {
      // Rows may be gone only as far as retention went when it anchored its checkpoint.
      const first = await this.rows.firstSequence(tenantId, m);
      if (first !== undefined && first - 1 > anchor.prunedThrough) return { id: '', sequence: anchor.prunedThrough + 1, tenantId, reason: 'truncated' };
    }
    const row = await this.rows.rowAt(tenantId, anchor.sequence, m);
    if (row) return row.hash === anchor.hash ? undefined : { id: row.id, sequence: row.sequence, tenantId, reason: 'anchor_mismatch' };
    const last = await this.rows.head(tenantId, m);
    if (!last || last.sequence < anchor.sequence) return { id: last?.id ?? '', sequence: anchor.sequence, tenantId, reason: 'truncated' };
    // The anchored row was pruned; when the latest checkpoint pruned exactly through it, it carries its hash.
    const cp = await this.latestCheckpoint(tenantId, m);
    if (cp && cp.details.prunedThroughSequence === anchor.sequence && cp.details.prunedThroughHash !== anchor.hash) {
      return { id: cp.id, sequence: cp.sequence, tenantId, reason: 'anchor_mismatch' };
    }
    return undefined;
  }

  /** A tamper signal: logged, counted, and emitted for the host's alerting. */
  reportBroken(bad: BadRow, foundBy: AuditChainBrokenEvent['foundBy']): void {
    this.broken++;
    this.logger.error(
      `Audit chain of tenant ${bad.tenantId} is broken at sequence ${bad.sequence} (${bad.reason}, row ${bad.id || '-'})` +
        (foundBy === 'anchor' ? '; it is not anchored again' : ''),
    );
    const event: AuditChainBrokenEvent = { ...bad, foundBy };
    try {
      this.events?.emit(AUDIT_CHAIN_BROKEN_EVENT, event);
    } catch (e) {
      this.logger.error(`A listener of ${AUDIT_CHAIN_BROKEN_EVENT} threw: ${describeError(e)}`);
    }
  }

  /**
   * SQLite: the pending rows into the query indexes first — a write, so under the shared connection's gate like an
   * append (not inside another lib's open transaction, not beside the write worker's); the caller holds the
   * maintenance mutex (`consistentRead`, `readDuringMaintenance`), so no checkpoint is written after it.
   */
  private async latestCheckpoint(tenantId: string, m: EntityManager) {
    if (this.rows.queryIndexesDeferred) await exclusiveOfSharedConnection(this.chains, () => this.rows.catchUpQueryIndexes());
    return this.rows.latestCheckpoint(tenantId, m);
  }

  private async verifyChain(m: EntityManager, tenantId: string): Promise<Pick<AuditVerifyResult, 'checked' | 'firstBad'>> {
    const firstSequence = await this.rows.firstSequence(tenantId, m);
    if (firstSequence === undefined) return { checked: 0 };
    let expectedSeq = 1;
    let expectedPrev = GENESIS_HASH;
    if (firstSequence !== 1) {
      // A pruned chain starts right after the point recorded by the latest retention checkpoint.
      const d = (await this.latestCheckpoint(tenantId, m))?.details;
      if (d && Number.isSafeInteger(d.prunedThroughSequence) && typeof d.prunedThroughHash === 'string') {
        expectedSeq = d.prunedThroughSequence! + 1;
        expectedPrev = d.prunedThroughHash;
      }
    }
    let checked = 0;
    let prev: ChainRow | undefined;
    let after = firstSequence - 1;
    const bad = (row: { id: string; sequence: number }, reason: AuditVerifyFailureReason) => ({
      checked,
      firstBad: { id: row.id, sequence: row.sequence, tenantId, reason },
    });
    for (;;) {
      const page = await this.rows.chainPage(tenantId, after, VERIFY_PAGE, m);
      for (const row of page) {
        checked++;
        if (row.sequence !== expectedSeq) return bad(row, row.sequence > expectedSeq ? 'sequence_gap' : 'reordered');
        const intact = isIntact(row);
        if (row.previousHash !== expectedPrev) {
          const target = await this.rows.rowWithHash(tenantId, row.previousHash, m);
          // It links to a row that comes later: rows were moved.
          if (target && target.sequence > row.sequence) return bad(row, 'reordered');
          // It links further back: the rows between were inserted; the first of them is bad.
          if (target && target.sequence < row.sequence - 1) {
            const inserted = await this.rows.rowAt(tenantId, target.sequence + 1, m);
            return bad(inserted ?? row, 'broken_link');
          }
          if (!intact) return bad(row, 'hash_mismatch');
          // This row is intact but its predecessor is not the row it was chained to: that one was replaced.
          return bad(prev ?? row, 'broken_link');
        }
        if (!intact) return bad(row, 'hash_mismatch');
        prev = row;
        expectedSeq = row.sequence + 1;
        expectedPrev = row.hash;
      }
      if (page.length < VERIFY_PAGE) return { checked };
      after = page[page.length - 1].sequence;
    }
  }

  private async readAnchor(tenantId: string): Promise<AuditAnchor | null> {
    if (!this.anchors) return null;
    try {
      return await this.anchors.read(tenantId);
    } catch (e) {
      throw anchorStoreFailure(this.anchors, e, {
        unavailable: `The anchor of tenant ${tenantId} could not be read, so its chain cannot be verified`,
        damaged: `The anchor of tenant ${tenantId} cannot be used, so its chain cannot be verified until an operator repairs the anchor`,
      });
    }
  }

  /** Tenants with rows, and those with only an anchor left (a chain deleted outright). */
  private async tenants(): Promise<string[]> {
    const tenants = await this.rows.tenants();
    if (!this.anchors) return tenants;
    let withAnchors: string[];
    try {
      withAnchors = await this.anchors.tenants();
    } catch (e) {
      throw anchorStoreFailure(this.anchors, e, {
        unavailable: 'The anchored tenants could not be listed, so the log cannot be verified',
        damaged: 'An anchor of the store cannot be used, so the log cannot be verified until an operator repairs it',
      });
    }
    return [...new Set([...tenants, ...withAnchors])].sort();
  }
}

/**
 * What verify answers for a failure of the anchor store: an anchor the store found unusable (deleted, corrupt —
 * its `isUnusable`) is damage no retry mends, perhaps tampering (`AuditAnchorDamagedError`); anything else, that
 * the store could not be asked now. Only the failure's class and code are repeated: its text may name a secret.
 */
function anchorStoreFailure(store: AuditAnchorStore, e: unknown, say: { unavailable: string; damaged: string }): AuditAnchorDamagedError | AuditAnchorUnavailableError {
  if (store.isUnusable?.(e) === true) return new AuditAnchorDamagedError(`${say.damaged}: ${describeError(e)}`, { cause: e });
  // A store failure that knows when it passes (the vault client's open breaker, a throttled vault: `retryAfterMs`) says so.
  const retryAfterMs = (e as { retryAfterMs?: unknown } | undefined)?.retryAfterMs;
  const when = typeof retryAfterMs === 'number' && Number.isFinite(retryAfterMs) && retryAfterMs >= 0 ? { retryAfterMs } : {};
  return new AuditAnchorUnavailableError(`${say.unavailable}: ${describeError(e)}`, { cause: e, ...when });
}

/**
 * Whether the row's hash covers its fields. The stored details text is hashed as is: the writer
 * stores exactly the canonical JSON it hashed. Only when that fails is the text parsed and
 * re-canonicalised (as TypeORM's hydration and `computeEntryHash` would), so a row verify accepted
 * before is accepted still; text that is not JSON at all cannot be what was hashed.
 */
function isIntact(row: ChainRow): boolean {
  if (hashesTo(row, row.detailsJson ?? 'null')) return true;
  if (row.detailsJson === null) return false;
  let canonical: string;
  try {
    canonical = canonicalJson(JSON.parse(row.detailsJson));
  } catch {
    return false;
  }
  return canonical !== row.detailsJson && hashesTo(row, canonical);
}

/** A field edited into something no writer stores (an out-of-range time, text in a number column) cannot be hashed: not intact. */
function hashesTo(row: ChainRow, detailsJson: string): boolean {
  try {
    return computeEntryHash(row, detailsJson) === row.hash;
  } catch {
    return false;
  }
}
