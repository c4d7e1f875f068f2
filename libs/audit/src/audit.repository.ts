import type { PlainInsertOptions } from '@app/common';
import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, EntityManager } from 'typeorm';
import { AuditLogEntry } from './entities/audit-log-entry.entity';
import { AuditAction } from './interfaces/audit-event.interface';
import { AuditRawRow, ChainRow, chainPageSql, chainRowFromRaw } from './internal/audit-row';
import type { CursorPosition } from './internal/cursor';
import { INDEXED_ROWS, catchUpAll, queryIndexesDeferred } from './internal/query-index-catch-up';
import { InsertableRow, insertAuditRows } from './internal/row-insert';
import { uuidV7Floor } from './internal/uuid-v7';

interface HeadRow {
  id: string;
  sequence: string | number;
  hash: string;
}

const toHead = (r: HeadRow): ChainHead => ({ id: r.id, sequence: Number(r.sequence), hash: r.hash });

interface ChainStatements {
  /** One chain's newest row. */
  head: string;
  /** The newest row of each of several chains (PostgreSQL: one statement); null on SQLite. */
  heads: string | null;
  /** The tenants with rows, sorted: a loose scan of the chain index, one probe per tenant. */
  tenants: string;
  /** The sequence of a chain's first row, in chain order, at or after an instant. */
  firstAtOrAfter: string;
}

const chainStatements = new WeakMap<DataSource, ChainStatements>();

/**
 * Plain SQL on the (tenant, sequence) index, names from the entity metadata. Each reads a few index
 * entries, however long the chains: TypeORM's builder cost more than the lookups, and an aggregate over
 * a chain would read all of it.
 */
function chainSql(ds: DataSource): ChainStatements {
  let sql = chainStatements.get(ds);
  if (!sql) {
    const meta = ds.getMetadata(AuditLogEntry);
    const col = (p: keyof AuditLogEntry) => ds.driver.escape(meta.findColumnWithPropertyName(p)!.databaseName);
    const table = meta.tablePath.split('.').map((n) => ds.driver.escape(n)).join('.');
    const select = `${col('id')} AS "id", ${col('sequence')} AS "sequence", ${col('hash')} AS "hash"`;
    const order = `ORDER BY ${col('sequence')} DESC LIMIT 1`;
    const postgres = ds.options.type === 'postgres';
    const [p1, p2] = postgres ? ['$1', '$2'] : ['?', '?'];
    const tenant = col('tenantId');
    sql = {
      head: `SELECT ${select} FROM ${table} WHERE ${tenant} = ${p1} ${order}`,
      heads: postgres
        ? `SELECT t.tid AS "tenantId", h.* FROM unnest($1::varchar[]) AS t(tid) CROSS JOIN LATERAL ` +
          `(SELECT ${select} FROM ${table} WHERE ${tenant} = t.tid ${order}) h`
        : null,
      // DISTINCT would read every row's index entry (PostgreSQL has no skip scan); this seeks from tenant to tenant.
      tenants:
        `WITH RECURSIVE t(tid) AS (SELECT MIN(${tenant}) FROM ${table} UNION ALL ` +
        `SELECT (SELECT MIN(${tenant}) FROM ${table} WHERE ${tenant} > t.tid) FROM t WHERE t.tid IS NOT NULL) ` +
        `SELECT tid AS "tenantId" FROM t WHERE tid IS NOT NULL ORDER BY tid`,
      firstAtOrAfter:
        `SELECT ${col('sequence')} AS "sequence" FROM ${table} WHERE ${tenant} = ${p1} AND ${col('occurredAt')} >= ${p2} ` +
        `ORDER BY ${col('sequence')} ASC LIMIT 1`,
    };
    chainStatements.set(ds, sql);
  }
  return sql;
}

/** A chain's newest row. */
export interface ChainHead {
  id: string;
  sequence: number;
  hash: string;
}

/** What a retention checkpoint records, as stored (callers check the values). */
export interface CheckpointDetails {
  prunedThroughSequence: number;
  prunedThroughHash: string;
}

export interface Checkpoint {
  id: string;
  sequence: number;
  details: Partial<CheckpointDetails>;
}

/** A validated query: every filter already checked by its caller. */
export interface AuditRowFilter {
  tenantId?: string;
  resource?: string;
  actorId?: string;
  correlationId?: string;
  actions?: string[];
  results?: string[];
  /** Inclusive, epoch ms. */
  fromMs?: number;
  /** Exclusive, epoch ms. */
  toMs?: number;
  order: 'asc' | 'desc';
  /** `seq`: one tenant's chain order; `time`: (occurredAt, id), which is id order (one tenant's or across tenants). */
  by: 'seq' | 'time';
  /** Rows strictly after this position (in `order`). */
  after?: CursorPosition;
  limit: number;
}

