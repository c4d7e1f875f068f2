import { TransactionRunner } from '@app/common';
import type { SelectQueryBuilder } from 'typeorm';
import { CredentialStatus, type CredentialType } from '../credential-type';
import type { CredentialStatistics, ExpiringCredentialRef, LiveCredentialRef } from '../credential.types';
import { CredentialEntity } from '../entities/credential.entity';
import { INTERNAL_CREDENTIAL_TYPE, INTERNAL_PREFIX_LIST } from '../internal-credentials';
import { insertRows } from './plain-insert';
import { CREDENTIAL_COLUMNS, credentialFromRow, type CredentialRow } from './credential-row';

const DAY_MS = 86_400_000;

/** Filters of a tenant's page of live credentials; every value already validated by the caller. */
export interface CredentialPageFilter {
  integrationId?: string;
  connectionId?: string;
  type?: CredentialType;
  /** Effective status: an active credential past its expiry counts as expired. */
  status?: CredentialStatus;
  /** Only `expiresAt` ≤ this (epoch ms). */
  expiringBeforeMs?: number;
  /** Keyset cursor: rows strictly after this (createdAt, id). */
  after?: { createdAtMs: number; id: string };
  /** Internal credentials too (internal-credentials.ts); left out otherwise. */
  includeInternal?: boolean;
  /** "Now" for the effective status (epoch ms). */
  nowMs: number;
  limit: number;
}

/**
 * Filters of a tenant's active credentials by their last change — `rotatedAt`, else `createdAt` — for the rotation lib's
 * due list: every value already validated by the caller. Internal credentials are left out.
 */
export interface LastChangePageFilter {
  /** Only these types (at least one). */
  types: CredentialType[];
  /** Only this integration. */
  integrationId?: string;
  /** None of these integrations. */
  excludeIntegrationIds?: string[];
  /** Only these ids. */
  ids?: string[];
  /** None of these ids. */
  excludeIds?: string[];
  /** Only a last change at or before this (epoch ms). */
  changedAtOrBeforeMs?: number;
  /** Keyset cursor: rows strictly after this (last change, createdAt, id). */
  after?: { changedAtMs: number; createdAtMs: number; id: string };
  /** "Now" for the effective status (epoch ms): an active credential past its expiry is not active. */
  nowMs: number;
  limit: number;
}

/** A validated cross-tenant expiry scan. */
export interface ExpiryScanFilter {
  beforeMs: number;
  type?: CredentialType;
  statuses: CredentialStatus[];
  limit: number;
  after?: { expiresAtMs: number; id: string };
}

type Counted = { key: string; n: string | number };

/** What identifies a credential slot: one live credential per (tenant, integration, connection, type). */
export type SlotKey = Pick<CredentialEntity, 'tenantId' | 'integrationId' | 'connectionId' | 'type'>;

/** What a new credential needs of its slot (`findSlots`). */
export interface CredentialSlot {
  /** The id of the slot's live credential (not deleted), if any. */
  liveId: string | null;
  /**
   * The highest secret generation any row of the slot used, deleted rows included (whatever their `createdAt`: a
   * restore backdates its row); null for a slot never used.
   */
  highestGeneration: number | null;
}

/** A slot no row uses yet. */
export function emptySlot(): CredentialSlot {
  return { liveId: null, highestGeneration: null };
}

/** The map key of `findSlots`'s answer. */
export function slotKey(k: SlotKey): string {
  return JSON.stringify([k.tenantId, k.integrationId, k.connectionId, k.type]);
}

/** Rows per multi-row statement: far below either database's bind-parameter limit. */
const CHUNK = 100;

export function chunks<T>(items: T[], size = CHUNK): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** What `findById` uses of the drivers: better-sqlite3's `Database` (TypeORM's `driver.databaseConnection`) and pg's `Pool` (`driver.master`). */
interface SqliteStatement {
  get(...params: unknown[]): unknown;
}
interface SqliteConnection {
  prepare(sql: string): SqliteStatement;
}
interface PgPool {
  query<R>(sql: string, params: unknown[]): Promise<{ rows: R[] }>;
}

