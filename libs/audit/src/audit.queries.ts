import { Injectable, Optional } from '@nestjs/common';
import { TransactionRunner } from '@app/common';
import { DataSource } from 'typeorm';
import { InjectDataSource } from '@nestjs/typeorm';
import { AuditRepository, AuditRowFilter } from './audit.repository';
import type { AuditLogEntry } from './entities/audit-log-entry.entity';
import { AuditQueryError } from './errors/audit.errors';
import { AuditQuery, AuditQueryPage } from './interfaces/audit-event.interface';
import { ChainWriter, exclusiveOfSharedConnection } from './internal/chain-writer';
import { decodeCursor, encodeCursor } from './internal/cursor';
import { toView } from './internal/entry-view';
import { ACTION_NAME, isResult, RESULTS } from './internal/prepare-event';
import { storable } from './internal/sanitize-details';

const MAX_LIMIT = 500;

/** Reads the log: validates a filter, pages it with an opaque cursor. */
@Injectable()
export class AuditQueries {
  private readonly runner: TransactionRunner;

  constructor(
    private readonly rows: AuditRepository,
    private readonly chains: ChainWriter,
    @InjectDataSource() dataSource: DataSource,
    @Optional() runner?: TransactionRunner,
  ) {
    // As the writer: a runner of our own still sees the ambient transactions of the DataSource.
    this.runner = runner ?? new TransactionRunner(dataSource);
  }

  /** See `AuditService.query`. */
  async query(filter: AuditQuery = {}): Promise<AuditQueryPage> {
    const limit = filter.limit ?? 100;
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT) {
      throw new AuditQueryError(`limit must be an integer between 1 and ${MAX_LIMIT}`);
    }
    const order = filter.order ?? 'desc';
    if (order !== 'asc' && order !== 'desc') throw new AuditQueryError('order must be "asc" or "desc"');
    // One tenant: its chain order (sequence), which the filter indexes follow. But a time range that no filter
    // index narrows comes in (occurredAt, id) order, from the (tenant, occurredAt, id) index: in chain order an old
    // range is found by walking the chain back from its newest row. Across tenants: (occurredAt, id) as well.
    const timeBounded = filter.from !== undefined || filter.to !== undefined;
    const narrowed = filter.resource !== undefined || filter.actorId !== undefined || filter.action !== undefined;
    const by = filter.tenantId === undefined || (timeBounded && !narrowed) ? 'time' : 'seq';
    const criteria: AuditRowFilter = {
      tenantId: text('tenantId', filter.tenantId),
      resource: text('resource', filter.resource),
      actorId: text('actorId', filter.actorId),
      correlationId: text('correlationId', filter.correlationId),
      actions: list('action', filter.action),
      results: list('result', filter.result),
      ...timeRange(filter.from, filter.to),
      order,
      by,
      after: filter.cursor === undefined ? undefined : decodeCursor(filter.cursor, order, by),
      // One more than a page tells whether there is a next one.
      limit: limit + 1,
    };
    const rows = await this.find(criteria);
    const items = rows.slice(0, limit).map(toView);
    const last = items[items.length - 1];
    if (rows.length <= limit || !last) return { items };
    const nextCursor =
      by === 'seq'
        ? encodeCursor({ order, by, sequence: last.sequence })
        : encodeCursor({ order, by, occurredAtMs: last.occurredAt.getTime(), id: last.id });
    return { items, nextCursor };
  }

  /**
   * SQLite keeps its query indexes off the appends' commits (internal/query-index-catch-up.ts): every row
   * committed so far goes into them first (while no append commits), then the query reads through them. A row
   * committed after that point is still pending: it shows in the next query, as if it had come after this one.
   * The query itself does not hold up the appends (a slow one would hold every audited read). PostgreSQL: as is.
   */
  private async find(criteria: AuditRowFilter): Promise<AuditLogEntry[]> {
    // In a transaction of the caller's (`runner.run`) the query reads in it, on either database: its own rows too.
    const m = this.runner.manager;
    if (!this.rows.queryIndexesDeferred) return this.rows.find(criteria, { m });
    // There, on SQLite, the caller holds the gate: the catch-up joins its transaction (rolled back with it, the rows
    // are pending again); waiting for the gate would wait for that very transaction.
    if (this.runner.inTransaction()) await this.rows.catchUpQueryIndexes(m);
    else await exclusiveOfSharedConnection(this.chains, () => this.rows.catchUpQueryIndexes());
    return this.rows.find(criteria, { indexedOnly: true, m });
  }
}

function text(field: string, value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !value) throw new AuditQueryError(`${field} must be a non-empty string`);
  // As rows were stored (NUL and lone surrogates as U+FFFD): PostgreSQL cannot even compare a NUL.
  return storable(value);
}

/**
 * Action and result filters: a value no row can hold is refused, not matched against nothing (as an event with it
 * is refused) — a NUL would not even reach PostgreSQL as a comparison, and a typo would read as "no such rows".
 */
function list(field: 'action' | 'result', value: string | string[] | undefined): string[] | undefined {
  if (value === undefined) return undefined;
  const values = Array.isArray(value) ? value : [value];
  const valid = field === 'action' ? (v: unknown) => typeof v === 'string' && ACTION_NAME.test(v) : isResult;
  if (values.length === 0 || values.length > 50 || !values.every(valid)) {
    const one = field === 'action' ? `a name matching ${ACTION_NAME.source}` : `one of ${[...RESULTS].join(', ')}`;
    throw new AuditQueryError(`${field} must be ${one}, or a list of 1..50 of them`);
  }
  return values;
}

/**
 * A range that ends before it starts matches nothing whatever is stored: refused, not answered with an empty page
 * that reads as "nothing happened" (swapped bounds). Equal bounds are an empty range, as `to` is exclusive.
 */
function timeRange(from: Date | undefined, to: Date | undefined): { fromMs?: number; toMs?: number } {
  const fromMs = time('from', from);
  const toMs = time('to', to);
  if (fromMs !== undefined && toMs !== undefined && fromMs > toMs) throw new AuditQueryError('from must not be after to (to is exclusive)');
  return { fromMs, toMs };
}

function time(name: string, d: Date | undefined): number | undefined {
  if (d === undefined) return undefined;
  if (!(d instanceof Date) || Number.isNaN(d.getTime())) throw new AuditQueryError(`${name} must be a valid Date`);
  return d.getTime();
}
