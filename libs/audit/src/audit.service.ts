import {
  BeforeApplicationShutdown,
  Inject,
  Injectable,
  Logger,
  OnModuleInit,
  Optional,
} from '@nestjs/common';
import { EventEmitter2 } from '@nestjs/event-emitter';
import { InjectDataSource } from '@nestjs/typeorm';
import { Clock, SystemClock } from '@app/common';
import { Brackets, DataSource, EntityManager, MoreThan, Repository } from 'typeorm';
import { AUDIT_CHAIN_BROKEN_EVENT, AUDIT_SUSPICIOUS_ACTIVITY_EVENT, AUDIT_SYSTEM_ACTOR } from './audit.constants';
import { AUDIT_RESOLVED_OPTIONS } from './audit.module-definition';
import type { ResolvedAuditOptions } from './audit.options';
import { AuditLogEntry } from './entities/audit-log-entry.entity';
import {
  AuditAnchorUnavailableError,
  AuditConfigurationError,
  AuditInvalidEventError,
  AuditQueryError,
  AuditUnavailableError,
  AuditWriteError,
} from './errors/audit.errors';
import {
  AnchorRunResult,
  AuditAction,
  AuditChainBrokenEvent,
  AuditEventInput,
  AuditLogEntryView,
  AuditQuery,
  AuditQueryPage,
  AuditResult,
  AuditStats,
  AuditVerifyFailureReason,
  AuditVerifyResult,
} from './interfaces/audit-event.interface';
import { AuditAnchor, AuditAnchorStore } from './anchor/audit-anchor.store';
import { GENESIS_HASH, HashableEntry, canonicalJson, computeEntryHash } from './internal/canonical';
import { ChainWriter, withMaintenance } from './internal/chain-writer';
import { decodeCursor, encodeCursor } from './internal/cursor';
import { ReadBuffer } from './internal/read-buffer';
import { InsertableRow, insertAuditRows } from './internal/row-insert';
import { uuidV7 } from './internal/uuid-v7';
import { sanitiseDetails, storable } from './internal/sanitize-details';
import { SuspiciousActivityDetector, SuspiciousActivityEvent } from './internal/suspicious-activity.detector';

/** A validated, sanitised event waiting for its place in the chain. */
type PreparedEvent = Omit<HashableEntry, 'id' | 'sequence' | 'previousHash' | 'result'> & { result: AuditResult };

interface ChainHead {
  sequence: number;
  hash: string;
}

interface CheckpointDetails {
  prunedThroughSequence: number;
  prunedThroughHash: string;
}

const ACTION_NAME = /^[a-z][a-z0-9_.:-]{0,63}$/;
const RESULTS = new Set<string>(Object.values(AuditResult));
const VERIFY_PAGE = 1000;
const MAX_LIMIT = 500;
const MAX_REMEMBERED_ANCHORS = 100_000;

/**
 * The audit log: every row is a link of its tenant's SHA-256 hash chain (see libs/audit/README.md).
 *
 * - `record()` writes one row synchronously — in the caller's transaction when given its manager.
 * - `recordRead()` batches reads through a bounded buffer (back-pressure when full, never drops).
 * - `verify()` walks the chains and names the first row that was edited, deleted, inserted or moved.
 * - `prune()` deletes a prefix of each chain and appends a checkpoint so verify stays green.
 */
@Injectable()
export class AuditService implements OnModuleInit, BeforeApplicationShutdown {
  private readonly logger = new Logger(AuditService.name);
  private readonly clock: Clock;
  private readonly writer: ChainWriter;
  private readonly buffer: ReadBuffer<PreparedEvent>;
  private readonly detector?: SuspiciousActivityDetector;
  private readonly pending = new Set<Promise<unknown>>();
  /** Chain heads this process last wrote to (or found in) the anchor store. */
  private readonly lastAnchors = new Map<string, ChainHead>();
  private timer?: NodeJS.Timeout;
  private flushTail: Promise<void> = Promise.resolve();
  private kicking = false;
  private stopped = false;
  /** Set while buffered writes fail; cleared by the next successful flush. */
  private failing?: Error;
  private readonly counters = {
    recorded: 0,
    readsAccepted: 0,
    readsFlushed: 0,
    flushFailures: 0,
    writeFailures: 0,
    readsRejected: 0,
    redactedKeys: 0,
    suspiciousActivities: 0,
    brokenChains: 0,
    anchorsWritten: 0,
    anchorFailures: 0,
  };