/**
 * A predicate true for a row that is NOT an internal credential (internal-credentials.ts), over the given columns,
 * with its parameters (`param(i)` writes the i-th placeholder). In SQL, so a keyset page is never cut short by rows
 * filtered after its LIMIT. SUBSTR, not LIKE: a prefix is matched as it is.
 */
function notInternal(typeColumn: string, connectionColumn: string, param: (i: number) => string): { sql: string; params: string[] } {
  const prefixes = INTERNAL_PREFIX_LIST.map((p, i) => `SUBSTR(${connectionColumn}, 1, ${p.length}) <> ${param(i + 1)}`);
  return { sql: `(${typeColumn} <> ${param(0)} OR (${prefixes.join(' AND ')}))`, params: [INTERNAL_CREDENTIAL_TYPE, ...INTERNAL_PREFIX_LIST] };
}
const NOT_INTERNAL_RAW = notInternal('"type"', '"connection_id"', () => '?');

/** Statuses `expiring` lists: live, and not revoked. */
const EXPIRING_STATUSES = [CredentialStatus.ACTIVE, CredentialStatus.EXPIRED, CredentialStatus.NEEDS_REAUTH];

/**
 * The hot reads' SQL for one DataSource, written once with `?` placeholders (numbered `$n` for
 * PostgreSQL): no query builder, no entity hydration per request.
 */
class HotSql {
  readonly byId: string;
  private readonly statements = new Map<string, string>();

  constructor(
    private readonly select: string,
    private readonly postgres: boolean,
  ) {
    this.byId = this.dialect(`${select} WHERE "id" = ? AND "tenant_id" = ?`);
  }

  /** A statement of the hot reads' filters (a bounded set of fixed predicates); `limited`: a last `?` is its LIMIT. */
  where(where: string[], orderBy: string, limited = true): string {
    const sql = `${this.select} WHERE ${where.join(' AND ')} ORDER BY ${orderBy}${limited ? ' LIMIT ?' : ''}`;
    let out = this.statements.get(sql);
    if (out === undefined) this.statements.set(sql, (out = this.dialect(sql)));
    return out;
  }

  private dialect(sql: string): string {
    let n = 0;
    return this.postgres ? sql.replace(/\?/g, () => `$${++n}`) : sql;
  }
}

/**
 * Every SQL access to `cv_credentials`. Reads go through `runner.read` (inside a transaction they join
 * it; outside, on SQLite, they never see another caller's uncommitted rows); writes through
 * `runner.run` (they join the caller's transaction, else open their own). The per-request reads
 * (by id, pages, expiring, the connections screen) run fixed raw statements and map rows by hand
 * (`credentialFromRow`).
 */
export class CredentialRepository {
  private hot?: HotSql;
  private byIdStatement?: { connection: SqliteConnection; statement: SqliteStatement };

  constructor(private readonly runner: TransactionRunner) {}

  insert(row: CredentialEntity): Promise<void> {
    return this.runner.run(async () => {
      await this.runner.manager.insert(CredentialEntity, row);
    });
  }

  /**
   * Inserts many rows in fixed multi-row statements (`storeMany`, see `insertRows`); joins the
   * caller's transaction.
   */
  insertMany(rows: CredentialEntity[]): Promise<void> {
    return this.runner.run(() => insertRows(this.runner.manager, CredentialEntity, rows));
  }

  /**
   * `UPDATE … WHERE id AND tenant AND row_version = before.rowVersion AND not deleted`. False when
   * another writer got there first (nothing was written, so the transaction may still commit).
   */
  compareAndSet(before: CredentialEntity, after: CredentialEntity): Promise<boolean> {
    const { id: _id, tenantId: _t, createdAt: _c, createdBy: _b, ...changes } = after;
    return this.runner.run(async () => {
      const result = await this.runner.manager
        .createQueryBuilder()
        .update(CredentialEntity)
        .set(changes)
        .where('id = :id AND tenant_id = :tenantId AND row_version = :rowVersion AND status <> :deleted', {
          id: before.id,
          tenantId: before.tenantId,
          rowVersion: before.rowVersion,
          deleted: CredentialStatus.DELETED,
        })
        .execute();
      return (result.affected ?? 0) === 1;
    });
  }

