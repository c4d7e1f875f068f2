import { TransactionRunner } from '@app/common';
import { CredentialStatus, type CredentialType } from '../credential-type';
import { CredentialEntity } from '../entities/credential.entity';
import { insertRows } from './plain-insert';
import { credentialFromRow, type CredentialRow } from './credential-row';
import { HotSql, liveRows, rawRows } from './credential-sql';

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
 * One credential's row and its slot in `cv_credentials`: inserts, compare-and-set, the reads by id (the hot one,
 * `findById`), by slot and by connection. A tenant's lists and counts are `CredentialListRepository`'s, the scans of
 * every tenant `CredentialScanRepository`'s; how all three read and write: credential-sql.ts.
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
    return rawRows(this.runner, this.sql().byId, [id, tenantId]).then((rows) => rows[0]);
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
      liveRows(this.runner, tenantId)
        .andWhere('c.integrationId = :integrationId AND c.connectionId = :connectionId AND c.type = :type', { integrationId, connectionId, type })
        .getOne(),
    );
  }

  /** Ids of the live credentials of one connection. */
  async liveIdsOfConnection(tenantId: string, integrationId: string, connectionId: string): Promise<string[]> {
    const rows = await this.runner.read(() =>
      liveRows(this.runner, tenantId)
        .select(['c.id'])
        .andWhere('c.integrationId = :integrationId AND c.connectionId = :connectionId', { integrationId, connectionId })
        .getMany(),
    );
    return rows.map((r) => r.id);
  }

  /** `byId` prepared on `connection` (again when the DataSource reconnected: a statement belongs to its connection). */
  private sqliteById(connection: SqliteConnection): SqliteStatement {
    if (this.byIdStatement?.connection !== connection) this.byIdStatement = { connection, statement: connection.prepare(this.sql().byId) };
    return this.byIdStatement.statement;
  }

  private sql(): HotSql {
    return (this.hot ??= HotSql.of(this.runner.dataSource));
  }
}
