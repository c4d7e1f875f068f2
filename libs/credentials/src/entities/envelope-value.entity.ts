import { Column, Entity, Index, PrimaryColumn } from 'typeorm';
import { epochMsDate } from '@app/common';

/**
 * AES-256-GCM ciphertext of one credential value under a tenant data key (a Key Vault secret). The
 * AAD binds it to (tenant, credential, version): a row copied onto another credential fails to decrypt.
 */
@Entity({ name: 'cv_envelope_values' })
@Index('IDX_cv_envelope_values_credential', ['credentialId'])
@Index('IDX_cv_envelope_values_tenant_key', ['tenantId', 'dataKeyVersion'])
export class EnvelopeValueEntity {
  @PrimaryColumn({ type: 'varchar', length: 36 })
  id: string;

  @Column({ name: 'tenant_id', type: 'varchar', length: 128 })
  tenantId: string;

  @Column({ name: 'credential_id', type: 'varchar', length: 36 })
  credentialId: string;

  /** The credential version this ciphertext was written as (part of the AAD). */
  @Column({ type: 'integer' })
  version: number;

  @Column({ name: 'data_key_name', type: 'varchar', length: 127 })
  dataKeyName: string;

  @Column({ name: 'data_key_version', type: 'varchar', length: 64 })
  dataKeyVersion: string;

  @Column({ type: 'varchar', length: 32 })
  iv: string;

  @Column({ name: 'auth_tag', type: 'varchar', length: 32 })
  authTag: string;

  @Column({ type: 'text' })
  ciphertext: string;

  @Column({ name: 'created_at', type: 'bigint', transformer: epochMsDate })
  createdAt: Date;

  @Column({ name: 'updated_at', type: 'bigint', transformer: epochMsDate })
  updatedAt: Date;
}