  /**
   * The row of the tenant, deleted or not: the metadata route's one statement, so without TypeORM's
   * query runner around it (most of this read's cost). better-sqlite3: a statement prepared once, run on
   * the driver's connection by `runner.readSync` (the gate and ambient transaction TypeORM's query would
   * get, without a read scope when the gate is idle). PostgreSQL outside a transaction: one query on the driver's pool, as `manager.query` would
   * send it — the read scope there only refuses writes, and this is a single SELECT.
   */
  async findById(tenantId: string, id: string): Promise<CredentialEntity | null> {
    const row = await this.byIdRow(tenantId, id);
    return row ? credentialFromRow(row) : null;
  }

  private byIdRow(tenantId: string, id: string): Promise<CredentialRow | undefined> {
    const driver = this.runner.dataSource.driver as unknown as { databaseConnection?: SqliteConnection; master?: PgPool };
    const type = this.runner.dataSource.options.type;
    if (type === 'better-sqlite3' && driver.databaseConnection) {
      const byId = this.sqliteById(driver.databaseConnection);
      return Promise.resolve(this.runner.readSync(() => byId.get(id, tenantId) as CredentialRow | undefined));
    }
    if (type === 'postgres' && driver.master && !this.runner.inTransaction()) {
      return driver.master.query<CredentialRow>(this.sql().byId, [id, tenantId]).then((r) => r.rows[0]);
    }
    return this.rawRows(this.sql().byId, [id, tenantId]).then((rows) => rows[0]);
  }

  /** `findSlots` of one slot. */
  async findSlot(key: SlotKey): Promise<CredentialSlot> {
    return (await this.findSlots([key])).get(slotKey(key)) ?? emptySlot();
  }

  /**
   * The slots of many (tenant, integration, connection, type) keys in one statement per chunk, by `slotKey(...)`; a key
   * whose slot has no row is not in the map. The database aggregates each slot (its live id, its highest generation,
   * deleted rows included) from the slot's index range: one row per slot, however many deleted rows it holds (a slot
   * stored and deleted again and again — reconnects, staged secrets — is read on every store).
   */
  async findSlots(keys: SlotKey[]): Promise<Map<string, CredentialSlot>> {
    const slots = new Map<string, CredentialSlot>();
    for (const chunk of chunks(keys)) {
      const rows = await this.runner.read(() => {
        const qb = this.runner.manager
          .createQueryBuilder(CredentialEntity, 'c')
          .select('c.tenantId', 'tenantId')
          .addSelect('c.integrationId', 'integrationId')
          .addSelect('c.connectionId', 'connectionId')
          .addSelect('c.type', 'type')
          // At most one live row per slot (UQ_cv_credentials_live): MAX picks it.
          .addSelect('MAX(CASE WHEN c.status <> :deleted THEN c.id END)', 'liveId')
          .addSelect('MAX(c.vaultGeneration)', 'highestGeneration')
          .setParameter('deleted', CredentialStatus.DELETED);
        const slotsOf = chunk.map((_, i) => `(c.tenantId = :t${i} AND c.integrationId = :i${i} AND c.connectionId = :c${i} AND c.type = :y${i})`);
        const params = Object.fromEntries(chunk.flatMap((k, i) => [[`t${i}`, k.tenantId], [`i${i}`, k.integrationId], [`c${i}`, k.connectionId], [`y${i}`, k.type]]));
        return qb
          .where(`(${slotsOf.join(' OR ')})`, params)
          .groupBy('c.tenantId')
          .addGroupBy('c.integrationId')
          .addGroupBy('c.connectionId')
          .addGroupBy('c.type')
          .getRawMany<SlotKey & { liveId: string | null; highestGeneration: string | number }>();
      });
      for (const r of rows) slots.set(slotKey(r), { liveId: r.liveId ?? null, highestGeneration: Number(r.highestGeneration) });
    }
    return slots;
  }