  constructor(
    @InjectDataSource() private readonly dataSource: DataSource,
    @Inject(AUDIT_RESOLVED_OPTIONS) private readonly options: ResolvedAuditOptions,
    @Optional() clock?: Clock,
    @Optional() private readonly events?: EventEmitter2,
    @Optional() private readonly anchors?: AuditAnchorStore,
  ) {
    this.clock = clock ?? new SystemClock();
    this.writer = ChainWriter.for(dataSource);
    this.buffer = new ReadBuffer(options.readBuffer.maxSize);
    if (options.suspicious.enabled) this.detector = new SuspiciousActivityDetector(options.suspicious, this.clock);
  }

  onModuleInit(): void {
    if (this.options.suspicious.enabled && !this.events) {
      this.logger.warn(
        `EventEmitter2 is not available: suspicious activity is still audited, but "${AUDIT_SUSPICIOUS_ACTIVITY_EVENT}" ` +
          'is not emitted. Import EventEmitterModule.forRoot() in the host.',
      );
    }
    this.timer = setInterval(() => {
      if (this.buffer.depth > 0) this.kick();
    }, this.options.readBuffer.flushIntervalMs);
    this.timer.unref();
  }

  async beforeApplicationShutdown(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    for (let attempt = 1; attempt <= 3 && this.buffer.depth > 0; attempt++) {
      try {
        await this.flush();
      } catch {
        await new Promise((r) => setTimeout(r, 100 * attempt));
      }
    }
    if (this.buffer.depth > 0) {
      this.logger.error(`${this.buffer.depth} buffered audit reads could not be written before shutdown`);
    }
    await Promise.allSettled([...this.pending]);
  }

  // ---------------------------------------------------------------------------------------------
  // Writing
  // ---------------------------------------------------------------------------------------------

  /**
   * Writes one audit row. With `manager` (inside an open transaction) the row is part of the
   * caller's transaction: it commits or rolls back with the caller's change, and the chain lock is
   * held until then. Otherwise the row is written in its own transaction. Throws
   * `AuditWriteError` when the row cannot be written — the operation must then fail (fail-closed).
   */
  async record(event: AuditEventInput, manager?: EntityManager): Promise<AuditLogEntryView> {
    const prepared = this.prepare(event);
    let rows: AuditLogEntry[];
    try {
      const write = (m: EntityManager) => this.append(m, prepared.tenantId, [prepared]);
      rows = manager?.queryRunner?.isTransactionActive
        ? await this.writer.inCallerTransaction(manager, [prepared.tenantId], write)
        : await this.writer.inOwnTransaction([prepared.tenantId], write);
    } catch (e) {
      this.counters.writeFailures++;
      this.logger.error(`Audit row "${prepared.action}" for tenant ${prepared.tenantId} could not be written: ${message(e)}`);
      throw new AuditWriteError(`The audit row "${prepared.action}" could not be written; the operation must not proceed`, {
        cause: e,
      });
    }
    this.counters.recorded++;
    this.observe(prepared);
    return toView(rows[0]);
  }

  /**
   * Queues a read event; rows are written in batches (`readBuffer.batchSize`) at least every
   * `readBuffer.flushIntervalMs`. Resolves once the event is buffered; waits while the buffer is full.
   * With `failClosed`, rejects with `AuditUnavailableError` while buffered writes are failing.
   */
  async recordRead(event: AuditEventInput): Promise<void> {
    const prepared = this.prepare(event);
    if (this.failing && this.options.failClosed) {
      this.counters.readsRejected++;
      throw this.unavailable();
    }
    try {
      await this.buffer.push(prepared);
    } catch (e) {
      this.counters.readsRejected++;
      throw e;
    }
    this.counters.readsAccepted++;
    this.observe(prepared);
    if (this.stopped || this.buffer.depth >= this.options.readBuffer.batchSize) this.kick();
  }

  /**
   * Writes everything buffered so far (batch by batch). Rejects with `AuditWriteError` if a batch
   * fails; the unwritten events stay buffered and are retried.
   */
  flush(): Promise<void> {
    const run = this.flushTail.then(() => this.flushBuffered());
    this.flushTail = run.catch(() => undefined);
    return run;
  }

