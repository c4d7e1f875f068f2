import { TransactionRunner } from '@app/common';
import { CredentialStatus, type CredentialType } from '../credential-type';
import type { CredentialStatistics } from '../credential.types';
import type { CredentialEntity } from '../entities/credential.entity';
import { credentialFromRow } from './credential-row';
import { HotSql, liveRows, NOT_INTERNAL_RAW, notInternal, rawRows } from './credential-sql';

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

type Counted = { key: string; n: string | number };

/** Statuses `expiring` lists: live, and not revoked. */
const EXPIRING_STATUSES = [CredentialStatus.ACTIVE, CredentialStatus.EXPIRED, CredentialStatus.NEEDS_REAUTH];

/**
 * Many of one tenant's credentials at once, from `cv_credentials`: the keyset pages of `list`, the rotation lib's due
 * list (`pageByLastChange`), the expiring list, the connections screen's rows, and the statistics' counts. How they
 * read: credential-sql.ts.
 */
export class CredentialListRepository {
  private hot?: HotSql;

  constructor(private readonly runner: TransactionRunner) {}

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
    const rows = await rawRows(this.runner, this.sql().where(where, '"created_at" ASC, "id" ASC'), [...params, f.limit]);
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
    const rows = await rawRows(this.runner, this.sql().where(where, `${changed} ASC, "created_at" ASC, "id" ASC`), [...params, f.limit]);
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
    const rows = await rawRows(this.runner, this.sql().where(where, '"expires_at" ASC, "id" ASC'), [...params, limit]);
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
    const rows = await rawRows(this.runner, this.sql().where(where, '"integration_id" ASC, "connection_id" ASC, "type" ASC', false), params);
    return rows.map(credentialFromRow);
  }

  /** Counts of the tenant's live credentials from GROUP BYs on the indexed table; internal ones only when asked. */
  async statistics(tenantId: string, nowMs: number, includeInternal = false): Promise<CredentialStatistics> {
    const notInternalQb = notInternal('c.type', 'c.connectionId', (i) => `:internal${i}`);
    const base = () => {
      const qb = liveRows(this.runner, tenantId);
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

  private sql(): HotSql {
    return (this.hot ??= HotSql.of(this.runner.dataSource));
  }
}