  /** The live row of (integration, connection, type), if any. */
  findLive(tenantId: string, integrationId: string, connectionId: string, type: CredentialType): Promise<CredentialEntity | null> {
    return this.runner.read(() =>
      this.live(tenantId)
        .andWhere('c.integrationId = :integrationId AND c.connectionId = :connectionId AND c.type = :type', { integrationId, connectionId, type })
        .getOne(),
    );
  }

  /** Ids of the live credentials of one connection. */
  async liveIdsOfConnection(tenantId: string, integrationId: string, connectionId: string): Promise<string[]> {
    const rows = await this.runner.read(() =>
      this.live(tenantId)
        .select(['c.id'])
        .andWhere('c.integrationId = :integrationId AND c.connectionId = :connectionId', { integrationId, connectionId })
        .getMany(),
    );
    return rows.map((r) => r.id);
  }

  /** Live rows, filtered, oldest first by (createdAt, id), at most `limit`. */
  async page(tenantId: string, f: CredentialPageFilter): Promise<CredentialEntity[]> {
    const where = ['"tenant_id" = ?', '"status" <> ?'];
    const params: unknown[] = [tenantId, CredentialStatus.DELETED];
    const and = (predicate: string, ...values: unknown[]) => {
      where.push(predicate);
      params.push(...values);
    };
    if (f.integrationId) and('"integration_id" = ?', f.integrationId);
    if (f.connectionId) and('"connection_id" = ?', f.connectionId);
    if (f.type) and('"type" = ?', f.type);
    if (!f.includeInternal) and(NOT_INTERNAL_RAW.sql, ...NOT_INTERNAL_RAW.params);
    if (f.expiringBeforeMs !== undefined) and('"expires_at" <= ?', f.expiringBeforeMs);
    if (f.status === CredentialStatus.EXPIRED) {
      and('("status" = ? OR ("status" = ? AND "expires_at" IS NOT NULL AND "expires_at" <= ?))', CredentialStatus.EXPIRED, CredentialStatus.ACTIVE, f.nowMs);
    } else if (f.status === CredentialStatus.ACTIVE) {
      and('"status" = ? AND ("expires_at" IS NULL OR "expires_at" > ?)', CredentialStatus.ACTIVE, f.nowMs);
    } else if (f.status) {
      and('"status" = ?', f.status);
    }
    // The same as (createdAt, id) > cursor; the `>=` bound lets the index start at the cursor.
    if (f.after) and('"created_at" >= ? AND ("created_at" > ? OR "id" > ?)', f.after.createdAtMs, f.after.createdAtMs, f.after.id);
    const rows = await this.rawRows(this.sql().where(where, '"created_at" ASC, "id" ASC'), [...params, f.limit]);
    return rows.map(credentialFromRow);
  }

