import { Column, Entity, Index, PrimaryColumn } from 'typeorm';
import { CredentialStatus, CredentialType, ValueStoreKind } from '../credential-type';
import type { CertificateInfo } from '../validation/credential-value.validator';
import { epochMsDate, jsonText } from '@app/common';

/** Stored shape of certificate facts (dates as ISO strings inside JSON). */
export interface StoredCertificateInfo extends Omit<CertificateInfo, 'validFrom' | 'validTo'> {
  validFrom: string;
  validTo: string;
}

/**
 * Metadata of one credential. NEVER holds a value: the value lives in Key Vault or, encrypted, in
 * cv_envelope_values, reached through cv_credential_versions. `valueHint` is at most the last 3
 * characters of a value of at least 12 characters, for masked display.
 */
@Entity({ name: 'cv_credentials' })
@Index('UQ_cv_credentials_live', ['tenantId', 'integrationId', 'connectionId', 'type'], {
  unique: true,
  where: `"status" <> 'deleted'`,
})
@Index('IDX_cv_credentials_tenant_created', ['tenantId', 'createdAt', 'id'])
@Index('IDX_cv_credentials_tenant_connection', ['tenantId', 'integrationId', 'connectionId'])
// Ending in id: keyset pages by (expiresAt, id) walk the index in order (migration 1860000000000).
@Index('IDX_cv_credentials_tenant_expires_id', ['tenantId', 'expiresAt', 'id'])
// (expires_at, id); on PostgreSQL with INCLUDE columns (migration 1870000000000), which TypeORM cannot declare
// and would drop: the migrations own this index.
@Index('IDX_cv_credentials_expires_id', { synchronize: false })
// (type, connection_id) of live rows, collated "C" on PostgreSQL (migration 1920000000000): owned by the migrations too.
@Index('IDX_cv_credentials_type_connection', { synchronize: false })
// (tenant_id, type, COALESCE(rotated_at, created_at), created_at, id) of active rows (migration 1970000000000): an
// expression TypeORM cannot declare, owned by the migrations.
@Index('IDX_cv_credentials_tenant_type_changed', { synchronize: false })
export class CredentialEntity {
  @PrimaryColumn({ type: 'varchar', length: 36 })
  id: string;

  @Column({ name: 'tenant_id', type: 'varchar', length: 128 })
  tenantId: string;

  @Column({ name: 'integration_id', type: 'varchar', length: 128 })
  integrationId: string;

  @Column({ name: 'connection_id', type: 'varchar', length: 128 })
  connectionId: string;

  @Column({ type: 'varchar', length: 32 })
  type: CredentialType;

  @Column({ name: 'value_store', type: 'varchar', length: 16 })
  valueStore: ValueStoreKind;

  /** Number of the version served by get(); versions are 1, 2, 3, ... */
  @Column({ name: 'current_version', type: 'integer' })
  currentVersion: number;

  @Column({ type: 'varchar', length: 16 })
  status: CredentialStatus;

  @Column({ name: 'expires_at', type: 'bigint', nullable: true, transformer: epochMsDate })
  expiresAt: Date | null;

  @Column({ name: 'rotated_at', type: 'bigint', nullable: true, transformer: epochMsDate })
  rotatedAt: Date | null;

  @Column({ type: 'text', transformer: jsonText })
  tags: Record<string, string>;

  @Column({ name: 'value_hint', type: 'varchar', length: 16, nullable: true })
  valueHint: string | null;

  @Column({ type: 'text', nullable: true, transformer: jsonText })
  certificate: StoredCertificateInfo | null;

  /** Vault store: generation of the secret name new versions are written to. */
  @Column({ name: 'vault_generation', type: 'integer', default: 0 })
  vaultGeneration: number;

  /** Compare-and-set counter: +1 on every committed change. */
  @Column({ name: 'row_version', type: 'integer' })
  rowVersion: number;

  @Column({ name: 'created_at', type: 'bigint', transformer: epochMsDate })
  createdAt: Date;

  @Column({ name: 'updated_at', type: 'bigint', transformer: epochMsDate })
  updatedAt: Date;

  @Column({ name: 'deleted_at', type: 'bigint', nullable: true, transformer: epochMsDate })
  deletedAt: Date | null;

  @Column({ name: 'created_by', type: 'varchar', length: 256 })
  createdBy: string;

  @Column({ name: 'updated_by', type: 'varchar', length: 256 })
  updatedBy: string;
}
