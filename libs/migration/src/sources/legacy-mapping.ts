import { CredentialType, CREDENTIAL_TYPES } from '@app/credentials';
import { MigrationConfigurationError } from '../errors/migration.errors';

/** Where a legacy table (or a JSON-lines object) keeps each part of a connection. */
export interface LegacyMapping {
  /** Table name (`schema.table` allowed); unused by the JSON-lines source. @default 'legacy_connections' */
  table?: string;
  /** Unique, orderable row id. @default 'id' */
  idColumn?: string;
  /** @default 'tenant_id' */
  tenantColumn?: string;
  /** @default 'integration_id' */
  integrationColumn?: string;
  /** @default 'connection_id' */
  connectionColumn?: string;
  /** ISO text, epoch ms or a SQL timestamp; null keeps none. @default 'created_at' */
  createdAtColumn?: string | null;
  /** @default 'expires_at' */
  expiresAtColumn?: string | null;
  /**
   * Encrypted column per credential type; replaces the defaults (not merged), so name only the columns the table has
   * (`{ api_key: 'secret' }`). @default DEFAULT_LEGACY_FIELDS (columns access_token, refresh_token, api_key,
   * basic_username, basic_password, client_certificate, client_key, webhook_secret)
   */
  fields?: Partial<Record<CredentialType, string>>;
}

export type ResolvedLegacyMapping = Required<Omit<LegacyMapping, 'createdAtColumn' | 'expiresAtColumn'>> & {
  createdAtColumn: string | null;
  expiresAtColumn: string | null;
};

export const DEFAULT_LEGACY_FIELDS: Readonly<Partial<Record<CredentialType, string>>> = {
  [CredentialType.OAUTH_ACCESS_TOKEN]: 'access_token',
  [CredentialType.OAUTH_REFRESH_TOKEN]: 'refresh_token',
  [CredentialType.API_KEY]: 'api_key',
  [CredentialType.BASIC_AUTH_USERNAME]: 'basic_username',
  [CredentialType.BASIC_AUTH_PASSWORD]: 'basic_password',
  [CredentialType.CLIENT_CERTIFICATE]: 'client_certificate',
  [CredentialType.CLIENT_PRIVATE_KEY]: 'client_key',
  [CredentialType.WEBHOOK_SECRET]: 'webhook_secret',
};

const IDENT = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

/** Defaults merged, every name checked as a plain SQL identifier (they are quoted, never bound). */
export function resolveLegacyMapping(m: LegacyMapping = {}): ResolvedLegacyMapping {
  const r: ResolvedLegacyMapping = {
    table: m.table ?? 'legacy_connections',
    idColumn: m.idColumn ?? 'id',
    tenantColumn: m.tenantColumn ?? 'tenant_id',
    integrationColumn: m.integrationColumn ?? 'integration_id',
    connectionColumn: m.connectionColumn ?? 'connection_id',
    createdAtColumn: m.createdAtColumn === undefined ? 'created_at' : m.createdAtColumn,
    expiresAtColumn: m.expiresAtColumn === undefined ? 'expires_at' : m.expiresAtColumn,
    fields: { ...(m.fields ?? DEFAULT_LEGACY_FIELDS) },
  };
  // From JSON (LEGACY_MAPPING) as often as from code: a name that is no string is refused like any bad name.
  const identifier = (v: unknown) => typeof v === 'string' && IDENT.test(v);
  const problems: { path: string; message: string }[] = [];
  if (typeof r.table !== 'string' || !r.table.split('.').every(identifier) || r.table.split('.').length > 2) {
    problems.push({ path: 'mapping.table', message: 'must be a plain SQL identifier (schema.table allowed)' });
  }
  for (const key of ['idColumn', 'tenantColumn', 'integrationColumn', 'connectionColumn', 'createdAtColumn', 'expiresAtColumn'] as const) {
    const v = r[key];
    if (v !== null && !identifier(v)) problems.push({ path: `mapping.${key}`, message: 'must be a plain SQL identifier' });
  }
  const fields: unknown = m.fields;
  const isObject = fields === undefined || (typeof fields === 'object' && fields !== null && !Array.isArray(fields));
  if (!isObject) problems.push({ path: 'mapping.fields', message: 'must be an object of credential type → column' });
  const entries = isObject ? Object.entries(r.fields) : [];
  if (isObject && entries.length === 0) problems.push({ path: 'mapping.fields', message: 'must map at least one credential type' });
  for (const [type, column] of entries) {
    if (!CREDENTIAL_TYPES.includes(type as CredentialType)) problems.push({ path: `mapping.fields.${type}`, message: 'is not a credential type' });
    else if (!identifier(column)) problems.push({ path: `mapping.fields.${type}`, message: 'must be a plain SQL identifier' });
  }
  if (problems.length) throw new MigrationConfigurationError(problems, 'legacy mapping');
  return r;
}

/** `YYYY-MM-DD`, optionally with a time (`T` or a space) and a zone: what a legacy column holds as text. */
const ISO_DATE = /^(\d{4})-(\d{2})-(\d{2})(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?\s*(?:Z|[+-]\d{2}:?\d{2})?)?$/i;

/**
 * A legacy date: Date, epoch ms (number or digits), or ISO 8601 text (a real calendar day: 2030-02-30 is
 * not one); null when empty. Anything else is an Invalid Date, which the migration reports (LEGACY_FORMAT)
 * instead of migrating a credential that would silently never expire.
 */
export function legacyDate(v: unknown): Date | null {
  if (v == null || v === '') return null;
  if (v instanceof Date) return v;
  if (typeof v === 'number' || (typeof v === 'string' && /^\d+$/.test(v))) return new Date(Number(v));
  const m = typeof v === 'string' ? ISO_DATE.exec(v.trim()) : null;
  if (!m) return new Date(NaN);
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const day = new Date(Date.UTC(y, mo - 1, d));
  if (day.getUTCFullYear() !== y || day.getUTCMonth() !== mo - 1 || day.getUTCDate() !== d) return new Date(NaN);
  return new Date(String(v).trim());
}