  /**
   * Active rows (effective status) of the filter, the least recently changed first: keyset-ordered by (last change,
   * createdAt, id), the last change being the expression IDX_cv_credentials_tenant_type_changed indexes (migration
   * 1970000000000) after (tenant_id, type). Lists travel as one JSON parameter: one statement whatever their length.
   */
  async pageByLastChange(tenantId: string, f: LastChangePageFilter): Promise<CredentialEntity[]> {
    const changed = 'COALESCE("rotated_at", "created_at")';
    // The status as a literal, as the index's WHERE says it: a bound parameter would not show the planner it matches.
    const where = ['"tenant_id" = ?', `"status" = '${CredentialStatus.ACTIVE}'`, '("expires_at" IS NULL OR "expires_at" > ?)', NOT_INTERNAL_RAW.sql];
    const params: unknown[] = [tenantId, f.nowMs, ...NOT_INTERNAL_RAW.params];
    const postgres = this.runner.dataSource.driver.options.type === 'postgres';
    const and = (predicate: string, ...values: unknown[]) => {
      where.push(predicate);
      params.push(...values);
    };
    const inList = (column: string, values: readonly string[], negate: boolean) =>
      and(postgres ? `${negate ? 'NOT ' : ''}(${column} = ANY(ARRAY(SELECT json_array_elements_text(?::json))))` : `${column} ${negate ? 'NOT IN' : 'IN'} (SELECT value FROM json_each(?))`, JSON.stringify(values));
    if (f.types.length === 1) and('"type" = ?', f.types[0]);
    else inList('"type"', f.types, false);
    if (f.integrationId !== undefined) and('"integration_id" = ?', f.integrationId);
    if (f.excludeIntegrationIds?.length) inList('"integration_id"', f.excludeIntegrationIds, true);
    if (f.ids !== undefined) inList('"id"', f.ids, false);
    if (f.excludeIds?.length) inList('"id"', f.excludeIds, true);
    if (f.changedAtOrBeforeMs !== undefined) and(`${changed} <= ?`, f.changedAtOrBeforeMs);
    if (f.after) {
      const { changedAtMs: c, createdAtMs: t, id } = f.after;
      // The same as (last change, createdAt, id) > cursor; the `>=` bound lets the index start at the cursor.
      and(`${changed} >= ? AND (${changed} > ? OR "created_at" > ? OR ("created_at" = ? AND "id" > ?))`, c, c, t, t, id);
    }
    const rows = await this.rawRows(this.sql().where(where, `${changed} ASC, "created_at" ASC, "id" ASC`), [...params, f.limit]);
    return rows.map(credentialFromRow);
  }

  /** Live rows (active, expired, needing re-auth) with `expiresAt` ≤ `horizonMs`, soonest first; internal ones only when asked. */
  async expiring(tenantId: string, horizonMs: number, limit: number, includeInternal = false): Promise<CredentialEntity[]> {
    const where = ['"tenant_id" = ?', '"status" IN (?, ?, ?)', '"expires_at" IS NOT NULL', '"expires_at" <= ?'];
    const params: unknown[] = [tenantId, ...EXPIRING_STATUSES, horizonMs];
    if (!includeInternal) {
      where.push(NOT_INTERNAL_RAW.sql);
      params.push(...NOT_INTERNAL_RAW.params);
    }
    const rows = await this.rawRows(this.sql().where(where, '"expires_at" ASC, "id" ASC'), [...params, limit]);
    return rows.map(credentialFromRow);
  }

  /** Every live row of the tenant, by (integration, connection, type): the connections screen; internal ones only when asked. */
  async connectionRows(tenantId: string, includeInternal = false): Promise<CredentialEntity[]> {
    const where = ['"tenant_id" = ?', '"status" <> ?'];
    const params: unknown[] = [tenantId, CredentialStatus.DELETED];
    if (!includeInternal) {
      where.push(NOT_INTERNAL_RAW.sql);
      params.push(...NOT_INTERNAL_RAW.params);
    }
    const rows = await this.rawRows(this.sql().where(where, '"integration_id" ASC, "connection_id" ASC, "type" ASC', false), params);
    return rows.map(credentialFromRow);
  }