/**
 * Every read and write of `cv_audit_log` and its retention checkpoints. Methods that take a manager
 * run in that transaction (a chain writer's, or a consistent-read snapshot); without one, on the
 * DataSource's default manager.
 */
@Injectable()
export class AuditRepository {
  /** SQLite: the query indexes hold only rows caught up (internal/query-index-catch-up.ts). */
  readonly queryIndexesDeferred: boolean;

  constructor(@InjectDataSource() private readonly dataSource: DataSource) {
    this.queryIndexesDeferred = queryIndexesDeferred(dataSource);
  }

  /** SQLite: every pending row into the query indexes (in `m`'s transaction, or as one statement). */
  catchUpQueryIndexes(m: EntityManager = this.dataSource.manager): Promise<void> {
    return this.queryIndexesDeferred ? catchUpAll(m) : Promise.resolve();
  }

  /**
   * The chain's newest row, or null for an empty chain: plain SQL on the (tenant, sequence) index,
   * read once per appended batch (TypeORM's find builder cost more than the lookup).
   */
  async head(tenantId: string, m: EntityManager = this.dataSource.manager): Promise<ChainHead | null> {
    const [r] = (await m.query(chainSql(m.connection).head, [tenantId])) as HeadRow[];
    return r ? toHead(r) : null;
  }

  /** Whether the row with this id is in the log (its primary key), read in `m`'s transaction. */
  async exists(id: string, m: EntityManager): Promise<boolean> {
    return (await m.getRepository(AuditLogEntry).count({ where: { id } })) > 0;
  }

  /**
   * The newest row of each chain among `tenantIds` (an empty chain has no entry), by bound-parameter
   * SQL on the (tenant, sequence) index: one statement for all of them on PostgreSQL, one cached
   * statement per chain on SQLite (in-process, so no round trips). For `AuditWriter.recordMany`.
   */
  async heads(tenantIds: string[], m: EntityManager): Promise<Map<string, ChainHead>> {
    const { head: one, heads: many } = chainSql(m.connection);
    const found = new Map<string, ChainHead>();
    if (many) {
      const rows = (await m.query(many, [tenantIds])) as Array<HeadRow & { tenantId: string }>;
      for (const r of rows) found.set(r.tenantId, toHead(r));
      return found;
    }
    for (const tenantId of tenantIds) {
      const [r] = (await m.query(one, [tenantId])) as HeadRow[];
      if (r) found.set(tenantId, toHead(r));
    }
    return found;
  }

  /** Inserts rows already linked and hashed, with plain multi-row SQL (see internal/row-insert.ts). */
  insert(rows: InsertableRow[], m: EntityManager, options?: PlainInsertOptions): Promise<void> {
    return insertAuditRows(m, rows, options);
  }

  /** Tenants with rows, sorted (by the database's collation). */
  async tenants(): Promise<string[]> {
    const rows = (await this.dataSource.query(chainSql(this.dataSource).tenants)) as Array<{ tenantId: string }>;
    return rows.map((r) => r.tenantId);
  }

  /**
   * Rows matching `f`, in its order, at most `f.limit`, read with `m` (a caller's transaction). `indexedOnly` (SQLite, right after
   * `catchUpQueryIndexes` with no append in between): lets SQLite use its partial query indexes.
   */
  find(f: AuditRowFilter, { indexedOnly = false, m = this.dataSource.manager }: { indexedOnly?: boolean; m?: EntityManager } = {}): Promise<AuditLogEntry[]> {
    const qb = m.getRepository(AuditLogEntry).createQueryBuilder('a');
    if (indexedOnly) qb.where(INDEXED_ROWS);
    for (const field of ['tenantId', 'resource', 'actorId', 'correlationId'] as const) {
      if (f[field] !== undefined) qb.andWhere(`a.${field} = :${field}`, { [field]: f[field] });
    }
    if (f.actions) qb.andWhere('a.action IN (:...actions)', { actions: f.actions });
    if (f.results) qb.andWhere('a.result IN (:...results)', { results: f.results });
    if (f.fromMs !== undefined) qb.andWhere('a.occurredAt >= :from', { from: f.fromMs });
    if (f.toMs !== undefined) qb.andWhere('a.occurredAt < :to', { to: f.toMs });
    const cmp = f.order === 'asc' ? '>' : '<';
    const dir = f.order === 'asc' ? 'ASC' : 'DESC';
    if (f.by === 'seq') {
      if (f.after?.by === 'seq') qb.andWhere(`a.sequence ${cmp} :cseq`, { cseq: f.after.sequence });
      return qb.orderBy('a.sequence', dir).limit(f.limit).getMany();
    }
    if (f.tenantId !== undefined) {
      // One tenant's time range: its (tenant, occurredAt, id) index, in the order the ids would give.
      if (f.after?.by === 'time') qb.andWhere(`(a.occurredAt, a.id) ${cmp} (:cms, :cid)`, { cms: f.after.occurredAtMs, cid: f.after.id });
      return qb.orderBy('a.occurredAt', dir).addOrderBy('a.id', dir).limit(f.limit).getMany();
    }
    // Across tenants the primary key is the order: a row's id is UUIDv7 of its occurredAt (linkRows), so
    // id order is (occurredAt, id) order and a time range is also an id range — no index of its own.
    const idFrom = f.fromMs === undefined ? undefined : uuidV7Floor(f.fromMs);
    const idTo = f.toMs === undefined ? undefined : uuidV7Floor(f.toMs);
    if (idFrom !== undefined) qb.andWhere('a.id >= :idFrom', { idFrom });
    if (idTo !== undefined) qb.andWhere('a.id < :idTo', { idTo });
    if (f.after?.by === 'time') qb.andWhere(`a.id ${cmp} :cid`, { cid: f.after.id });
    return qb.orderBy('a.id', dir).limit(f.limit).getMany();
  }