  /** Reads waiting in the buffer (including a batch being written). */
  get bufferDepth(): number {
    return this.buffer.depth;
  }

  /** False while buffered writes are failing. */
  get healthy(): boolean {
    return !this.failing;
  }

  /** Counters for metrics/health. */
  get stats(): AuditStats {
    return { ...this.counters, bufferDepth: this.buffer.depth, bufferWaiters: this.buffer.waiting, healthy: !this.failing };
  }

  private kick(): void {
    if (this.kicking) return;
    this.kicking = true;
    const run = this.flush()
      .catch(() => undefined) // logged and counted in flushBatch
      .finally(() => {
        this.kicking = false;
        this.pending.delete(run);
        if (!this.failing && (this.stopped ? this.buffer.depth > 0 : this.buffer.depth >= this.options.readBuffer.batchSize)) {
          this.kick();
        }
      });
    this.pending.add(run);
  }

  private async flushBuffered(): Promise<void> {
    // Bounded: a steady stream of new reads cannot keep flush() from returning.
    let budget = this.buffer.depth + this.buffer.waiting;
    for (let first = true; budget > 0 && this.buffer.depth > 0; first = false) {
      // SQLite writes are synchronous: give waiting requests an event-loop turn between batches.
      if (!first) await new Promise((r) => setImmediate(r));
      budget -= await this.flushBatch();
    }
  }

  private async flushBatch(): Promise<number> {
    const batch = this.buffer.peek(this.options.readBuffer.batchSize);
    const byTenant = new Map<string, PreparedEvent[]>();
    for (const e of batch) {
      const list = byTenant.get(e.tenantId);
      if (list) list.push(e);
      else byTenant.set(e.tenantId, [e]);
    }
    try {
      await this.writer.inOwnTransaction([...byTenant.keys()], async (m) => {
        for (const [tenantId, events] of byTenant) await this.append(m, tenantId, events);
      });
    } catch (e) {
      this.counters.flushFailures++;
      const first = !this.failing;
      this.failing = e instanceof Error ? e : new Error(String(e));
      this.logger.error(`Writing ${batch.length} buffered audit reads failed${first ? '' : ' again'}: ${message(e)}`);
      if (this.options.failClosed) {
        this.counters.readsRejected += this.buffer.rejectWaiters(this.unavailable());
      }
      throw new AuditWriteError(`Writing ${batch.length} buffered audit reads failed`, { cause: e });
    }
    if (this.failing) {
      this.logger.log('Buffered audit writes recovered');
      this.failing = undefined;
    }
    this.buffer.remove(new Set(batch));
    this.counters.readsFlushed += batch.length;
    return batch.length;
  }

  private unavailable(): AuditUnavailableError {
    return new AuditUnavailableError('Audit log writes are failing; reads are refused until they recover (failClosed)', {
      cause: this.failing,
    });
  }

  /** Appends `events` to the chain of `tenantId`. The caller holds the chain lock. */
  private async append(m: EntityManager, tenantId: string, events: PreparedEvent[], head?: ChainHead | null): Promise<AuditLogEntry[]> {
    let h = head === undefined ? await this.head(m, tenantId) : head;
    const rows = events.map((e): InsertableRow => {
      const entry: HashableEntry = {
        ...e,
        id: uuidV7(e.occurredAt.getTime()),
        sequence: (h?.sequence ?? 0) + 1,
        previousHash: h?.hash ?? GENESIS_HASH,
      };
      // Canonical JSON is both what the hash covers and what the details column stores.
      const detailsJson = e.details === null || e.details === undefined ? null : canonicalJson(e.details);
      const row = Object.assign(new AuditLogEntry(), entry, { hash: computeEntryHash(entry, detailsJson ?? 'null') });
      h = { sequence: row.sequence, hash: row.hash };
      return { row, detailsJson };
    });
    await insertAuditRows(m, rows);
    return rows.map((r) => r.row);
  }

  private async head(m: EntityManager, tenantId: string): Promise<ChainHead | null> {
    return m.getRepository(AuditLogEntry).findOne({
      select: { sequence: true, hash: true },
      where: { tenantId },
      order: { sequence: 'DESC' },
    });
  }

