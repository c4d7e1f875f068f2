import { randomBytes } from 'node:crypto';
import type { DataSource } from 'typeorm';
import { encryptLegacyField } from './legacy-cipher';

/** A row of the demo legacy table (`migrate:seed-legacy`, tests, the benchmark): ids, dates, ciphertexts. */
export interface LegacySeedRow {
  id: number;
  tenant_id: string;
  integration_id: string;
  connection_id: string;
  created_at: string;
  expires_at: string | null;
  access_token: string | null;
  refresh_token: string | null;
  api_key: string | null;
  basic_username: string | null;
  basic_password: string | null;
  client_certificate: string | null;
  client_key: string | null;
  webhook_secret: string | null;
}

export interface LegacySeedOptions {
  count: number;
  /** keys[0] encrypts every row; keys[1] (if given) the "second key" anomaly rows. */
  keys: Buffer[];
  /**
   * Put one of each problem in every hundred rows: at offset 5 a tampered tag, 6 a row under keys[1],
   * 7 an unknown key, 8 no fields, 9 empty fields, 10 a duplicate of row 4 (same value), 12 a
   * duplicate of row 1 with another value. @default false
   */
  anomalies?: boolean;
  /** Tenants the rows are spread over. @default ['t1', 't2', 't3'] */
  tenants?: string[];
  /** Only API keys (one credential per connection): what the benchmark uses. @default false */
  apiKeysOnly?: boolean;
}

const INTEGRATIONS = ['github', 'stripe', 'salesforce'];

/** 0: OAuth access + refresh token, 1: API key, 2: basic-auth pair. Rows that take part in the duplicate cases hold API keys. */
export function legacySeedKind(i: number, o: Pick<LegacySeedOptions, 'anomalies' | 'apiKeysOnly'>): 0 | 1 | 2 {
  if (o.apiKeysOnly || (o.anomalies && [1, 4, 10, 12].includes(i % 100))) return 1;
  return (i % 3) as 0 | 1 | 2;
}

/**
 * Rows of the demo legacy table: connection i holds OAuth tokens (i % 3 = 0), an API key (1) or a
 * basic-auth pair (2), encrypted as legacy systems did (hex on even rows, base64 on odd ones).
 */
export function legacySeedRows(o: LegacySeedOptions): LegacySeedRow[] {
  const tenants = o.tenants ?? ['t1', 't2', 't3'];
  const rows: LegacySeedRow[] = [];
  const plain: { api?: string }[] = [];
  for (let i = 0; i < o.count; i++) {
    const slot = o.anomalies ? i % 100 : -1;
    const base = i - slot;
    const kind = legacySeedKind(i, o);
    const key = slot === 6 && o.keys[1] ? o.keys[1] : slot === 7 ? randomBytes(32) : o.keys[0];
    const enc = (v: string) => encryptLegacyField(v, key, i % 2 ? 'base64' : 'hex');
    let connection = `conn-${String(i).padStart(6, '0')}`;
    let api = kind === 1 ? `sk_live_${randomBytes(16).toString('hex')}` : undefined;
    if (slot === 10) {
      connection = rows[i - 6].connection_id;
      api = plain[i - 6].api;
    }
    if (slot === 12 && base + 1 < rows.length) connection = rows[base + 1].connection_id;
    plain.push({ api });
    const row: LegacySeedRow = {
      id: i + 1,
      tenant_id: tenants[(slot === 10 ? i - 6 : slot === 12 ? base + 1 : i) % tenants.length],
      integration_id: INTEGRATIONS[(slot === 10 ? i - 6 : slot === 12 ? base + 1 : i) % INTEGRATIONS.length],
      connection_id: connection,
      created_at: new Date(Date.UTC(2021, 0, 1) + i * 60_000).toISOString(),
      expires_at: kind === 0 ? new Date(Date.UTC(2031, 0, 1) + i * 1000).toISOString() : null,
      access_token: kind === 0 ? enc(`ya29.${randomBytes(24).toString('hex')}`) : null,
      refresh_token: kind === 0 ? enc(`1//${randomBytes(24).toString('hex')}`) : null,
      api_key: api ? enc(api) : null,
      basic_username: kind === 2 ? enc(`user-${i}`) : null,
      basic_password: kind === 2 ? enc(`pw-${randomBytes(12).toString('hex')}`) : null,
      client_certificate: null,
      client_key: null,
      webhook_secret: null,
    };
    if (slot === 5) {
      // Flip one bit of the ciphertext: the auth tag no longer verifies.
      const field = (row.access_token ?? row.api_key ?? row.basic_password)!;
      const parts = field.split(':');
      const ct = Buffer.from(parts[2], i % 2 ? 'base64' : 'hex');
      ct[0] ^= 1;
      parts[2] = ct.toString(i % 2 ? 'base64' : 'hex');
      if (row.access_token) row.access_token = parts.join(':');
      else if (row.api_key) row.api_key = parts.join(':');
      else row.basic_password = parts.join(':');
    }
    if (slot === 8) Object.assign(row, { access_token: null, refresh_token: null, api_key: null, basic_username: null, basic_password: null });
    if (slot === 9) Object.assign(row, { access_token: '', refresh_token: '', api_key: '', basic_username: '', basic_password: '' });
    rows.push(row);
  }
  return rows;
}

const COLUMNS: (keyof LegacySeedRow)[] = [
  'id', 'tenant_id', 'integration_id', 'connection_id', 'created_at', 'expires_at',
  'access_token', 'refresh_token', 'api_key', 'basic_username', 'basic_password', 'client_certificate', 'client_key', 'webhook_secret',
];

/** Creates `table` (if missing) in the legacy database and inserts the rows, in one transaction. */
export async function seedLegacyTable(db: DataSource, rows: LegacySeedRow[], table = 'legacy_connections'): Promise<void> {
  const pg = db.options.type === 'postgres';
  const t = db.driver.escape(table);
  await db.query(
    `CREATE TABLE IF NOT EXISTS ${t} (id ${pg ? 'BIGINT' : 'INTEGER'} PRIMARY KEY, ` +
      COLUMNS.slice(1).map((c) => `${db.driver.escape(c)} TEXT`).join(', ') + ')',
  );
  const placeholders = COLUMNS.map((_, i) => (pg ? `$${i + 1}` : '?')).join(', ');
  await db.transaction(async (m) => {
    for (const r of rows) await m.query(`INSERT INTO ${t} (${COLUMNS.join(', ')}) VALUES (${placeholders})`, COLUMNS.map((c) => r[c]));
  });
}

/** The same rows as JSON lines (what `JsonlLegacySource` reads with the default mapping). */
export function legacyJsonl(rows: LegacySeedRow[]): string {
  return rows.map((r) => JSON.stringify(r)).join('\n') + '\n';
}