  /** The chain's oldest remaining sequence, or undefined for an empty chain. */
  async firstSequence(tenantId: string, m: EntityManager): Promise<number | undefined> {
    const first = await m.getRepository(AuditLogEntry).findOne({ select: { sequence: true }, where: { tenantId }, order: { sequence: 'ASC' } });
    return first?.sequence;
  }

  /**
   * Up to `size` whole rows of the chain after sequence `after`, in chain order, for verify: fixed
   * plain SQL mapped by hand, details kept as their stored canonical JSON text (see internal/audit-row.ts).
   */
  async chainPage(tenantId: string, after: number, size: number, m: EntityManager): Promise<ChainRow[]> {
    const raw = (await m.query(chainPageSql(m.connection), [tenantId, after, size])) as AuditRawRow[];
    const out: ChainRow[] = new Array(raw.length);
    for (let i = 0; i < raw.length; i++) out[i] = chainRowFromRaw(raw[i]);
    return out;
  }

  /** The row at `sequence` of the chain. */
  rowAt(tenantId: string, sequence: number, m: EntityManager): Promise<ChainHead | null> {
    return m.getRepository(AuditLogEntry).findOne({ select: { id: true, sequence: true, hash: true }, where: { tenantId, sequence } });
  }

  /** The chain's row carrying `hash` (what a `previousHash` points at). */
  rowWithHash(tenantId: string, hash: string, m: EntityManager): Promise<ChainHead | null> {
    return m.getRepository(AuditLogEntry).findOne({ select: { id: true, sequence: true, hash: true }, where: { tenantId, hash } });
  }

  /**
   * The chain's latest retention checkpoint, by the (tenant, action) index. SQLite: only rows in the query
   * indexes, so `catchUpQueryIndexes` (under the shared connection's gate) first, with no checkpoint written
   * in between (the caller holds the maintenance mutex, as verify does: retention writes them under it).
   */
  async latestCheckpoint(tenantId: string, m: EntityManager): Promise<Checkpoint | undefined> {
    const qb = m.getRepository(AuditLogEntry).createQueryBuilder('a');
    if (this.queryIndexesDeferred) qb.where(INDEXED_ROWS);
    const cp = await qb
      .andWhere('a.tenantId = :tenantId AND a.action = :action', { tenantId, action: AuditAction.RETENTION_CHECKPOINT })
      .orderBy('a.sequence', 'DESC')
      .limit(1)
      .getOne();
    return cp ? { id: cp.id, sequence: cp.sequence, details: (cp.details ?? {}) as Partial<CheckpointDetails> } : undefined;
  }

  /**
   * The chain's first sequence and its first row (in chain order) at or after `cutoffMs`, null when
   * every row is older; undefined for an empty chain. The rows before the latter are what retention may
   * delete. Both walk the chain index from its oldest row, so a run reads about the rows it prunes, not
   * the whole chain: retention holds the chain's lock meanwhile, and with it the tenant's audited reads.
   */
  async pruneBounds(tenantId: string, cutoffMs: number, m: EntityManager): Promise<{ first: number; firstKept: number | null } | undefined> {
    const first = await this.firstSequence(tenantId, m);
    if (first === undefined) return undefined;
    const [kept] = (await m.query(chainSql(m.connection).firstAtOrAfter, [tenantId, cutoffMs])) as Array<{ sequence: string | number }>;
    return { first, firstKept: kept ? Number(kept.sequence) : null };
  }

  /** Deletes the chain's rows up to and including `through`; the count deleted when the driver reports it. */
  async deleteThrough(tenantId: string, through: number, m: EntityManager): Promise<number | undefined> {
    const result = await m
      .getRepository(AuditLogEntry)
      .createQueryBuilder()
      .delete()
      .where('tenant_id = :tenantId AND sequence <= :through', { tenantId, through })
      .execute();
    return result.affected ?? undefined;
  }
}
