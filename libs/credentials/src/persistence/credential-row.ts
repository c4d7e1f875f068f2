import type { CredentialStatus, CredentialType, ValueStoreKind } from '../credential-type';
import { CredentialEntity, type StoredCertificateInfo } from '../entities/credential.entity';

/**
 * One `cv_credentials` row as the drivers return it to a raw SELECT of `CREDENTIAL_COLUMNS`: BIGINT
 * epoch ms come back as strings from pg and as numbers from better-sqlite3; JSON is TEXT on both.
 */
export interface CredentialRow {
  id: string;
  tenant_id: string;
  integration_id: string;
  connection_id: string;
  type: CredentialType;
  value_store: ValueStoreKind;
  current_version: number;
  status: CredentialStatus;
  expires_at: string | number | null;
  rotated_at: string | number | null;
  tags: string;
  value_hint: string | null;
  certificate: string | null;
  vault_generation: number;
  row_version: number;
  created_at: string | number;
  updated_at: string | number;
  deleted_at: string | number | null;
  created_by: string;
  updated_by: string;
}

/** Every column of `CredentialEntity`, quoted (`type` and `status` are keywords), in the entity's order. */
export const CREDENTIAL_COLUMNS = [
  'id',
  'tenant_id',
  'integration_id',
  'connection_id',
  'type',
  'value_store',
  'current_version',
  'status',
  'expires_at',
  'rotated_at',
  'tags',
  'value_hint',
  'certificate',
  'vault_generation',
  'row_version',
  'created_at',
  'updated_at',
  'deleted_at',
  'created_by',
  'updated_by',
]
  .map((c) => `"${c}"`)
  .join(', ');

const msDate = (v: string | number) => new Date(Number(v));
const msDateOrNull = (v: string | number | null) => (v == null ? null : new Date(Number(v)));

/**
 * What TypeORM's hydration (with the entity's `epochMsDate` and `jsonText` transformers) makes of a
 * row, without its per-row metadata walk: the hot reads map by hand (credential-row.int-spec.ts checks
 * both agree on every column, on both databases).
 */
export function credentialFromRow(r: CredentialRow): CredentialEntity {
  const e = new CredentialEntity();
  e.id = r.id;
  e.tenantId = r.tenant_id;
  e.integrationId = r.integration_id;
  e.connectionId = r.connection_id;
  e.type = r.type;
  e.valueStore = r.value_store;
  e.currentVersion = Number(r.current_version);
  e.status = r.status;
  e.expiresAt = msDateOrNull(r.expires_at);
  e.rotatedAt = msDateOrNull(r.rotated_at);
  e.tags = JSON.parse(r.tags) as Record<string, string>;
  e.valueHint = r.value_hint;
  e.certificate = r.certificate == null ? null : (JSON.parse(r.certificate) as StoredCertificateInfo);
  e.vaultGeneration = Number(r.vault_generation);
  e.rowVersion = Number(r.row_version);
  e.createdAt = msDate(r.created_at);
  e.updatedAt = msDate(r.updated_at);
  e.deletedAt = msDateOrNull(r.deleted_at);
  e.createdBy = r.created_by;
  e.updatedBy = r.updated_by;
  return e;
}