  /** Counts of the tenant's live credentials from GROUP BYs on the indexed table; internal ones only when asked. */
  async statistics(tenantId: string, nowMs: number, includeInternal = false): Promise<CredentialStatistics> {
    const notInternalQb = notInternal('c.type', 'c.connectionId', (i) => `:internal${i}`);
    const base = () => {
      const qb = this.live(tenantId);
      return includeInternal ? qb : qb.andWhere(notInternalQb.sql, Object.fromEntries(notInternalQb.params.map((v, i) => [`internal${i}`, v])));
    };
    const [byType, byIntegration, byStatus, expiry] = await this.runner.read(() =>
      Promise.all([
        base().select('c.type', 'key').addSelect('COUNT(*)', 'n').groupBy('c.type').getRawMany<Counted>(),
        base().select('c.integrationId', 'key').addSelect('COUNT(*)', 'n').groupBy('c.integrationId').getRawMany<Counted>(),
        base()
          .select(`CASE WHEN c.status = :active AND c.expiresAt IS NOT NULL AND c.expiresAt <= :now THEN :expired ELSE c.status END`, 'key')
          .addSelect('COUNT(*)', 'n')
          .setParameters({ active: CredentialStatus.ACTIVE, expired: CredentialStatus.EXPIRED, now: nowMs })
          .groupBy('key')
          .getRawMany<Counted>(),
        base()
          .select('SUM(CASE WHEN c.expiresAt > :now AND c.expiresAt <= :d7 THEN 1 ELSE 0 END)', 'd7')
          .addSelect('SUM(CASE WHEN c.expiresAt > :now AND c.expiresAt <= :d30 THEN 1 ELSE 0 END)', 'd30')
          .addSelect('SUM(CASE WHEN c.expiresAt <= :now THEN 1 ELSE 0 END)', 'expired')
          .addSelect('COUNT(*)', 'total')
          .setParameters({ now: nowMs, d7: nowMs + 7 * DAY_MS, d30: nowMs + 30 * DAY_MS })
          .getRawOne<{ d7: unknown; d30: unknown; expired: unknown; total: unknown }>(),
      ]),
    );
    const toRecord = (rows: Counted[]) => Object.fromEntries(rows.map((r) => [r.key, Number(r.n)]));
    return {
      total: Number(expiry?.total ?? 0),
      byType: toRecord(byType),
      byIntegration: toRecord(byIntegration),
      byStatus: toRecord(byStatus),
      expiringWithin7Days: Number(expiry?.d7 ?? 0),
      expiringWithin30Days: Number(expiry?.d30 ?? 0),
      expired: Number(expiry?.expired ?? 0),
    };
  }

  /** Credentials of EVERY tenant expiring before `beforeMs`, soonest first, keyset-paged by (expiresAt, id). */
  async scanExpiring(f: ExpiryScanFilter): Promise<ExpiringCredentialRef[]> {
    // Raw rows, not entities: a whole-table scan reads many pages, and hydrating entities was most of a page's time.
    const rows = await this.runner.read(() => {
      const qb = this.runner.manager
        .createQueryBuilder(CredentialEntity, 'c')
        .select('c.id', 'id')
        .addSelect('c.tenantId', 'tenantId')
        .addSelect('c.integrationId', 'integrationId')
        .addSelect('c.connectionId', 'connectionId')
        .addSelect('c.type', 'type')
        .addSelect('c.expiresAt', 'expiresAt')
        .where('c.status IN (:...statuses)', { statuses: f.statuses })
        .andWhere('c.expiresAt IS NOT NULL AND c.expiresAt < :before', { before: f.beforeMs });
      if (f.type) qb.andWhere('c.type = :type', { type: f.type });
      // The same as (expiresAt, id) > cursor; the `>=` bound lets the index start at the cursor, not scan up to it.
      if (f.after) qb.andWhere('c.expiresAt >= :aAt AND (c.expiresAt > :aAt OR c.id > :aId)', { aAt: f.after.expiresAtMs, aId: f.after.id });
      return qb
        .orderBy('c.expiresAt', 'ASC')
        .addOrderBy('c.id', 'ASC')
        .limit(f.limit)
        .getRawMany<Omit<ExpiringCredentialRef, 'expiresAt'> & { expiresAt: string | number }>();
    });
    // expires_at is epoch ms in a BIGINT: a string from PostgreSQL, a number from SQLite.
    return rows.map((r) => ({ ...r, expiresAt: new Date(Number(r.expiresAt)) }));
  }