  private prepare(event: AuditEventInput): PreparedEvent {
    const bad = (what: string) => new AuditInvalidEventError(`Invalid audit event: ${what}`);
    if (!event || typeof event !== 'object') throw bad('event is required');
    const { action, context, resource, result } = event;
    if (typeof action !== 'string' || !ACTION_NAME.test(action)) throw bad(`action must match ${ACTION_NAME.source}`);
    if (!context || typeof context.tenantId !== 'string' || !context.tenantId || context.tenantId.length > 128) {
      throw bad('context.tenantId must be a non-empty string of at most 128 characters');
    }
    if (!context.actor || typeof context.actor.id !== 'string' || !context.actor.id || context.actor.id.length > 256) {
      throw bad('context.actor.id must be a non-empty string of at most 256 characters');
    }
    if (typeof resource !== 'string' || !resource || resource.length > 512) {
      throw bad('resource must be a non-empty string of at most 512 characters');
    }
    if (!RESULTS.has(result)) throw bad(`result must be one of ${[...RESULTS].join(', ')}`);
    if (event.durationMs !== undefined && (!Number.isFinite(event.durationMs) || event.durationMs < 0)) {
      throw bad('durationMs must be a finite number ≥ 0');
    }
    const { details, redacted } = sanitiseDetails(event.details);
    if (redacted.length) {
      this.counters.redactedKeys += redacted.length;
      this.logger.warn(`Stripped ${redacted.length} credential-looking member(s) from audit details: ${redacted.join(', ')}`);
    }
    return {
      tenantId: storable(context.tenantId),
      occurredAt: this.clock.now(),
      action,
      resource: storable(resource),
      actorId: storable(context.actor.id),
      actorIp: clip(context.actor.ip, 64),
      userAgent: clip(context.actor.userAgent, 512),
      result,
      errorCode: event.errorCode === undefined || event.errorCode === null ? null : clip(String(event.errorCode), 64),
      durationMs: event.durationMs === undefined ? null : Math.min(Math.round(event.durationMs), 2_147_483_647),
      correlationId: clip(context.correlationId, 128),
      details,
    };
  }

  // ---------------------------------------------------------------------------------------------
  // Suspicious activity
  // ---------------------------------------------------------------------------------------------

  private observe(e: PreparedEvent): void {
    if (!this.detector) return;
    for (const alert of this.detector.observe(e)) this.raise(alert);
  }

  private raise(alert: SuspiciousActivityEvent): void {
    this.counters.suspiciousActivities++;
    this.logger.warn(
      `Suspicious activity (${alert.kind}) in tenant ${alert.tenantId}: ${alert.count} within ${alert.windowMs} ms ` +
        `(threshold ${alert.threshold}) actor=${alert.actorId ?? '-'} resource=${alert.resource ?? '-'}`,
    );
    try {
      this.events?.emit(AUDIT_SUSPICIOUS_ACTIVITY_EVENT, alert);
    } catch (e) {
      this.logger.error(`A listener of ${AUDIT_SUSPICIOUS_ACTIVITY_EVENT} threw: ${message(e)}`);
    }
    // Not awaited: the triggering call may hold an open transaction the row must not wait for.
    const write = this.record({
      action: AuditAction.SUSPICIOUS_ACTIVITY,
      context: { tenantId: alert.tenantId, actor: { id: AUDIT_SYSTEM_ACTOR }, correlationId: alert.correlationId },
      resource: alert.resource ?? `actor:${alert.actorId}`,
      result: AuditResult.SUCCESS,
      details: {
        kind: alert.kind,
        actorId: alert.actorId,
        resource: alert.resource,
        count: alert.count,
        threshold: alert.threshold,
        windowMs: alert.windowMs,
      },
    })
      .catch(() => undefined) // logged and counted by record()
      .finally(() => this.pending.delete(write));
    this.pending.add(write);
  }

  // ---------------------------------------------------------------------------------------------
  // Reading
  // ---------------------------------------------------------------------------------------------

