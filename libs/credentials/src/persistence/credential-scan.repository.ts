import { TransactionRunner } from '@app/common';
import { CredentialStatus, type CredentialType } from '../credential-type';
import type { ExpiringCredentialRef, LiveCredentialRef } from '../credential.types';
import { CredentialEntity } from '../entities/credential.entity';

/** A validated cross-tenant expiry scan. */
export interface ExpiryScanFilter {
  beforeMs: number;
  type?: CredentialType;
  statuses: CredentialStatus[];
  limit: number;
  after?: { expiresAtMs: number; id: string };
}

/**
 * Scans of EVERY tenant's credentials in `cv_credentials`, for system jobs only (`CredentialExpiryScanner`): expiring
 * ones, live ones, and a count by connection-id prefix. Reads go through `runner.read` (credential-sql.ts).
 */
export class CredentialScanRepository {
  constructor(private readonly runner: TransactionRunner) {}

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
}

/** The least string above every string that starts with `prefix`, in byte order: its last character, one up (ASCII: the identifier pattern). */
function nextInByteOrder(prefix: string): string {
  return prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1);
}
