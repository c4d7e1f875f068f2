import { Column, Entity, ForeignKey, Index, PrimaryColumn } from 'typeorm';
import { ValueStoreKind } from '../credential-type';
import { epochMsDate, jsonText } from '@app/common';
import { CredentialEntity, type StoredCertificateInfo } from './credential.entity';

/**
 * One committed version of a credential: a pointer into the value store, never a value. A rollback
 * adds a version whose pointer repeats an older version's pointer (`sourceVersion`).
 */
@Entity({ name: 'cv_credential_versions' })
@Index('UQ_cv_credential_versions_version', ['credentialId', 'version'], { unique: true })
@Index('IDX_cv_credential_versions_secret', ['credentialId', 'vaultSecretName'])
export class CredentialVersionEntity {
  @PrimaryColumn({ type: 'varchar', length: 36 })
  id: string;

  // Named as migration 1760000000000 created it: TypeORM matches foreign keys by name.
  @Column({ name: 'credential_id', type: 'varchar', length: 36 })
  @ForeignKey(() => CredentialEntity, { name: 'FK_cv_credential_versions_credential', onDelete: 'CASCADE' })
  credentialId: string;

  @Column({ name: 'tenant_id', type: 'varchar', length: 128 })
  tenantId: string;

  @Column({ type: 'integer' })
  version: number;

  @Column({ name: 'value_store', type: 'varchar', length: 16 })
  valueStore: ValueStoreKind;

  @Column({ name: 'vault_secret_name', type: 'varchar', length: 127, nullable: true })
  vaultSecretName: string | null;

  @Column({ name: 'vault_secret_version', type: 'varchar', length: 64, nullable: true })
  vaultSecretVersion: string | null;

  @Column({ name: 'envelope_value_id', type: 'varchar', length: 36, nullable: true })
  envelopeValueId: string | null;

  /** Set on versions created by rollback: the version whose value this one re-serves. */
  @Column({ name: 'source_version', type: 'integer', nullable: true })
  sourceVersion: number | null;

  @Column({ name: 'value_hint', type: 'varchar', length: 16, nullable: true })
  valueHint: string | null;

  @Column({ name: 'expires_at', type: 'bigint', nullable: true, transformer: epochMsDate })
  expiresAt: Date | null;

  /** Client certificates: public facts of this version's certificate (restored by rollback). */
  @Column({ type: 'text', nullable: true, transformer: jsonText })
  certificate: StoredCertificateInfo | null;

  /**
   * Set by the revoke that withdrew this version's value (every version the credential had then), cleared
   * by the un-revoke that lifts that revoke. A revoked version is never served again (by version, by
   * rollback), even after a rotation has made the credential active.
   */
  @Column({ name: 'revoked_at', type: 'bigint', nullable: true, transformer: epochMsDate })
  revokedAt: Date | null;

  @Column({ name: 'created_at', type: 'bigint', transformer: epochMsDate })
  createdAt: Date;

  @Column({ name: 'created_by', type: 'varchar', length: 256 })
  createdBy: string;
}