  /**
   * Filtered, cursor-paged rows, newest first by default. With `tenantId`, rows come in chain order
   * (sequence); without, by time across tenants. Tenant isolation is the caller's filter.
   */
  async query(filter: AuditQuery = {}): Promise<AuditQueryPage> {
    const limit = filter.limit ?? 100;
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT) {
      throw new AuditQueryError(`limit must be an integer between 1 and ${MAX_LIMIT}`);
    }
    const order = filter.order ?? 'desc';
    if (order !== 'asc' && order !== 'desc') throw new AuditQueryError('order must be "asc" or "desc"');
    const dir = order === 'asc' ? 'ASC' : 'DESC';
    const qb = this.dataSource.getRepository(AuditLogEntry).createQueryBuilder('a');
    const eq = (field: keyof AuditLogEntry, value: unknown) => {
      if (value === undefined) return;
      if (typeof value !== 'string' || !value) throw new AuditQueryError(`${field} must be a non-empty string`);
      qb.andWhere(`a.${field} = :${field}`, { [field]: value });
    };
    eq('tenantId', filter.tenantId);
    eq('resource', filter.resource);
    eq('actorId', filter.actorId);
    eq('correlationId', filter.correlationId);
    const list = (field: 'action' | 'result', value: string | string[] | undefined) => {
      if (value === undefined) return;
      const values = Array.isArray(value) ? value : [value];
      if (values.length === 0 || values.length > 50 || values.some((v) => typeof v !== 'string' || !v)) {
        throw new AuditQueryError(`${field} must be a non-empty string or a list of 1..50 of them`);
      }
      qb.andWhere(`a.${field} IN (:...${field}s)`, { [`${field}s`]: values });
    };
    list('action', filter.action);
    list('result', filter.result);
    const time = (name: string, d: Date | undefined) => {
      if (d === undefined) return undefined;
      if (!(d instanceof Date) || Number.isNaN(d.getTime())) throw new AuditQueryError(`${name} must be a valid Date`);
      return d.getTime();
    };
    const from = time('from', filter.from);
    const to = time('to', filter.to);
    if (from !== undefined) qb.andWhere('a.occurredAt >= :from', { from });
    if (to !== undefined) qb.andWhere('a.occurredAt < :to', { to });
    // One tenant: its chain order (sequence). Across tenants: time, then id as a tie-breaker.
    const by = filter.tenantId !== undefined ? 'seq' : 'time';
    const cmp = order === 'asc' ? '>' : '<';
    if (filter.cursor !== undefined) {
      const c = decodeCursor(filter.cursor, order, by);
      if (c.by === 'seq') {
        qb.andWhere(`a.sequence ${cmp} :cseq`, { cseq: c.sequence });
      } else {
        qb.andWhere(
          new Brackets((w) =>
            w
              .where(`a.occurredAt ${cmp} :ct`, { ct: c.occurredAtMs })
              .orWhere(new Brackets((x) => x.where('a.occurredAt = :ct', { ct: c.occurredAtMs }).andWhere(`a.id ${cmp} :cid`, { cid: c.id }))),
          ),
        );
      }
    }
    if (by === 'seq') qb.orderBy('a.sequence', dir);
    else qb.orderBy('a.occurredAt', dir).addOrderBy('a.id', dir);
    qb.limit(limit + 1);
    const rows = await qb.getMany();
    const items = rows.slice(0, limit).map(toView);
    const last = items[items.length - 1];
    if (rows.length <= limit || !last) return { items };
    const nextCursor =
      by === 'seq'
        ? encodeCursor({ order, by, sequence: last.sequence })
        : encodeCursor({ order, by, occurredAtMs: last.occurredAt.getTime(), id: last.id });
    return { items, nextCursor };
  }

  // ---------------------------------------------------------------------------------------------
  // Verification and retention
  // ---------------------------------------------------------------------------------------------

  /**
   * Walks every chain (or one tenant's) from its start — genesis, or the retention checkpoint —
   * and reports the first row that breaks it. Each chain is read from one consistent snapshot.
   */
  async verify(options: { tenantId?: string } = {}): Promise<AuditVerifyResult> {
    const tenants = options.tenantId !== undefined ? [options.tenantId] : await this.tenants(true);
    let checked = 0;
    let chains = 0;
    let anchorsChecked = 0;
    for (const tenantId of tenants) {
      // The anchor is read BEFORE the snapshot: it can only name rows committed before it was written.
      const anchor = await this.readAnchor(tenantId);
      const r = await this.writer.consistentRead(async (m) => {
        const chain = await this.verifyChain(m, tenantId);
        return chain.firstBad || !anchor ? chain : { ...chain, firstBad: await this.checkAnchor(m, anchor) };
      });
      checked += r.checked;
      chains++;
      if (anchor) anchorsChecked++;
      if (r.firstBad) {
        this.chainBroken(r.firstBad, 'verify');
        return { valid: false, checked, chains, anchorsChecked, firstBad: r.firstBad };
      }
    }
    return { valid: true, checked, chains, anchorsChecked };
  }

  /** Compares an intact chain with its latest anchor; undefined when they agree (or the anchored row was pruned). */
  private async checkAnchor(m: EntityManager, anchor: AuditAnchor): Promise<AuditVerifyResult['firstBad']> {
    const { tenantId } = anchor;
    const repo = m.getRepository(AuditLogEntry);
    const row = await repo.findOne({ select: { id: true, sequence: true, hash: true }, where: { tenantId, sequence: anchor.sequence } });
    if (row) return row.hash === anchor.hash ? undefined : { id: row.id, sequence: row.sequence, tenantId, reason: 'anchor_mismatch' };
    const last = await repo.findOne({ select: { id: true, sequence: true }, where: { tenantId }, order: { sequence: 'DESC' } });
    if (!last || last.sequence < anchor.sequence) return { id: last?.id ?? '', sequence: anchor.sequence, tenantId, reason: 'truncated' };
    // The anchored row was pruned; when the latest checkpoint pruned exactly through it, it carries its hash.
    const cp = await latestCheckpoint(repo, tenantId);
    if (cp && cp.details.prunedThroughSequence === anchor.sequence && cp.details.prunedThroughHash !== anchor.hash) {
      return { id: cp.id, sequence: cp.sequence, tenantId, reason: 'anchor_mismatch' };
    }
    return undefined;
  }

  /**
   * Copies each chain's committed head to the `AuditAnchorStore` when it moved since the last
   * anchor. A chain whose previous anchor no longer matches it is not anchored again (that would
   * bless a rewritten chain): it is reported in `refused` and logged; `verify` names the bad row.
   */
  async anchorHeads(): Promise<AnchorRunResult> {
    if (!this.anchors) throw new AuditConfigurationError('No AuditAnchorStore is provided: anchoring needs one');
    const result: AnchorRunResult = { anchored: 0, unchanged: 0, refused: [], failed: [] };
    // Tenants with rows only: listing the store's tenants can mean listing a whole vault, every run.
    // A chain deleted outright is verify()'s to find (it does list them).
    for (const tenantId of await this.tenants()) {
      try {
        const outcome = await this.anchorHead(this.anchors, tenantId);
        if (outcome === 'refused') result.refused.push(tenantId);
        else result[outcome]++;
      } catch (e) {
        // One tenant's store trouble must not leave every other chain unanchored.
        result.failed.push(tenantId);
        this.counters.anchorFailures++;
        this.logger.error(`Could not anchor the audit chain of tenant ${tenantId}: ${message(e)}`);
      }
    }
    return result;
  }

  private async anchorHead(store: AuditAnchorStore, tenantId: string): Promise<'anchored' | 'unchanged' | 'refused'> {
    // A head that has not moved since this process last saw it anchored costs no store call
    // (the store is often Key Vault, whose request budget the credential reads share).
    const known = this.lastAnchors.get(tenantId);
    if (known) {
      const head = await this.head(this.dataSource.manager, tenantId);
      if (head && head.sequence === known.sequence && head.hash === known.hash) return 'unchanged';
    }
    const previous = await store.read(tenantId);
    const check = await this.writer.consistentRead(async (m) => ({
      head: await this.head(m, tenantId),
      bad: previous ? await this.checkAnchor(m, previous) : undefined,
    }));
    if (check.bad) {
      this.chainBroken(check.bad, 'anchor');
      return 'refused';
    }
    const { head } = check;
    if (!head) return 'unchanged';
    if (!previous || previous.sequence !== head.sequence || previous.hash !== head.hash) {
      await store.write({ tenantId, sequence: head.sequence, hash: head.hash, anchoredAt: this.clock.now() });
      this.counters.anchorsWritten++;
      this.rememberAnchor(tenantId, head);
      return 'anchored';
    }
    this.rememberAnchor(tenantId, head);
    return 'unchanged';
  }

  private rememberAnchor(tenantId: string, head: ChainHead): void {
    if (this.lastAnchors.size >= MAX_REMEMBERED_ANCHORS) this.lastAnchors.clear();
    this.lastAnchors.set(tenantId, { sequence: head.sequence, hash: head.hash });
  }

  /** A tamper signal: logged, counted, and emitted for the host's alerting. */
  private chainBroken(bad: NonNullable<AuditVerifyResult['firstBad']>, foundBy: AuditChainBrokenEvent['foundBy']): void {
    this.counters.brokenChains++;
    this.logger.error(
      `Audit chain of tenant ${bad.tenantId} is broken at sequence ${bad.sequence} (${bad.reason}, row ${bad.id || '-'})` +
        (foundBy === 'anchor' ? '; it is not anchored again' : ''),
    );
    const event: AuditChainBrokenEvent = { ...bad, foundBy };
    try {
      this.events?.emit(AUDIT_CHAIN_BROKEN_EVENT, event);
    } catch (e) {
      this.logger.error(`A listener of ${AUDIT_CHAIN_BROKEN_EVENT} threw: ${message(e)}`);
    }
  }

  private async readAnchor(tenantId: string): Promise<AuditAnchor | null> {
    if (!this.anchors) return null;
    try {
      return await this.anchors.read(tenantId);
    } catch (e) {
      throw new AuditAnchorUnavailableError(`The anchor of tenant ${tenantId} could not be read, so its chain cannot be verified: ${message(e)}`, {
        cause: e,
      });
    }
  }

  private async verifyChain(m: EntityManager, tenantId: string): Promise<Pick<AuditVerifyResult, 'checked' | 'firstBad'>> {
    const repo = m.getRepository(AuditLogEntry);
    const first = await repo.findOne({ select: { sequence: true }, where: { tenantId }, order: { sequence: 'ASC' } });
    if (!first) return { checked: 0 };
    let expectedSeq = 1;
    let expectedPrev = GENESIS_HASH;
    if (first.sequence !== 1) {
      // A pruned chain starts right after the point recorded by the latest retention checkpoint.
      const d = (await latestCheckpoint(repo, tenantId))?.details;
      if (d && Number.isSafeInteger(d.prunedThroughSequence) && typeof d.prunedThroughHash === 'string') {
        expectedSeq = d.prunedThroughSequence! + 1;
        expectedPrev = d.prunedThroughHash;
      }
    }
    let checked = 0;
    let prev: AuditLogEntry | undefined;
    let after = first.sequence - 1;
    const bad = (row: { id: string; sequence: number }, reason: AuditVerifyFailureReason) => ({
      checked,
      firstBad: { id: row.id, sequence: row.sequence, tenantId, reason },
    });
    for (;;) {
      const page = await repo.find({
        where: { tenantId, sequence: MoreThan(after) },
        order: { sequence: 'ASC' },
        take: VERIFY_PAGE,
      });
      for (const row of page) {
        checked++;
        if (row.sequence !== expectedSeq) return bad(row, row.sequence > expectedSeq ? 'sequence_gap' : 'reordered');
        const intact = computeEntryHash(row) === row.hash;
        if (row.previousHash !== expectedPrev) {
          const target = await repo.findOne({ select: { id: true, sequence: true }, where: { tenantId, hash: row.previousHash } });
          // It links to a row that comes later: rows were moved.
          if (target && target.sequence > row.sequence) return bad(row, 'reordered');
          // It links further back: the rows between were inserted; the first of them is bad.
          if (target && target.sequence < row.sequence - 1) {
            const inserted = await repo.findOne({ select: { id: true, sequence: true }, where: { tenantId, sequence: target.sequence + 1 } });
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

  /**
   * Deletes, per chain, the longest prefix of rows all older than `olderThan`, and appends a
   * `retention_checkpoint` row holding the last pruned sequence and hash, from which `verify` starts.
   */
  async prune(olderThan: Date): Promise<{ deleted: number }> {
    if (!(olderThan instanceof Date) || Number.isNaN(olderThan.getTime())) {
      throw new AuditQueryError('olderThan must be a valid Date');
    }
    const cutoff = olderThan.getTime();
    return withMaintenance(this.writer, async () => {
      let deleted = 0;
      for (const tenantId of await this.tenants()) {
        deleted += await this.writer.inOwnTransaction([tenantId], (m) => this.pruneChain(m, tenantId, cutoff, olderThan));
      }
      if (deleted > 0) this.logger.log(`Pruned ${deleted} audit rows older than ${olderThan.toISOString()}`);
      return { deleted };
    });
  }

  private async pruneChain(m: EntityManager, tenantId: string, cutoff: number, olderThan: Date): Promise<number> {
    const repo = m.getRepository(AuditLogEntry);
    const head = await this.head(m, tenantId);
    if (!head) return 0;
    const bounds: { first: string | number | null; firstKept: string | number | null } | undefined = await repo
      .createQueryBuilder('a')
      .select('MIN(a.sequence)', 'first')
      .addSelect('MIN(CASE WHEN a.occurredAt >= :cutoff THEN a.sequence END)', 'firstKept')
      .where('a.tenantId = :tenantId', { tenantId, cutoff })
      .getRawOne();
    const first = Number(bounds?.first);
    const through = bounds?.firstKept === null || bounds?.firstKept === undefined ? head.sequence : Number(bounds.firstKept) - 1;
    if (!Number.isSafeInteger(first) || through < first) return 0;
    const last = await repo.findOne({ select: { hash: true }, where: { tenantId, sequence: through } });
    if (!last) throw new Error(`Audit chain of tenant ${tenantId} has no row at sequence ${through}; run verify`);
    const result = await repo
      .createQueryBuilder()
      .delete()
      .where('tenant_id = :tenantId AND sequence <= :through', { tenantId, through })
      .execute();
    const deleted = result.affected ?? through - first + 1;
    const checkpoint: PreparedEvent = {
      tenantId,
      occurredAt: this.clock.now(),
      action: AuditAction.RETENTION_CHECKPOINT,
      resource: 'audit-log',
      actorId: `${AUDIT_SYSTEM_ACTOR}-retention`,
      actorIp: null,
      userAgent: null,
      result: AuditResult.SUCCESS,
      errorCode: null,
      durationMs: null,
      correlationId: null,
      details: {
        prunedThroughSequence: through,
        prunedThroughHash: last.hash,
        deleted,
        olderThan: olderThan.toISOString(),
      },
    };
    await this.append(m, tenantId, [checkpoint], head);
    return deleted;
  }

  /** Tenants with rows; with `anchored`, also those with only an anchor left (a chain deleted outright). */
  private async tenants(anchored = false): Promise<string[]> {
    const rows: Array<{ tenantId: string }> = await this.dataSource
      .getRepository(AuditLogEntry)
      .createQueryBuilder('a')
      .select('DISTINCT a.tenantId', 'tenantId')
      .orderBy('a.tenantId', 'ASC')
      .getRawMany();
    const tenants = rows.map((r) => r.tenantId);
    if (!anchored || !this.anchors) return tenants;
    let withAnchors: string[];
    try {
      withAnchors = await this.anchors.tenants();
    } catch (e) {
      throw new AuditAnchorUnavailableError(`The anchored tenants could not be listed, so the log cannot be verified: ${message(e)}`, { cause: e });
    }
    return [...new Set([...tenants, ...withAnchors])].sort();
  }
}

function toView(row: AuditLogEntry): AuditLogEntryView {
  return {
    id: row.id,
    sequence: row.sequence,
    occurredAt: row.occurredAt,
    action: row.action,
    tenantId: row.tenantId,
    resource: row.resource,
    actorId: row.actorId,
    actorIp: row.actorIp ?? null,
    userAgent: row.userAgent ?? null,
    result: row.result as AuditResult,
    errorCode: row.errorCode ?? null,
    durationMs: row.durationMs ?? null,
    correlationId: row.correlationId ?? null,
    details: row.details ?? null,
    previousHash: row.previousHash,
    hash: row.hash,
  };
}

/** The chain's latest retention checkpoint, its details as stored (the callers check them). */
async function latestCheckpoint(
  repo: Repository<AuditLogEntry>,
  tenantId: string,
): Promise<{ id: string; sequence: number; details: Partial<CheckpointDetails> } | undefined> {
  const cp = await repo.findOne({ where: { tenantId, action: AuditAction.RETENTION_CHECKPOINT }, order: { sequence: 'DESC' } });
  return cp ? { id: cp.id, sequence: cp.sequence, details: (cp.details ?? {}) as Partial<CheckpointDetails> } : undefined;
}

function clip(v: string | undefined | null, max: number): string | null {
  if (v === undefined || v === null || v === '') return null;
  return storable(v.length > max ? v.slice(0, max) : v);
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
