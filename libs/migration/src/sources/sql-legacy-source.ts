import type { CredentialType } from '@app/credentials';
import type { DataSource } from 'typeorm';
import { LegacySourceError } from '../errors/migration.errors';
import { legacyDate, resolveLegacyMapping, type LegacyMapping, type ResolvedLegacyMapping } from './legacy-mapping';
import type { LegacyConnectionRow, LegacyCredentialSource, LegacyFilter } from './legacy-source';

/**
 * Legacy rows in a SQL table of another database (a TypeORM DataSource the caller initialised and
 * owns). Names from the mapping are validated identifiers, quoted by the driver; values are bound.
 */
export class SqlLegacySource implements LegacyCredentialSource {
  readonly name: string;
  private readonly m: ResolvedLegacyMapping;

  constructor(
    private readonly db: DataSource,
    mapping: LegacyMapping = {},
    options: { name?: string } = {},
  ) {
    this.m = resolveLegacyMapping(mapping);
    this.name = options.name ?? `sql:${this.m.table}`;
  }

  private q(name: string): string {
    return name.split('.').map((p) => this.db.driver.escape(p)).join('.');
  }

  private where(filter: LegacyFilter, after: string | undefined): { sql: string; params: unknown[] } {
    const params: unknown[] = [];
    const p = (v: unknown) => {
      params.push(v);
      return this.db.options.type === 'postgres' ? `$${params.length}` : '?';
    };
    const conds: string[] = [];
    if (filter.tenantId !== undefined) conds.push(`${this.q(this.m.tenantColumn)} = ${p(filter.tenantId)}`);
    if (filter.integrationId !== undefined) conds.push(`${this.q(this.m.integrationColumn)} = ${p(filter.integrationId)}`);
    if (after !== undefined) conds.push(`${this.q(this.m.idColumn)} > ${p(after)}`);
    return { sql: conds.length ? ` WHERE ${conds.join(' AND ')}` : '', params };
  }

  get columns(): Readonly<Partial<Record<CredentialType, string>>> {
    return this.m.fields;
  }

  async count(filter: LegacyFilter): Promise<number> {
    const w = this.where(filter, undefined);
    const rows = await this.query<{ n: number | string }>(`SELECT COUNT(*) AS n FROM ${this.q(this.m.table)}${w.sql}`, w.params);
    return Number(rows[0]?.n ?? 0);
  }

  async page(filter: LegacyFilter, after: string | undefined, limit: number): Promise<LegacyConnectionRow[]> {
    const m = this.m;
    const cols = [m.idColumn, m.tenantColumn, m.integrationColumn, m.connectionColumn, m.createdAtColumn, m.expiresAtColumn, ...Object.values(m.fields)]
      .filter((c): c is string => !!c);
    const w = this.where(filter, after);
    const sql = `SELECT ${[...new Set(cols)].map((c) => this.q(c)).join(', ')} FROM ${this.q(m.table)}${w.sql} ORDER BY ${this.q(m.idColumn)} LIMIT ${Math.floor(limit)}`;
    const rows = await this.query<Record<string, unknown>>(sql, w.params);
    return rows.map((r) => ({
      legacyId: String(r[m.idColumn]),
      tenantId: String(r[m.tenantColumn] ?? ''),
      integrationId: String(r[m.integrationColumn] ?? ''),
      connectionId: String(r[m.connectionColumn] ?? ''),
      createdAt: m.createdAtColumn ? legacyDate(r[m.createdAtColumn]) : null,
      expiresAt: m.expiresAtColumn ? legacyDate(r[m.expiresAtColumn]) : null,
      fields: Object.fromEntries(Object.entries(m.fields).map(([type, col]) => [type, (r[col!] as string | null | undefined) ?? null])),
    }));
  }

  async clearFields(row: LegacyConnectionRow, types: CredentialType[]): Promise<void> {
    const cols = types.map((t) => this.m.fields[t]).filter((c): c is string => !!c);
    if (!cols.length) return;
    const pg = this.db.options.type === 'postgres';
    const set = cols.map((c) => `${this.q(c)} = NULL`).join(', ');
    await this.query(`UPDATE ${this.q(this.m.table)} SET ${set} WHERE ${this.q(this.m.idColumn)} = ${pg ? '$1' : '?'}`, [row.legacyId]);
  }

  async close(): Promise<void> {
    // The DataSource belongs to the caller.
  }

  private async query<T>(sql: string, params: unknown[]): Promise<T[]> {
    try {
      return (await this.db.query(sql, params)) as T[];
    } catch (e) {
      // The driver's message may quote a row; name and code only — or, when the mapping does not fit the table, what to set.
      const misfit = await this.mappingMisfit().catch(() => undefined);
      throw new LegacySourceError(misfit ?? `the legacy database query failed (${(e as { code?: string }).code ?? (e as Error).name})`, { cause: e });
    }
  }

  /**
   * After a failed query: the table or the columns of the mapping the database lacks, with the option naming each.
   * Probed with queries that read no row and resolve names as the failed one did (the connection's search_path, not
   * the DataSource's `schema` option, which TypeORM's hasTable would use).
   */
  private async mappingMisfit(): Promise<string | undefined> {
    const m = this.m;
    const from = `FROM ${this.q(m.table)} WHERE 1 = 0`;
    const fails = (sql: string) => this.db.query(sql).then(() => undefined, (e: unknown) => e ?? new Error('query failed'));
    const tableError = await fails(`SELECT 1 ${from}`);
    // A lost connection fails this probe too: the message cannot tell a missing table from an unreachable database.
    if (tableError) return `the legacy table ${m.table} cannot be read (${(tableError as { code?: string }).code ?? (tableError as Error).name}): does it exist, and is the database reachable? (mapping.table)`;
    const named: [string, string | null][] = [
      ['idColumn', m.idColumn],
      ['tenantColumn', m.tenantColumn],
      ['integrationColumn', m.integrationColumn],
      ['connectionColumn', m.connectionColumn],
      ['createdAtColumn', m.createdAtColumn],
      ['expiresAtColumn', m.expiresAtColumn],
      ...Object.entries(m.fields).map(([type, col]): [string, string] => [`fields.${type}`, col!]),
    ];
    const missing: string[] = [];
    for (const [option, column] of named) {
      if (column && (await fails(`SELECT ${this.q(column)} ${from}`))) missing.push(`${column} (mapping.${option})`);
    }
    if (!missing.length) return undefined;
    return (
      `the legacy table ${m.table} has no column ${missing.join(', ')}: name its columns in the mapping ` +
      `(createdAtColumn / expiresAtColumn default to created_at / expires_at: null when the table has none)`
    );
  }
}