  /** Credentials of every tenant not deleted, of `type`, whose connection id starts with `connectionIdPrefix`. */
  async countLiveByConnectionPrefix(type: CredentialType, connectionIdPrefix: string): Promise<number> {
    const column = this.runner.dataSource.driver.options.type === 'postgres' ? 'c.connectionId COLLATE "C"' : 'c.connectionId';
    const row = await this.runner.read(() =>
      this.runner.manager
        .createQueryBuilder(CredentialEntity, 'c')
        .select('COUNT(*)', 'n')
        // The literal, as in the partial index IDX_cv_credentials_type_connection's predicate: SQLite uses that index
        // only for a query whose WHERE has the same term.
        .where(`c.status <> '${CredentialStatus.DELETED}'`)
        .andWhere('c.type = :type', { type })
        // A range of that index: exact for a prefix in byte order, which the index keeps (PostgreSQL: collation "C").
        .andWhere(`${column} >= :from AND ${column} < :to`, { from: connectionIdPrefix, to: nextInByteOrder(connectionIdPrefix) })
        .getRawOne<{ n: string | number }>(),
    );
    return Number(row?.n ?? 0);
  }

  /** Live credentials of every tenant by id (keyset), optionally last changed before `changedBeforeMs`. */
  async scanLive(f: { statuses: CredentialStatus[]; changedBeforeMs?: number; limit: number; afterId?: string }): Promise<LiveCredentialRef[]> {
    const rows = await this.runner.read(() => {
      const qb = this.runner.manager.createQueryBuilder(CredentialEntity, 'c').where('c.status IN (:...statuses)', { statuses: f.statuses });
      if (f.changedBeforeMs !== undefined) qb.andWhere('COALESCE(c.rotatedAt, c.createdAt) < :before', { before: f.changedBeforeMs });
      if (f.afterId) qb.andWhere('c.id > :afterId', { afterId: f.afterId });
      return qb.orderBy('c.id', 'ASC').limit(f.limit).getMany();
    });
    return rows.map((r) => ({
      id: r.id,
      tenantId: r.tenantId,
      integrationId: r.integrationId,
      connectionId: r.connectionId,
      type: r.type,
      version: r.currentVersion,
      rowVersion: r.rowVersion,
      status: r.status,
      expiresAt: r.expiresAt,
      changedAt: r.rotatedAt ?? r.createdAt,
    }));
  }

  /** A raw SELECT through the runner's manager: joins the ambient transaction; outside one, SQLite's read gate applies. */
  private rawRows(sql: string, params: unknown[]): Promise<CredentialRow[]> {
    return this.runner.read(() => this.runner.manager.query(sql, params) as Promise<CredentialRow[]>);
  }

  /** `byId` prepared on `connection` (again when the DataSource reconnected: a statement belongs to its connection). */
  private sqliteById(connection: SqliteConnection): SqliteStatement {
    if (this.byIdStatement?.connection !== connection) this.byIdStatement = { connection, statement: connection.prepare(this.sql().byId) };
    return this.byIdStatement.statement;
  }

  private sql(): HotSql {
    if (!this.hot) {
      const ds = this.runner.dataSource;
      const meta = ds.getMetadata(CredentialEntity);
      const table = [meta.schema, meta.tableName].filter(Boolean).map((n) => ds.driver.escape(n!)).join('.');
      this.hot = new HotSql(`SELECT ${CREDENTIAL_COLUMNS} FROM ${table}`, ds.driver.options.type === 'postgres');
    }
    return this.hot;
  }

  private live(tenantId: string): SelectQueryBuilder<CredentialEntity> {
    return this.runner.manager
      .createQueryBuilder(CredentialEntity, 'c')
      .where('c.tenantId = :tenantId', { tenantId })
      .andWhere('c.status <> :deletedStatus', { deletedStatus: CredentialStatus.DELETED });
  }
}

/** The least string above every string that starts with `prefix`, in byte order: its last character, one up (ASCII: the identifier pattern). */
function nextInByteOrder(prefix: string): string {
  return prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1);
}
