import { TransactionRunner } from '@app/common';
import type { SelectQueryBuilder } from 'typeorm';
import { CredentialStatus, type CredentialType } from '../credential-type';
import type { CredentialStatistics, ExpiringCredentialRef, LiveCredentialRef } from '../credential.types';
import { CredentialEntity } from '../entities/credential.entity';

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
  /** "Now" for the effective status (epoch ms). */
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
export type NewestKey = Pick<CredentialEntity, 'tenantId' | 'integrationId' | 'connectionId' | 'type'>;

/** The map key of `findNewestMany`'s answer. */
export function newestKey(k: NewestKey): string {
  return JSON.stringify([k.tenantId, k.integrationId, k.connectionId, k.type]);
}

/** Rows per multi-row statement: far below either database's bind-parameter limit. */
const CHUNK = 100;

export function chunks<T>(items: T[], size = CHUNK): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/**
 * Every SQL access to `cv_credentials`. Reads go through `runner.read` (inside a transaction they join
 * it; outside, on SQLite, they never see another caller's uncommitted rows); writes through
 * `runner.run` (they join the caller's transaction, else open their own).
 */
export class CredentialRepository {
  constructor(private readonly runner: TransactionRunner) {}

  insert(row: CredentialEntity): Promise<void> {
    return this.runner.run(async () => {
      await this.runner.manager.insert(CredentialEntity, row);
    });
  }

  /**
   * Inserts many rows in multi-row statements (`storeMany`); joins the caller's transaction. Nothing
   * is read back into the entities: TypeORM would merge re-selected defaults into them by position.
   */
  insertMany(rows: CredentialEntity[]): Promise<void> {
    return this.runner.run(async () => {
      for (const chunk of chunks(rows)) await this.runner.manager.createQueryBuilder().insert().into(CredentialEntity).values(chunk).updateEntity(false).execute();
    });
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

  /** The row of the tenant, deleted or not. */
  findById(tenantId: string, id: string): Promise<CredentialEntity | null> {
    return this.runner.read(() => this.runner.manager.findOneBy(CredentialEntity, { id, tenantId }));
  }

  /** The newest row of (integration, connection, type), deleted or not. */
  findNewest(tenantId: string, integrationId: string, connectionId: string, type: CredentialType): Promise<CredentialEntity | null> {
    return this.runner.read(() =>
      this.runner.manager.findOne(CredentialEntity, { where: { tenantId, integrationId, connectionId, type }, order: { createdAt: 'DESC' } }),
    );
  }

  /**
   * `findNewest` of many (tenant, integration, connection, type) keys in one statement per chunk:
   * the newest row of each key that has one, by `newestKey(...)`.
   */
  async findNewestMany(keys: NewestKey[]): Promise<Map<string, CredentialEntity>> {
    const newest = new Map<string, CredentialEntity>();
    for (const chunk of chunks(keys)) {
      const rows = await this.runner.read(() =>
        this.runner.manager.find(CredentialEntity, {
          where: chunk.map(({ tenantId, integrationId, connectionId, type }) => ({ tenantId, integrationId, connectionId, type })),
        }),
      );
      for (const r of rows) {
        const key = newestKey(r);
        const seen = newest.get(key);
        if (!seen || seen.createdAt.getTime() < r.createdAt.getTime()) newest.set(key, r);
      }
    }
    return newest;
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
  page(tenantId: string, f: CredentialPageFilter): Promise<CredentialEntity[]> {
    return this.runner.read(() => {
      const qb = this.live(tenantId);
      if (f.integrationId) qb.andWhere('c.integrationId = :integrationId', { integrationId: f.integrationId });
      if (f.connectionId) qb.andWhere('c.connectionId = :connectionId', { connectionId: f.connectionId });
      if (f.type) qb.andWhere('c.type = :type', { type: f.type });
      if (f.expiringBeforeMs !== undefined) qb.andWhere('c.expiresAt <= :before', { before: f.expiringBeforeMs });
      if (f.status) whereEffectiveStatus(qb, f.status, f.nowMs);
      if (f.after) {
        // The same as (createdAt, id) > cursor; the `>=` bound lets the index start at the cursor.
        qb.andWhere('c.createdAt >= :cAt AND (c.createdAt > :cAt OR c.id > :cId)', { cAt: f.after.createdAtMs, cId: f.after.id });
      }
      return qb.orderBy('c.createdAt', 'ASC').addOrderBy('c.id', 'ASC').limit(f.limit).getMany();
    });
  }

  /** Live rows (active, expired, needing re-auth) with `expiresAt` ≤ `horizonMs`, soonest first. */
  expiring(tenantId: string, horizonMs: number, limit: number): Promise<CredentialEntity[]> {
    return this.runner.read(() =>
      this.live(tenantId)
        .andWhere('c.expiresAt IS NOT NULL AND c.expiresAt <= :horizon', { horizon: horizonMs })
        .andWhere('c.status IN (:...statuses)', { statuses: [CredentialStatus.ACTIVE, CredentialStatus.EXPIRED, CredentialStatus.NEEDS_REAUTH] })
        .orderBy('c.expiresAt', 'ASC')
        .addOrderBy('c.id', 'ASC')
        .limit(limit)
        .getMany(),
    );
  }

  /** Every live row of the tenant, by (integration, connection, type): the connections screen. */
  connectionRows(tenantId: string): Promise<CredentialEntity[]> {
    return this.runner.read(() =>
      this.live(tenantId).orderBy('c.integrationId', 'ASC').addOrderBy('c.connectionId', 'ASC').addOrderBy('c.type', 'ASC').getMany(),
    );
  }

  /** Counts of the tenant's live credentials from GROUP BYs on the indexed table. */
  async statistics(tenantId: string, nowMs: number): Promise<CredentialStatistics> {
    const base = () => this.live(tenantId);
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
      status: r.status,
      expiresAt: r.expiresAt,
      changedAt: r.rotatedAt ?? r.createdAt,
    }));
  }

  private live(tenantId: string): SelectQueryBuilder<CredentialEntity> {
    return this.runner.manager
      .createQueryBuilder(CredentialEntity, 'c')
      .where('c.tenantId = :tenantId', { tenantId })
      .andWhere('c.status <> :deletedStatus', { deletedStatus: CredentialStatus.DELETED });
  }
}

function whereEffectiveStatus(qb: SelectQueryBuilder<CredentialEntity>, status: CredentialStatus, now: number): void {
  if (status === CredentialStatus.EXPIRED) {
    qb.andWhere('(c.status = :sExpired OR (c.status = :sActive AND c.expiresAt IS NOT NULL AND c.expiresAt <= :sNow))', {
      sExpired: CredentialStatus.EXPIRED,
      sActive: CredentialStatus.ACTIVE,
      sNow: now,
    });
  } else if (status === CredentialStatus.ACTIVE) {
    qb.andWhere('c.status = :sActive AND (c.expiresAt IS NULL OR c.expiresAt > :sNow)', { sActive: CredentialStatus.ACTIVE, sNow: now });
  } else {
    qb.andWhere('c.status = :sStatus', { sStatus: status });
  }
}
