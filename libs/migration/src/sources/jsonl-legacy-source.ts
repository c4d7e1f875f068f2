import { readFile } from 'node:fs/promises';
import type { CredentialType } from '@app/credentials';
import { LegacySourceError } from '../errors/migration.errors';
import { legacyDate, resolveLegacyMapping, type LegacyMapping, type ResolvedLegacyMapping } from './legacy-mapping';
import type { LegacyConnectionRow, LegacyCredentialSource, LegacyFilter } from './legacy-source';

/**
 * Legacy rows exported as JSON lines, one object per connection with the mapping's keys (the same
 * names as the SQL columns). Read once into memory; the order is the file's. A line without the id
 * key gets `line:<n>`. Read-only: `deleteAfterMigration` needs the SQL source.
 */
export class JsonlLegacySource implements LegacyCredentialSource {
  readonly name: string;
  private readonly m: ResolvedLegacyMapping;
  private rows?: LegacyConnectionRow[];
  private readonly position = new Map<string, number>();

  constructor(
    private readonly path: string,
    mapping: LegacyMapping = {},
    options: { name?: string } = {},
  ) {
    this.m = resolveLegacyMapping(mapping);
    this.name = options.name ?? `jsonl:${path.split(/[\\/]/).pop()}`;
  }

  private async load(): Promise<LegacyConnectionRow[]> {
    if (this.rows) return this.rows;
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (e) {
      throw new LegacySourceError(`the JSON-lines file cannot be read (${(e as { code?: string }).code ?? 'error'})`, { cause: e });
    }
    const m = this.m;
    const rows: LegacyConnectionRow[] = [];
    text.split('\n').forEach((line, i) => {
      if (!line.trim()) return;
      let o: Record<string, unknown>;
      try {
        o = JSON.parse(line) as Record<string, unknown>;
      } catch {
        // Never quote the line: it holds ciphertext.
        throw new LegacySourceError(`line ${i + 1} of the JSON-lines file is not JSON`);
      }
      const str = (v: unknown) => (v == null ? '' : String(v));
      rows.push({
        legacyId: o[m.idColumn] == null ? `line:${i + 1}` : String(o[m.idColumn]),
        tenantId: str(o[m.tenantColumn]),
        integrationId: str(o[m.integrationColumn]),
        connectionId: str(o[m.connectionColumn]),
        createdAt: m.createdAtColumn ? legacyDate(o[m.createdAtColumn]) : null,
        expiresAt: m.expiresAtColumn ? legacyDate(o[m.expiresAtColumn]) : null,
        fields: Object.fromEntries(Object.entries(m.fields).map(([type, key]) => [type, typeof o[key!] === 'string' ? (o[key!] as string) : null])),
      });
    });
    rows.forEach((r, i) => this.position.set(r.legacyId, i));
    this.rows = rows;
    return rows;
  }

  private matches(r: LegacyConnectionRow, f: LegacyFilter): boolean {
    return (f.tenantId === undefined || r.tenantId === f.tenantId) && (f.integrationId === undefined || r.integrationId === f.integrationId);
  }

  get columns(): Readonly<Partial<Record<CredentialType, string>>> {
    return this.m.fields;
  }

  async count(filter: LegacyFilter): Promise<number> {
    return (await this.load()).filter((r) => this.matches(r, filter)).length;
  }

  async page(filter: LegacyFilter, after: string | undefined, limit: number): Promise<LegacyConnectionRow[]> {
    const rows = await this.load();
    const out: LegacyConnectionRow[] = [];
    for (let i = after === undefined ? 0 : (this.position.get(after) ?? rows.length) + 1; i < rows.length && out.length < limit; i++) {
      if (this.matches(rows[i], filter)) out.push(rows[i]);
    }
    return out;
  }

  async clearFields(_row: LegacyConnectionRow, _types: CredentialType[]): Promise<void> {
    throw new LegacySourceError('the JSON-lines source is read-only: deleteAfterMigration needs the SQL source');
  }

  async close(): Promise<void> {
    this.rows = undefined;
  }
}
