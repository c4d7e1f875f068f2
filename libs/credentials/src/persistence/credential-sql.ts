import { TransactionRunner } from '@app/common';
import type { DataSource, SelectQueryBuilder } from 'typeorm';
import { CredentialStatus } from '../credential-type';
import { CredentialEntity } from '../entities/credential.entity';
import { INTERNAL_CREDENTIAL_TYPE, INTERNAL_PREFIX_LIST } from '../internal-credentials';
import { CREDENTIAL_COLUMNS, type CredentialRow } from './credential-row';

/*
 * What the `cv_credentials` repositories share — `CredentialRepository` (one row and its slot), `CredentialListRepository`
 * (a tenant's lists and counts), `CredentialScanRepository` (every tenant's). Reads go through `runner.read` (inside a
 * transaction they join it; outside, on SQLite, they never see another caller's uncommitted rows); writes through
 * `runner.run` (they join the caller's transaction, else open their own). The per-request reads (by id, pages,
 * expiring, the connections screen) run fixed raw statements (`HotSql`) and map rows by hand (`credentialFromRow`).
 */

/**
 * A predicate true for a row that is NOT an internal credential (internal-credentials.ts), over the given columns,
 * with its parameters (`param(i)` writes the i-th placeholder). In SQL, so a keyset page is never cut short by rows
 * filtered after its LIMIT. SUBSTR, not LIKE: a prefix is matched as it is.
 */
export function notInternal(typeColumn: string, connectionColumn: string, param: (i: number) => string): { sql: string; params: string[] } {
  const prefixes = INTERNAL_PREFIX_LIST.map((p, i) => `SUBSTR(${connectionColumn}, 1, ${p.length}) <> ${param(i + 1)}`);
  return { sql: `(${typeColumn} <> ${param(0)} OR (${prefixes.join(' AND ')}))`, params: [INTERNAL_CREDENTIAL_TYPE, ...INTERNAL_PREFIX_LIST] };
}
export const NOT_INTERNAL_RAW = notInternal('"type"', '"connection_id"', () => '?');

/**
 * The hot reads' SQL for one DataSource, written once with `?` placeholders (numbered `$n` for
 * PostgreSQL): no query builder, no entity hydration per request.
 */
export class HotSql {
  readonly byId: string;
  private readonly statements = new Map<string, string>();

  constructor(
    private readonly select: string,
    private readonly postgres: boolean,
  ) {
    this.byId = this.dialect(`${select} WHERE "id" = ? AND "tenant_id" = ?`);
  }

  /** The hot reads' SQL of `ds`'s `cv_credentials` (its schema, if any, and its dialect). */
  static of(ds: DataSource): HotSql {
    const meta = ds.getMetadata(CredentialEntity);
    const table = [meta.schema, meta.tableName].filter(Boolean).map((n) => ds.driver.escape(n!)).join('.');
    return new HotSql(`SELECT ${CREDENTIAL_COLUMNS} FROM ${table}`, ds.driver.options.type === 'postgres');
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

/** A raw SELECT through the runner's manager: joins the ambient transaction; outside one, SQLite's read gate applies. */
export function rawRows(runner: TransactionRunner, sql: string, params: unknown[]): Promise<CredentialRow[]> {
  return runner.read(() => runner.manager.query(sql, params) as Promise<CredentialRow[]>);
}

/** The tenant's live (not deleted) rows, as a query builder on the runner's manager (alias `c`). */
export function liveRows(runner: TransactionRunner, tenantId: string): SelectQueryBuilder<CredentialEntity> {
  return runner.manager
    .createQueryBuilder(CredentialEntity, 'c')
    .where('c.tenantId = :tenantId', { tenantId })
    .andWhere('c.status <> :deletedStatus', { deletedStatus: CredentialStatus.DELETED });
}
